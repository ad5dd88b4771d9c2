import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import ConvHyperparams
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.models.ssd.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor,
)

SIZES = (16, 8, 4, 2, 1)  # levels 3..7 of a 128x128 image


def _feature_maps(sizes=SIZES, channels=8, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=(batch, s, s, channels)), tf.float32) for s in sizes]


def _conv_kernels(predictor):
    return [w for w in predictor.trainable_weights if w.path.endswith("kernel")]


def test_output_shapes_match_the_multiscale_anchor_count():
    anchor_generator = MultiscaleGridAnchorGenerator(
        min_level=3, max_level=7, scales_per_octave=2, aspect_ratios=(1.0, 2.0, 0.5)
    )
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=3,
        num_anchors_per_location=anchor_generator.num_anchors_per_location(),
        depth=16,
    )
    box_encodings, class_logits = predictor(_feature_maps())
    anchors = anchor_generator.generate([(s, s) for s in SIZES], 128, 128)
    num_anchors = sum(a.shape[0] for a in anchors)
    assert num_anchors == 6 * (256 + 64 + 16 + 4 + 1)
    assert box_encodings.shape == (2, num_anchors, 4)
    assert class_logits.shape == (2, num_anchors, 4)  # background column + 3 classes
    assert box_encodings.dtype == class_logits.dtype == tf.float32


def test_initial_predictions_are_the_biases():
    # Zero features stay zero through bias-free convolutions, fresh batch norm and ReLU6.
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=6, depth=8
    )
    box_encodings, class_logits = predictor([tf.zeros([1, 4, 4, 8]), tf.zeros([1, 2, 2, 8])])
    np.testing.assert_allclose(box_encodings, 0.0)
    np.testing.assert_allclose(class_logits, -4.6, rtol=1e-6)


def test_one_set_of_convolutions_for_every_level():
    three = WeightSharedConvolutionalBoxPredictor(2, 6, depth=8)
    five = WeightSharedConvolutionalBoxPredictor(2, 6, depth=8)
    three(_feature_maps(SIZES[:3]))
    five(_feature_maps())
    # Box and class towers of 4 convolutions plus the two predictor convolutions.
    assert len(_conv_kernels(three)) == len(_conv_kernels(five)) == 10
    # Batch norm (gamma, beta) is per tower layer and level: 2 towers x 4 layers x levels x 2.
    assert len(three.trainable_weights) == 10 + 2 + 2 * 4 * 3 * 2
    assert len(five.trainable_weights) == 10 + 2 + 2 * 4 * 5 * 2


def test_the_same_map_at_two_levels_gets_the_same_predictions():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=3, depth=8, apply_batch_norm=False
    )
    (features,) = _feature_maps(sizes=(4,))
    box_encodings, class_logits = predictor([features, features])
    half = 4 * 4 * 3
    np.testing.assert_allclose(box_encodings[:, :half], box_encodings[:, half:], atol=1e-6)
    np.testing.assert_allclose(class_logits[:, :half], class_logits[:, half:], atol=1e-6)
    assert not np.allclose(box_encodings[:, 0], box_encodings[:, 1])


def test_predictions_are_row_major_then_anchor():
    # No tower, 1x1 predictor kernel of ones on a 1-channel map holding 10 * y + x, and bias
    # 4 * anchor + coordinate: box_encodings[(y * w + x) * A + a, k] = 10y + x + 4a + k.
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=1, num_anchors_per_location=2, num_layers_before_predictor=0, kernel_size=1
    )
    level_a = tf.reshape(tf.constant([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]]), [1, 2, 3, 1])
    level_b = tf.fill([1, 1, 1, 1], 100.0)
    predictor([level_a, level_b])
    predictor.box_predictor_conv.kernel.assign(tf.ones([1, 1, 1, 8]))
    predictor.box_predictor_conv.bias.assign(tf.range(8, dtype=tf.float32))
    box_encodings, _ = predictor([level_a, level_b])
    expected = [
        [value + 4 * anchor + k for k in range(4)]
        for value in (0, 1, 2, 10, 11, 12, 100)
        for anchor in range(2)
    ]
    np.testing.assert_allclose(box_encodings[0], expected)


def test_shared_prediction_tower():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=6, depth=8, share_prediction_tower=True
    )
    predictor(_feature_maps())
    assert len(_conv_kernels(predictor)) == 4 + 2
    assert all("class_tower" not in w.path for w in predictor.weights)


@pytest.mark.parametrize(
    "activation, use_conv_hyperparams_activation, expected",
    [
        ("relu", False, lambda x: np.clip(x, 0.0, 6.0)),  # TF1: ReLU6 whatever they say
        ("relu", True, lambda x: np.maximum(x, 0.0)),  # TF2 Keras: conv_hyperparams'
        ("swish", True, lambda x: x / (1.0 + np.exp(-x))),
        (None, True, lambda x: x),
    ],
)
def test_tower_activation(activation, use_conv_hyperparams_activation, expected):
    # One 1x1 tower convolution of 1 channel with kernel 10, no batch norm: the box predictor
    # (1x1 kernel 1, bias 0) outputs the activation of 10 x the input.
    hyperparams = ConvHyperparams(activation=activation)
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=1, num_anchors_per_location=1, depth=1, num_layers_before_predictor=1,
        kernel_size=1, box_code_size=1, conv_hyperparams=hyperparams,
        use_conv_hyperparams_activation=use_conv_hyperparams_activation,
    )
    features = tf.reshape(tf.constant([-1.0, -0.05, 0.05, 0.3, 1.0]), [1, 1, 5, 1])
    predictor([features])
    predictor.tower_convs["box"][0].kernel.assign(tf.fill([1, 1, 1, 1], 10.0))
    predictor.tower_convs["box"][0].bias.assign(tf.zeros([1]))
    predictor.box_predictor_conv.kernel.assign(tf.ones([1, 1, 1, 1]))
    predictor.box_predictor_conv.bias.assign(tf.zeros([1]))
    box_encodings, _ = predictor([features])
    np.testing.assert_allclose(
        box_encodings[0, :, 0], expected(10.0 * features.numpy().ravel()), rtol=1e-5, atol=1e-6
    )


