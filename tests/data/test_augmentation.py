import numpy as np
import pytest
import tensorflow as tf

from kdet.data import augmentation
from kdet.data.augmentation import _common

NO_BOXES = (tf.zeros([0, 4]), tf.zeros([0], tf.int32))
# Ops whose output size is fixed by a parameter get a small one, to keep tests fast.
SMALL = {
    "random_scale_crop_and_pad_to_square": {"output_size": 24},
    # Steps whose sizes or labels have no TF OD API default.
    "resize_image": {"new_height": 10, "new_width": 14},
    "random_resize_method": {"target_height": 10, "target_width": 14},
    "drop_label_probabilistically": {"label": 2},
    "remap_labels": {"original_labels": [2], "new_label": 1},
}


def marker_image(height, width, box):
    """A black uint8 image with the pixels inside `box` (rel_yxyx, on the pixel grid) white."""
    image = np.zeros([height, width, 3], np.uint8)
    y1, x1, y2, x2 = (np.array(box) * [height, width, height, width]).round().astype(int)
    image[y1:y2, x1:x2] = 255
    return tf.constant(image)


def white_extent(image):
    """The rel_yxyx box around the white pixels of an image (None when there are none)."""
    image = np.asarray(image)
    rows, cols = np.nonzero(image[..., 0] > 127)
    if rows.size == 0:
        return None
    height, width = image.shape[:2]
    return np.array(
        [
            rows.min() / height,
            cols.min() / width,
            (rows.max() + 1) / height,
            (cols.max() + 1) / width,
        ]
    )


def test_horizontal_flip_moves_box_and_pixels():
    box = [0.25, 0.0, 0.75, 0.5]
    image, boxes, labels = augmentation.random_horizontal_flip(
        marker_image(8, 12, box), tf.constant([box]), tf.constant([7]), probability=1.0
    )
    np.testing.assert_allclose(boxes, [[0.25, 0.5, 0.75, 1.0]])
    np.testing.assert_allclose(white_extent(image), boxes[0])
    assert labels.numpy().tolist() == [7]
    unchanged = augmentation.random_horizontal_flip(
        marker_image(8, 12, box), tf.constant([box]), tf.constant([7]), probability=0.0
    )
    np.testing.assert_allclose(unchanged[1], [box])


def test_vertical_flip_moves_box_and_pixels():
    box = [0.0, 0.25, 0.5, 0.5]
    image, boxes, _ = augmentation.random_vertical_flip(
        marker_image(8, 12, box), tf.constant([box]), tf.constant([1]), probability=1.0
    )
    np.testing.assert_allclose(boxes, [[0.5, 0.25, 1.0, 0.5]])
    np.testing.assert_allclose(white_extent(image), boxes[0])


def test_rotation90_is_counter_clockwise():
    # The top-left quarter of an 8x12 image ends in the bottom-left of the 12x8 result.
    box = [0.0, 0.0, 0.5, 0.5]
    image, boxes, _ = augmentation.random_rotation90(
        marker_image(8, 12, box), tf.constant([box]), tf.constant([1]), probability=1.0
    )
    assert image.shape == (12, 8, 3)
    np.testing.assert_allclose(boxes, [[0.5, 0.0, 1.0, 0.5]])
    np.testing.assert_allclose(white_extent(image), boxes[0])


def test_random_pad_image_keeps_boxes_on_their_pixels():
    box = [0.25, 0.5, 0.75, 1.0]
    image, boxes, labels = augmentation.random_pad_image(
        marker_image(8, 12, box),
        tf.constant([box]),
        tf.constant([3]),
        min_image_height=16,
        max_image_height=16,
        min_image_width=20,
        max_image_width=20,
        pad_color=[10.0, 20.0, 30.0],
    )
    assert image.shape == (16, 20, 3) and image.dtype == tf.uint8
    np.testing.assert_allclose(white_extent(image), boxes[0], atol=1e-6)
    np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], 0.5 * 8 / 16)
    corners = image.numpy()[[0, 0, -1, -1], [0, -1, 0, -1]].tolist()
    # The 8x12 image sits inside a 16x20 canvas, so at least three corners are padding.
    assert sum(corner == [10, 20, 30] for corner in corners) >= 3
    assert labels.numpy().tolist() == [3]


