"""MnasFPN: the searched feature pyramid head of SSD MobileNetV2 MnasFPN, from one table.

A pyramid of levels 3..6 is refined by `MNASFPN_CELLS` identical cells. Each cell appends
blocks to its list of maps (the cell's 4 inputs first, then one map per block); a block
(`MnasFPNBlock`) resamples two earlier maps to its level and expansion depth
(`MnasFPNResample`: 1x1 convolution then nearest upsampling, or 3x3 max pooling then 1x1
convolution), adds them, applies ReLU6 and a separable k x k convolution to the pyramid depth
with batch norm. The cell outputs its last 4 maps, each plus the cell input of the same
level where their shapes agree.

Reference:
    [Chen et al., 2019](https://arxiv.org/abs/1912.01106); TF OD API
    `object_detection/models/ssd_mobilenet_v2_mnasfpn_feature_extractor.py`.
"""

import keras

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.mobile_blocks import ConvBatchNorm
from kdet.layers.mobile_blocks import make_divisible

# The pyramid levels of a cell's inputs and outputs, finest first.
FEATURE_LEVELS = (3, 4, 5, 6)

# One row per block of a cell: indices of its two inputs in the cell's list of maps (0..3 the
# cell inputs at FEATURE_LEVELS, 4.. the earlier blocks), its output level, its separable
# convolution's kernel size and its expansion depth (before the depth multiplier).
MNASFPN_CELL = (
    # inputs, output_level, kernel_size, expansion_size
    ((1, 2), 4, 3, 256),
    ((0, 4), 3, 3, 128),
    ((5, 4), 4, 3, 128),
    ((4, 3), 5, 5, 128),
    ((4, 3), 6, 3, 96),
)
MNASFPN_CELLS = 4

# The TF OD API's MnasFPN `training_scope(l2_weight_decay=1e-4)`: He-normal kernels, slim
# L2 weight 1e-4 (Keras L2 0.5e-4) on every kernel, batch norm decay 0.99, epsilon 0.01 with
# scale. (Its separable convolutions' depthwise kernels are drawn from TruncatedNormal(0.536),
# He-normal for 3x3: here He-normal too.)
MNASFPN_HYPERPARAMS = conv_hyperparams_lib.ConvHyperparams(
    kernel_initializer="he_normal",
    kernel_regularizer=keras.regularizers.L2(0.5 * 1e-4),
    regularize_depthwise=True,
    activation="relu6",
    batch_norm={"momentum": 0.99, "epsilon": 0.01, "center": True, "scale": True},
)


def _explicit_padding(kernel_size, name):
    """TF OD API `ops.fixed_padding` for an odd kernel: `kernel_size // 2` on every side."""
    return keras.layers.ZeroPadding2D(kernel_size // 2, name=name)


def _hyperparams_config(hyperparams):
    return keras.saving.serialize_keras_object(hyperparams)


@keras.saving.register_keras_serializable(package="kdet")
class MnasFPNResample(keras.layers.Layer):
    """A map of level `input_level` → level `output_level` with `filters` channels, in
    MnasFPN's size-dependent order: 1x1 convolution + batch norm (`Conv1x1`), then nearest
    upsampling by `2**(input_level - output_level)`; or, to a coarser level, 3x3 max pooling
    of stride `2**(output_level - input_level)` (`Downsample`), then the 1x1 convolution.

    Args:
        input_level: int.
        output_level: int.
        filters: int.
        use_explicit_padding: bool. Pad one pixel before the max pooling and pool "valid"
            (TF OD API `use_explicit_padding`); else "same". Defaults to `False`.
        hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the convolution, or
            `None` (`MNASFPN_HYPERPARAMS`). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Input `[batch, h, w, c]` → `[batch, h * 2**(input_level - output_level), ..., filters]`.
    """

    def __init__(self, input_level, output_level, filters, use_explicit_padding=False,
                 hyperparams=None, **kwargs):
        super().__init__(**kwargs)
        self.input_level = input_level
        self.output_level = output_level
        self.filters = filters
        self.use_explicit_padding = bool(use_explicit_padding)
        self.hyperparams = conv_hyperparams_lib.get(hyperparams) or MNASFPN_HYPERPARAMS
        self.pad = self.downsample = self.upsample = None
        if output_level > input_level:
            stride = 2 ** (output_level - input_level)
            if self.use_explicit_padding:
                self.pad = _explicit_padding(3, name="pad")
            self.downsample = keras.layers.MaxPooling2D(
                3, stride, padding="valid" if self.use_explicit_padding else "same",
                name="Downsample",
            )
        elif output_level < input_level:
            self.upsample = keras.layers.UpSampling2D(
                2 ** (input_level - output_level), name="upsample"
            )
        self.conv = ConvBatchNorm(
            filters, 1, activation=None, hyperparams=self.hyperparams, name="Conv1x1"
        )

    def call(self, inputs, training=None):
        outputs = inputs
        if self.pad is not None:
            outputs = self.pad(outputs)
        if self.downsample is not None:
            outputs = self.downsample(outputs)
        outputs = self.conv(outputs, training=training)
        if self.upsample is not None:
            outputs = self.upsample(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_level": self.input_level, "output_level": self.output_level,
            "filters": self.filters, "use_explicit_padding": self.use_explicit_padding,
            "hyperparams": _hyperparams_config(self.hyperparams),
        })
        return config


