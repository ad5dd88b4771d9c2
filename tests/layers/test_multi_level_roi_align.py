import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import MultiLevelRoIAlign

PADDING = [-1.0, -1.0, -1.0, -1.0]


def _pixel_rois(sizes, image_height, image_width):
    """Square-ish `rel_yxyx` RoIs at the origin with the given `(height, width)` in pixels."""
    return tf.constant([[[0.0, 0.0, h / image_height, w / image_width] for h, w in sizes]])


def test_levels_follow_the_fpn_rule_and_are_clamped():
    roi_align = MultiLevelRoIAlign(min_level=2, max_level=5)
    sizes = [(224, 224), (112, 112), (448, 448), (56, 56), (223, 223), (28, 28), (900, 900)]
    levels = roi_align.assign_levels(_pixel_rois(sizes, 1000, 1000), image_size=(1000, 1000))
    # floor(4 + log2(sqrt(h * w) / 224)): 224 → 4, 112 → 3, 448 → 5, 56 → 2, 223 → 3;
    # 28 (level 1) and 900 (level 6) are clamped to 2 and 5.
    assert levels.dtype == tf.int32
    assert levels.numpy().tolist() == [[4, 3, 5, 2, 3, 2, 5]]


def test_levels_use_the_pixel_area_of_non_square_images_and_rois():
    roi_align = MultiLevelRoIAlign(min_level=2, max_level=6)
    # 112 x 448 pixels has the area of a 224 square; the padding row and a zero-area RoI
    # go to min_level.
    rois = _pixel_rois([(112, 448), (448, 448), (0, 300)], 512, 1024)
    rois = tf.concat([rois, tf.constant([[PADDING]])], axis=1)
    levels = roi_align.assign_levels(rois, image_size=tf.constant([512, 1024]))
    assert levels.numpy().tolist() == [[4, 5, 2, 2]]


def _ramp_pyramid(sizes, min_level, batch=1):
    """Level `l` of size `s`: `1000 * l + 100 * image + 10 * y + x` on an `s` x `s` map."""
    maps = []
    for index, size in enumerate(sizes):
        image, y, x = np.meshgrid(
            np.arange(batch), np.arange(size), np.arange(size), indexing="ij"
        )
        values = 1000.0 * (min_level + index) + 100.0 * image + 10.0 * y + x
        maps.append(tf.constant(values[..., None], tf.float32))
    return maps


def test_each_roi_is_cropped_from_its_level_at_cell_centres():
    # A 64 x 64 input, levels 2..4 (maps of 16, 8 and 4 cells); RoIs of 16 pixels are level 3.
    roi_align = MultiLevelRoIAlign(
        min_level=2, max_level=4, crop_size=2, canonical_level=3, canonical_size=16
    )
    rois = tf.constant(
        [
            [
                [0.0, 0.0, 1.0, 1.0],  # 64 pixels: level 5, clamped to 4
                [0.25, 0.25, 0.5, 0.5],  # 16 pixels: level 3
                [0.0, 0.5, 0.125, 0.625],  # 8 pixels: level 2
                PADDING,
            ],
            [[0.0, 0.0, 1.0, 1.0], PADDING, PADDING, PADDING],
        ]
    )
    crops = roi_align(_ramp_pyramid([16, 8, 4], 2, batch=2), rois, image_size=(64, 64)).numpy()
    assert crops.shape == (2, 4, 2, 2, 1)
    # Level 4 (4 cells, 0..3): cell centres at 1/4 and 3/4 of the RoI → cells 0.75 and 2.25.
    np.testing.assert_allclose(crops[0, 0, ..., 0], [[4008.25, 4009.75], [4023.25, 4024.75]])
    # Level 3 (cells 0..7): 0.25..0.5 → centres 0.3125, 0.4375 → cells 2.1875, 3.0625.
    y = np.array([2.1875, 3.0625])
    np.testing.assert_allclose(crops[0, 1, ..., 0], 3000.0 + 10.0 * y[:, None] + y[None, :])
    # Level 2 (cells 0..15): y 0..0.125 → cells 0.46875, 1.40625; x 0.5..0.625 → 7.96875,
    # 8.90625.
    y = np.array([0.46875, 1.40625])
    x = np.array([7.96875, 8.90625])
    np.testing.assert_allclose(crops[0, 2, ..., 0], 2000.0 + 10.0 * y[:, None] + x[None, :])
    # Image 1 reads its own maps.
    np.testing.assert_allclose(crops[1, 0], crops[0, 0] + 100.0)
    np.testing.assert_array_equal(crops[0, 3], 0.0)
    np.testing.assert_array_equal(crops[1, 1:], 0.0)


def test_sampling_ratio_averages_samples_inside_each_cell():
    # y**2 on 5 rows: one output cell over the whole map samples rows 1 and 3 with
    # sampling_ratio 2, (1 + 9) / 2 = 5, and row 2 with sampling_ratio 1, 4.
    squares = np.tile((np.arange(5.0) ** 2)[:, None], [1, 5])
    features = [tf.constant(squares[None, ..., None], tf.float32)]
    rois = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    for sampling_ratio, expected in [(2, 5.0), (1, 4.0)]:
        roi_align = MultiLevelRoIAlign(3, 3, crop_size=1, sampling_ratio=sampling_ratio)
        crops = roi_align(features, rois, image_size=(40, 40))
        np.testing.assert_allclose(crops[0, 0, 0, 0, 0], expected, rtol=1e-6)


