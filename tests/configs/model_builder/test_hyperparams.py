"""`read_conv_hyperparams`: a TF OD API `Hyperparams` message → the `ConvHyperparams` its
layers are built with (TF OD API Keras builder semantics)."""

import json

import keras
import numpy as np
import pytest

from kdet.configs.field_reader import Node
from kdet.configs.model_builder.hyperparams import read_conv_hyperparams
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.layers import ConvHyperparams
from kdet.layers.conv_hyperparams import get


def _read(text, dense=False):
    return read_conv_hyperparams(Node(parse(text, "h.config"), "conv_hyperparams"), dense=dense)


def test_absent_message_is_none_and_empty_message_is_the_proto_defaults():
    assert read_conv_hyperparams(None) is None
    hyperparams = _read("")
    assert hyperparams == ConvHyperparams()  # RELU, no batch norm, no regularizer
    assert isinstance(hyperparams.kernel_initializer, keras.initializers.GlorotUniform)
    assert hyperparams.kernel_regularizer is None
    assert hyperparams.use_bias


def test_ssd_sample_values_are_applied():
    hyperparams = _read(
        """
        regularizer { l2_regularizer { weight: 0.00004 } }
        initializer { truncated_normal_initializer { stddev: 0.03 mean: 0.1 } }
        activation: RELU_6
        batch_norm { train: true scale: true center: true decay: 0.9997 epsilon: 0.001 }
        """
    )
    assert hyperparams.activation == "relu6"
    assert hyperparams.batch_norm == {
        "momentum": pytest.approx(0.9997), "epsilon": pytest.approx(1e-3), "center": True,
        "scale": True, "train": True, "synchronized": False,
    }  # fmt: skip
    assert not hyperparams.use_bias  # a centering batch norm follows each convolution
    initializer = hyperparams.kernel_initializer
    assert isinstance(initializer, keras.initializers.TruncatedNormal)
    assert (initializer.mean, initializer.stddev) == pytest.approx((0.1, 0.03))
    # slim's l2_regularizer(w) is w * sum(x²) / 2: Keras L2(w / 2).
    assert float(hyperparams.kernel_regularizer.l2) == pytest.approx(2e-5)
    conv = keras.layers.Conv2D(2, 1, **hyperparams.conv_kwargs())
    conv.build((None, 4, 4, 3))
    kernel = conv.kernel.numpy()
    loss = float(conv.losses[0]) if conv.losses else float(conv.kernel_regularizer(conv.kernel))
    assert loss == pytest.approx(0.00004 * np.sum(kernel**2) / 2, rel=1e-5)
    bn = hyperparams.batch_norm_layer(name="bn")
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale, bn.frozen) == pytest.approx(
        (0.9997, 1e-3, True, True, False)
    )


@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("random_normal_initializer { stddev: 0.01 }", keras.initializers.RandomNormal,
         {"mean": 0.0, "stddev": 0.01}),
        ("truncated_normal_initializer { }", keras.initializers.TruncatedNormal,
         {"mean": 0.0, "stddev": 1.0}),
        # Proto defaults: factor 2.0, FAN_IN, not uniform → truncated normal.
        ("variance_scaling_initializer { }", keras.initializers.VarianceScaling,
         {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}),
        ("variance_scaling_initializer { factor: 1.0 uniform: true mode: FAN_AVG }",
         keras.initializers.VarianceScaling,
         {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}),
        ("variance_scaling_initializer { mode: FAN_OUT }", keras.initializers.VarianceScaling,
         {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}),
        ("keras_initializer_by_name: 'he_normal'", keras.initializers.HeNormal, {}),
    ],
)  # fmt: skip
def test_every_initializer_kind(text, kind, expected):
    initializer = _read(f"initializer {{ {text} }}").kernel_initializer
    assert isinstance(initializer, kind)
    config = initializer.get_config()
    for name, value in expected.items():
        assert config[name] == pytest.approx(value) if isinstance(value, float) else value


def test_variance_scaling_draws_with_the_configured_scale():
    initializer = _read(
        "initializer { variance_scaling_initializer { factor: 1.0 uniform: true mode: FAN_AVG } }"
    ).kernel_initializer
    values = initializer((1, 1, 300, 100)).numpy()
    limit = np.sqrt(3.0 * 1.0 / 200.0)  # uniform over ±sqrt(3 · factor / fan_avg)
    assert values.max() <= limit and values.max() > 0.95 * limit


def test_l1_regularizer_activation_none_swish_and_flags():
    hyperparams = _read(
        "regularizer { l1_regularizer { weight: 0.5 } } activation: NONE "
        "regularize_depthwise: true force_use_bias: true batch_norm { }"
    )
    assert float(hyperparams.kernel_regularizer.l1) == pytest.approx(0.5)
    assert hyperparams.activation is None and hyperparams.activation_layer() is None
    assert hyperparams.regularize_depthwise
    assert hyperparams.depthwise_conv_kwargs()["depthwise_regularizer"] is not None
    assert hyperparams.use_bias  # force_use_bias keeps it before the batch norm
    assert hyperparams.batch_norm["momentum"] == pytest.approx(0.999)  # BatchNorm defaults
    assert not hyperparams.batch_norm["scale"]
    assert _read("activation: SWISH").activation == "swish"
    assert _read("regularizer { l2_regularizer { weight: 0.0 } }").kernel_regularizer is None


def test_sync_batch_norm_and_train_false():
    hyperparams = _read("sync_batch_norm { decay: 0.97 train: false }")
    bn = hyperparams.batch_norm_layer(name="bn")
    assert bn.synchronized and bn.frozen
    assert bn.momentum == pytest.approx(0.97)


def test_fc_op_only_for_dense_layers():
    assert _read("op: FC", dense=True).use_bias
    assert _read("op: CONV", dense=True) == ConvHyperparams()
    with pytest.raises(ConfigError, match=r"h.config:1:1: 'conv_hyperparams.op' is FC"):
        _read("op: FC")


@pytest.mark.parametrize(
    "text, message",
    [
        ("group_norm { }", r"h.config:1:1: 'conv_hyperparams.group_norm' is set, but"),
        ("batch_norm { } sync_batch_norm { }", r"sets both 'batch_norm' and 'sync_batch_norm'"),
        ("regularizer { l2_regularizer { weight: -1.0 } }", r"must not be negative"),
        ("initializer { keras_initializer_by_name: 'nope' }",
         r"h.config:1:15: .*'nope', which is not a Keras initializer name"),
        ("initializer { keras_initializer_by_name: 'zeros' random_normal_initializer { } }",
         r"sets both 'keras_initializer_by_name' and 'random_normal_initializer'"),
        ("initializer { random_normal_initializer { stddev: -0.1 } }", r"must not be negative"),
        ("batch_norm { decay: 1.5 }", r"'conv_hyperparams.batch_norm.decay' is 1.5, but it must"),
        ("activation: RELU6", r"conv_hyperparams.activation"),
        ("batchnorm { }", r"did you mean 'batch_norm'"),
    ],
)  # fmt: skip
def test_errors_name_the_field(text, message):
    with pytest.raises(ConfigError, match=message):
        _read(text)


def test_round_trips_through_keras_serialization():
    hyperparams = _read(
        "regularizer { l2_regularizer { weight: 0.0004 } } activation: SWISH "
        "initializer { variance_scaling_initializer { mode: FAN_AVG uniform: true } } "
        "sync_batch_norm { decay: 0.99 scale: true }"
    )
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(hyperparams)))
    assert get(serialized) == hyperparams
