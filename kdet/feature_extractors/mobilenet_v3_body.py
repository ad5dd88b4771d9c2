"""MobileNetV3 Large / Small and MobileNet EdgeTPU bodies in TF-Slim's layout, from tables.

`keras.applications.MobileNetV3Large/Small` cannot serve here: the TF OD API's SSD uses slim's
`V3_LARGE_DETECTION` / `V3_SMALL_DETECTION` (the last blocks at half depth), slim's
`min_depth` floor and its squeeze-excite placement and naming, none of which Keras's model has
(and Keras has no EdgeTPU variant). So the bodies are built here from one row per block (slim
`mobilenet_v3.py`'s conv defs), with the TF OD API's depth rules.

Block names are TF-Slim's scopes: `Conv`, `expanded_conv`, `expanded_conv_1`, …, `Conv_1`
(the `N`-th row is slim's endpoint `layer_N`).
"""

import collections

from kdet.layers.mobile_blocks import ConvBatchNorm
from kdet.layers.mobile_blocks import InvertedBottleneck
from kdet.layers.mobile_blocks import make_divisible
from kdet.layers.mobile_blocks import sequential_body

# One row of a MobileNetV3 table: `kind` "conv" (conv + batch norm + activation), "ibn"
# (`expanded_conv`) or "fused" (`expanded_conv` with a full-convolution expansion);
# `expansion` the factor of the input depth; `residual` False where slim sets
# `residual=False`.
Row = collections.namedtuple(
    "Row", "kind kernel_size strides expansion filters activation squeeze_excite residual",
    defaults=(None, None, "relu", False, True),
)


def _conv(kernel_size, strides, filters, activation):
    return Row("conv", kernel_size, strides, filters=filters, activation=activation)


def _ibn(expansion, filters, kernel_size, strides=1, activation="relu", squeeze_excite=False):
    return Row("ibn", kernel_size, strides, expansion, filters, activation, squeeze_excite)


# slim `mobilenet_v3.V3_LARGE`, its last three blocks and `Conv_1` at half depth
# (`V3_LARGE_DETECTION`, what the TF OD API's `ssd_mobilenet_v3_large` builds).
MOBILENET_V3_LARGE_DETECTION = (
    _conv(3, 2, 16, "hard_swish"),
    _ibn(1, 16, 3),
    _ibn(4, 24, 3, 2),
    _ibn(3, 24, 3),
    _ibn(3, 40, 5, 2, squeeze_excite=True),
    _ibn(3, 40, 5, squeeze_excite=True),
    _ibn(3, 40, 5, squeeze_excite=True),
    _ibn(6, 80, 3, 2, "hard_swish"),
    _ibn(2.5, 80, 3, 1, "hard_swish"),
    _ibn(184 / 80, 80, 3, 1, "hard_swish"),
    _ibn(184 / 80, 80, 3, 1, "hard_swish"),
    _ibn(6, 112, 3, 1, "hard_swish", True),
    _ibn(6, 112, 3, 1, "hard_swish", True),
    _ibn(6, 80, 5, 2, "hard_swish", True),
    _ibn(6, 80, 5, 1, "hard_swish", True),
    _ibn(6, 80, 5, 1, "hard_swish", True),
    _conv(1, 1, 480, "hard_swish"),
)
# slim `V3_SMALL_DETECTION`: `V3_SMALL` with its last three blocks and `Conv_1` at half depth.
MOBILENET_V3_SMALL_DETECTION = (
    _conv(3, 2, 16, "hard_swish"),
    _ibn(1, 16, 3, 2, squeeze_excite=True),
    _ibn(72 / 16, 24, 3, 2),
    _ibn(88 / 24, 24, 3),
    _ibn(4, 40, 5, 2, "hard_swish", True),
    _ibn(6, 40, 5, 1, "hard_swish", True),
    _ibn(6, 40, 5, 1, "hard_swish", True),
    _ibn(3, 48, 5, 1, "hard_swish", True),
    _ibn(3, 48, 5, 1, "hard_swish", True),
    _ibn(6, 48, 5, 2, "hard_swish", True),
    _ibn(6, 48, 5, 1, "hard_swish", True),
    _ibn(6, 48, 5, 1, "hard_swish", True),
    _conv(1, 1, 288, "hard_swish"),
)


def _fused(expansion, filters, strides=1):
    return Row("fused", 3, strides, expansion, filters)