@keras.saving.register_keras_serializable(package="kdet")
class MnasFPNBlock(keras.layers.Layer):
    """One MnasFPN block: its inputs resampled to `output_level` and `expansion_size`
    channels (`input_0`, `input_1`, ...: `MnasFPNResample`), summed, ReLU6, then a separable
    `kernel_size` convolution to `filters` channels with batch norm (`SepConv`, linear).

    Args:
        input_levels: list of int, the level of each input.
        output_level: int.
        kernel_size: int (odd).
        expansion_size: int, channels of the resampled inputs.
        filters: int, channels of the output.
        use_explicit_padding: bool. Pad the separable convolution's input and convolve
            "valid" (and see `MnasFPNResample`). Defaults to `False`.
        hyperparams: a `kdet.layers.ConvHyperparams` (or its config): initializer,
            regularizer and batch norm of the convolutions.
        **kwargs: passed to `keras.layers.Layer`.

    Inputs: list of maps `[batch, h_i, w_i, c_i]` at `input_levels` → `[batch, h, w, filters]`
    at `output_level`.
    """

    def __init__(self, input_levels, output_level, kernel_size, expansion_size, filters,
                 use_explicit_padding=False, hyperparams=None, **kwargs):
        super().__init__(**kwargs)
        self.input_levels = list(input_levels)
        self.output_level = output_level
        self.kernel_size = kernel_size
        self.expansion_size = expansion_size
        self.filters = filters
        self.use_explicit_padding = bool(use_explicit_padding)
        self.hyperparams = conv_hyperparams_lib.get(hyperparams) or MNASFPN_HYPERPARAMS
        self.resamples = [
            MnasFPNResample(level, output_level, expansion_size, use_explicit_padding,
                            self.hyperparams, name=f"input_{index}")
            for index, level in enumerate(self.input_levels)
        ]
        self.relu6 = keras.layers.ReLU(max_value=6.0, name="relu6")
        self.pad = _explicit_padding(kernel_size, "pad") if self.use_explicit_padding else None
        self.separable_conv = keras.layers.SeparableConv2D(
            filters, kernel_size, padding="valid" if self.use_explicit_padding else "same",
            **self.hyperparams.separable_conv_kwargs(), name="SepConv",
        )
        self.batch_norm = self.hyperparams.batch_norm_layer(name="SepConv_BatchNorm")

    def call(self, inputs, training=None):
        resampled = [
            resample(feature, training=training)
            for resample, feature in zip(self.resamples, inputs, strict=True)
        ]
        outputs = resampled[0]
        for feature in resampled[1:]:
            outputs = outputs + feature  # pairwise adds, as the TF OD API (no AddN)
        outputs = self.relu6(outputs)
        if self.pad is not None:
            outputs = self.pad(outputs)
        outputs = self.separable_conv(outputs)
        if self.batch_norm is not None:
            outputs = self.batch_norm(outputs, training=training)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_levels": self.input_levels, "output_level": self.output_level,
            "kernel_size": self.kernel_size, "expansion_size": self.expansion_size,
            "filters": self.filters, "use_explicit_padding": self.use_explicit_padding,
            "hyperparams": _hyperparams_config(self.hyperparams),
        })
        return config


