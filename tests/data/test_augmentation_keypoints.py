"""Keypoints move with their boxes through every augmentation op (`object_fields`)."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.data import augmentation
from kdet.data.augmentation import _common
from kdet.data.augmentation import geometric

BOX = [0.25, 0.0, 0.75, 0.5]
# (y, x) of three keypoints of the box in an 8x12 image, the middle one labelled not visible.
KEYPOINTS = [[0.25, 0.0], [0.5, 0.25], [0.75, 0.5]]
VISIBILITIES = [2, 1, 2]


def objects(keypoints=KEYPOINTS, visibilities=VISIBILITIES, labels=(7,)):
    return {
        "labels": tf.constant(labels, tf.int32),
        "keypoints": tf.constant([keypoints], tf.float32),
        "keypoint_visibilities": tf.constant([visibilities], tf.int32),
    }


def run(op, **params):
    image = tf.zeros([8, 12, 3], tf.uint8)
    return augmentation.AUGMENTATION_OPS[op](image, tf.constant([BOX]), objects(), **params)


def assert_keypoints(result, keypoints, visibilities):
    np.testing.assert_allclose(result["keypoints"], keypoints, atol=1e-6)
    np.testing.assert_array_equal(result["keypoint_visibilities"], visibilities)


def test_horizontal_flip_mirrors_x_and_permutes():
    _, boxes, result = run(
        "random_horizontal_flip", probability=1.0, keypoint_flip_permutation=[0, 2, 1]
    )
    np.testing.assert_allclose(boxes, [[0.25, 0.5, 0.75, 1.0]])
    # Flipped keypoint k is original keypoint perm[k], x mirrored.
    assert_keypoints(result, [[[0.25, 1.0], [0.75, 0.5], [0.5, 0.75]]], [[2, 2, 1]])
    assert result["labels"].numpy().tolist() == [7]


def test_vertical_flip_mirrors_y_and_permutes():
    _, _, result = run(
        "random_vertical_flip", probability=1.0, keypoint_flip_permutation=[0, 2, 1]
    )
    assert_keypoints(result, [[[0.75, 0.0], [0.25, 0.5], [0.5, 0.25]]], [[2, 2, 1]])


def test_no_flip_leaves_keypoints():
    _, _, result = run(
        "random_horizontal_flip", probability=0.0, keypoint_flip_permutation=[0, 2, 1]
    )
    assert_keypoints(result, [KEYPOINTS], [VISIBILITIES])


def test_rotation90_moves_keypoints_counter_clockwise():
    image, boxes, result = run("random_rotation90", probability=1.0)
    assert image.shape == (12, 8, 3)
    np.testing.assert_allclose(boxes, [[0.5, 0.25, 1.0, 0.75]])
    # (y, x) -> (1 - x, y); the order is kept without keypoint_rot_permutation.
    assert_keypoints(result, [[[1.0, 0.25], [0.75, 0.5], [0.5, 0.75]]], [[2, 1, 2]])
    _, _, result = run("random_rotation90", probability=1.0, keypoint_rot_permutation=[2, 0, 1])
    assert_keypoints(result, [[[0.5, 0.75], [1.0, 0.25], [0.75, 0.5]]], [[2, 2, 1]])


def test_flip_of_keypoints_needs_a_permutation_of_their_length():
    with pytest.raises(ValueError, match="keypoint_flip_permutation is not set"):
        run("random_horizontal_flip", probability=1.0)
    with pytest.raises(ValueError, match="2 entries but the examples have 3 keypoints"):
        run("random_vertical_flip", probability=1.0, keypoint_flip_permutation=[1, 0])
    with pytest.raises(ValueError, match="keypoint_flip_permutation is not set"):
        augmentation.build_augmentation(["random_horizontal_flip"], num_keypoints=3)
    # Box-only examples flip without one.
    augmentation.build_augmentation(["random_horizontal_flip"])


def test_crop_prunes_keypoints_outside_and_drops_them_with_their_box():
    window = tf.constant([0.0, 0.25, 1.0, 0.75])
    boxes, result = _common.crop_boxes(
        tf.constant([BOX]), objects(), window, overlap_thresh=0.3, image_size=[8, 6]
    )
    np.testing.assert_allclose(boxes, [[0.25, 0.0, 0.75, 0.5]])
    # x' = (x - 0.25) / 0.5: the first keypoint (x' = -0.5) leaves the crop.
    np.testing.assert_allclose(result["keypoints"][0, 1:], [[0.5, 0.0], [0.75, 0.5]])
    np.testing.assert_array_equal(result["keypoint_visibilities"], [[0, 1, 2]])
    # Half the box lies in the window: with a 0.6 threshold it goes, with its keypoints.
    boxes, result = _common.crop_boxes(
        tf.constant([BOX]), objects(), window, overlap_thresh=0.6, image_size=[8, 6]
    )
    assert boxes.shape == (0, 4)
    assert result["keypoints"].shape == (0, 3, 2)
    assert result["keypoint_visibilities"].shape == (0, 3)
    assert result["labels"].shape == (0,)


def test_pad_to_aspect_ratio_rescales_keypoints():
    # 8x12 padded at the right to 8x16 (aspect 2): x' = x * 12 / 16, visibilities kept.
    image, _, result = geometric.random_pad_to_aspect_ratio(
        tf.zeros([8, 12, 3], tf.uint8),
        tf.constant([BOX]),
        objects(),
        aspect_ratio=2.0,
        max_padded_size_ratio=(1.0, 1.0),
    )
    assert image.shape == (8, 16, 3)
    assert_keypoints(result, [[[0.25, 0.0], [0.5, 0.1875], [0.75, 0.375]]], [VISIBILITIES])


def test_self_concat_repeats_keypoints_in_each_copy():
    image, boxes, result = run(
        "random_self_concat_image",
        concat_vertical_probability=1.0,
        concat_horizontal_probability=1.0,
    )
    assert image.shape == (16, 24, 3) and boxes.shape == (4, 4)
    expected = [
        [[0.125, 0.0], [0.25, 0.125], [0.375, 0.25]],
        [[0.625, 0.0], [0.75, 0.125], [0.875, 0.25]],
        [[0.125, 0.5], [0.25, 0.625], [0.375, 0.75]],
        [[0.625, 0.5], [0.75, 0.625], [0.875, 0.75]],
    ]
    assert_keypoints(result, expected, [VISIBILITIES] * 4)
    assert result["labels"].numpy().tolist() == [7] * 4


@pytest.mark.parametrize(
    "op, params",
    [
        ("resize_image", {"new_height": 4, "new_width": 20}),
        ("random_jitter_boxes", {"ratio": 0.2, "seed": [1, 2]}),
        ("random_adjust_brightness", {"seed": [1, 2]}),
        ("remap_labels", {"original_labels": [7], "new_label": 3}),
    ],
)
def test_ops_that_do_not_move_the_image_content_keep_keypoints(op, params):
    _, _, result = run(op, **params)
    assert_keypoints(result, [KEYPOINTS], [VISIBILITIES])


def test_dropping_a_label_drops_its_keypoints():
    _, _, result = augmentation.drop_label_probabilistically(
        tf.zeros([8, 12, 3], tf.uint8),
        tf.constant([BOX, BOX]),
        {
            "labels": tf.constant([7, 2]),
            "keypoints": tf.constant([KEYPOINTS, [[0.1, 0.1]] * 3]),
            "keypoint_visibilities": tf.constant([VISIBILITIES, [2, 2, 2]]),
        },
        label=7,
    )
    assert result["labels"].numpy().tolist() == [2]
    assert_keypoints(result, [[[0.1, 0.1]] * 3], [[2, 2, 2]])


# A 32x48 image with a 3x3 marker around each keypoint's pixel, keypoint k in channel k:
# wherever an op moves the pixels, the keypoints must follow.
MARKER_PIXELS = [(8, 10), (20, 30), (27, 40)]


def marker_example():
    image = np.zeros([32, 48, 3], np.uint8)
    for channel, (row, col) in enumerate(MARKER_PIXELS):
        image[row - 1 : row + 2, col - 1 : col + 2, channel] = 255
    keypoints = [[(row + 0.5) / 32, (col + 0.5) / 48] for row, col in MARKER_PIXELS]
    return (
        tf.constant(image),
        tf.constant([[0.15, 0.1, 0.95, 0.95]]),
        {
            "labels": tf.constant([1]),
            "keypoints": tf.constant([keypoints], tf.float32),
            "keypoint_visibilities": tf.constant([[2, 2, 2]]),
        },
    )


IDENTITY = {"keypoint_flip_permutation": [0, 1, 2]}
MOVING_OPS = [
    ("random_horizontal_flip", {"probability": 1.0, **IDENTITY}),
    ("random_vertical_flip", {"probability": 1.0, **IDENTITY}),
    ("random_rotation90", {"probability": 1.0}),
    ("random_pad_image", {}),
    ("random_absolute_pad_image", {"max_height_padding": 20, "max_width_padding": 20}),
    ("random_crop_image", {"min_object_covered": 0.3}),
    ("random_crop_pad_image", {"min_object_covered": 0.3}),
    ("random_crop_to_aspect_ratio", {"aspect_ratio": 1.0}),
    ("ssd_random_crop", {}),
    ("ssd_random_crop_pad", {}),
    ("ssd_random_crop_fixed_aspect_ratio", {}),
    ("ssd_random_crop_pad_fixed_aspect_ratio", {}),
    ("random_square_crop_by_scale", {"max_border": 8}),
    ("random_scale_crop_and_pad_to_square", {"output_size": 40, "scale_min": 0.6}),
    ("random_image_scale", {"min_scale_ratio": 0.8, "max_scale_ratio": 1.5}),
    ("random_resize_method", {"target_height": 40, "target_width": 56}),
    ("random_downscale_to_target_pixels", {"min_target_pixels": 900, "max_target_pixels": 1200}),
]


@pytest.mark.parametrize("op, params", MOVING_OPS, ids=[op for op, _ in MOVING_OPS])
def test_keypoints_stay_on_their_pixels(op, params):
    for salt in range(3):
        image, boxes, result = augmentation.AUGMENTATION_OPS[op](
            *marker_example(), seed=tf.constant([salt, 5], tf.int64), **params
        )
        image = image.numpy().astype(np.float32)
        height, width = image.shape[:2]
        for obj in range(boxes.shape[0]):
            for k in range(3):
                point = result["keypoints"][obj, k].numpy()
                inside = np.all((point >= 0.0) & (point <= 1.0))
                visible = result["keypoint_visibilities"][obj, k].numpy() > 0
                # Out of the image: not labelled any more (a crop then a pad may also put a
                # cropped-out keypoint back inside the canvas, still not labelled).
                assert inside or not visible, f"{op} {salt}"
                if not visible:
                    continue
                weights = np.where(image[..., k] > 40, image[..., k], 0)
                rows, cols = np.nonzero(weights)
                values = weights[rows, cols]
                centroid = [np.average(rows, weights=values), np.average(cols, weights=values)]
                # Near the border a crop cuts the marker: allow one more pixel there.
                expected = point * [height, width] - 0.5
                np.testing.assert_allclose(centroid, expected, atol=1.6, err_msg=f"{op} {salt}")
