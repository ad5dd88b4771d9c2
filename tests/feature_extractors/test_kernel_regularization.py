import functools

import keras
import numpy as np

from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.kernel_regularization import regularize_kernels
from kdet.feature_extractors.kernel_regularization import regularized_clone
from kdet.layers import FusedBatchNormalization

L2 = keras.regularizers.L2(2e-5)
SERIALIZED = keras.regularizers.serialize(L2)


def test_kernels_get_the_regularizer_depthwise_ones_only_when_asked():
    conv, dense = keras.layers.Conv2D(4, 3), keras.layers.Dense(4)
    depthwise = keras.layers.DepthwiseConv2D(3)
    separable = keras.layers.SeparableConv2D(4, 3)
    for layer in (conv, dense):
        assert regularize_kernels(layer.get_config(), L2)["kernel_regularizer"] == SERIALIZED
    assert regularize_kernels(depthwise.get_config(), L2)["depthwise_regularizer"] is None
    assert regularize_kernels(depthwise.get_config(), L2, True)["depthwise_regularizer"] == (
        SERIALIZED
    )
    config = regularize_kernels(separable.get_config(), L2)
    assert (config["pointwise_regularizer"], config["depthwise_regularizer"]) == (
        SERIALIZED, None
    )
    assert regularize_kernels(separable.get_config(), L2, True)["depthwise_regularizer"] == (
        SERIALIZED
    )


def test_other_layers_and_no_regularizer_leave_the_config_unchanged():
    conv = keras.layers.Conv2D(4, 3)
    original = conv.get_config()
    assert regularize_kernels(original, None, True) == original
    assert original["kernel_regularizer"] is None  # the argument is not modified
    regularize_kernels(original, L2)
    assert original["kernel_regularizer"] is None
    batch_norm = keras.layers.BatchNormalization().get_config()
    assert regularize_kernels(batch_norm, L2, True) == batch_norm


def test_regularized_clone_keeps_class_and_name():
    conv = keras.layers.Conv2D(4, 3, name="block_1_project")
    clone = regularized_clone(conv, L2)
    assert type(clone) is keras.layers.Conv2D and clone.name == "block_1_project"
    assert clone.kernel_regularizer.get_config() == {"l2": 2e-5}
    assert conv.kernel_regularizer is None


def _conv_bn_model():
    images = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(images)
    features = keras.layers.BatchNormalization(name="conv_bn")(features)
    return keras.Model(images, keras.layers.ReLU(name="relu")(features))


def _assert_fused_and_equal(body, model_outputs, images):
    assert type(body.get_layer("conv_bn")) is FusedBatchNormalization
    assert not body.get_layer("conv_bn").frozen
    np.testing.assert_allclose(body(images), model_outputs, atol=1e-5)


def test_clone_body_fuses_the_batch_norms_of_the_model_itself_when_nothing_else_changes():
    model = _conv_bn_model()
    model.get_layer("conv_bn").moving_mean.assign([0.5, -0.5, 1.0, 2.0])
    images = np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype("float32")
    want = model(images)
    weights = [w.numpy() for w in model.weights]

    unregularized = functools.partial(regularized_clone, kernel_regularizer=None)
    body = clone_body(model, clone_function=unregularized)

    assert body is model  # built once: no copy of its layers or weights
    _assert_fused_and_equal(body, want, images)
    assert [w.path for w in body.weights] == [w.path for w in model.weights]
    for got, expected in zip(body.weights, weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), expected)


def test_clone_body_copies_with_the_weights_when_the_clone_function_changes_a_layer():
    model = _conv_bn_model()
    model.get_layer("conv_bn").moving_mean.assign([0.5, -0.5, 1.0, 2.0])
    images = np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype("float32")
    want = model(images)

    body = clone_body(model, functools.partial(regularized_clone, kernel_regularizer=L2))

    assert body is not model
    assert body.get_layer("conv").kernel_regularizer.get_config() == {"l2": 2e-5}
    assert model.get_layer("conv").kernel_regularizer is None
    _assert_fused_and_equal(body, want, images)