def test_random_pad_image_default_color_is_the_mean_and_sizes_must_pair():
    image = tf.fill([4, 4, 3], tf.constant(80, tf.uint8))
    padded, boxes, _ = augmentation.random_pad_image(image, *NO_BOXES, seed=(1, 2))
    assert padded.shape[0] >= 4 and padded.shape[1] >= 4
    assert np.all(padded.numpy() == 80)
    assert boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="min_image_height and min_image_width"):
        augmentation.random_pad_image(image, *NO_BOXES, min_image_height=8)


def test_crop_rule_keeps_drops_and_clips_hand_checked_boxes():
    window = tf.constant([0.0, 0.0, 0.5, 0.5])
    boxes = tf.constant(
        [
            [0.1, 0.1, 0.3, 0.3],  # inside
            [0.4, 0.4, 0.8, 0.8],  # 1/16 of its area inside
            [0.6, 0.6, 0.9, 0.9],  # outside
            [0.2, 0.2, 0.2, 0.4],  # zero area
            [0.25, 0.0, 0.5, 0.75],  # 2/3 inside
        ]
    )
    labels = tf.constant([1, 2, 3, 4, 5])
    kept, kept_labels = _common.crop_boxes(boxes, labels, window, overlap_thresh=0.3)
    np.testing.assert_allclose(kept, [[0.2, 0.2, 0.6, 0.6], [0.5, 0.0, 1.0, 1.0]], atol=1e-6)
    assert kept_labels.numpy().tolist() == [1, 5]
    kept, kept_labels = _common.crop_boxes(boxes, labels, window, overlap_thresh=0.0, clip=False)
    np.testing.assert_allclose(
        kept, [[0.2, 0.2, 0.6, 0.6], [0.8, 0.8, 1.6, 1.6], [0.5, 0.0, 1.0, 1.5]], atol=1e-6
    )
    assert kept_labels.numpy().tolist() == [1, 2, 5]


@pytest.mark.parametrize("op_name", ["random_crop_image", "ssd_random_crop"])
def test_crops_keep_boxes_on_their_pixels(op_name):
    op = augmentation.AUGMENTATION_OPS[op_name]
    box = [0.25, 0.25, 0.75, 0.75]
    image = marker_image(16, 16, box)
    sizes = set()
    for index in range(20):
        cropped, boxes, labels = op(image, tf.constant([box]), tf.constant([9]), seed=(index, 0))
        sizes.add(tuple(cropped.shape))
        assert cropped.dtype == tf.uint8
        assert np.all((boxes.numpy() >= 0.0) & (boxes.numpy() <= 1.0))
        if boxes.shape[0]:
            assert labels.numpy().tolist() == [9]
            np.testing.assert_allclose(white_extent(cropped), boxes[0], atol=1e-6)
        else:
            assert labels.shape == (0,)
    assert len(sizes) > 1  # it does crop


def test_random_crop_image_keeps_only_boxes_with_enough_overlap():
    # Covering all of the small box forces the window to contain it; the big one is cut.
    small, big = [0.4, 0.4, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]
    for index in range(10):
        _, boxes, labels = augmentation.random_crop_image(
            tf.zeros([20, 20, 3], tf.uint8),
            tf.constant([small, big]),
            tf.constant([1, 2]),
            min_object_covered=1.0,
            min_area=0.05,
            max_area=0.3,
            overlap_thresh=0.99,
            seed=(index, 1),
        )
        assert 1 in labels.numpy().tolist()
        assert 2 not in labels.numpy().tolist()


def test_random_crop_image_random_coef_one_returns_the_input():
    image = marker_image(8, 8, [0.0, 0.0, 0.5, 0.5])
    out, boxes, _ = augmentation.random_crop_image(
        image, tf.constant([[0.0, 0.0, 0.5, 0.5]]), tf.constant([1]), random_coef=1.0
    )
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 0.5, 0.5]])


