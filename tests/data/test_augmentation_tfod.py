"""The TF OD API `preprocessor.proto` steps beyond flips, crops and color: each op's defining
behaviour (boxes follow the pixels, sizes and probabilities as the TF OD API draws them), on tiny
images, graph mode included."""

import numpy as np
import pytest
import tensorflow as tf
from test_augmentation import NO_BOXES
from test_augmentation import SMALL
from test_augmentation import marker_image
from test_augmentation import white_extent

from kdet.data import augmentation
from kdet.data.augmentation import crops


def in_dataset(op, image, boxes, labels, seeds, **params):
    """Runs `op` inside `tf.data.Dataset.map`, once per `[2]` seed; yields numpy triples."""
    # Without AutoGraph, as build_augmentation runs the ops: they need no conversion.
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(seeds, tf.int64)).map(
        tf.autograph.experimental.do_not_convert(
            lambda seed: op(image, boxes, labels, seed=seed, **params)
        )
    )
    for out_image, out_boxes, out_labels in dataset:
        yield out_image.numpy(), out_boxes.numpy(), out_labels.numpy()


SEEDS = [[index, 3] for index in range(10)]
# Two SSD-style operations: the graphs of the seven default ones are slow to build, and the
# defaults run in test_augmentation.py's every-op tests already.
TWO_CROPS = [
    {"min_object_covered": 0.3, "min_area": 0.3, "overlap_thresh": 0.3, "random_coef": 0.15},
    {"min_object_covered": 0.9, "min_area": 0.3, "overlap_thresh": 0.9, "random_coef": 0.15},
]


def test_absolute_pad_is_bounded_by_max_padding_and_keeps_boxes_on_their_pixels():
    box = [0.25, 0.5, 0.75, 1.0]
    heights, widths = set(), set()
    for image, boxes, labels in in_dataset(
        augmentation.random_absolute_pad_image,
        marker_image(8, 12, box),
        tf.constant([box]),
        tf.constant([3]),
        SEEDS,
        max_height_padding=5,
        max_width_padding=3,
        pad_color=[0, 0, 40],
    ):
        assert 8 <= image.shape[0] < 8 + 5 and 12 <= image.shape[1] < 12 + 3
        heights.add(image.shape[0])
        widths.add(image.shape[1])
        np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)
        assert labels.tolist() == [3]
        padding = np.ones(image.shape[:2], bool)
        (y, x) = np.argwhere(image[..., 2] != 40).min(axis=0)
        padding[y : y + 8, x : x + 12] = False
        assert np.all(image[padding] == [0, 0, 40])
    assert len(heights) > 1 and len(widths) > 1


def test_absolute_pad_unset_padding_reads_as_one_that_is_no_padding():
    image = tf.fill([6, 7, 3], tf.constant(9, tf.uint8))
    padded, *_ = augmentation.random_absolute_pad_image(image, *NO_BOXES, seed=(1, 1))
    assert padded.shape == (6, 7, 3)


def test_square_crop_by_scale_hand_checked():
    # 16x16, one scale 0.5: side 8; the border of 128 halves to 8 = the only allowed center.
    box, outside = [0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.2, 0.2]
    image, boxes, labels = augmentation.random_square_crop_by_scale(
        marker_image(16, 16, box),
        tf.constant([box, outside]),
        tf.constant([1, 2]),
        scale_min=0.5,
        scale_max=0.5,
        num_scales=1,
    )
    assert image.shape == (8, 8, 3)
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 1.0, 1.0]])
    assert labels.numpy().tolist() == [1]
    assert np.all(image.numpy() == 255)


@pytest.mark.parametrize(("size", "border"), [(512, 128), (100, 32), (16, 8), (3, 1)])
def test_square_crop_border_is_max_border_halved_below_half_the_side(size, border):
    assert int(crops._crop_border(128, tf.constant(size))) == border


def test_square_crop_by_scale_draws_discrete_scales_and_pads_with_zeros():
    box = [0.25, 0.25, 0.75, 0.75]
    sides = set()
    for image, boxes, labels in in_dataset(
        augmentation.random_square_crop_by_scale,
        tf.fill([20, 20, 3], tf.constant(200, tf.uint8)),
        tf.constant([box]),
        tf.constant([5]),
        SEEDS,
        scale_min=0.5,
        scale_max=1.5,
        num_scales=3,
        max_border=4,
    ):
        assert image.shape[0] == image.shape[1]
        sides.add(image.shape[0])
        if image.shape[0] == 30:  # larger than the image: the rest is zeros
            assert np.any(image == 0) and np.any(image == 200)
        assert np.all((boxes >= 0.0) & (boxes <= 1.0)) and labels.tolist() == [5] * len(boxes)
    assert sides <= {10, 20, 30} and len(sides) > 1


