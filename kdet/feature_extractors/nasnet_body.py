"""NASNet-A in the TF-Slim layout, its cells built from one description each.

slim's `nets/nasnet/nasnet.py` builds NASNet-A from two cells, a normal cell and a reduction
cell (`nasnet_utils.NasNetANormalCell`, `NasNetAReductionCell`). Every cell starts from two
hidden states — the current input `h` (ReLU, 1x1 convolution, batch norm: `1x1`,
`beginning_bn`) and the previous cell's output `p`, brought to `h`'s resolution and depth
(ReLU, then a factorized reduction when it is twice as large, else a `prev_1x1` convolution
when its depth differs) — then runs 5 "combinations": two operations on two hidden states,
summed, each sum a new hidden state; the states no combination used are concatenated. Here a
cell is a `Cell` (slim's operations / hidden-state indices / used states tables) and
`nasnet_cell` builds any of them; no cell is written out twice.

Layer names carry the slim scopes, `/` written `_`: `cell_3/comb_iter_0/left/separable_5x5_1`
is the layer `cell_3_comb_iter_0_left_separable_5x5_1`, its batch norm
`cell_3_comb_iter_0_left_bn_sep_5x5_1`; each cell's output concatenation is named after the
cell's endpoint (`Cell_3`, `Reduction_Cell_0`, stem cells `Cell_Stem_0`).

Differences from slim, on purpose: the stride of `p` relative to `h` is tracked while the
network is built, not read from static shapes, so inputs of unknown size work (slim needs
fully known shapes); drop path (slim's `drop_path_keep_prob`, a training-only stochastic
regularizer) is not applied — inference is unchanged.
"""

import dataclasses

import keras

# slim `nasnet_large_arg_scope`: batch norm decay 0.9997, epsilon 1e-3, with scale.
BATCH_NORM = {"momentum": 0.9997, "epsilon": 1e-3}
# slim's variance_scaling_initializer(mode="FAN_OUT"): factor 2, truncated normal.
KERNEL_INITIALIZER = {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}


@dataclasses.dataclass(frozen=True)
class Cell:
    """A NASNet cell in slim's terms.

    Attributes:
        operations: 10 operation names, the left and right operations of the 5 combinations
            (`"separable_5x5_2"`: 2 stacked ReLU-separable conv-batch norm, `"avg_pool_3x3"`,
            `"max_pool_3x3"`, `"none"`).
        hiddenstate_indices: 10 ints, the hidden state each operation reads (0 `h`, 1 `p`,
            2.. the combinations' sums).
        used_hiddenstates: 7 ints, 1 for the hidden states left out of the output concat.
    """

    operations: tuple
    hiddenstate_indices: tuple
    used_hiddenstates: tuple


NORMAL_CELL = Cell(
    operations=(
        "separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2",
        "avg_pool_3x3", "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none",
    ),
    hiddenstate_indices=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
    used_hiddenstates=(1, 0, 0, 0, 0, 0, 0),
)
REDUCTION_CELL = Cell(
    operations=(
        "separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2",
        "avg_pool_3x3", "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2",
        "max_pool_3x3",
    ),
    hiddenstate_indices=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
    used_hiddenstates=(1, 1, 1, 0, 0, 0, 0),
)


class NASNetLayers:
    """Makes the body's layers with slim's NASNet-A Large settings.

    Args:
        kernel_regularizer: `keras.regularizers.Regularizer` or `None`, on every kernel
            (depthwise ones too, as slim's arg scope sets `weights_regularizer` on
            `separable_conv2d`).
    """

    def __init__(self, kernel_regularizer=None):
        self.kernel_regularizer = kernel_regularizer

    def _initializer(self):
        return keras.initializers.VarianceScaling(**KERNEL_INITIALIZER)

    def conv(self, filters, kernel_size, name, strides=1, padding="same"):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding, use_bias=False,
            kernel_initializer=self._initializer(),
            kernel_regularizer=self.kernel_regularizer, name=name,
        )

    def separable(self, filters, kernel_size, strides, name):
        return keras.layers.SeparableConv2D(
            filters, kernel_size, strides=strides, padding="same", use_bias=False,
            depthwise_initializer=self._initializer(),
            pointwise_initializer=self._initializer(),
            depthwise_regularizer=self.kernel_regularizer,
            pointwise_regularizer=self.kernel_regularizer, name=name,
        )

    def batch_norm(self, name):
        return keras.layers.BatchNormalization(**BATCH_NORM, name=name)