def test_ssd_random_crop_rejects_unknown_operation_fields():
    with pytest.raises(ValueError, match="min_overlap"):
        augmentation.ssd_random_crop(
            tf.zeros([8, 8, 3]), *NO_BOXES, operations=[{"min_overlap": 1}]
        )


def test_scale_crop_and_pad_to_square_hand_checked():
    # Scale 0.5 of output 32: the 20x40 image becomes 8x16 at the top-left of a 32x32 canvas.
    image, boxes, labels = augmentation.random_scale_crop_and_pad_to_square(
        tf.fill([20, 40, 3], tf.constant(200, tf.uint8)),
        tf.constant([[0.0, 0.0, 1.0, 1.0]]),
        tf.constant([4]),
        output_size=32,
        scale_min=0.5,
        scale_max=0.5,
    )
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 0.25, 0.5]])
    np.testing.assert_allclose(white_extent(image), boxes[0])
    assert labels.numpy().tolist() == [4]


def test_scale_crop_and_pad_to_square_drops_boxes_outside_the_crop():
    box = [0.0, 0.0, 0.25, 0.25]
    for index in range(10):
        image, boxes, labels = augmentation.random_scale_crop_and_pad_to_square(
            marker_image(16, 16, box),
            tf.constant([box]),
            tf.constant([1]),
            output_size=16,
            scale_min=3.0,
            scale_max=3.0,
            seed=(index, 2),
        )
        assert image.shape == (16, 16, 3)
        extent = white_extent(image)
        if boxes.shape[0]:
            np.testing.assert_allclose(extent, boxes[0], atol=1.5 / 16)
        else:
            assert extent is None or np.prod(extent[2:] - extent[:2]) < 2 / 256


PHOTOMETRIC = [
    "random_adjust_brightness",
    "random_adjust_contrast",
    "random_adjust_hue",
    "random_adjust_saturation",
    "random_distort_color",
    "random_rgb_to_gray",
    "random_jpeg_quality",
]


@pytest.mark.parametrize("op_name", PHOTOMETRIC)
def test_photometric_ops_keep_boxes_dtype_and_range(op_name):
    op = augmentation.AUGMENTATION_OPS[op_name]
    rng = np.random.default_rng(0)
    boxes, labels = tf.constant([[0.1, 0.2, 0.3, 0.4]]), tf.constant([5])
    for image in (
        tf.constant(rng.integers(0, 256, (8, 8, 3)), tf.uint8),
        tf.constant(rng.uniform(0, 255, (8, 8, 3)), tf.float32),
    ):
        out, out_boxes, out_labels = op(image, boxes, labels, seed=(3, 4))
        assert out.dtype == image.dtype and out.shape == image.shape
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
        np.testing.assert_array_equal(out_boxes, boxes)
        np.testing.assert_array_equal(out_labels, labels)
        again, *_ = op(image, boxes, labels, seed=(3, 4))
        np.testing.assert_array_equal(again, out)


def test_brightness_shifts_every_pixel_by_the_same_delta_within_max_delta():
    shifts = set()
    for index in range(8):
        out, *_ = augmentation.random_adjust_brightness(
            tf.fill([4, 4, 3], 100.0), *NO_BOXES, max_delta=0.2, seed=(index, 0)
        )
        assert np.ptp(out.numpy()) == 0.0
        shifts.add(round(float(out[0, 0, 0]) - 100.0, 3))
    assert all(abs(shift) <= 0.2 * 255 for shift in shifts) and len(shifts) == 8


def test_color_ops_leave_gray_images_gray():
    gray = tf.fill([4, 4, 3], tf.constant(90, tf.uint8))
    for name in ("random_adjust_contrast", "random_adjust_hue", "random_adjust_saturation"):
        out, *_ = augmentation.AUGMENTATION_OPS[name](gray, *NO_BOXES, seed=(1, 1))
        np.testing.assert_array_equal(out, gray)


def test_hue_rotates_red_towards_green_or_blue():
    red = tf.constant([[[255.0, 0.0, 0.0]]])
    out, *_ = augmentation.random_adjust_hue(red, *NO_BOXES, max_delta=0.1, seed=(0, 5))
    assert float(out[0, 0, 0]) == 255.0 and float(tf.reduce_max(out[0, 0, 1:])) > 0.0