@pytest.mark.parametrize("aspect_ratio", [1.0, 2.0])
def test_ssd_random_crop_fixed_aspect_ratio_holds_the_ratio(aspect_ratio):
    box = [0.3, 0.3, 0.7, 0.6]
    for image, boxes, labels in in_dataset(
        augmentation.ssd_random_crop_fixed_aspect_ratio,
        marker_image(30, 50, box),
        tf.constant([box]),
        tf.constant([4]),
        SEEDS,
        operations=TWO_CROPS,
        aspect_ratio=aspect_ratio,
    ):
        height, width = image.shape[:2]
        assert abs(width - aspect_ratio * height) <= 1.0, (height, width)
        if len(boxes):
            np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)


def test_crop_to_aspect_ratio_cuts_the_long_side_and_drops_boxes_below_overlap_thresh():
    # 20x40 → 20x20. A box over columns 0..10 is at most half inside any crop that does not
    # start at column 0, so with overlap_thresh 0.6 it survives only offsets below 4 px.
    left = [0.0, 0.0, 1.0, 0.25]
    offsets_kept = []
    for image, boxes, labels in in_dataset(
        augmentation.random_crop_to_aspect_ratio,
        marker_image(20, 40, left),
        tf.constant([left]),
        tf.constant([7]),
        [[index, 0] for index in range(24)],
        aspect_ratio=1.0,
        overlap_thresh=0.6,
    ):
        assert image.shape == (20, 20, 3)
        extent = white_extent(image)
        offset = 0 if extent is None else round(10 - extent[3] * 20)
        if len(boxes):
            offsets_kept.append(offset)
            np.testing.assert_allclose(extent, boxes[0], atol=1e-6)
        else:
            assert extent is None or (10 - offset) / 10 < 0.6
    assert offsets_kept and max(offsets_kept) <= 4


def test_crop_pad_sizes_follow_the_padded_size_ratios_of_the_input():
    box = [0.25, 0.25, 0.75, 0.75]
    for image, boxes, labels in in_dataset(
        augmentation.random_crop_pad_image,
        marker_image(16, 20, box),
        tf.constant([box]),
        tf.constant([2]),
        SEEDS,
        min_padded_size_ratio=[1.5, 1.0],
        max_padded_size_ratio=[2.0, 1.5],
        pad_color=[0, 0, 0],
    ):
        assert 24 <= image.shape[0] < 32 and 20 <= image.shape[1] < 30
        if len(boxes):
            np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)


def test_ssd_random_crop_pad_keeps_boxes_on_their_pixels():
    box = [0.25, 0.25, 0.75, 0.75]
    for image, boxes, labels in in_dataset(
        augmentation.ssd_random_crop_pad,
        marker_image(16, 16, box),
        tf.constant([box]),
        tf.constant([2]),
        SEEDS,
        operations=[{**crop, "pad_color_b": 50.0} for crop in TWO_CROPS],
    ):
        assert image.shape[0] <= 32 and image.shape[1] <= 32
        if len(boxes):
            np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)


def test_pad_to_aspect_ratio_hand_checked_and_ssd_variant_holds_the_ratio():
    image, boxes, _ = augmentation.random_pad_to_aspect_ratio(
        tf.fill([10, 20, 3], 255.0),
        tf.constant([[0.0, 0.0, 1.0, 1.0]]),
        tf.constant([1]),
        aspect_ratio=1.0,
        min_padded_size_ratio=(1.0, 1.0),
        max_padded_size_ratio=(1.0, 1.0),
    )
    assert image.shape == (20, 20, 3)
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 0.5, 1.0]])
    np.testing.assert_allclose(white_extent(image), boxes[0])
    for image, boxes, _ in in_dataset(
        augmentation.ssd_random_crop_pad_fixed_aspect_ratio,
        marker_image(20, 30, [0.2, 0.2, 0.6, 0.5]),
        tf.constant([[0.2, 0.2, 0.6, 0.5]]),
        tf.constant([1]),
        SEEDS,
        operations=TWO_CROPS,
        aspect_ratio=0.5,
    ):
        assert abs(image.shape[1] - 0.5 * image.shape[0]) <= 1.0
        if len(boxes):
            np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)