@keras.saving.register_keras_serializable(package="kdet")
class MnasFPN(keras.layers.Layer):
    """The MnasFPN head: body maps of levels 3, 4, 5 → pyramid maps of levels 3..6.

    Level 6 (`C6`) is the level-5 map max-pooled 3x3 with stride 2 (`C6_downsample`) and a
    linear 1x1 convolution with batch norm and no kernel regularizer (`C6_Conv1x1`), of
    `depth(additional_layer_depth)` channels. Then `num_cells` cells (`cell_0`, ...; blocks
    `cell_i_block_j`) of the rows of `cell` (see `MNASFPN_CELL`), where
    `depth(d) = make_divisible(d * depth_multiplier, 8, min_depth)` (TF-Slim MobileNet's
    depth multiplier) sets the expansion and output depths.

    Args:
        depth_multiplier: float. Defaults to `1.0`.
        min_depth: int. Defaults to `16`.
        additional_layer_depth: int, the pyramid depth before the multiplier. Defaults to
            `48`.
        use_explicit_padding: bool. See `MnasFPNBlock`. Defaults to `False`.
        hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the convolutions;
            `C6_Conv1x1` drops its regularizer. Defaults to `None` (`MNASFPN_HYPERPARAMS`).
        cell: list of rows `(inputs, output_level, kernel_size, expansion_size)`, each cell's
            blocks; its last 4 rows must be at levels 3..6. `None`: `MNASFPN_CELL`.
        num_cells: int. Defaults to `MNASFPN_CELLS` (4).
        **kwargs: passed to `keras.layers.Layer`.

    Inputs: `[C3, C4, C5]`, `[batch, h / 2**l, w / 2**l, c_l]` (h and w multiples of 64) →
    4 maps `[batch, h / 2**l, w / 2**l, depth(additional_layer_depth)]`, l = 3..6.
    """

    def __init__(self, depth_multiplier=1.0, min_depth=16, additional_layer_depth=48,
                 use_explicit_padding=False, hyperparams=None, cell=None,
                 num_cells=MNASFPN_CELLS, **kwargs):
        super().__init__(**kwargs)
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.additional_layer_depth = additional_layer_depth
        self.use_explicit_padding = bool(use_explicit_padding)
        self.hyperparams = conv_hyperparams_lib.get(hyperparams) or MNASFPN_HYPERPARAMS
        self.cell = [(list(inputs), *rest) for inputs, *rest in cell or MNASFPN_CELL]
        self.num_cells = num_cells
        _check_cell(self.cell)
        self.depth = self._scaled(additional_layer_depth)
        self.c6_pad = _explicit_padding(3, "C6_pad") if self.use_explicit_padding else None
        self.c6_downsample = keras.layers.MaxPooling2D(
            3, 2, padding="valid" if self.use_explicit_padding else "same", name="C6_downsample"
        )
        self.c6_conv = ConvBatchNorm(
            self.depth, 1, activation=None,
            hyperparams=self.hyperparams.replace(kernel_regularizer=None), name="C6_Conv1x1",
        )
        levels = list(FEATURE_LEVELS) + [row[1] for row in self.cell]
        self.blocks = [
            [
                MnasFPNBlock(
                    [levels[index] for index in inputs], output_level, kernel_size,
                    self._scaled(expansion_size), self.depth, use_explicit_padding,
                    self.hyperparams, name=f"cell_{cell_index}_block_{block_index}",
                )
                for block_index, (inputs, output_level, kernel_size, expansion_size)
                in enumerate(self.cell)
            ]
            for cell_index in range(num_cells)
        ]

    def _scaled(self, depth):
        return make_divisible(depth * self.depth_multiplier, 8, self.min_depth)

    def call(self, inputs, training=None):
        c3, c4, c5 = inputs
        c6 = self.c6_pad(c5) if self.c6_pad is not None else c5
        c6 = self.c6_conv(self.c6_downsample(c6), training=training)
        features = [c3, c4, c5, c6]
        _check_sizes(features)
        for cell_blocks in self.blocks:
            features = self._cell(cell_blocks, features, training)
        return features

    def _cell(self, cell_blocks, inputs, training):
        """One cell: its blocks on `inputs`, the last 4 maps plus the inputs of their shape."""
        maps = list(inputs)
        for block, (block_inputs, *_) in zip(cell_blocks, self.cell, strict=True):
            maps.append(block([maps[index] for index in block_inputs], training=training))
        outputs = maps[-len(inputs):]
        return [
            output + feature if tuple(output.shape[1:]) == tuple(feature.shape[1:]) else output
            for output, feature in zip(outputs, inputs, strict=True)
        ]

    def get_config(self):
        config = super().get_config()
        config.update({
            "depth_multiplier": self.depth_multiplier, "min_depth": self.min_depth,
            "additional_layer_depth": self.additional_layer_depth,
            "use_explicit_padding": self.use_explicit_padding,
            "hyperparams": _hyperparams_config(self.hyperparams),
            "cell": self.cell, "num_cells": self.num_cells,
        })
        return config


def _check_cell(cell):
    """The TF OD API's `_verify_config` on a cell's rows: ValueError if a block reads a map
    not made yet or the last 4 blocks are not at levels 3..6."""
    num_inputs = len(FEATURE_LEVELS)
    output_levels = tuple(row[1] for row in cell[-num_inputs:])
    if output_levels != FEATURE_LEVELS:
        raise ValueError(
            f"MnasFPN cell: its last {num_inputs} blocks must be at levels {FEATURE_LEVELS}, "
            f"got {output_levels}"
        )
    for index, (inputs, *_) in enumerate(cell):
        if any(not 0 <= source < index + num_inputs for source in inputs):
            raise ValueError(
                f"MnasFPN cell: block {index} reads {inputs}, but only maps "
                f"0..{index + num_inputs - 1} exist before it"
            )


def _check_sizes(features):
    """ValueError unless the (static) widths and heights of the level 3..6 maps halve level
    by level as the TF OD API requires (image sides multiples of 64)."""
    for axis in (1, 2):
        sizes = [feature.shape[axis] for feature in features]
        if None in sizes:
            continue
        expected = [sizes[0] * 8 // 2**level for level in FEATURE_LEVELS]
        if sizes != expected:
            raise ValueError(
                f"MnasFPN: the level 3..6 maps have sizes {sizes} along axis {axis}, expected "
                f"{expected}: image height and width must be multiples of 64 (set "
                "pad_to_multiple: 64 or resize the images so)"
            )