def test_distort_color_rejects_unknown_ordering():
    with pytest.raises(ValueError, match="color_ordering must be 0 or 1"):
        augmentation.random_distort_color(tf.zeros([4, 4, 3]), *NO_BOXES, color_ordering=2)


def test_jpeg_quality_validates_range_and_random_coef_keeps_image():
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (8, 8, 3)), tf.uint8)
    kept, *_ = augmentation.random_jpeg_quality(image, *NO_BOXES, random_coef=1.0)
    np.testing.assert_array_equal(kept, image)
    changed, *_ = augmentation.random_jpeg_quality(
        image, *NO_BOXES, min_jpeg_quality=5, max_jpeg_quality=6
    )
    assert not np.array_equal(changed, image)
    with pytest.raises(ValueError, match="min_jpeg_quality"):
        augmentation.random_jpeg_quality(image, *NO_BOXES, min_jpeg_quality=50, max_jpeg_quality=50)


@pytest.mark.parametrize("op_name", sorted(augmentation.AUGMENTATION_OPS))
def test_every_op_handles_zero_boxes_inside_tf_data(op_name):
    op = augmentation.AUGMENTATION_OPS[op_name]
    params = SMALL.get(op_name, {})

    def apply(index):
        image = tf.cast(tf.fill([16, 20, 3], index * 10), tf.uint8)
        return op(image, *NO_BOXES, **params)

    dataset = tf.data.Dataset.range(3).map(apply, num_parallel_calls=2)
    for image, boxes, labels in dataset:
        assert image.dtype == tf.uint8 and image.shape[-1] == 3
        assert boxes.shape == (0, 4) and labels.shape == (0,)


@pytest.mark.parametrize("op_name", sorted(augmentation.AUGMENTATION_OPS))
def test_every_op_runs_in_tf_function_with_unknown_sizes(op_name):
    op = augmentation.AUGMENTATION_OPS[op_name]
    params = SMALL.get(op_name, {})
    traced = tf.function(
        lambda image, boxes, labels: op(image, boxes, labels, **params),
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
    )
    image, boxes, labels = traced(
        tf.fill([12, 16, 3], 50.0), tf.constant([[0.1, 0.1, 0.9, 0.9]]), tf.constant([2])
    )
    assert image.dtype == tf.float32 and boxes.shape[0] == labels.shape[0]


def test_build_augmentation_accepts_proto_style_steps_and_is_seedable():
    augment = augmentation.build_augmentation(
        [
            {"random_horizontal_flip": {}},
            {"ssd_random_crop": None},
            ("random_adjust_brightness", {"max_delta": 0.2}),
            "random_rotation90",
        ]
    )
    image = marker_image(16, 24, [0.25, 0.25, 0.75, 0.5])
    boxes, labels = tf.constant([[0.25, 0.25, 0.75, 0.5]]), tf.constant([1])

    def apply(index):
        return augment(image, boxes, labels, seed=tf.stack([tf.constant(7, tf.int64), index]))

    dataset = tf.data.Dataset.range(6).map(apply, num_parallel_calls=2, deterministic=False)
    first = sorted(tuple(b.numpy().ravel()) for _, b, _ in dataset)
    second = sorted(tuple(b.numpy().ravel()) for _, b, _ in dataset)
    assert first == second
    assert len(set(first)) > 1


def test_build_augmentation_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="Did you mean 'random_horizontal_flip'"):
        augmentation.build_augmentation([{"random_horizontal_flp": {}}])
    with pytest.raises(ValueError, match="Valid parameters: \\['max_delta'\\]"):
        augmentation.build_augmentation([{"random_adjust_brightness": {"delta": 0.1}}])
    with pytest.raises(ValueError, match="must be a list of steps"):
        augmentation.build_augmentation({"random_horizontal_flip": {}})
    with pytest.raises(ValueError, match="not understood"):
        augmentation.build_augmentation([{"random_horizontal_flip": {}, "ssd_random_crop": {}}])
