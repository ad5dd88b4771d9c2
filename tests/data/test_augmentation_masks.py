"""Instance masks move with their boxes through every augmentation op (`object_fields`)."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.data import augmentation
from kdet.data.augmentation import _common
from kdet.data.augmentation import object_fields

# Two objects in a 32x48 image, each mask also drawn in the image (object k in channel k):
# wherever an op moves the pixels, the masks must follow.
MASKS = np.zeros([2, 32, 48], np.uint8)
MASKS[0, 5:15, 6:20] = 1
MASKS[0, 5:9, 6:10] = 0  # a notch, so that flips and rotations show
MASKS[1, 18:29, 25:45] = 1
MASKS[1, 18:21, 40:45] = 0
BOXES = [[5 / 32, 6 / 48, 15 / 32, 20 / 48], [18 / 32, 25 / 48, 29 / 32, 45 / 48]]


def marker_example(dtype=tf.uint8):
    image = np.zeros([32, 48, 3], np.uint8)
    image[..., 0] = MASKS[0] * 255
    image[..., 1] = MASKS[1] * 255
    return (
        tf.constant(image),
        tf.constant(BOXES, tf.float32),
        {"labels": tf.constant([1, 2]), "masks": tf.constant(MASKS, dtype)},
    )


def test_resample_copies_whole_pixel_crops_and_pads_exactly():
    masks = tf.constant(MASKS)
    # Rows 4..20, columns 8..40 of the 32x48 image: a crop.
    window = tf.constant([4 / 32, 8 / 48, 20 / 32, 40 / 48])
    np.testing.assert_array_equal(
        object_fields.resample_masks(masks, window, [16, 32]), MASKS[:, 4:20, 8:40]
    )
    # The image at offset (3, 5) of a 40x60 canvas: a pad with zeros.
    window = _common.pad_window(tf.constant([3, 5]), tf.constant([40, 60]), tf.constant([32, 48]))
    expected = np.zeros([2, 40, 60], np.uint8)
    expected[:, 3:35, 5:53] = MASKS
    np.testing.assert_array_equal(object_fields.resample_masks(masks, window, [40, 60]), expected)
    # Halving and doubling: nearest neighbour, as tf.image.resize(method="nearest").
    unit = tf.constant([0.0, 0.0, 1.0, 1.0])
    for size in ([16, 24], [64, 96], [20, 30]):
        expected = tf.image.resize(MASKS[..., None], size, method="nearest")[..., 0]
        np.testing.assert_array_equal(object_fields.resample_masks(masks, unit, size), expected)


def test_flips_and_rotation_move_the_masks_like_the_image():
    image, _, result = augmentation.random_horizontal_flip(*marker_example(), probability=1.0)
    np.testing.assert_array_equal(result["masks"], MASKS[:, :, ::-1])
    image, _, result = augmentation.random_vertical_flip(*marker_example(), probability=1.0)
    np.testing.assert_array_equal(result["masks"], MASKS[:, ::-1])
    image, boxes, result = augmentation.random_rotation90(*marker_example(), probability=1.0)
    np.testing.assert_array_equal(result["masks"], np.rot90(MASKS, axes=(1, 2)))
    assert image.shape == (48, 32, 3)
    np.testing.assert_allclose(boxes[0], [1 - 20 / 48, 5 / 32, 1 - 6 / 48, 15 / 32], atol=1e-6)


def test_crop_drops_the_masks_of_dropped_boxes():
    # The window holds object 0 only: object 1 goes with its mask.
    window = tf.constant([0.0, 0.0, 0.5, 0.5])
    boxes, result = _common.crop_boxes(
        tf.constant(BOXES), marker_example()[2], window, image_size=[16, 24]
    )
    assert result["labels"].numpy().tolist() == [1] and boxes.shape == (1, 4)
    np.testing.assert_array_equal(result["masks"], MASKS[:1, :16, :24])


# Ops that resample the image (bilinear) while the masks take the nearest pixel: they agree
# except on edge pixels.
RESIZING = {
    "random_image_scale",
    "random_resize_method",
    "random_downscale_to_target_pixels",
    "random_scale_crop_and_pad_to_square",
    "resize_image",
}
MOVING_OPS = [
    ("random_horizontal_flip", {"probability": 1.0}),
    ("random_vertical_flip", {"probability": 1.0}),
    ("random_rotation90", {"probability": 1.0}),
    # Pads in black: the masks' zeros (the default, the mean color, may be bright here).
    ("random_pad_image", {"pad_color": [0, 0, 0]}),
    ("random_absolute_pad_image", {"max_height_padding": 20, "max_width_padding": 20}),
    ("random_crop_image", {"min_object_covered": 0.3}),
    ("random_crop_pad_image", {"min_object_covered": 0.3, "pad_color": [0, 0, 0]}),
    ("random_crop_to_aspect_ratio", {"aspect_ratio": 1.0}),
    ("ssd_random_crop", {}),
    ("ssd_random_crop_pad", {}),
    ("ssd_random_crop_fixed_aspect_ratio", {}),
    ("ssd_random_crop_pad_fixed_aspect_ratio", {}),
    ("random_square_crop_by_scale", {"max_border": 8}),
    ("random_self_concat_image", {"concat_vertical_probability": 1.0,
                                  "concat_horizontal_probability": 0.5}),
    ("random_scale_crop_and_pad_to_square", {"output_size": 40, "scale_min": 0.6}),
    ("random_image_scale", {"min_scale_ratio": 0.8, "max_scale_ratio": 1.5}),
    ("random_resize_method", {"target_height": 40, "target_width": 56}),
    ("random_downscale_to_target_pixels", {"min_target_pixels": 900, "max_target_pixels": 1200}),
    ("resize_image", {"new_height": 20, "new_width": 60}),
    ("random_jitter_boxes", {"ratio": 0.2}),
    ("random_black_patches", {}),
    ("drop_label_probabilistically", {"label": 2}),
]


@pytest.mark.parametrize("op, params", MOVING_OPS, ids=[op for op, _ in MOVING_OPS])
def test_masks_stay_on_their_pixels(op, params):
    for salt in range(2):
        image, boxes, result = augmentation.AUGMENTATION_OPS[op](
            *marker_example(), seed=tf.constant([salt, 5], tf.int64), **params
        )
        image = image.numpy()
        masks, labels = result["masks"].numpy(), result["labels"].numpy()
        assert masks.shape == (boxes.shape[0], *image.shape[:2]), f"{op} {salt}"
        assert masks.dtype == np.uint8
        for label in set(labels.tolist()):
            # The masks of an object (and of its copies) cover exactly its pixels.
            union = np.any(masks[labels == label] > 0, axis=0)
            marker = image[..., label - 1] > 127
            if op == "random_black_patches":  # black pixels, as in the TF OD API, masks kept
                assert np.all(union | ~marker) and np.array_equal(union, MASKS[label - 1] > 0)
            elif op in RESIZING:
                iou = np.sum(union & marker) / max(np.sum(union | marker), 1)
                assert iou > 0.8, f"{op} {salt}: IoU {iou:.2f}"
            else:
                np.testing.assert_array_equal(union, marker, err_msg=f"{op} {salt}")


def test_float_masks_keep_their_dtype_through_a_built_augmentation():
    augment = augmentation.build_augmentation(
        [("random_horizontal_flip", {}), ("random_crop_image", {})]
    )
    _, boxes, result = augment(*marker_example(tf.float32), seed=tf.constant([1, 2], tf.int64))
    assert result["masks"].dtype == tf.float32
    assert result["masks"].shape[0] == boxes.shape[0]
