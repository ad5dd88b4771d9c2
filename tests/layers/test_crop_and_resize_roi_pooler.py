import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import CropAndResizeRoIPooler

HEIGHT, WIDTH = 5, 9


def _ramp(batch=2):
    """`[batch, 5, 9, 2]`: channel 0 is `1000 * image + 10 * y + x`, channel 1 its negative."""
    image, y, x = np.meshgrid(np.arange(batch), np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    ramp = 1000.0 * image + 10.0 * y + x
    return tf.constant(np.stack([ramp, -ramp], axis=-1), tf.float32)


def _ramp_at(image, y, x):
    """The ramp's channel 0 at continuous feature coordinates (bilinear is exact on it)."""
    return 1000.0 * image + 10.0 * np.asarray(y)[:, None] + np.asarray(x)[None, :]


def test_crops_sample_the_box_from_its_first_to_its_last_cell():
    pooler = CropAndResizeRoIPooler(crop_size=3, maxpool_kernel_size=1, maxpool_stride=1)
    rois = tf.constant(
        [
            [[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]],
            [[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.25]],
        ]
    )
    crops = pooler(_ramp(), rois).numpy()
    assert crops.shape == (2, 2, 3, 3, 2)
    # Normalized 0..1 spans feature cells 0..4 (y) and 0..8 (x).
    np.testing.assert_allclose(crops[0, 0, ..., 0], _ramp_at(0, [0, 2, 4], [0, 4, 8]))
    np.testing.assert_allclose(crops[0, 1, ..., 0], _ramp_at(0, [1, 2, 3], [4, 6, 8]))
    # RoIs of image 1 read image 1's features.
    np.testing.assert_allclose(crops[1, 0, ..., 0], _ramp_at(1, [1, 2, 3], [4, 6, 8]))
    np.testing.assert_allclose(crops[1, 1, ..., 0], _ramp_at(1, [0, 1, 2], [0, 1, 2]))
    np.testing.assert_allclose(crops[..., 1], -crops[..., 0])


def test_tf_od_api_default_crop_14_then_max_pool_to_7():
    pooler = CropAndResizeRoIPooler()
    crops = pooler(_ramp(batch=1), tf.constant([[[0.0, 0.0, 1.0, 1.0]]])).numpy()
    assert crops.shape == (1, 1, 7, 7, 2)
    samples_y = np.arange(14) * (HEIGHT - 1) / 13.0
    samples_x = np.arange(14) * (WIDTH - 1) / 13.0
    # The ramp grows with y and x, so each 2x2 window's maximum is its bottom-right sample
    # in channel 0 and its top-left sample in channel 1.
    np.testing.assert_allclose(
        crops[0, 0, ..., 0], _ramp_at(0, samples_y[1::2], samples_x[1::2]), rtol=1e-5
    )
    np.testing.assert_allclose(
        crops[0, 0, ..., 1], -_ramp_at(0, samples_y[::2], samples_x[::2]), rtol=1e-5
    )


def test_padding_rois_give_finite_zero_crops_and_gradients():
    pooler = CropAndResizeRoIPooler(crop_size=4)
    features = _ramp()
    rois = tf.constant([[[0.0, 0.0, 1.0, 1.0], [-1.0] * 4], [[-1.0] * 4, [-1.0] * 4]])
    with tf.GradientTape() as tape:
        tape.watch(features)
        crops = pooler(features, rois)
        total = tf.reduce_sum(crops)
    gradient = tape.gradient(total, features)
    assert np.all(np.isfinite(crops)) and np.all(np.isfinite(gradient))
    np.testing.assert_array_equal(crops[0, 1], 0.0)
    np.testing.assert_array_equal(crops[1], 0.0)
    np.testing.assert_array_equal(gradient[1], 0.0)


def test_runs_under_tf_function_with_dynamic_shapes_and_keeps_the_dtype():
    pooler = CropAndResizeRoIPooler(crop_size=6, maxpool_kernel_size=3, maxpool_stride=3)
    rois = tf.constant([[[0.1, 0.2, 0.9, 0.7]] * 3] * 2)
    expected = pooler(_ramp(), rois)
    assert expected.shape == (2, 3, 2, 2, 2)
    traced = tf.function(
        pooler,
        input_signature=[
            tf.TensorSpec([None, None, None, 2], tf.float32),
            tf.TensorSpec([None, None, 4], tf.float32),
        ],
    )(_ramp(), rois)
    np.testing.assert_allclose(traced, expected)
    # Under mixed precision float16 features give float16 crops; RoIs are not cast.
    mixed = CropAndResizeRoIPooler(
        crop_size=6, maxpool_kernel_size=3, maxpool_stride=3, dtype="mixed_float16"
    )
    half = mixed(tf.cast(_ramp(), tf.float16), rois)
    assert half.dtype == tf.float16
    np.testing.assert_allclose(half, expected, rtol=1e-3)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        CropAndResizeRoIPooler(crop_size=0)
    with pytest.raises(ValueError, match="does not fit"):
        CropAndResizeRoIPooler(crop_size=2, maxpool_kernel_size=3)


def test_config_round_trip():
    pooler = CropAndResizeRoIPooler(crop_size=17, maxpool_kernel_size=1, maxpool_stride=1)
    restored = CropAndResizeRoIPooler.from_config(pooler.get_config())
    assert restored.get_config() == pooler.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(pooler)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, CropAndResizeRoIPooler) and restored.crop_size == 17
