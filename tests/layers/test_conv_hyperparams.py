"""`kdet.layers.ConvHyperparams`: the layers it builds carry its values, and it round-trips."""

import json

import keras
import numpy as np
import pytest

from kdet.layers import ConvHyperparams
from kdet.layers import FusedBatchNormalization
from kdet.layers.conv_hyperparams import get
from kdet.layers.conv_hyperparams import with_legacy_regularization


def _hyperparams():
    return ConvHyperparams(
        kernel_initializer=keras.initializers.RandomNormal(mean=0.5, stddev=0.01),
        kernel_regularizer=keras.regularizers.L1(3e-4),
        regularize_depthwise=True,
        activation="relu6",
        batch_norm={"momentum": 0.97, "epsilon": 1e-5, "scale": True, "train": False},
    )


def test_layers_carry_the_hyperparams():
    hyperparams = _hyperparams()
    conv = keras.layers.Conv2D(4, 3, **hyperparams.conv_kwargs())
    conv.build((None, 8, 8, 2))
    assert not conv.use_bias  # a centering batch norm follows
    assert abs(float(np.mean(conv.kernel.numpy())) - 0.5) < 0.01
    assert float(conv.kernel_regularizer.l1) == pytest.approx(3e-4)
    depthwise = keras.layers.DepthwiseConv2D(3, **hyperparams.depthwise_conv_kwargs())
    assert float(depthwise.depthwise_regularizer.l1) == pytest.approx(3e-4)
    bn = hyperparams.batch_norm_layer(name="bn")
    assert isinstance(bn, FusedBatchNormalization)
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.97, 1e-5, True, True)
    assert bn.frozen  # train: false
    assert not bn.synchronized
    synced = ConvHyperparams(batch_norm={"synchronized": True}).batch_norm_layer()
    assert synced.synchronized  # TF OD API sync_batch_norm
    relu6 = hyperparams.activation_layer()
    assert float(relu6(np.array([9.0], "float32"))[0]) == 6.0


def test_no_batch_norm_keeps_the_bias_and_none_activation_builds_nothing():
    hyperparams = ConvHyperparams(activation=None)
    assert hyperparams.conv_kwargs()["use_bias"]
    assert hyperparams.batch_norm_layer() is None
    assert hyperparams.activation_layer() is None
    # Without regularize_depthwise the depthwise kernel is not regularized.
    plain = ConvHyperparams(kernel_regularizer=keras.regularizers.L2(1.0))
    assert plain.depthwise_conv_kwargs()["depthwise_regularizer"] is None
    assert ConvHyperparams(batch_norm={}, force_use_bias=True).use_bias
    assert ConvHyperparams(batch_norm={"center": False}).use_bias


def test_round_trips_through_keras_serialization():
    hyperparams = _hyperparams()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(hyperparams)))
    restored = get(serialized)
    assert restored == hyperparams
    assert get(hyperparams.get_config()) == hyperparams
    assert hyperparams.replace(activation=None).activation is None


def test_rejects_unknown_values():
    with pytest.raises(ValueError, match="activation"):
        ConvHyperparams(activation="tanh")
    with pytest.raises(ValueError, match="decay"):
        ConvHyperparams(batch_norm={"decay": 0.9})


def test_layer_config_overrides_and_legacy_regularization():
    hyperparams = _hyperparams()
    # Batch norms are replaced whole by hyperparams_clone; their configs are not edited here.
    bn = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)
    assert hyperparams.layer_config_overrides(bn.get_config()) == bn.get_config()
    conv = keras.layers.Conv2D(2, 1)
    conv_config = hyperparams.layer_config_overrides(conv.get_config())
    rebuilt = keras.layers.Conv2D.from_config(conv_config)
    assert float(rebuilt.kernel_regularizer.l1) == pytest.approx(3e-4)
    legacy = with_legacy_regularization(ConvHyperparams(), keras.regularizers.L2(2e-5), True)
    assert float(legacy.kernel_regularizer.l2) == pytest.approx(2e-5) and legacy.regularize_depthwise