def _relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def factorized_reduction(x, filters, layers, scope):
    """slim's `factorized_reduction` at stride 2: half the filters from the even pixels, half
    from the odd ones (input shifted by one), concatenated and batch-normalized.
    `[b, h, w, c]` → `[b, ceil(h/2), ceil(w/2), filters]`."""
    path1 = keras.layers.AveragePooling2D(1, 2, name=f"{scope}_path1_pool")(x)
    path1 = layers.conv(filters // 2, 1, f"{scope}_path1_conv")(path1)
    shifted = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{scope}_path2_pad")(x)
    shifted = keras.layers.Cropping2D(((1, 0), (1, 0)), name=f"{scope}_path2_shift")(shifted)
    path2 = keras.layers.AveragePooling2D(1, 2, name=f"{scope}_path2_pool")(shifted)
    path2 = layers.conv(filters // 2 + filters % 2, 1, f"{scope}_path2_conv")(path2)
    merged = keras.layers.Concatenate(name=f"{scope}_path_concat")([path1, path2])
    return layers.batch_norm(f"{scope}_final_path_bn")(merged)


def _operation(x, operation, filters, strides, layers, scope):
    """One combination operation of slim's `_apply_conv_operation` on `x`."""
    if operation.startswith("separable"):
        _, shape, num_layers = operation.split("_")  # e.g. "separable", "5x5", "2"
        kernel_size = int(shape.split("x")[0])
        for index in range(1, int(num_layers) + 1):
            x = _relu(x, f"{scope}_relu_{index}")
            x = layers.separable(
                filters, kernel_size, strides, f"{scope}_separable_{shape}_{index}"
            )(x)
            x = layers.batch_norm(f"{scope}_bn_sep_{shape}_{index}")(x)
            strides = 1
        return x
    input_filters = x.shape[-1]
    if operation == "none":
        if strides > 1 or input_filters != filters:
            x = _relu(x, f"{scope}_relu")
            x = layers.conv(filters, 1, f"{scope}_1x1", strides=strides)(x)
            x = layers.batch_norm(f"{scope}_bn_1")(x)
        return x
    pooling = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}
    x = pooling[operation.split("_")[0]](3, strides, padding="same", name=f"{scope}_pool")(x)
    if input_filters != filters:
        x = layers.conv(filters, 1, f"{scope}_1x1")(x)
        x = layers.batch_norm(f"{scope}_bn_1")(x)
    return x


def nasnet_cell(x, prev, cell, filters, strides, prev_is_larger, layers, scope, endpoint):
    """One NASNet cell (`NasNetABaseCell.__call__`).

    Args:
        x: `[b, h, w, c]`, the cell input (the last cell's output).
        prev: `[b, h', w', c']` or `None`, the previous cell's output; `None` (the first stem
            cell) uses `x` as it is.
        cell: a `Cell`.
        filters: int, the cell's filter size (`num_conv_filters * filter_scaling`).
        strides: 1 (normal cell) or 2 (reduction cell).
        prev_is_larger: bool, `prev` has twice `x`'s resolution (factorized reduction).
        layers: `NASNetLayers`.
        scope: slim scope, e.g. `"cell_3"`.
        endpoint: the name of the output concatenation, e.g. `"Cell_3"`.

    Returns:
        `[b, h / strides, w / strides, filters * number of unused hidden states]`.
    """
    if prev is None:
        prev = x
    elif prev_is_larger:
        prev = factorized_reduction(
            _relu(prev, f"{scope}_prev_relu"), filters, layers, scope
        )
    elif prev.shape[-1] != filters:
        prev = _relu(prev, f"{scope}_prev_relu")
        prev = layers.conv(filters, 1, f"{scope}_prev_1x1")(prev)
        prev = layers.batch_norm(f"{scope}_prev_bn")(prev)
    h = _relu(x, f"{scope}_relu")
    h = layers.conv(filters, 1, f"{scope}_1x1")(h)
    h = layers.batch_norm(f"{scope}_beginning_bn")(h)
    states = [h, prev]
    for iteration in range(5):
        summands = []
        for side, position in (("left", 2 * iteration), ("right", 2 * iteration + 1)):
            index = cell.hiddenstate_indices[position]
            summands.append(_operation(
                states[index], cell.operations[position], filters,
                strides if index < 2 else 1, layers,
                f"{scope}_comb_iter_{iteration}_{side}",
            ))
        states.append(keras.layers.Add(name=f"{scope}_comb_iter_{iteration}_combine")(summands))
    unused = [state for state, used in zip(states, cell.used_hiddenstates) if not used]
    return keras.layers.Concatenate(name=endpoint)(unused)


def reduction_indices(num_cells, num_reduction_layers=2):
    """slim's `calc_reduction_layers`: the cell numbers a reduction cell precedes."""
    return [int(num / (num_reduction_layers + 1) * num_cells)
            for num in range(1, num_reduction_layers + 1)]


def nasnet_cells(x, prev, cell_numbers, num_cells, num_conv_filters, filter_scaling,
                 prev_is_larger, layers, filter_scaling_rate=2.0):
    """The cells `cell_numbers` of slim's `_build_nasnet_base`, with
    `skip_reduction_layer_input` (NASNet-A Large's): the cell after a reduction cell reads the
    output of the cell before the reduction's input as its previous state.

    Args:
        x, prev: the outputs of the two cells before the first of `cell_numbers`.
        cell_numbers: a `range` of consecutive cell numbers.
        num_cells: int, slim's `num_cells` (normal cells of the whole network).
        num_conv_filters: int, slim's `num_conv_filters`.
        filter_scaling: float, the scaling before the first of `cell_numbers`.
        prev_is_larger: bool, `prev` has twice `x`'s resolution.
        layers: `NASNetLayers`.
        filter_scaling_rate: float. Defaults to `2.0`.

    Returns:
        `(second to last output, last output)`: the outputs of the last two cells.
    """
    reductions = reduction_indices(num_cells)
    for cell_num in cell_numbers:
        skip_prev, skip_is_larger = prev, prev_is_larger
        if cell_num in reductions:
            filter_scaling *= filter_scaling_rate
            number = reductions.index(cell_num)
            reduced = nasnet_cell(
                x, prev, REDUCTION_CELL, int(num_conv_filters * filter_scaling), 2,
                prev_is_larger, layers, f"reduction_cell_{number}", f"Reduction_Cell_{number}",
            )
            # The normal cell after it reads the output before `x` (at `x`'s resolution,
            # twice the reduction's), as slim's `cell_outputs[-2]` taken before the reduction.
            skip_prev, skip_is_larger = prev, True
            x, prev, prev_is_larger = reduced, x, True
        output = nasnet_cell(
            x, skip_prev, NORMAL_CELL, int(num_conv_filters * filter_scaling), 1,
            skip_is_larger, layers, f"cell_{cell_num}", f"Cell_{cell_num}",
        )
        x, prev, prev_is_larger = output, x, False
    return prev, x


def nasnet_stem(images, num_conv_filters, stem_multiplier, layers, filter_scaling_rate=2.0):
    """slim's `_imagenet_stem`: a VALID 3x3 stride-2 convolution (`conv0`, `conv0_bn`) and
    two stride-2 reduction cells (`cell_stem_0`, `cell_stem_1`) at filter scalings 1/4, 1/2.

    Returns:
        `(conv0 or cell_stem_0 output, cell_stem_1 output)`: the last two outputs, the first
        at twice the second's resolution; the second is at stride 8 (about: VALID conv0).
    """
    x = layers.conv(int(32 * stem_multiplier), 3, "conv0", strides=2, padding="valid")(images)
    x = layers.batch_norm("conv0_bn")(x)
    prev, prev_is_larger = None, False
    filter_scaling = 1.0 / filter_scaling_rate**2
    for number in range(2):
        output = nasnet_cell(
            x, prev, REDUCTION_CELL, int(num_conv_filters * filter_scaling), 2,
            prev_is_larger, layers, f"cell_stem_{number}", f"Cell_Stem_{number}",
        )
        x, prev, prev_is_larger = output, x, True
        filter_scaling *= filter_scaling_rate
    return prev, x


def check_num_cells(num_cells):
    """NASNet's Faster R-CNN split needs 2 or more normal cells in its second stack."""
    first, second = reduction_indices(num_cells)
    if second - first < 2:
        raise ValueError(
            "num_cells must put 2 or more normal cells between the two reduction cells "
            f"(e.g. 6, 12, 18); got {num_cells}."
        )
