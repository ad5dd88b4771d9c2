import keras
import numpy as np
import pytest

from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.mobile_blocks import ConvBatchNorm
from kdet.layers.mobile_blocks import InvertedBottleneck
from kdet.layers.mobile_blocks import SqueezeExcite
from kdet.layers.mobile_blocks import TuckerConv
from kdet.layers.mobile_blocks import make_divisible
from kdet.layers.mobile_blocks import sequential_body


def _inputs(shape=(2, 8, 8, 16), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _zero_project(block):
    for weight in block.project.conv.weights:
        weight.assign(np.zeros(weight.shape))


def test_make_divisible_is_slims_rounding():
    assert make_divisible(16 * 0.25, 8, 16) == 16  # min_depth floor
    assert make_divisible(72 * 0.5) == 40  # 36 rounds up to a multiple of 8
    assert make_divisible(184 / 80 * 80) == 184
    assert make_divisible(10) == 16  # 8 would be below 90% of 10
    assert make_divisible(3) == 8


def test_inverted_bottleneck_layout_shapes_and_residual():
    block = InvertedBottleneck(16, 64, kernel_size=5, squeeze_excite_filters=16, name="b")
    inputs = _inputs()
    outputs = block(inputs)
    assert tuple(outputs.shape) == (2, 8, 8, 16)
    assert [role for role, _ in block.units] == ["expand", "depthwise", "squeeze_excite",
                                                "project"]
    assert block.depthwise.conv.kernel.shape == (5, 5, 64, 1)
    # The projection's batch norm has beta 0 and moving statistics (0, 1): a zero projection
    # kernel leaves only the residual.
    _zero_project(block)
    np.testing.assert_allclose(block(inputs), inputs, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"residual": False}, {"strides": 2}, {"filters": 24}])
def test_inverted_bottleneck_adds_no_residual(kwargs):
    block = InvertedBottleneck(**{"filters": 16, "expansion_filters": 32, **kwargs})
    inputs = _inputs()
    block(inputs)
    _zero_project(block)
    np.testing.assert_allclose(block(inputs), 0.0, atol=1e-6)


def test_fused_and_unexpanded_blocks():
    fused = InvertedBottleneck(24, 64, kernel_size=3, strides=2, fused=True,
                               return_expansion=True)
    outputs, expansion = fused(_inputs())
    assert [role for role, _ in fused.units] == ["expand", "project"]
    assert fused.expand.conv.kernel.shape == (3, 3, 16, 64)
    assert tuple(outputs.shape) == (2, 4, 4, 24) and tuple(expansion.shape) == (2, 4, 4, 64)
    plain = InvertedBottleneck(8, None, activation="hard_swish")
    assert [role for role, _ in plain.units] == ["depthwise", "project"]
    assert tuple(plain(_inputs()).shape) == (2, 8, 8, 8)


def test_squeeze_excite_gates_channels():
    block = SqueezeExcite(8, activation="relu", gating="hard_sigmoid")
    inputs = _inputs()
    outputs = block(inputs)
    pooled = inputs.mean(axis=(1, 2))
    squeeze_kernel, squeeze_bias = (w.numpy() for w in block.squeeze.conv.weights)
    excite_kernel, excite_bias = (w.numpy() for w in block.excite.conv.weights)
    hidden = np.maximum(pooled @ squeeze_kernel[0, 0] + squeeze_bias, 0)
    gate = np.clip((hidden @ excite_kernel[0, 0] + excite_bias) / 6 + 0.5, 0, 1)
    np.testing.assert_allclose(outputs, inputs * gate[:, None, None, :], atol=1e-5)


def test_tucker_conv_ranks_and_residual():
    block = TuckerConv(16, input_rank=8, output_rank=8)
    inputs = _inputs()
    assert tuple(block(inputs).shape) == (2, 8, 8, 16)
    assert block.conv.conv.kernel.shape == (3, 3, 8, 8)
    _zero_project(block)
    np.testing.assert_allclose(block(inputs), inputs, atol=1e-6)


def test_conv_batch_norm_hyperparams_and_activation():
    hyperparams = ConvHyperparams(
        kernel_regularizer=keras.regularizers.L2(1e-4),
        batch_norm={"momentum": 0.99, "epsilon": 0.01, "scale": True},
    )
    layer = ConvBatchNorm(8, 3, strides=2, activation="relu6", hyperparams=hyperparams)
    outputs = layer(_inputs() * 100)
    assert tuple(outputs.shape) == (2, 4, 4, 8)
    assert float(np.max(outputs)) <= 6.0
    assert layer.batch_norm.epsilon == 0.01 and not layer.conv.use_bias
    assert layer.losses  # the kernel regularizer
    depthwise = ConvBatchNorm(None, 3, activation=None, batch_norm=False)
    depthwise(_inputs())
    assert depthwise.conv.use_bias and depthwise.batch_norm is None


@pytest.mark.parametrize("block", [
    ConvBatchNorm(8, 3, activation="hard_swish"),
    SqueezeExcite(8, gating="sigmoid"),
    InvertedBottleneck(16, 48, squeeze_excite_filters=16, residual=False),
    TuckerConv(16, 8, 12, kernel_size=5),
])
def test_blocks_round_trip_their_config(block):
    inputs = _inputs()
    expected = block(inputs)
    copy = type(block).from_config(block.get_config())
    copy(inputs)
    copy.set_weights(block.get_weights())
    assert copy.get_config() == block.get_config()
    np.testing.assert_allclose(copy(inputs), expected, atol=1e-6)


def test_sequential_body_endpoints():
    body = sequential_body(
        [ConvBatchNorm(16, 3, 2), InvertedBottleneck(24, 64, strides=2, return_expansion=True),
         InvertedBottleneck(24, 96)],
        [(1, "expansion"), (2, "output")], "body",
    )
    expansion, output = body(np.zeros((1, 32, 32, 3), "float32"))
    assert tuple(expansion.shape) == (1, 16, 16, 64) and tuple(output.shape) == (1, 8, 8, 24)
    with pytest.raises(ValueError, match="no endpoints"):
        sequential_body([ConvBatchNorm(16, 3)], [(0, "expansion")], "body")
