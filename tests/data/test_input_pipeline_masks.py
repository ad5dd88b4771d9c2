"""`read_tfrecords(load_instance_masks=True)`: y["masks"] resized, padded and augmented with
the image."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.data import DataError
from kdet.data.input_pipeline import _resolve_mask_type
from kdet.data.input_pipeline import read_tfrecords
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.layers import KeepAspectRatioResizer

HEIGHT, WIDTH = 16, 24
BOXES = [[0.25, 0.0, 0.75, 0.5], [0.0, 0.5, 0.5, 1.0]]
MASKS = np.zeros([2, HEIGHT, WIDTH], np.uint8)
MASKS[0, 4:12, 0:12] = 1
MASKS[0, 4:6, 0:3] = 0
MASKS[1, 0:8, 12:24] = 1
# The image shows object k in channel k, so the masks can be checked against moved pixels.
IMAGE = np.stack([MASKS[0] * 255, MASKS[1] * 255, np.zeros_like(MASKS[0])], axis=-1)


def write_records(path, mask_type="png", num_records=2):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(num_records):
            example = create_tf_example(
                encode_image(IMAGE, "png"), HEIGHT, WIDTH, BOXES, [1, 2], ["a", "b"],
                filename=f"{index}.png", masks=MASKS, mask_type=mask_type,
            )
            writer.write(example.SerializeToString())
    return str(path)


def first_batch(path, **kwargs):
    dataset = read_tfrecords(
        path, batch_size=2, max_num_boxes=3, shuffle=False, load_instance_masks=True, **kwargs
    )
    return next(iter(dataset))


def test_masks_resized_with_the_image_and_padded_like_the_boxes(tmp_path):
    _, y = first_batch(write_records(tmp_path / "m.record"), image_size=(32, 48))
    assert y["masks"].shape == (2, 3, 32, 48) and y["masks"].dtype == tf.uint8
    # Doubled by nearest neighbour: each mask pixel becomes 2x2.
    np.testing.assert_array_equal(y["masks"][0, :2], MASKS.repeat(2, axis=1).repeat(2, axis=2))
    np.testing.assert_array_equal(y["masks"][:, 2], 0)
    np.testing.assert_allclose(y["boxes"][0, 0], [8, 0, 24, 24])


def test_mask_type_read_from_the_records_and_checked(tmp_path):
    """How the mask type is resolved, tested on `_resolve_mask_type` directly (the numerical
    decoding is tested in test_masks_records.py): no tf.data pipeline needed."""
    numerical = [write_records(tmp_path / "n.record", mask_type="numerical")]
    png = [write_records(tmp_path / "p.record")]
    assert _resolve_mask_type(False, "png", numerical) is None
    assert _resolve_mask_type(True, None, numerical) == "numerical"
    assert _resolve_mask_type(True, None, png) == "png"
    assert _resolve_mask_type(True, "numerical", numerical) == "numerical"
    with pytest.raises(DataError, match="NUMERICAL_MASKS .* but mask_type is PNG_MASKS"):
        _resolve_mask_type(True, "png", numerical)
    with pytest.raises(DataError, match="set mask_type: PNG_MASKS"):
        read_tfrecords(png, load_instance_masks=True, mask_type="numerical")
    with pytest.raises(ValueError, match="mask_type must be one of"):
        _resolve_mask_type(True, "PNG_MASKS", png)


def test_the_model_resizer_pads_the_masks(tmp_path):
    path = write_records(tmp_path / "m.record")
    resizer = KeepAspectRatioResizer(min_dimension=32, max_dimension=40, pad_to_max_dimension=True)
    images, y = first_batch(path, image_resizer=resizer)
    height, width = images["true_image_shape"][0].numpy()
    assert y["masks"].shape == (2, 3, 40, 40) and (height, width) == (27, 40)
    np.testing.assert_array_equal(y["masks"][0, :, height:], 0)
    resized = tf.image.resize(MASKS[..., None], (height, width), method="nearest")[..., 0]
    np.testing.assert_array_equal(y["masks"][0, :2, :height], resized)


def test_augmentation_moves_the_masks_with_the_pixels(tmp_path):
    images, y = first_batch(
        write_records(tmp_path / "m.record"),
        augmentation=[
            ("random_horizontal_flip", {}),
            ("random_rotation90", {}),
            ("random_pad_image", {"pad_color": [0, 0, 0], "max_image_height": 30,
                                  "max_image_width": 30}),
        ],
        image_size=(30, 40),
        pad_to_aspect_ratio=True,
        seed=3,
    )
    assert y["masks"].shape == (2, 3, 30, 40)
    for index in range(2):
        for obj in range(2):
            marker = images[index, ..., obj].numpy() > 127
            mask = y["masks"][index, obj].numpy() > 0
            assert np.sum(marker ^ mask) <= 0.15 * np.sum(marker), f"image {index} object {obj}"
