import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.boxes import FasterRcnnBoxCoder

ANCHOR = [0.2, 0.2, 0.6, 0.4]  # centre (0.4, 0.3), size 0.4 x 0.2
BOX = [0.2, 0.35, 0.8, 0.45]  # centre (0.5, 0.4), size 0.6 x 0.1


def test_encode_pinned_value_with_default_scale_factors():
    codes = FasterRcnnBoxCoder().encode([BOX], [ANCHOR])
    # ty = 10 * 0.1 / 0.4, tx = 10 * 0.1 / 0.2, th = 5 log 1.5, tw = 5 log 0.5
    np.testing.assert_allclose(
        codes, [[2.5, 5.0, 5 * math.log(1.5), 5 * math.log(0.5)]], rtol=1e-5
    )


def test_encode_pinned_value_without_scale_factors():
    codes = FasterRcnnBoxCoder(scale_factors=None).encode([BOX], [ANCHOR])
    np.testing.assert_allclose(codes, [[0.25, 0.5, math.log(1.5), math.log(0.5)]], rtol=1e-5)


def test_codes_do_not_depend_on_the_unit():
    coder = FasterRcnnBoxCoder()
    scale = np.array([480.0, 640.0, 480.0, 640.0], "float32")
    np.testing.assert_allclose(
        coder.encode([BOX], [ANCHOR]),
        coder.encode(np.array([BOX]) * scale, np.array([ANCHOR]) * scale),
        rtol=1e-5,
    )


def test_decode_inverts_encode_with_broadcast_anchors():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0.0, 1.0, size=(2, 6, 2, 2))
    boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2) + 0.01], axis=-1)
    corners = rng.uniform(0.0, 1.0, size=(6, 2, 2))
    anchors = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 0.01], axis=-1)
    boxes, anchors = boxes.astype("float32"), anchors.astype("float32")
    coder = FasterRcnnBoxCoder()
    codes = coder.encode(boxes, anchors)
    assert codes.shape == (2, 6, 4)
    np.testing.assert_allclose(coder.decode(codes, anchors), boxes, atol=1e-5)


def test_decode_clamps_log_scales_so_huge_codes_stay_finite():
    coder = FasterRcnnBoxCoder()
    decoded = coder.decode([[0.0, 0.0, 1e4, 1e4]], [ANCHOR]).numpy()
    assert np.isfinite(decoded).all()
    heights_widths = decoded[0, 2:] - decoded[0, :2]
    np.testing.assert_allclose(heights_widths, [0.4 * 1000 / 16, 0.2 * 1000 / 16], rtol=1e-5)


def test_encode_of_zero_size_boxes_is_finite():
    codes = FasterRcnnBoxCoder().encode([[0.5, 0.5, 0.5, 0.5]], [[0.1, 0.1, 0.1, 0.1]])
    assert np.isfinite(codes.numpy()).all()


def test_code_size_and_tf_function():
    coder = FasterRcnnBoxCoder()
    assert coder.code_size == 4
    decode = tf.function(coder.decode)
    concrete = decode.get_concrete_function(
        tf.TensorSpec([2, 5, 4], tf.float32), tf.TensorSpec([5, 4], tf.float32)
    )
    assert concrete.structured_outputs.shape == (2, 5, 4)


@pytest.mark.parametrize("scale_factors", [None, (1.0, 2.0, 3.0, 4.0)])
def test_config_round_trip(scale_factors):
    coder = FasterRcnnBoxCoder(scale_factors=scale_factors)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(coder))
    assert isinstance(restored, FasterRcnnBoxCoder)
    assert restored.get_config() == coder.get_config()
    assert restored.scale_factors == scale_factors


@pytest.mark.parametrize("scale_factors", [(10.0, 10.0, 5.0), (10.0, 0.0, 5.0, 5.0)])
def test_rejects_bad_scale_factors(scale_factors):
    with pytest.raises(ValueError, match="4 positive numbers"):
        FasterRcnnBoxCoder(scale_factors=scale_factors)
