"""`read_tfrecords` with keypoints: y["keypoints"] / y["keypoint_visibilities"]."""

import numpy as np
import tensorflow as tf

from kdet.data.input_pipeline import _resolve_num_keypoints
from kdet.data.input_pipeline import pad_keypoints
from kdet.data.input_pipeline import read_tfrecords
from kdet.data.label_map import write_label_map
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.layers import KeepAspectRatioResizer

HEIGHT, WIDTH = 16, 24
BOX = [0.25, 0.0, 0.75, 0.5]
# Three keypoints: visible, labelled not visible, not labelled.
KEYPOINTS = [[0.25, 0.0], [0.5, 0.25], [np.nan, np.nan]]
VISIBILITIES = [2, 1, 0]


def write_records(path, keypoints=True, num_records=2):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(num_records):
            kwargs = {}
            if keypoints:
                kwargs = {"keypoints": [KEYPOINTS], "keypoint_visibilities": [VISIBILITIES]}
            example = create_tf_example(
                encode_image(np.zeros([HEIGHT, WIDTH, 3], np.uint8), "png"),
                HEIGHT, WIDTH, [BOX], [1], ["person"], filename=f"{index}.png", **kwargs,
            )
            writer.write(example.SerializeToString())
    return str(path)


def first_batch(path, **kwargs):
    dataset = read_tfrecords(path, batch_size=2, max_num_boxes=3, shuffle=False, **kwargs)
    _, y = next(iter(dataset))
    return y


def test_keypoints_in_pixels_like_the_boxes_padded_like_them(tmp_path):
    y = first_batch(write_records(tmp_path / "kp.record"), image_size=(32, 48))
    assert y["keypoints"].shape == (2, 3, 3, 2)
    assert y["keypoints"].dtype == tf.float32 and y["keypoint_visibilities"].dtype == tf.int32
    np.testing.assert_allclose(y["boxes"][0, 0], [8, 0, 24, 24])
    # (y, x) in pixels of the 32x48 output; not labelled and padding rows -1 (never NaN).
    np.testing.assert_allclose(y["keypoints"][0, 0], [[8, 0], [16, 12], [-1, -1]])
    np.testing.assert_array_equal(y["keypoint_visibilities"][0, 0], VISIBILITIES)
    np.testing.assert_array_equal(y["keypoints"][0, 1:], -1)
    np.testing.assert_array_equal(y["keypoint_visibilities"][0, 1:], 0)


def test_relative_format_and_aspect_ratio_padding(tmp_path):
    path = write_records(tmp_path / "kp.record")
    y = first_batch(path, bounding_box_format="rel_yxyx")
    np.testing.assert_allclose(y["keypoints"][0, 0, :2], [[0.25, 0.0], [0.5, 0.25]])
    # 16x24 fits 32x32 as 21x32 content at the top-left: keypoints follow the boxes.
    y = first_batch(path, image_size=(32, 32), pad_to_aspect_ratio=True)
    np.testing.assert_allclose(y["boxes"][0, 0], [5.25, 0.0, 15.75, 16.0], atol=1e-4)
    np.testing.assert_allclose(y["keypoints"][0, 0, :2], [[5.25, 0.0], [10.5, 8.0]], atol=1e-4)


def test_keypoints_in_pixels_of_the_content_of_a_model_resizer(tmp_path):
    resizer = KeepAspectRatioResizer(min_dimension=32, max_dimension=40, pad_to_max_dimension=True)
    dataset = read_tfrecords(
        write_records(tmp_path / "kp.record"), batch_size=2, max_num_boxes=3, shuffle=False,
        image_resizer=resizer,
    )
    images, y = next(iter(dataset))
    height, width = images["true_image_shape"][0].numpy()
    assert images["resized_images"].shape[1:3] == (40, 40) and height < 40
    np.testing.assert_allclose(
        y["keypoints"][0, 0, :2], [[0.25 * height, 0.0], [0.5 * height, 0.25 * width]], rtol=1e-6
    )


def test_augmentation_flips_keypoints_with_their_permutation(tmp_path):
    y = first_batch(
        write_records(tmp_path / "kp.record"),
        augmentation=[
            {"random_horizontal_flip": {"probability": 1.0, "keypoint_flip_permutation": [1, 0, 2]}}
        ],
    )
    np.testing.assert_allclose(y["boxes"][0, 0], [4, 12, 12, 24])
    # Flipped keypoint 0 is original keypoint 1 (x 6 -> 24 - 6 = 18), keypoint 1 is keypoint 0.
    np.testing.assert_allclose(y["keypoints"][0, 0, :2], [[8, 18], [4, 24]])
    np.testing.assert_array_equal(y["keypoint_visibilities"][0, 0], [1, 2, 0])


def test_when_y_has_keypoints(tmp_path):
    with_keypoints = write_records(tmp_path / "kp.record")
    boxes_only = write_records(tmp_path / "boxes.record", keypoints=False)
    label_map = write_label_map(
        {1: "person"}, tmp_path / "lm.pbtxt", keypoints={1: [(0, "nose"), (4, "ear")]}
    )
    # Given; else the label map's keypoint classes (largest id + 1); else the records.
    assert _resolve_num_keypoints(0, label_map, [with_keypoints]) == 0
    assert _resolve_num_keypoints(2, None, [boxes_only]) == 2
    assert _resolve_num_keypoints(None, label_map, [with_keypoints]) == 5
    assert _resolve_num_keypoints(None, None, [with_keypoints]) == 3
    assert _resolve_num_keypoints(None, None, [boxes_only]) == 0
    assert set(first_batch(boxes_only)) == {"boxes", "labels"}
    # Records without keypoints read with K = 5: none labelled.
    y = first_batch(boxes_only, label_map=label_map)
    assert y["keypoints"].shape == (2, 3, 5, 2) and not y["keypoint_visibilities"].numpy().any()


def test_pad_keypoints_truncates_to_max_num_boxes():
    keypoints, visibilities = pad_keypoints(
        tf.fill([3, 2, 2], 0.5), tf.constant([[2, 0], [1, 1], [2, 2]]), max_num_boxes=2
    )
    np.testing.assert_allclose(keypoints, [[[0.5, 0.5], [-1, -1]], [[0.5, 0.5], [0.5, 0.5]]])
    np.testing.assert_array_equal(visibilities, [[2, 0], [1, 1]])
