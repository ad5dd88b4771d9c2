"""Image resizers: output sizes, content fraction, the TF1 legacy bilinear resize."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.image_resizer import from_padded_frame
from kdet.layers.image_resizer import resize_images
from kdet.layers.image_resizer import to_padded_frame
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer


def test_fixed_shape_resizer_ignores_aspect_and_fills_the_output():
    resized, scale = FixedShapeResizer(30, 20)(tf.zeros([2, 50, 80, 3], tf.uint8))
    assert resized.shape == (2, 30, 20, 3) and resized.dtype == tf.float32
    np.testing.assert_allclose(scale.numpy(), [1.0, 1.0])


def test_keep_aspect_ratio_bounds_the_longer_side_and_pads():
    resizer = KeepAspectRatioResizer(min_dimension=60, max_dimension=100,
                                     pad_to_max_dimension=True)
    # 40x100: the shorter side to 60 would make the longer 150 > 100, so scale = 100 / 100.
    resized, scale = resizer(tf.ones([1, 40, 100, 3]))
    assert resized.shape == (1, 100, 100, 3)
    np.testing.assert_allclose(scale.numpy(), [0.4, 1.0])
    assert resized[0, 39, 50, 0] == 1.0 and resized[0, 40, 50, 0] == 0.0  # zero padding below
    # 50x60: the shorter side to 60 gives 72 for the longer side.
    unpadded, scale = KeepAspectRatioResizer(60, 100)(tf.ones([1, 50, 60, 3]))
    assert unpadded.shape == (1, 60, 72, 3)
    np.testing.assert_allclose(scale.numpy(), [1.0, 1.0])


def test_padded_frame_round_trip():
    boxes = tf.constant([[0.1, 0.2, 0.5, 1.0]])
    scale = tf.constant([0.4, 1.0])
    padded = to_padded_frame(boxes, scale)
    np.testing.assert_allclose(padded.numpy(), [[0.04, 0.2, 0.2, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(from_padded_frame(padded, scale).numpy(), boxes.numpy(), rtol=1e-6)


def test_legacy_bilinear_samples_at_scaled_corners_not_pixel_centres():
    # One row 0, 10, 20, 30 shrunk to 2 pixels: TF1 ResizeBilinear takes x_in = x_out * 4 / 2,
    # i.e. input pixels 0 and 2 (values 0 and 20); half-pixel centres give 5 and 25.
    row = tf.reshape(tf.constant([0.0, 10.0, 20.0, 30.0]), [1, 1, 4, 1])
    legacy = resize_images(row, (1, 2), "legacy_bilinear")
    modern = resize_images(row, (1, 2), "bilinear")
    np.testing.assert_allclose(legacy.numpy().ravel(), [0.0, 20.0])
    np.testing.assert_allclose(modern.numpy().ravel(), [5.0, 25.0])


def test_unknown_resize_method_and_bad_dimensions_are_rejected():
    with pytest.raises(ValueError, match="resize_method"):
        FixedShapeResizer(10, 10, resize_method="lanczos7")
    with pytest.raises(ValueError, match="min_dimension"):
        KeepAspectRatioResizer(200, 100)


@pytest.mark.parametrize(
    "resizer",
    [FixedShapeResizer(300, 300, "legacy_bilinear"), KeepAspectRatioResizer(600, 1024, True)],
)
def test_config_round_trip(resizer):
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(resizer))
    assert type(revived) is type(resizer) and revived.get_config() == resizer.get_config()