# slim `mobilenet_v3.V3_EDGETPU` (ReLU throughout; the first blocks fused).
MOBILENET_EDGETPU = (
    _conv(3, 2, 32, "relu"),
    _fused(1, 16),
    _fused(8, 32, 2),
    _fused(4, 32),
    _fused(4, 32),
    _fused(4, 32),
    _fused(8, 48, 2),
    _fused(4, 48),
    _fused(4, 48),
    _fused(4, 48),
    _ibn(8, 96, 3, 2),
    _ibn(4, 96, 3),
    _ibn(4, 96, 3),
    _ibn(4, 96, 3),
    Row("ibn", 3, 1, 8, 96, residual=False),
    _ibn(4, 96, 3),
    _ibn(4, 96, 3),
    _ibn(4, 96, 3),
    _ibn(8, 160, 5, 2),
    _ibn(4, 160, 5),
    _ibn(4, 160, 5),
    _ibn(4, 160, 5),
    _ibn(8, 192, 3),
    _conv(1, 1, 1280, "relu"),
)


def mobilenet_v3_blocks(table, depth_multiplier=1.0, min_depth=8, hyperparams=None,
                        expansion_outputs=()):
    """The blocks of a MobileNetV3-style table, with TF-Slim's depths.

    Depth rules (slim `mobilenet.depth_multiplier`, `conv_blocks.expanded_conv`): each row's
    `filters` become `make_divisible(filters * depth_multiplier, 8, min_depth)`; a block's
    expansion `make_divisible(input depth * expansion, 8)`, left out unless it widens the
    input; its squeeze-excite `make_divisible(expanded depth / 4, 8)` channels (ReLU inside,
    hard sigmoid gating).

    Args:
        table: tuple of `Row`.
        depth_multiplier: float. Defaults to `1.0`.
        min_depth: int. Defaults to `8` (slim's default).
        hyperparams: a `kdet.layers.ConvHyperparams` or None. Defaults to `None`.
        expansion_outputs: row indices whose block also returns its expansion.

    Returns:
        list of Keras layers named `Conv`, `expanded_conv`, `expanded_conv_1`, …, `Conv_1`.
    """
    blocks = []
    depth = 3
    conv_count = block_count = 0
    for index, row in enumerate(table):
        filters = make_divisible(row.filters * depth_multiplier, 8, min_depth)
        if row.kind == "conv":
            name = "Conv" if conv_count == 0 else f"Conv_{conv_count}"
            conv_count += 1
            blocks.append(ConvBatchNorm(filters, row.kernel_size, row.strides, row.activation,
                                        hyperparams=hyperparams, name=name))
        else:
            name = "expanded_conv" if block_count == 0 else f"expanded_conv_{block_count}"
            block_count += 1
            expansion = make_divisible(depth * row.expansion, 8)
            expansion = expansion if expansion > depth else None
            blocks.append(InvertedBottleneck(
                filters, expansion, row.kernel_size, row.strides, row.activation,
                fused=row.kind == "fused",
                squeeze_excite_filters=(
                    make_divisible((expansion or depth) / 4, 8) if row.squeeze_excite else None
                ),
                squeeze_excite_activation="relu", squeeze_excite_gating="hard_sigmoid",
                residual=row.residual, return_expansion=index in expansion_outputs,
                hyperparams=hyperparams, name=name,
            ))
        depth = filters
    return blocks


def mobilenet_v3_body(table, endpoints, name, depth_multiplier=1.0, min_depth=8,
                      hyperparams=None):
    """A MobileNetV3-style body from `table` (see `mobilenet_v3_blocks`).

    Args:
        table: tuple of `Row`.
        endpoints: list of `(row index, "output" or "expansion")`, e.g. `[(13, "expansion"),
            (16, "output")]` for slim's `layer_14/expansion_output` and `layer_17`.
        name: str, the model name (the slim scope, e.g. `MobilenetV3`).
        depth_multiplier, min_depth, hyperparams: see `mobilenet_v3_blocks`.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` (in [-1, 1]) to the
        endpoints, e.g. at 320×320 for the large table `[batch, 20, 20, 672]` and
        `[batch, 10, 10, 480]`.
    """
    last = max(index for index, _ in endpoints)
    blocks = mobilenet_v3_blocks(
        table[: last + 1], depth_multiplier, min_depth, hyperparams,
        expansion_outputs=[index for index, kind in endpoints if kind == "expansion"],
    )
    return sequential_body(blocks, endpoints, name)
