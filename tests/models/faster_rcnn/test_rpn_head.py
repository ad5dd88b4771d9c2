import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import GridAnchorGenerator
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.models.faster_rcnn import RPNHead


def _features(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), tf.float32)


def test_outputs_line_up_with_the_grid_anchors():
    anchor_generator = GridAnchorGenerator(anchor_stride=(16, 16))
    head = RPNHead(anchor_generator.num_anchors_per_location(), depth=8)
    box_encodings, objectness_logits = head(_features([2, 5, 6, 16]))
    (anchors,) = anchor_generator.generate([(5, 6)], image_height=80, image_width=96)
    assert anchors.shape[0] == 5 * 6 * 9
    assert box_encodings.shape == (2, anchors.shape[0], 4)
    assert objectness_logits.shape == (2, anchors.shape[0], 2)
    assert box_encodings.dtype == objectness_logits.dtype == tf.float32
    assert head.rpn_conv.name == "RPNConv" and head.rpn_conv.kernel.shape == (3, 3, 16, 8)
    assert head.box_predictor.name == "BoxEncodingPredictor"
    assert head.box_predictor.kernel.shape == (1, 1, 8, 9 * 4)
    assert head.class_predictor.name == "ClassPredictor"
    assert head.class_predictor.kernel.shape == (1, 1, 8, 9 * 2)


def test_outputs_line_up_with_the_multiscale_anchors():
    anchor_generator = MultiscaleGridAnchorGenerator(
        min_level=3, max_level=4, aspect_ratios=(0.5, 1.0, 2.0), scales_per_octave=1
    )
    head = RPNHead(anchor_generator.num_anchors_per_location(), depth=8)
    box_encodings, objectness_logits = head([_features([1, 8, 8, 4]), _features([1, 4, 4, 4])])
    anchors = anchor_generator.generate([(8, 8), (4, 4)], 64, 64)
    num_anchors = sum(a.shape[0] for a in anchors)
    assert num_anchors == 3 * (64 + 16)
    assert box_encodings.shape == (1, num_anchors, 4)
    assert objectness_logits.shape == (1, num_anchors, 2)


def _set_identity_rpn(head, num_anchors):
    """1x1, 1-channel head: RPN conv passes the feature v; output channel c is v + 10 * c."""
    head.rpn_conv.kernel.assign(np.ones([1, 1, 1, 1], np.float32))
    head.rpn_conv.bias.assign(np.zeros([1], np.float32))
    for predictor, code_size in [(head.box_predictor, 4), (head.class_predictor, 2)]:
        outputs = num_anchors * code_size
        predictor.kernel.assign(np.ones([1, 1, 1, outputs], np.float32))
        predictor.bias.assign(10.0 * np.arange(outputs, dtype=np.float32))


def test_predictions_are_row_major_then_anchor():
    head = RPNHead(num_anchors_per_location=2, depth=1, kernel_size=1)
    features = tf.reshape(tf.range(6, dtype=tf.float32), [1, 2, 3, 1])  # v = y * 3 + x
    head(features)
    _set_identity_rpn(head, num_anchors=2)
    box_encodings, objectness_logits = head(features)
    expected_boxes = [
        [location + 10.0 * (4 * anchor + code) for code in range(4)]
        for location in range(6)
        for anchor in range(2)
    ]
    expected_logits = [
        [location + 10.0 * (2 * anchor + code) for code in range(2)]
        for location in range(6)
        for anchor in range(2)
    ]
    np.testing.assert_allclose(box_encodings[0], expected_boxes)
    np.testing.assert_allclose(objectness_logits[0], expected_logits)


def test_the_rpn_convolution_is_relu6():
    head = RPNHead(num_anchors_per_location=1, depth=1, kernel_size=1)
    features = tf.constant([[[[-3.0], [2.0], [9.0]]]])
    head(features)
    _set_identity_rpn(head, num_anchors=1)
    box_encodings, _ = head(features)
    np.testing.assert_allclose(box_encodings[0, :, 0], [0.0, 2.0, 6.0])


def test_levels_share_weights_and_follow_each_other_finest_first():
    head = RPNHead(num_anchors_per_location=[3, 3], depth=8)
    fine, coarse = _features([2, 4, 4, 6], seed=1), _features([2, 2, 2, 6], seed=2)
    box_encodings, objectness_logits = head([fine, coarse])
    # One RPN conv and two predictors, whatever the number of levels.
    assert len(head.trainable_weights) == 6
    single_level = RPNHead(num_anchors_per_location=3, depth=8)
    single_level([fine])
    single_level.set_weights(head.get_weights())
    for index, features in enumerate([fine, coarse]):
        level_boxes, level_logits = single_level(features)
        rows = slice(0, 48) if index == 0 else slice(48, 60)
        np.testing.assert_allclose(box_encodings[:, rows], level_boxes, atol=1e-6)
        np.testing.assert_allclose(objectness_logits[:, rows], level_logits, atol=1e-6)


