import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import SSDAnchorGenerator
from kdet.models.ssd import ConvolutionalBoxPredictor

SSD_MOBILENET_V2_MAPS = [(19, 576), (10, 1280), (5, 512), (3, 256), (2, 256), (1, 128)]


def test_ssd_mobilenet_v2_coco_outputs_line_up_with_the_anchors():
    anchor_generator = SSDAnchorGenerator()
    predictor = ConvolutionalBoxPredictor(
        num_classes=90, num_anchors_per_location=anchor_generator.num_anchors_per_location()
    )
    feature_maps = [tf.zeros([2, s, s, c]) for s, c in SSD_MOBILENET_V2_MAPS]
    box_encodings, class_logits = predictor(feature_maps)
    anchors = anchor_generator.generate([(s, s) for s, _ in SSD_MOBILENET_V2_MAPS], 300, 300)
    num_anchors = sum(a.shape[0] for a in anchors)
    assert num_anchors == 1917
    assert tuple(box_encodings.shape) == (2, num_anchors, 4)
    assert tuple(class_logits.shape) == (2, num_anchors, 91)
    assert box_encodings.dtype == tf.float32 and class_logits.dtype == tf.float32
    class_kernel = predictor.class_heads[0].layers[0]
    assert class_kernel.name == "BoxPredictor_0_ClassPredictor"
    assert tuple(class_kernel.kernel.shape) == (3, 3, 576, 3 * 91)
    assert predictor.box_heads[5].layers[0].name == "BoxPredictor_5_BoxEncodingPredictor"


def _set_location_encoding(head, num_outputs):
    """1x1 head: output channel c at a location with feature v becomes v + c."""
    head.layers[-1].kernel.assign(np.ones([1, 1, 1, num_outputs], np.float32))
    head.layers[-1].bias.assign(np.arange(num_outputs, dtype=np.float32))


def test_anchor_order_is_row_major_then_anchor_then_feature_map():
    # Map 0: 2x3 grid, 2 anchors; map 1: 1x1 grid, 1 anchor. Feature value = 100 * map +
    # 10 * (y * width + x), so every output row says where it came from.
    predictor = ConvolutionalBoxPredictor(
        num_classes=1, num_anchors_per_location=[2, 1], kernel_size=1
    )
    features = [
        tf.reshape(tf.range(6, dtype=tf.float32) * 10.0, [1, 2, 3, 1]),
        tf.fill([1, 1, 1, 1], 100.0),
    ]
    predictor(features)
    for index, num_anchors in enumerate([2, 1]):
        _set_location_encoding(predictor.box_heads[index], num_anchors * 4)
        _set_location_encoding(predictor.class_heads[index], num_anchors * 2)
    box_encodings, class_logits = predictor(features)
    expected_boxes = [
        [10.0 * location + 4 * anchor + code for code in range(4)]
        for location in range(6)
        for anchor in range(2)
    ] + [[100.0, 101.0, 102.0, 103.0]]
    np.testing.assert_allclose(box_encodings[0], expected_boxes)
    expected_logits = [
        [10.0 * location + 2 * anchor + column for column in range(2)]
        for location in range(6)
        for anchor in range(2)
    ] + [[100.0, 101.0]]
    np.testing.assert_allclose(class_logits[0], expected_logits)


def test_class_prediction_bias_init_sets_initial_logits():
    bias = -float(np.log((1 - 0.01) / 0.01))
    predictor = ConvolutionalBoxPredictor(
        num_classes=3, num_anchors_per_location=[2], class_prediction_bias_init=bias
    )
    _, class_logits = predictor([tf.zeros([1, 4, 4, 8])])
    np.testing.assert_allclose(class_logits, np.full([1, 32, 4], bias), atol=1e-6)