def test_padding_rois_give_finite_crops_and_gradients():
    roi_align = MultiLevelRoIAlign(min_level=2, max_level=3, crop_size=3)
    features = _ramp_pyramid([8, 4], 2)
    rois = tf.constant([[[0.1, 0.1, 0.9, 0.8], PADDING, [0.5, 0.5, 0.5, 0.5]]])
    with tf.GradientTape() as tape:
        tape.watch(features)
        crops = roi_align(features, rois, image_size=(32, 32))
        total = tf.reduce_sum(crops)
    gradients = tape.gradient(total, features)
    assert np.all(np.isfinite(crops))
    assert all(np.all(np.isfinite(g)) for g in gradients)
    np.testing.assert_array_equal(crops[0, 1], 0.0)
    # Only the level each RoI was assigned to gets gradient: the 0.8 x 0.7 RoI (about 24
    # pixels) and the zero-area one go to level 2, so level 3 gets none.
    assert np.abs(gradients[0]).sum() > 0.0
    np.testing.assert_array_equal(gradients[1], 0.0)


def test_runs_under_tf_function_with_dynamic_shapes():
    roi_align = MultiLevelRoIAlign(min_level=2, max_level=3, crop_size=2)
    features = _ramp_pyramid([8, 4], 2, batch=2)
    rois = tf.constant([[[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4]]] * 2)
    expected = roi_align(features, rois, image_size=(32, 32))
    traced = tf.function(
        roi_align,
        input_signature=[
            [tf.TensorSpec([None, None, None, 1], tf.float32)] * 2,
            tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([2], tf.int32),
        ],
    )(features, rois, tf.constant([32, 32]))
    np.testing.assert_allclose(traced, expected)


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="min_level"):
        MultiLevelRoIAlign(min_level=5, max_level=2)
    with pytest.raises(ValueError, match="sampling_ratio"):
        MultiLevelRoIAlign(2, 5, sampling_ratio=0)
    roi_align = MultiLevelRoIAlign(min_level=2, max_level=3)
    rois = tf.zeros([1, 2, 4])
    with pytest.raises(ValueError, match="expects 2 feature maps"):
        roi_align([tf.zeros([1, 8, 8, 4])], rois, image_size=(32, 32))
    with pytest.raises(ValueError, match="same channels"):
        roi_align([tf.zeros([1, 8, 8, 4]), tf.zeros([1, 4, 4, 2])], rois, image_size=(32, 32))


def test_config_round_trip():
    roi_align = MultiLevelRoIAlign(
        min_level=3, max_level=6, crop_size=14, canonical_level=5, canonical_size=256.0,
        sampling_ratio=1,
    )
    restored = MultiLevelRoIAlign.from_config(roi_align.get_config())
    assert restored.get_config() == roi_align.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(roi_align)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, MultiLevelRoIAlign)
    assert (restored.min_level, restored.max_level, restored.crop_size) == (3, 6, 14)


def test_align_corners_and_max_pool_crop_as_the_tf_od_api():
    # align_corners: crop_and_resize of the RoI on its own level (samples on the RoI's
    # edges, normalized 1 on the level's last cell), then the max pool; levels 2..6 with a
    # 224-pixel RoI on level 5 (the TF OD API's rule for 5 levels).
    roi_align = MultiLevelRoIAlign(
        min_level=2, max_level=6, crop_size=4, canonical_level=5, sampling_ratio=1,
        align_corners=True, maxpool_kernel_size=2, maxpool_stride=2,
    )
    rng = np.random.default_rng(3)
    feature_maps = [
        tf.constant(rng.normal(size=[1, 128 // 2**level, 128 // 2**level, 5]), tf.float32)
        for level in range(2, 7)
    ]
    rois = tf.constant([[[0.1, 0.2, 0.3, 0.5], [0.0, 0.0, 1.0, 1.0]]], tf.float32)
    # sqrt(area) * 128: 31.4 px → level 2 (floor(5 + log2(31.4 / 224)) = 2); 128 px → 4.
    np.testing.assert_array_equal(roi_align.assign_levels(rois, (128, 128)), [[2, 4]])
    crops = roi_align(feature_maps, rois, image_size=(128, 128))
    assert tuple(crops.shape) == (1, 2, 2, 2, 5)
    for index, level in enumerate([2, 4]):
        expected = tf.image.crop_and_resize(
            feature_maps[level - 2], rois[0, index : index + 1], [0], [4, 4]
        )
        expected = tf.nn.max_pool2d(expected, 2, 2, "VALID")
        np.testing.assert_allclose(crops[0, index], expected[0], atol=1e-5)
    config = roi_align.get_config()
    restored = MultiLevelRoIAlign.from_config(config)
    assert (restored.align_corners, restored.maxpool_kernel_size) == (True, 2)
    for key in ("align_corners", "maxpool_kernel_size", "maxpool_stride"):
        del config[key]
    older = MultiLevelRoIAlign.from_config(config)
    assert (older.align_corners, older.maxpool_kernel_size) == (False, None)
