import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.models.faster_rcnn import BoxClassifierHead


def _features(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), tf.float32)


def test_output_shapes_for_spatial_and_flat_features():
    head = BoxClassifierHead(num_classes=3)
    class_logits, box_encodings = head(_features([5, 7, 7, 16]))
    assert class_logits.shape == (5, 4)  # background column + 3 classes
    assert box_encodings.shape == (5, 3, 4)
    assert class_logits.dtype == box_encodings.dtype == tf.float32
    assert head.class_predictor.name == "ClassPredictor_dense"
    assert head.box_predictor.name == "BoxEncodingPredictor_dense"
    flat_logits, flat_boxes = BoxClassifierHead(num_classes=3, box_code_size=5)(
        _features([6, 32])
    )
    assert flat_logits.shape == (6, 4) and flat_boxes.shape == (6, 3, 5)


def test_spatial_features_are_averaged_first():
    head = BoxClassifierHead(num_classes=2)
    features = _features([4, 3, 3, 8])
    spatial = head(features)
    flat = head(tf.reduce_mean(features, axis=[1, 2]))
    for value, reference in zip(spatial, flat):
        np.testing.assert_allclose(value, reference, atol=1e-6)


def test_one_box_encoding_per_class():
    head = BoxClassifierHead(num_classes=3)
    head(tf.zeros([1, 2]))
    head.box_predictor.kernel.assign(np.zeros([2, 12], np.float32))
    head.box_predictor.bias.assign(np.arange(12, dtype=np.float32))
    _, box_encodings = head(_features([2, 2]))
    # Row k of an RoI's boxes holds outputs 4k..4k+3: the box of class id k + 1.
    expected = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(box_encodings[0], expected)
    np.testing.assert_array_equal(box_encodings[1], expected)


def test_tf_od_api_variance_scaling_initializer():
    head = BoxClassifierHead(num_classes=7)
    head(tf.zeros([1, 120]))
    kernel = head.box_predictor.kernel.numpy()  # [120, 28]
    limit = np.sqrt(3.0 / ((120 + 28) / 2.0))  # uniform, fan_avg, factor 1
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    np.testing.assert_array_equal(head.class_predictor.bias.numpy(), 0.0)


def test_dropout_only_in_training():
    head = BoxClassifierHead(num_classes=2, use_dropout=True, dropout_keep_probability=0.5)
    plain = BoxClassifierHead(num_classes=2)
    features = _features([8, 64])
    plain(features)
    head(features)
    plain.set_weights(head.get_weights())
    for value, reference in zip(head(features, training=False), plain(features)):
        np.testing.assert_allclose(value, reference, atol=1e-6)
    trained_logits, _ = head(features, training=True)
    assert not np.allclose(trained_logits, plain(features)[0], atol=1e-3)


def test_runs_under_tf_function_with_a_dynamic_number_of_rois():
    head = BoxClassifierHead(num_classes=2)
    features = _features([3, 2, 2, 8])
    expected = head(features)
    traced = tf.function(head, input_signature=[tf.TensorSpec([None, 2, 2, 8], tf.float32)])(
        features
    )
    for value, reference in zip(traced, expected):
        np.testing.assert_allclose(value, reference, atol=1e-6)
    empty_logits, empty_boxes = head(tf.zeros([0, 2, 2, 8]))
    assert empty_logits.shape == (0, 3) and empty_boxes.shape == (0, 2, 4)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        BoxClassifierHead(num_classes=0)
    with pytest.raises(ValueError, match="dropout_keep_probability"):
        BoxClassifierHead(num_classes=2, dropout_keep_probability=0.0)
    with pytest.raises(ValueError, match=r"\[num_rois, depth\]"):
        BoxClassifierHead(num_classes=2)(tf.zeros([2, 3, 8]))


def test_kernel_regularizer_on_both_dense_kernels_not_the_biases():
    head = BoxClassifierHead(num_classes=3, kernel_regularizer=keras.regularizers.L2(0.05))
    head(_features([4, 16]))
    kernels = [head.class_predictor.kernel, head.box_predictor.kernel]
    assert [w for w in head.trainable_weights if w.regularizer is not None] == kernels
    expected = 0.05 * sum(float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(head.losses)), expected, rtol=1e-5)


def test_config_round_trip():
    head = BoxClassifierHead(
        num_classes=5,
        use_dropout=True,
        dropout_keep_probability=0.8,
        box_code_size=6,
        kernel_regularizer=keras.regularizers.L1(1e-4),
    )
    restored = BoxClassifierHead.from_config(json.loads(json.dumps(head.get_config())))
    assert restored.get_config() == head.get_config()
    assert restored.kernel_regularizer.get_config() == head.kernel_regularizer.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(head)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, BoxClassifierHead)
    assert restored.num_classes == 5 and restored.box_code_size == 6