def test_ssd_crop_operations_from_a_config_must_form_valid_ranges():
    with pytest.raises(ValueError, match="min_aspect_ratio <= max_aspect_ratio"):
        augmentation.build_augmentation(
            [("ssd_random_crop", {"operations": [{"min_aspect_ratio": 0.0}]})]
        )


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("DEFAULT", lambda new, old, size: np.all(np.abs(new - old) <= 0.05 * size / 2 + 1e-6)),
        (
            "EXPAND",
            lambda new, old, size: np.all(new[:2] <= old[:2]) and np.all(new[2:] >= old[2:]),
        ),
        (
            "SHRINK",
            lambda new, old, size: np.all(new[:2] >= old[:2]) and np.all(new[2:] <= old[2:]),
        ),
        (
            "EXPAND_SYMMETRIC_XY",
            lambda new, old, size: (
                np.allclose(new[:2] + new[2:], old[:2] + old[2:], atol=1e-6)
                and np.isclose(
                    (new[2] - new[0]) / (old[2] - old[0]),
                    (new[3] - new[1]) / (old[3] - old[1]),
                    atol=1e-5,
                )
            ),
        ),
    ],
)
def test_jitter_boxes_modes(mode, check):
    old = np.array([[0.2, 0.3, 0.6, 0.5], [0.4, 0.4, 0.8, 0.9]], np.float32)
    size = np.concatenate([old[:, 2:] - old[:, :2]] * 2, axis=1)
    changed = False
    for _, boxes, labels in in_dataset(
        augmentation.random_jitter_boxes,
        tf.zeros([4, 4, 3], tf.uint8),
        tf.constant(old),
        tf.constant([1, 2]),
        SEEDS[:4],
        ratio=0.05,
        jitter_mode=mode,
    ):
        for new_box, old_box, box_size in zip(boxes, old, size):
            assert check(new_box, old_box, box_size)
        changed |= not np.allclose(boxes, old)
        assert labels.tolist() == [1, 2]
    assert changed


def test_black_patches_are_squares_of_the_ratio_and_probability_zero_is_identity():
    white = tf.fill([16, 16, 3], tf.constant(255, tf.uint8))
    for image, _, _ in in_dataset(
        augmentation.random_black_patches,
        white,
        *NO_BOXES,
        SEEDS[:4],
        max_black_patches=1,
        probability=1.0,
        size_to_image_ratio=0.25,
    ):
        rows, cols = np.nonzero(image[..., 0] == 0)
        assert rows.size == 16 and np.ptp(rows) == 3 and np.ptp(cols) == 3
        assert rows.max() < 16 and cols.max() < 16
    kept, *_ = augmentation.random_black_patches(white, *NO_BOXES, probability=0.0)
    np.testing.assert_array_equal(kept, white)


def test_patch_gaussian_changes_only_one_square_patch():
    image = tf.fill([24, 24, 3], 128.0)
    for out, _, _ in in_dataset(
        augmentation.random_patch_gaussian,
        image,
        *NO_BOXES,
        SEEDS[:4],
        min_patch_size=4,
        max_patch_size=8,
        min_gaussian_stddev=0.2,
        max_gaussian_stddev=0.3,
    ):
        rows, cols = np.nonzero(np.any(out != 128.0, axis=-1))
        assert rows.size > 0 and np.ptp(rows) < 8 and np.ptp(cols) < 8
        assert 0.0 <= out.min() and out.max() <= 255.0
    kept, *_ = augmentation.random_patch_gaussian(image, *NO_BOXES, random_coef=1.0)
    np.testing.assert_array_equal(kept, image)


def test_pixel_value_scale_factors_stay_in_range_per_pixel():
    image = tf.fill([8, 8, 3], 100.0)
    out, *_ = augmentation.random_pixel_value_scale(
        image, *NO_BOXES, minval=0.5, maxval=0.6, seed=(0, 1)
    )
    out = out.numpy()
    assert 50.0 <= out.min() and out.max() < 60.0 and np.unique(out).size > 10


def test_adjust_gamma_hand_checked():
    out, *_ = augmentation.adjust_gamma(
        tf.constant([[[0.0, 127.5, 255.0]]]), *NO_BOXES, gamma=2.0, gain=1.0
    )
    np.testing.assert_allclose(out, [[[0.0, 63.75, 255.0]]], rtol=1e-5)


