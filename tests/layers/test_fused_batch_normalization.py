import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import FusedBatchNormalization
from kdet.layers import clone_with_fused_batch_norm


def _pair(momentum=0.9, **kwargs):
    """A Keras batch norm and a fused one with the same random weights, built for `[4,5,6,7]`."""
    keras_bn = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3, **kwargs)
    fused_bn = FusedBatchNormalization(momentum=momentum, epsilon=1e-3, **kwargs)
    keras_bn.build((4, 5, 6, 7))
    fused_bn.build((4, 5, 6, 7))
    rng = np.random.default_rng(1)
    weights = [
        w.numpy() + rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in keras_bn.weights
    ]
    keras_bn.set_weights(weights)
    fused_bn.set_weights(weights)
    return keras_bn, fused_bn


def _inputs(shape=(4, 5, 6, 7)):
    return (np.random.default_rng(0).normal(size=shape) * 3 + 1).astype("float32")


def test_inference_equals_keras_batch_norm():
    keras_bn, fused_bn = _pair()
    x = _inputs()
    np.testing.assert_allclose(fused_bn(x, training=False), keras_bn(x, training=False), atol=2e-6)


def test_training_normalizes_with_batch_statistics_and_updates_moving_ones():
    keras_bn, fused_bn = _pair(momentum=0.9)
    x = _inputs()
    old_variance = fused_bn.moving_variance.numpy()
    np.testing.assert_allclose(fused_bn(x, training=True), keras_bn(x, training=True), atol=2e-6)
    np.testing.assert_allclose(fused_bn.moving_mean, keras_bn.moving_mean, atol=1e-6)
    # The moving variance takes the unbiased batch variance (tf.keras 2 / TF OD API rule).
    n = 4 * 5 * 6
    expected = 0.9 * old_variance + 0.1 * x.var(axis=(0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(fused_bn.moving_variance, expected, rtol=1e-5)


def test_training_inside_tf_function_matches_eager():
    _, eager_bn = _pair()
    _, graph_bn = _pair()
    x = _inputs()
    eager = eager_bn(x, training=True)
    graph = tf.function(lambda x: graph_bn(x, training=True))(x)
    np.testing.assert_allclose(graph, eager, atol=1e-6)
    np.testing.assert_allclose(graph_bn.moving_variance, eager_bn.moving_variance, atol=1e-6)


def test_frozen_layer_runs_in_inference_mode_and_keeps_its_statistics():
    keras_bn, fused_bn = _pair()
    fused_bn.trainable = False
    x = _inputs()
    before = [w.numpy() for w in fused_bn.weights]
    np.testing.assert_allclose(fused_bn(x, training=True), keras_bn(x, training=False), atol=2e-6)
    for old, new in zip(before, fused_bn.weights):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("shape", [(8, 7), (2, 3, 4, 5, 7)])
def test_other_ranks_fall_back_to_keras(shape):
    keras_bn = keras.layers.BatchNormalization(momentum=0.9)
    fused_bn = FusedBatchNormalization(momentum=0.9)
    x = _inputs(shape)
    np.testing.assert_allclose(fused_bn(x, training=True), keras_bn(x, training=True), atol=1e-6)
    np.testing.assert_allclose(fused_bn.moving_variance, keras_bn.moving_variance, atol=1e-6)


def test_float16_inputs():
    _, fused_bn = _pair()
    reference = fused_bn(_inputs(), training=False)
    half = fused_bn(_inputs().astype("float16"), training=False)
    assert half.dtype == "float32"  # the layer's compute dtype, as Keras
    np.testing.assert_allclose(half, reference, atol=1e-2)


def test_model_save_and_load_round_trip(tmp_path):
    inputs = keras.Input((6, 6, 3))
    outputs = FusedBatchNormalization(momentum=0.99, epsilon=1e-4, name="bn")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights([np.full(3, v, "float32") for v in (2.0, 0.5, 1.0, 4.0)])
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    layer = loaded.get_layer("bn")
    assert type(layer) is FusedBatchNormalization
    assert layer.get_config() == model.get_layer("bn").get_config()
    x = _inputs((2, 6, 6, 3))
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_clone_with_fused_batch_norm_keeps_names_weights_and_outputs():
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    features = keras.layers.BatchNormalization(name="conv_bn")(features)
    outputs = keras.layers.ReLU(name="relu")(features)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("conv_bn")
    bn.set_weights([w.numpy() + 0.5 for w in bn.weights])

    fused = clone_with_fused_batch_norm(model)
    assert [layer.name for layer in fused.layers[1:]] == [layer.name for layer in model.layers[1:]]
    assert type(fused.get_layer("conv_bn")) is FusedBatchNormalization
    assert type(fused.get_layer("conv")) is keras.layers.Conv2D
    for original, cloned in zip(model.weights, fused.weights):
        np.testing.assert_array_equal(original, cloned)
    x = _inputs((2, 9, 9, 3))
    np.testing.assert_allclose(fused(x), model(x), atol=1e-5)


def test_clone_with_fused_batch_norm_applies_the_clone_function_to_other_layers():
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(2, 3, padding="valid", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(features))

    def same_padding(layer):
        config = layer.get_config()
        if config.get("padding") == "valid":
            config["padding"] = "same"
        return layer.__class__.from_config(config)

    fused = clone_with_fused_batch_norm(model, clone_function=same_padding)
    assert fused.output.shape == (None, 8, 8, 2)
    assert type(fused.get_layer("bn")) is FusedBatchNormalization


def test_a_frozen_layer_normalizes_with_moving_statistics_but_keeps_gamma_and_beta_trainable():
    keras_bn, fused_bn = _pair()
    fused_bn.frozen = True
    x = _inputs()
    statistics = [fused_bn.moving_mean.numpy(), fused_bn.moving_variance.numpy()]
    with tf.GradientTape() as tape:
        outputs = fused_bn(x, training=True)
        loss = tf.reduce_sum(outputs * x)
    np.testing.assert_allclose(outputs, keras_bn(x, training=False), atol=2e-6)
    np.testing.assert_array_equal(fused_bn.moving_mean, statistics[0])
    np.testing.assert_array_equal(fused_bn.moving_variance, statistics[1])
    gradients = tape.gradient(loss, fused_bn.trainable_weights)
    assert [w.name for w in fused_bn.trainable_weights] == ["gamma", "beta"]
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
    revived = FusedBatchNormalization.from_config(fused_bn.get_config())
    assert revived.frozen
