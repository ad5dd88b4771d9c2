"""MobileDet CPU / DSP / EdgeTPU / GPU bodies (Xiong et al., 2021), from tables.

One row per block of the TF OD API's `ssd_mobiledet_feature_extractor.py` backbones, built with
the shared blocks of `kdet.layers.mobile_blocks`. Block names are the TF1 variable scopes: the
first convolution `Conv`, then `IBN`, `IBN_1`, …, `FusedConv`, `FusedConv_1`, …,
`TuckerConv`, …, `IBNNoExpansion` (each kind numbered on its own, in order).
"""

import collections

import keras

from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.mobile_blocks import ConvBatchNorm
from kdet.layers.mobile_blocks import InvertedBottleneck
from kdet.layers.mobile_blocks import TuckerConv
from kdet.layers.mobile_blocks import sequential_body

# One row of a MobileDet table. `kind`: "conv", "ibn", "ibn_no_expansion", "fused" or
# "tucker"; `expansion` the factor of the input depth ("ibn", "fused"); `ranks` the
# (input, output) rank ratios of "tucker"; `residual` False where the TF OD API adds no input
# (its `_inverted_bottleneck_no_expansion` never does); `endpoint` "C4" / "C5" for the
# feature maps.
Row = collections.namedtuple(
    "Row", "kind filters kernel_size strides expansion ranks residual endpoint",
    defaults=(3, 1, None, None, True, None),
)
# The scope of each kind of block (`tf.variable_scope(None, default_name=...)`).
SCOPES = {"conv": "Conv", "ibn": "IBN", "ibn_no_expansion": "IBNNoExpansion",
          "fused": "FusedConv", "tucker": "TuckerConv"}


def _ibn(filters, expansion, kernel_size=3, strides=1, residual=True, endpoint=None):
    return Row("ibn", filters, kernel_size, strides, expansion, None, residual, endpoint)


def _fused(filters, expansion, kernel_size=3, strides=1, residual=True, endpoint=None):
    return Row("fused", filters, kernel_size, strides, expansion, None, residual, endpoint)


def _tucker(filters, ranks, residual=True):
    return Row("tucker", filters, ranks=ranks, residual=residual)


MOBILEDET_CPU = (
    Row("conv", 16, 3, 2),
    Row("ibn_no_expansion", 8, residual=False),
    _ibn(16, 4, strides=2, residual=False),
    _ibn(32, 8, strides=2, residual=False),
    _ibn(32, 4),
    _ibn(32, 4),
    _ibn(32, 4),
    _ibn(72, 8, 5, 2, residual=False),
    _ibn(72, 8),
    _ibn(72, 4, 5),
    _ibn(72, 4),
    _ibn(72, 8, residual=False),
    _ibn(72, 8),
    _ibn(72, 8),
    _ibn(72, 8, endpoint="C4"),
    _ibn(104, 8, 5, 2, residual=False),
    _ibn(104, 4, 5),
    _ibn(104, 4, 5),
    _ibn(104, 4),
    _ibn(144, 8, residual=False, endpoint="C5"),
)
MOBILEDET_DSP = (
    Row("conv", 32, 3, 2),
    Row("ibn_no_expansion", 24, residual=False),
    _fused(32, 4, strides=2, residual=False),
    _fused(32, 4),
    _ibn(32, 4),
    _tucker(32, (0.25, 0.75)),
    _fused(64, 8, strides=2, residual=False),
    _ibn(64, 4),
    _fused(64, 4),
    _fused(64, 4),
    _fused(120, 8, strides=2, residual=False),
    _ibn(120, 4),
    _ibn(120, 8),
    _ibn(120, 8),
    _fused(144, 8, residual=False),
    _ibn(144, 8),
    _ibn(144, 8),
    _ibn(144, 8, endpoint="C4"),
    _ibn(160, 4, strides=2, residual=False),
    _ibn(160, 4),
    _fused(160, 4),
    _tucker(160, (0.75, 0.75)),
    _ibn(240, 8, residual=False, endpoint="C5"),
)
MOBILEDET_EDGETPU = (
    Row("conv", 32, 3, 2),
    _tucker(16, (0.25, 0.75), residual=False),
    _fused(16, 8, strides=2, residual=False),
    _fused(16, 4),
    _fused(16, 8),
    _fused(16, 4),
    _fused(40, 8, 5, 2, residual=False),
    _fused(40, 4),
    _fused(40, 4),
    _fused(40, 4),
    _ibn(72, 8, strides=2, residual=False),
    _ibn(72, 8),
    _fused(72, 4),
    _fused(72, 4),
    _ibn(96, 8, 5, residual=False),
    _ibn(96, 8, 5),
    _ibn(96, 8),
    _ibn(96, 8, endpoint="C4"),
    _ibn(120, 8, 5, 2, residual=False),
    _ibn(120, 8),
    _ibn(120, 4, 5),
    _ibn(120, 8),
    _ibn(384, 8, 5, residual=False, endpoint="C5"),
)
MOBILEDET_GPU = (
    Row("conv", 32, 3, 2),
    _tucker(16, (0.25, 0.25), residual=False),
    _fused(32, 8, strides=2, residual=False),
    _tucker(32, (0.25, 0.25)),
    _tucker(32, (0.25, 0.25)),
    _tucker(32, (0.25, 0.25)),
    _fused(64, 8, strides=2, residual=False),
    _fused(64, 8),
    _fused(64, 8),
    _fused(64, 4),
    _fused(128, 8, strides=2, residual=False),
    _fused(128, 4),
    _fused(128, 4),
    _fused(128, 4),
    _fused(128, 8, residual=False),
    _fused(128, 8),
    _fused(128, 8),
    _fused(128, 8, endpoint="C4"),
    _fused(128, 4, strides=2, residual=False),
    _fused(128, 4),
    _fused(128, 4),
    _fused(128, 4),
    _ibn(384, 8, residual=False, endpoint="C5"),
)
# Each body's activation: MobileDet-CPU uses h-swish ("swish6") and squeeze-excite in every
# inverted bottleneck, the others ReLU6 and no squeeze-excite.
ACTIVATIONS = {"cpu": "hard_swish", "dsp": "relu6", "edgetpu": "relu6", "gpu": "relu6"}
TABLES = {"cpu": MOBILEDET_CPU, "dsp": MOBILEDET_DSP, "edgetpu": MOBILEDET_EDGETPU,
          "gpu": MOBILEDET_GPU}