def test_image_scale_keeps_the_aspect_ratio_and_the_range():
    sizes = set()
    for image, boxes, _ in in_dataset(
        augmentation.random_image_scale,
        tf.zeros([10, 20, 3], tf.uint8),
        tf.constant([[0.1] * 4]),
        tf.constant([1]),
        SEEDS,
        min_scale_ratio=0.5,
        max_scale_ratio=2.0,
    ):
        height, width = image.shape[:2]
        assert 5 <= height < 20 and abs(width - 2 * height) <= 1
        sizes.add(height)
        np.testing.assert_allclose(boxes, [[0.1] * 4])
    assert len(sizes) > 1


def test_resize_steps_give_the_target_size():
    image = marker_image(8, 8, [0.0, 0.0, 0.5, 0.5])
    out, *_ = augmentation.resize_image(
        image, *NO_BOXES, new_height=4, new_width=6, method="NEAREST_NEIGHBOR"
    )
    assert out.shape == (4, 6, 3) and set(np.unique(out.numpy())) == {0, 255}
    for out, _, _ in in_dataset(
        augmentation.random_resize_method,
        image,
        *NO_BOXES,
        SEEDS[:3],
        target_height=5,
        target_width=7,
    ):
        assert out.shape == (5, 7, 3)
    with pytest.raises(ValueError, match="new_height and new_width"):
        augmentation.resize_image(image, *NO_BOXES)


def test_downscale_to_target_pixels_hand_checked():
    # 100x200 = 20000 pixels; a target of 5000 halves each side.
    out, *_ = augmentation.random_downscale_to_target_pixels(
        tf.zeros([100, 200, 3]), *NO_BOXES, min_target_pixels=5000, max_target_pixels=5001
    )
    assert out.shape == (50, 100, 3)
    small, *_ = augmentation.random_downscale_to_target_pixels(
        tf.zeros([10, 20, 3]), *NO_BOXES, min_target_pixels=5000, max_target_pixels=5001
    )
    assert small.shape == (10, 20, 3)


def test_self_concat_repeats_the_image_and_its_boxes():
    box = [0.0, 0.0, 0.5, 0.5]
    image, boxes, labels = augmentation.random_self_concat_image(
        marker_image(8, 8, box),
        tf.constant([box]),
        tf.constant([6]),
        concat_vertical_probability=1.0,
        concat_horizontal_probability=1.0,
    )
    assert image.shape == (16, 16, 3) and labels.numpy().tolist() == [6] * 4
    for y, x in ((0, 0), (8, 0), (0, 8), (8, 8)):
        assert {tuple(b) for b in np.round(boxes.numpy() * 16).astype(int)} >= {
            (y, x, y + 4, x + 4)
        }
        assert np.all(image.numpy()[y : y + 4, x : x + 4] == 255)


def test_label_steps():
    boxes = tf.constant([[0.1] * 4, [0.2] * 4, [0.3] * 4])
    labels = tf.constant([1, 2, 2])
    _, kept_boxes, kept = augmentation.drop_label_probabilistically(
        tf.zeros([2, 2, 3]), boxes, labels, label=2, drop_probability=1.0
    )
    assert kept.numpy().tolist() == [1] and kept_boxes.shape == (1, 4)
    _, _, kept = augmentation.drop_label_probabilistically(
        tf.zeros([2, 2, 3]), boxes, labels, label=2, drop_probability=0.0
    )
    assert kept.numpy().tolist() == [1, 2, 2]
    _, _, remapped = augmentation.remap_labels(
        tf.zeros([2, 2, 3]), boxes, tf.constant([1, 2, 3]), original_labels=[1, 3], new_label=5
    )
    assert remapped.numpy().tolist() == [5, 2, 5]


@pytest.mark.parametrize("op_name", sorted(augmentation.AUGMENTATION_OPS))
def test_every_op_is_deterministic_with_a_seed(op_name):
    op = augmentation.AUGMENTATION_OPS[op_name]
    params = SMALL.get(op_name, {})
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (12, 16, 3)), tf.uint8)
    boxes, labels = tf.constant([[0.1, 0.2, 0.7, 0.8], [0.3, 0.3, 0.5, 0.9]]), tf.constant([1, 2])
    first = op(image, boxes, labels, seed=(5, 6), **params)
    second = op(image, boxes, labels, seed=(5, 6), **params)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_refused_steps_say_why():
    for name, reason in augmentation.REFUSED_STEPS.items():
        with pytest.raises(ValueError, match="kdet does not support") as error:
            augmentation.build_augmentation([{name: {}}])
        assert reason in str(error.value)