def test_depthwise_convolutions_are_separable():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=6, depth=8, use_depthwise=True
    )
    box_encodings, _ = predictor(_feature_maps())
    assert box_encodings.shape == (2, 2046, 4)
    assert isinstance(predictor.box_predictor_conv, keras.layers.SeparableConv2D)
    assert all(
        isinstance(conv, keras.layers.SeparableConv2D)
        for convs in predictor.tower_convs.values()
        for conv in convs
    )


@pytest.mark.parametrize(
    "use_depthwise, regularize_depthwise", [(False, False), (True, False), (True, True)]
)
def test_kernel_regularizer_on_the_shared_kernels(use_depthwise, regularize_depthwise):
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2,
        num_anchors_per_location=6,
        depth=8,
        num_layers_before_predictor=2,
        use_depthwise=use_depthwise,
        kernel_regularizer=keras.regularizers.L1(0.01),
        regularize_depthwise=regularize_depthwise,
    )
    predictor(_feature_maps())
    convs = [conv for convs in predictor.tower_convs.values() for conv in convs]
    convs += [predictor.box_predictor_conv, predictor.class_predictor_conv]
    if not use_depthwise:
        kernels = [conv.kernel for conv in convs]
    else:
        kernels = [conv.pointwise_kernel for conv in convs]
        if regularize_depthwise:
            kernels += [conv.depthwise_kernel for conv in convs]
    regularized = [w for w in predictor.trainable_weights if w.regularizer is not None]
    assert sorted(w.path for w in regularized) == sorted(kernel.path for kernel in kernels)
    # Shared over the five levels, each kernel is regularized once.
    l1 = float(keras.regularizers.L1(0.01).l1)
    expected = l1 * sum(float(np.sum(np.abs(kernel.numpy()))) for kernel in kernels)
    np.testing.assert_allclose(float(keras.ops.sum(predictor.losses)), expected, rtol=1e-5)


def test_dropout_only_in_training():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=1, depth=8, apply_batch_norm=False,
        use_dropout=True, dropout_keep_probability=0.5,
    )
    features = _feature_maps(sizes=(8,))
    predictor(features)
    # Large kernel weights, so dropped tower features change the logits visibly.
    kernel = predictor.class_predictor_conv.kernel
    kernel.assign(tf.ones_like(kernel))
    np.testing.assert_allclose(predictor(features)[1], predictor(features, training=False)[1])
    assert not np.allclose(predictor(features, training=True)[1], predictor(features)[1])


def test_mixed_precision_outputs_float32():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=6, depth=8, dtype="mixed_float16"
    )
    box_encodings, class_logits = predictor(_feature_maps(sizes=(4, 2)))
    assert box_encodings.dtype == class_logits.dtype == tf.float32


def test_gradients_reach_every_weight_in_tf_function():
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2, num_anchors_per_location=6, depth=8
    )
    feature_maps = _feature_maps()

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            box_encodings, class_logits = predictor(feature_maps, training=True)
            loss = tf.reduce_sum(box_encodings**2) + tf.reduce_sum(class_logits**2)
        return tape.gradient(loss, predictor.trainable_weights)

    predictor(feature_maps)
    assert all(g is not None and np.any(g.numpy() != 0.0) for g in gradients())


def test_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="same number of anchors per location"):
        WeightSharedConvolutionalBoxPredictor(num_classes=2, num_anchors_per_location=[6, 3])
    with pytest.raises(ValueError, match="same, known number of channels"):
        WeightSharedConvolutionalBoxPredictor(num_classes=2, num_anchors_per_location=6)(
            [tf.zeros([1, 4, 4, 8]), tf.zeros([1, 2, 2, 16])]
        )
    with pytest.raises(ValueError, match="got 2 feature maps"):
        WeightSharedConvolutionalBoxPredictor(num_classes=2, num_anchors_per_location=[6] * 5)(
            [tf.zeros([1, 4, 4, 8]), tf.zeros([1, 2, 2, 8])]
        )
    with pytest.raises(ValueError, match="kernel_size > 1"):
        WeightSharedConvolutionalBoxPredictor(2, 6, kernel_size=1, use_depthwise=True)


def test_config_and_saved_model_round_trip(tmp_path):
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=3, num_anchors_per_location=[6] * 3, depth=8, num_layers_before_predictor=2,
        use_depthwise=True, share_prediction_tower=True, class_prediction_bias_init=-2.0,
        use_dropout=True, dropout_keep_probability=0.9, box_code_size=5,
        kernel_regularizer=keras.regularizers.L2(2e-4), regularize_depthwise=True,
        use_conv_hyperparams_activation=True,
    )
    config = predictor.get_config()
    restored = WeightSharedConvolutionalBoxPredictor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.use_conv_hyperparams_activation
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-4}
    assert restored.regularize_depthwise

    inputs = [keras.Input((s, s, 8)) for s in (4, 2, 1)]
    model = keras.Model(inputs, predictor(inputs))
    path = str(tmp_path / "predictor.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    feature_maps = _feature_maps(sizes=(4, 2, 1))
    for a, b in zip(model(feature_maps), loaded(feature_maps)):
        assert a.shape[-1] in (5, 4)
        np.testing.assert_allclose(a, b, atol=1e-6)