def test_tf_od_api_initializers():
    head = RPNHead(num_anchors_per_location=9, depth=64)
    head(tf.zeros([1, 4, 4, 32]))
    for layer in [head.rpn_conv, head.box_predictor, head.class_predictor]:
        kernel = layer.kernel.numpy()
        # Truncated normal, stddev 0.01: within two stddevs, spread about 0.0088.
        assert np.abs(kernel).max() <= 0.02 + 1e-6
        assert 0.006 < kernel.std() < 0.011
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


def test_runs_under_tf_function_with_dynamic_shapes_and_mixed_precision():
    head = RPNHead(num_anchors_per_location=3, depth=4)
    features = _features([2, 3, 5, 8])
    expected = head(features)
    traced = tf.function(
        head, input_signature=[tf.TensorSpec([None, None, None, 8], tf.float32)]
    )(features)
    for value, reference in zip(traced, expected):
        np.testing.assert_allclose(value, reference, atol=1e-6)
    mixed = RPNHead(num_anchors_per_location=3, depth=4, dtype="mixed_float16")
    outputs = mixed(features)
    assert all(output.dtype == tf.float32 for output in outputs)


def test_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="same number of anchors per location"):
        RPNHead(num_anchors_per_location=[3, 6])
    with pytest.raises(ValueError, match="2 feature map"):
        RPNHead(num_anchors_per_location=[3])([tf.zeros([1, 4, 4, 2]), tf.zeros([1, 2, 2, 2])])
    with pytest.raises(ValueError, match="same, known number of channels"):
        RPNHead(num_anchors_per_location=3)([tf.zeros([1, 4, 4, 2]), tf.zeros([1, 2, 2, 4])])


def test_kernel_regularizer_on_the_three_kernels_not_the_biases():
    head = RPNHead(num_anchors_per_location=3, depth=8, kernel_regularizer="l2")
    head([_features([1, 4, 4, 6]), _features([1, 2, 2, 6], seed=1)])
    kernels = [layer.kernel for layer in (head.rpn_conv, head.box_predictor, head.class_predictor)]
    assert [w for w in head.trainable_weights if w.regularizer is not None] == kernels
    # "l2" is keras.regularizers.L2() of factor 0.01; shared over the maps, counted once.
    expected = 0.01 * sum(float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(head.losses)), expected, rtol=1e-5)


def test_config_round_trip():
    head = RPNHead(
        num_anchors_per_location=[12, 12],
        depth=16,
        kernel_size=1,
        dilation_rate=2,
        kernel_regularizer=keras.regularizers.L2(1e-3),
    )
    restored = RPNHead.from_config(json.loads(json.dumps(head.get_config())))
    assert restored.get_config() == head.get_config()
    assert restored.rpn_conv.kernel_regularizer.get_config() == {"l2": 1e-3}
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(head)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, RPNHead)
    assert restored.num_anchors_per_location == [12, 12] and restored.dilation_rate == 2


def test_per_level_predictors_share_the_rpn_convolution_only():
    # The TF OD API's first stage: one RPN convolution, one pair of 1x1 predictors per map.
    head = RPNHead(num_anchors_per_location=[3, 3], depth=8, per_level_predictors=True)
    fine, coarse = _features([2, 4, 4, 6], seed=1), _features([2, 2, 2, 6], seed=2)
    box_encodings, objectness_logits = head([fine, coarse])
    assert len(head.trainable_weights) == 2 + 2 * 4
    assert [p.name for p in head.box_predictors] == [
        "BoxEncodingPredictor", "BoxEncodingPredictor_1"
    ]
    for index, (features, rows) in enumerate([(fine, slice(0, 48)), (coarse, slice(48, 60))]):
        single_level = RPNHead(num_anchors_per_location=3, depth=8)
        single_level(features)
        single_level.rpn_conv.set_weights(head.rpn_conv.get_weights())
        single_level.box_predictor.set_weights(head.box_predictors[index].get_weights())
        single_level.class_predictor.set_weights(head.class_predictors[index].get_weights())
        level_boxes, level_logits = single_level(features)
        np.testing.assert_allclose(box_encodings[:, rows], level_boxes, atol=1e-6)
        np.testing.assert_allclose(objectness_logits[:, rows], level_logits, atol=1e-6)
    # The config keeps it; a config written before the field shares one pair.
    config = head.get_config()
    assert len(RPNHead.from_config(config).box_predictors) == 2
    del config["per_level_predictors"]
    assert len(RPNHead.from_config(config).box_predictors) == 1