def test_tower_depthwise_heads_and_dropout():
    predictor = ConvolutionalBoxPredictor(
        num_classes=2,
        num_anchors_per_location=[3, 2],
        num_layers_before_predictor=2,
        depth=8,
        use_depthwise=True,
        use_dropout=True,
        dropout_keep_probability=0.5,
    )
    features = [tf.random.normal([2, 4, 4, 6], seed=1), tf.random.normal([2, 2, 2, 5], seed=2)]
    box_encodings, class_logits = predictor(features)
    assert tuple(box_encodings.shape) == (2, 4 * 4 * 3 + 2 * 2 * 2, 4)
    assert tuple(class_logits.shape) == (2, 56, 3)
    names = [layer.name for layer in predictor.towers[1].layers if layer.weights]
    assert names == [
        "BoxPredictor_1_Conv2d_0_1x1_8",
        "BoxPredictor_1_Conv2d_0_1x1_8_batchnorm",
        "BoxPredictor_1_Conv2d_1_1x1_8",
        "BoxPredictor_1_Conv2d_1_1x1_8_batchnorm",
    ]
    names = [layer.name for layer in predictor.class_heads[0].layers]
    assert names[1:] == [
        "BoxPredictor_0_ClassPredictor_depthwise",
        "BoxPredictor_0_ClassPredictor_depthwise_batchnorm",
        "BoxPredictor_0_ClassPredictor_depthwise_activation",
        "BoxPredictor_0_ClassPredictor",
    ]
    assert isinstance(predictor.class_heads[0].layers[0], keras.layers.Dropout)
    # Dropout acts on the class head only, and only in training.
    _, inference_logits = predictor(features, training=False)
    np.testing.assert_allclose(inference_logits, class_logits, atol=1e-6)
    _, train_logits = predictor(features, training=True)
    assert not np.allclose(train_logits, inference_logits)


@pytest.mark.parametrize("regularize_depthwise", [False, True])
def test_kernel_regularizer_on_tower_and_head_kernels(regularize_depthwise):
    predictor = ConvolutionalBoxPredictor(
        num_classes=2,
        num_anchors_per_location=[3, 2],
        num_layers_before_predictor=1,
        depth=8,
        use_depthwise=True,
        kernel_regularizer=keras.regularizers.L2(0.01),
        regularize_depthwise=regularize_depthwise,
    )
    predictor([tf.zeros([1, 4, 4, 6]), tf.zeros([1, 2, 2, 5])])
    kernels, depthwise_kernels = [], []
    for stack in predictor.towers + predictor.box_heads + predictor.class_heads:
        for layer in stack.layers:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                depthwise_kernels.append(layer.kernel)
            elif isinstance(layer, keras.layers.Conv2D):
                kernels.append(layer.kernel)
    assert (len(kernels), len(depthwise_kernels)) == (2 + 4, 4)
    if regularize_depthwise:
        kernels += depthwise_kernels
    regularized = [w for w in predictor.trainable_weights if w.regularizer is not None]
    assert sorted(w.path for w in regularized) == sorted(kernel.path for kernel in kernels)
    expected = 0.01 * sum(float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(predictor.losses)), expected, rtol=1e-5)


def test_runs_under_tf_function_with_a_dynamic_batch():
    predictor = ConvolutionalBoxPredictor(num_classes=4, num_anchors_per_location=[2, 3])

    @tf.function(
        input_signature=[
            [tf.TensorSpec([None, 4, 4, 8]), tf.TensorSpec([None, None, None, 16])]
        ]
    )
    def predict(feature_maps):
        return predictor(feature_maps)

    box_encodings, class_logits = predict([tf.ones([3, 4, 4, 8]), tf.ones([3, 2, 2, 16])])
    assert tuple(box_encodings.shape) == (3, 32 + 12, 4)
    assert tuple(class_logits.shape) == (3, 44, 5)


def test_rejects_bad_arguments():
    predictor = ConvolutionalBoxPredictor(num_classes=4, num_anchors_per_location=[2, 3])
    with pytest.raises(ValueError, match="built for 2 feature maps"):
        predictor([tf.zeros([1, 4, 4, 8])])
    with pytest.raises(ValueError, match="kernel_size"):
        ConvolutionalBoxPredictor(
            num_classes=4, num_anchors_per_location=[2], use_depthwise=True, kernel_size=1
        )


def test_config_and_save_round_trip(tmp_path):
    predictor = ConvolutionalBoxPredictor(
        num_classes=5,
        num_anchors_per_location=[3, 6],
        kernel_size=1,
        num_layers_before_predictor=1,
        depth=4,
        use_depthwise=False,
        use_dropout=True,
        dropout_keep_probability=0.6,
        box_code_size=5,
        class_prediction_bias_init=-2.0,
        kernel_regularizer=keras.regularizers.L2(2e-5),
        regularize_depthwise=True,
        name="predictor",
    )
    config = predictor.get_config()
    restored = ConvolutionalBoxPredictor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-5}
    assert restored.regularize_depthwise

    inputs = [keras.Input([4, 4, 3]), keras.Input([2, 2, 7])]
    model = keras.Model(inputs, predictor(inputs))
    features = [tf.random.normal([1, 4, 4, 3], seed=3), tf.random.normal([1, 2, 2, 7], seed=4)]
    path = tmp_path / "predictor.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model(features), loaded(features)):
        np.testing.assert_allclose(a, b, atol=1e-6)