# The backbone's own hyperparams (the TF OD API ignores the config's for MobileDet): He normal
# kernels, L2 weight decay 4e-5 in TF-Slim's convention (half the squared norm), batch norm
# decay 0.99 and epsilon 0.01.
BODY_HYPERPARAMS = ConvHyperparams(
    kernel_initializer="he_normal",
    kernel_regularizer=keras.regularizers.L2(0.5 * 4e-5),
    regularize_depthwise=True,
    activation=None,
    batch_norm={"momentum": 0.99, "epsilon": 0.01, "center": True, "scale": True},
)


def scale_filters(filters, multiplier, base=8):
    """MobileDet's depth rule (`_scale_filters`): `filters * multiplier` rounded half up to a
    multiple of `base`, at least `base`."""
    return max(int(int(filters) * multiplier / base + 0.5) * base, base)


def mobiledet_blocks(variant, depth_multiplier=1.0, hyperparams=None):
    """The blocks of the MobileDet `variant` ("cpu", "dsp", "edgetpu" or "gpu").

    Depths: each row's filters scaled by `scale_filters`; expansions `input depth *
    expansion` (not rounded); squeeze-excite `scale_filters(expanded depth, 0.25)` channels
    with the block's activation inside and sigmoid gating; Tucker ranks
    `scale_filters(input depth, input ratio)` and `scale_filters(filters, output ratio)`.

    Returns:
        list of Keras layers named by their TF1 scopes.
    """
    if variant not in TABLES:
        raise ValueError(f"MobileDet variant must be one of {sorted(TABLES)}; got {variant!r}")
    activation = ACTIVATIONS[variant]
    squeeze_excite = variant == "cpu"
    hyperparams = hyperparams or BODY_HYPERPARAMS
    counts = collections.Counter()
    blocks = []
    depth = 3
    for row in TABLES[variant]:
        scope = SCOPES[row.kind]
        name = scope if counts[scope] == 0 else f"{scope}_{counts[scope]}"
        counts[scope] += 1
        filters = scale_filters(row.filters, depth_multiplier)
        common = {"hyperparams": hyperparams, "name": name}
        if row.kind == "conv":
            block = ConvBatchNorm(filters, row.kernel_size, row.strides, activation, **common)
        elif row.kind == "tucker":
            block = TuckerConv(
                filters, scale_filters(depth, row.ranks[0]), scale_filters(filters, row.ranks[1]),
                row.kernel_size, row.strides, activation, row.residual, **common,
            )
        else:
            expansion = None if row.kind == "ibn_no_expansion" else depth * row.expansion
            block = InvertedBottleneck(
                filters, expansion, row.kernel_size, row.strides, activation,
                fused=row.kind == "fused",
                squeeze_excite_filters=(
                    scale_filters(expansion or depth, 0.25) if squeeze_excite else None
                ),
                squeeze_excite_gating="sigmoid", residual=row.residual, **common,
            )
        blocks.append(block)
        depth = filters
    return blocks


def mobiledet_body(variant, name, depth_multiplier=1.0, hyperparams=None):
    """The MobileDet `variant` body (see `mobiledet_blocks`) up to its `C5` endpoint.

    Args:
        variant: "cpu", "dsp", "edgetpu" or "gpu".
        name: str, the model name (the TF1 scope, e.g. `MobileDetCPU`).
        depth_multiplier: float. Defaults to `1.0`.
        hyperparams: a `kdet.layers.ConvHyperparams`, or None for `BODY_HYPERPARAMS`.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` (in [-1, 1]) to `[C4, C5]`
        (strides 16 and 32; at 320×320 and depth multiplier 1 for "cpu" `[batch, 20, 20, 72]`
        and `[batch, 10, 10, 144]`).
    """
    blocks = mobiledet_blocks(variant, depth_multiplier, hyperparams)
    table = TABLES[variant]
    endpoints = [
        ([row.endpoint for row in table].index(level), "output") for level in ("C4", "C5")
    ]
    return sequential_body(blocks, endpoints, name)
