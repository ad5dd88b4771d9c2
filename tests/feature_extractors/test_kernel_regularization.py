import keras

from kdet.feature_extractors.kernel_regularization import regularize_kernels
from kdet.feature_extractors.kernel_regularization import regularized_clone

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
