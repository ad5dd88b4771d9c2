"""The stacked Hourglass network of CenterNet, as small Keras layers.

Layout and attribute names follow the TF OD API's `models/keras_models/hourglass_network.py`
(`downsample_input`, `hourglass_network`, `output_conv`, `intermediate_*`; inside the blocks
`conv_block`, `conv`, `norm`, `skip`, `encoder_block1`, `encoder_block2`, `inner_block`,
`decoder_block`), so its TF2 checkpoints map onto these layers by path.

Reference: [Newell et al., 2016](https://arxiv.org/abs/1603.06937);
[Objects as Points](https://arxiv.org/abs/1904.07850) (Hourglass-104).
"""

import keras

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# The TF OD API's hourglass batch norms (PyTorch's CornerNet defaults written as Keras
# arguments: the moving statistics keep 10% of their value at each step).
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.1


def hourglass_batch_norm(name="batchnorm"):
    """The batch norm of every hourglass convolution."""
    return FusedBatchNormalization(
        epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=name
    )


class ConvBlock(keras.layers.Layer):
    """Convolution without bias → batch norm → optional ReLU, explicitly zero-padded.

    A kernel of size k > 1 is padded by k // 2 on every side and convolved "valid" (TF "same"
    padding would pad only bottom/right on stride 2 and shift the maps by a pixel).

    Args:
        filters: int, output channels.
        kernel_size: int, odd.
        strides: int. Defaults to `1`.
        relu: bool, apply a ReLU last. Defaults to `True`.

    Call args:
        inputs: `[batch, height, width, channels]`.

    Returns:
        `[batch, ceil(height / strides), ceil(width / strides), filters]`.
    """

    def __init__(self, filters, kernel_size, strides=1, relu=True, **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        self.pad = keras.layers.ZeroPadding2D(kernel_size // 2) if kernel_size > 1 else None
        # A strided 1x1 convolution reads every `strides`-th pixel: take them, then convolve
        # with stride 1 (same weights and outputs). TF 2.21's oneDNN filter gradient of a
        # strided 1x1 convolution corrupts memory with few channels (4 → 8 or 8 → 16 at
        # 16×16, measured here; 16 → 32 and wider run), which tiny hourglasses have.
        self.subsample = strides if kernel_size == 1 else 1
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides // self.subsample,
            padding="valid",
            use_bias=False,
            name="conv",
        )
        self.norm = hourglass_batch_norm()
        self.relu = keras.layers.ReLU() if relu else None

    @property
    def filters(self):
        return self.conv.filters

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.norm.build(with_channels(input_shape, self.filters))

    def call(self, inputs, training=None):
        net = self.pad(inputs) if self.pad is not None else inputs
        if self.subsample > 1:
            net = net[:, :: self.subsample, :: self.subsample, :]
        net = self.norm(self.conv(net), training=training)
        return self.relu(net) if self.relu is not None else net


class ResidualBlock(keras.layers.Layer):
    """Two 3x3 convolutions with batch norm and a shortcut, then a ReLU.

    The shortcut is the identity when the input already has the output's shape, else a 1x1
    convolution (stride `strides`) with batch norm: the TF OD API's `skip_conv` rule for
    every block its hourglasses build.

    Args:
        filters: int, output channels.
        strides: int, stride of the first convolution and of the shortcut. Defaults to `1`.

    Call args:
        inputs: `[batch, height, width, channels]`.

    Returns:
        `[batch, ceil(height / strides), ceil(width / strides), filters]`.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.conv_block = ConvBlock(filters, 3, strides=strides)
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")
        self.norm = hourglass_batch_norm()
        self.skip = None
        self.relu = keras.layers.ReLU()

    def build(self, input_shape):
        self.conv_block.build(input_shape)
        output_shape = with_channels(input_shape, self.filters)
        self.conv.build(output_shape)
        self.norm.build(output_shape)
        if self.strides > 1 or input_shape[-1] != self.filters:
            self.skip = ConvBlock(self.filters, 1, strides=self.strides, relu=False)
            self.skip.build(input_shape)

    def call(self, inputs, training=None):
        net = self.conv_block(inputs, training=training)
        net = self.norm(self.conv(net), training=training)
        shortcut = self.skip(inputs, training=training) if self.skip is not None else inputs
        return self.relu(net + shortcut)


def residual_blocks(num_blocks, filters, residual_filters=None, strides=1):
    """`num_blocks` `ResidualBlock`s applied in sequence: the first has stride `strides`, all
    but the last `residual_filters` channels (default `filters`), the last `filters`."""
    residual_filters = residual_filters or filters
    return [
        ResidualBlock(
            filters if index == num_blocks - 1 else residual_filters,
            strides=strides if index == 0 else 1,
        )
        for index in range(num_blocks)
    ]


def with_channels(shape, channels):
    """`shape` (`[batch, height, width, channels]`) with another number of channels."""
    return tuple(shape[:-1]) + (channels,)


def build_blocks(blocks, input_shape):
    """Builds the layers `blocks` (each with `filters` output channels) applied in sequence
    to `input_shape`, without running them (explicit builds: Keras would otherwise trace each
    nested layer symbolically, ~5× slower for Hourglass-104); returns the output shape (its
    spatial dimensions those of `input_shape`: only channels matter to the weights)."""
    for block in blocks:
        block.build(input_shape)
        input_shape = with_channels(input_shape, block.filters)
    return input_shape


def apply_blocks(blocks, inputs, training=None):
    """`inputs` through the layers `blocks` in order."""
    for block in blocks:
        inputs = block(inputs, training=training)
    return inputs


class InputDownsampleBlock(keras.layers.Layer):
    """Images to stride 4: a 7x7 stride-2 `ConvBlock` then a stride-2 `ResidualBlock`.

    Args:
        conv_filters: int, channels of the convolution.
        filters: int, output channels.

    Call args:
        inputs: `[batch, height, width, channels]`.

    Returns:
        `[batch, ceil(height / 4), ceil(width / 4), filters]`.
    """

    def __init__(self, conv_filters, filters, **kwargs):
        super().__init__(**kwargs)
        self.conv_block = ConvBlock(conv_filters, 7, strides=2)
        self.residual_block = ResidualBlock(filters, strides=2)

    @property
    def filters(self):
        return self.residual_block.filters

    def build(self, input_shape):
        build_blocks([self.conv_block, self.residual_block], input_shape)

    def call(self, inputs, training=None):
        return self.residual_block(self.conv_block(inputs, training=training), training=training)


class HourglassModule(keras.layers.Layer):
    """One hourglass, built recursively: each stage halves the resolution, the stages inside
    it run there, and the result comes back up and adds onto a full-resolution branch.

    ```
    inputs ─ encoder_block1 ──────────────────────────────────────────────── + → outputs
       └──── encoder_block2 (stride 2) → inner_block → decoder_block → ×2 up ┘
    ```
    `inner_block` is the next stage (`HourglassModule(channel_dims[1:], blocks_per_stage[1:])`)
    or, at the innermost stage, `blocks_per_stage[1]` residual blocks.

    Args:
        channel_dims: list of ints, the channels of each stage, outermost first;
            `len(channel_dims) - 1` stages. The input has `channel_dims[0]` channels.
        blocks_per_stage: list of ints of the same length, residual blocks per stage
            (encoder branches and decoder alike; the last entry is the innermost block's).

    Call args:
        inputs: `[batch, height, width, channel_dims[0]]`, height and width multiples of
            `2 ** (len(channel_dims) - 1)`.

    Returns:
        `[batch, height, width, channel_dims[0]]`.
    """

    def __init__(self, channel_dims, blocks_per_stage, **kwargs):
        super().__init__(**kwargs)
        if len(channel_dims) < 2 or len(channel_dims) != len(blocks_per_stage):
            raise ValueError(
                "channel_dims and blocks_per_stage must have the same length, at least 2; got "
                f"{list(channel_dims)} and {list(blocks_per_stage)}"
            )
        channels, inner_channels = channel_dims[0], channel_dims[1]
        num_blocks = blocks_per_stage[0]
        self.merge_features = keras.layers.Add()
        self.encoder_block1 = residual_blocks(num_blocks, channels)
        self.encoder_block2 = residual_blocks(num_blocks, inner_channels, strides=2)
        if len(channel_dims) > 2:
            self.inner_block = [HourglassModule(channel_dims[1:], blocks_per_stage[1:])]
        else:
            self.inner_block = residual_blocks(blocks_per_stage[1], inner_channels)
        self.decoder_block = residual_blocks(
            num_blocks, channels, residual_filters=inner_channels
        )
        self.upsample = keras.layers.UpSampling2D(2)

    @property
    def filters(self):
        return self.decoder_block[-1].filters

    def build(self, input_shape):
        build_blocks(self.encoder_block1, input_shape)
        inner_shape = build_blocks(self.encoder_block2, input_shape)
        build_blocks(self.decoder_block, build_blocks(self.inner_block, inner_shape))

    def call(self, inputs, training=None):
        full_resolution = apply_blocks(self.encoder_block1, inputs, training)
        inner = apply_blocks(self.encoder_block2, inputs, training)
        inner = apply_blocks(self.inner_block, inner, training)
        inner = apply_blocks(self.decoder_block, inner, training)
        return self.merge_features([full_resolution, self.upsample(inner)])


class HourglassNetwork(keras.layers.Layer):
    """Stacked hourglasses with intermediate supervision: one stride-4 map per hourglass.

    An `InputDownsampleBlock` brings images to stride 4 and `channel_dims[0]` channels; each hourglass is followed by a
    3x3 `ConvBlock` whose output is one of the returned maps; between two hourglasses, 1x1
    projections of the previous input and of that output are added, ReLU'd and go through a
    `ResidualBlock` into the next hourglass.

    Args:
        input_channel_dims: int, channels of the first convolution.
        channel_dims: list of ints, channels of the hourglass stages (see `HourglassModule`).
        blocks_per_stage: list of ints, residual blocks per stage.
        num_hourglasses: int, hourglasses stacked. Defaults to `1`.

    Call args:
        inputs: `[batch, height, width, 3]`, height and width multiples of
            `4 * 2 ** (len(channel_dims) - 1)`.

    Returns:
        list of `num_hourglasses` tensors `[batch, height / 4, width / 4, channel_dims[0]]`.
    """

    def __init__(
        self, input_channel_dims, channel_dims, blocks_per_stage, num_hourglasses=1, **kwargs
    ):
        super().__init__(**kwargs)
        if num_hourglasses < 1:
            raise ValueError(f"num_hourglasses must be at least 1; got {num_hourglasses}")
        channels = channel_dims[0]
        self.downsample_input = InputDownsampleBlock(input_channel_dims, channels)
        self.hourglass_network = [
            HourglassModule(channel_dims, blocks_per_stage) for _ in range(num_hourglasses)
        ]
        self.output_conv = [ConvBlock(channels, 3) for _ in range(num_hourglasses)]
        self.intermediate_conv1 = [
            ConvBlock(channels, 1, relu=False) for _ in range(num_hourglasses - 1)
        ]
        self.intermediate_conv2 = [
            ConvBlock(channels, 1, relu=False) for _ in range(num_hourglasses - 1)
        ]
        self.intermediate_residual = [ResidualBlock(channels) for _ in range(num_hourglasses - 1)]
        self.intermediate_relu = keras.layers.ReLU()

    def build(self, input_shape):
        shape = build_blocks([self.downsample_input], input_shape)
        for hourglass, output_conv in zip(self.hourglass_network, self.output_conv):
            build_blocks([hourglass, output_conv], shape)
        for layers in zip(
            self.intermediate_conv1, self.intermediate_conv2, self.intermediate_residual
        ):
            for layer in layers:
                layer.build(shape)

    def call(self, inputs, training=None):
        net = self.downsample_input(inputs, training=training)
        outputs = []
        for index, hourglass in enumerate(self.hourglass_network):
            output = self.output_conv[index](hourglass(net, training=training), training=training)
            outputs.append(output)
            if index < len(self.intermediate_residual):
                merged = self.intermediate_conv1[index](net, training=training) + (
                    self.intermediate_conv2[index](output, training=training)
                )
                net = self.intermediate_residual[index](
                    self.intermediate_relu(merged), training=training
                )
        return outputs
