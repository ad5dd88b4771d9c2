"""The Inception-ResNet-v2 body of the TF OD API's Faster R-CNN extractors, as Keras layers.

One builder for both of the TF OD API's layouts:
- TF2 (`faster_rcnn_inception_resnet_v2_keras`): `keras.applications.InceptionResNetV2` with
  the TF OD API's `_LayersOverride` (`models/keras_models/inception_resnet_v2.py`):
  `align_feature_maps=True` turns every "valid" convolution and pooling into "same";
- TF1 (`faster_rcnn_inception_resnet_v2`, `slim_layout=True`): TF-Slim's
  `inception_resnet_v2_base(align_feature_maps=True)` up to `PreAuxLogits` for the first stage,
  and the second stage the TF OD API's TF1 extractor writes out itself, whose `Mixed_7a`
  reduces the RoI crops with "VALID" 3x3 convolutions and pooling (17x17 crops → 8x8; the TF2
  layout gives 9x9).

Both have the same weights: convolutions without bias followed by a batch norm without scale
(momentum 0.9997, epsilon 1e-3, the slim arg scope's and `_LayersOverride`'s) and a ReLU, and
each residual block's 1x1 "up" convolution with a bias and neither. They are built here rather
than cloned from `keras.applications`, whose convolutions and batch norms carry session-counter
names (`conv2d_57`): here every layer is named after its TF-Slim scope (`Mixed_6a/Branch_1/
Conv2d_0b_3x3` → `mixed_6a_branch_1_conv2d_0b_3x3`, its batch norm `..._bn`, its ReLU
`..._relu`), residual blocks keep the Keras names (`block17_20_ac`), and the graph is
`keras.applications`' (the same branches concatenated in the same order), so the layers with
weights come in the order of the TF OD API's TF2 checkpoints (`layer_with_weights-N`).
"""

import keras

from kdet.layers.conv_hyperparams import ConvHyperparams

# The number of Inception-ResNet-A (block35), -B (block17) and -C (block8) residual blocks
# of Inception-ResNet-v2; the last block8 has no activation (slim's `Block8`).
BLOCK_REPEATS = (10, 20, 10)
# Residual scales of block35, block17 and block8 (slim `scale=0.17, 0.10, 0.20`; the last
# block8 is added unscaled).
BLOCK_SCALES = {"block35": 0.17, "block17": 0.10, "block8": 0.20}
# The strides of the proposal features the body can give (slim's `output_stride`).
OUTPUT_STRIDES = (8, 16)


def inception_resnet_v2_hyperparams():
    """The layer settings of the TF OD API's Inception-ResNet-v2 body: Glorot-uniform kernels
    (slim's and Keras's default), no regularizer (the TF OD API's Faster R-CNN builders pass
    weight decay 0), batch norms that center but do not scale (momentum 0.9997, epsilon 1e-3),
    ReLU.

    Returns:
        A `kdet.layers.ConvHyperparams`.
    """
    return ConvHyperparams(
        kernel_initializer="glorot_uniform",
        activation="relu",
        batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "scale": False, "center": True},
    )


def proposal_endpoint(block_repeats=BLOCK_REPEATS):
    """The layer whose output the RPN reads: the last block17 (`block17_20_ac`, slim's
    `PreAuxLogits`)."""
    return f"block17_{block_repeats[1]}_ac"


@keras.saving.register_keras_serializable(package="kdet")
class ScaledResidual(keras.layers.Layer):
    """`inputs + scale * residual`: the sum closing an Inception-ResNet block.

    Args:
        scale: float. The residual's scale. Defaults to `1.0`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: a list `[inputs, residual]` of two tensors of one shape.
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        shortcut, residual = inputs
        return shortcut + self.scale * residual

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def inception_resnet_v2_body(
    output_stride=16,
    slim_layout=False,
    depth_multiplier=1.0,
    min_depth=8,
    block_repeats=BLOCK_REPEATS,
    hyperparams=None,
):
    """The Inception-ResNet-v2 body of the TF OD API's Faster R-CNN, whole.

    Images `[batch, height, width, 3]` (scaled to -1..1) → `conv2d_7b_1x1_relu`,
    `[batch, ceil(height / 32), ceil(width / 32), 1536]` in the TF2 layout at stride 16. The
    proposal features are `proposal_endpoint()`'s output (`block17_20_ac`, 1088 channels at
    `output_stride`); a Faster R-CNN extractor cuts the body there (the TF OD API's two
    stages), so in the TF1 layout the model taken whole pads `Mixed_7a` "VALID" as its second
    stage does.

    With `output_stride=8` (the TF OD API's `..._atrous` configs) `Mixed_6a` does not stride
    and every convolution of the block17s is atrous (rate 2), as slim's `output_stride=8`. The
    TF OD API's TF2 extractor breaks there (its `_LayersOverride` also un-strides two layers
    of `Mixed_7a`, whose branches then cannot be concatenated); kdet's TF2 layout changes the
    first stage as slim does and keeps `Mixed_7a` as it is.

    Args:
        output_stride: int, 16 or 8. The stride of the proposal features. Defaults to `16`.
        slim_layout: bool. The TF1 (TF-Slim) second stage ("VALID" `Mixed_7a`) instead of the
            TF2 one ("same"). Defaults to `False`.
        depth_multiplier: float. Filters of every convolution `max(int(filters *
            depth_multiplier), min_depth)` (each residual block's up convolution keeps its
            input's depth). Not in the TF OD API, which has no width multiplier for this
            body: for tiny models in tests. Defaults to `1.0`.
        min_depth: int. The fewest filters of a convolution with `depth_multiplier`.
            Defaults to `8`.
        block_repeats: tuple of 3 ints, the numbers of block35, block17 and block8 (each ≥
            1). Not in the TF OD API (10, 20, 10): for tiny models in tests. Defaults to
            `(10, 20, 10)`.
        hyperparams: a `kdet.layers.ConvHyperparams`, or `None` for
            `inception_resnet_v2_hyperparams()`. Defaults to `None`.

    Returns:
        A functional `keras.Model` named `inception_resnet_v2`.

    Raises:
        ValueError: an `output_stride` other than 8 or 16, or bad `block_repeats`.

    Example:
    ```python
    body = inception_resnet_v2_body(depth_multiplier=0.25, block_repeats=(1, 1, 1))
    body(tf.zeros([1, 128, 128, 3])).shape  # (1, 4, 4, 384)
    ```

    Reference:
        [Szegedy et al., 2016](https://arxiv.org/abs/1602.07261); TF-Slim
        `nets/inception_resnet_v2.py`; TF OD API
        `object_detection/models/faster_rcnn_inception_resnet_v2_feature_extractor.py`.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 8 or 16; got {output_stride}")
    block_repeats = tuple(block_repeats)
    if len(block_repeats) != 3 or min(block_repeats) < 1:
        raise ValueError(
            "block_repeats must be 3 positive numbers of block35, block17 and block8; got "
            f"{block_repeats}"
        )
    builder = _Builder(
        hyperparams or inception_resnet_v2_hyperparams(), depth_multiplier, min_depth
    )
    atrous = output_stride == 8
    images = keras.Input((None, None, 3), name="images")
    x = _stem(builder, images)
    x = _mixed_5b(builder, x)
    for index in range(1, block_repeats[0] + 1):
        x = _residual_block(builder, x, "block35", index)
    x = _mixed_6a(builder, x, stride=1 if atrous else 2)
    for index in range(1, block_repeats[1] + 1):
        x = _residual_block(builder, x, "block17", index, rate=2 if atrous else 1)
    x = _mixed_7a(builder, x, reduction_padding="valid" if slim_layout else "same")
    for index in range(1, block_repeats[2] + 1):
        last = index == block_repeats[2]
        x = _residual_block(builder, x, "block8", index, last=last)
    x = builder.conv(x, 1536, 1, "conv2d_7b_1x1")
    return keras.Model(images, x, name="inception_resnet_v2")


class _Builder:
    """Makes the body's convolution units with one set of hyperparams and width."""

    def __init__(self, hyperparams, depth_multiplier, min_depth):
        self.hyperparams = hyperparams
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth

    def filters(self, filters):
        if self.depth_multiplier == 1.0:
            return filters
        return max(int(filters * self.depth_multiplier), self.min_depth)

    def conv(self, x, filters, kernel_size, name, strides=1, padding="same", rate=1):
        """Convolution, batch norm, ReLU (slim's `conv2d` in the Inception arg scope):
        layers `{name}`, `{name}_bn`, `{name}_relu`. A 1x1 convolution ignores `rate` (it
        computes the same without)."""
        if kernel_size == 1:
            rate = 1
        x = keras.layers.Conv2D(
            self.filters(filters),
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=rate,
            name=name,
            **self.hyperparams.conv_kwargs(),
        )(x)
        batch_norm = self.hyperparams.batch_norm_layer(name=f"{name}_bn")
        if batch_norm is not None:
            x = batch_norm(x)
        activation = self.hyperparams.activation_layer(name=f"{name}_relu")
        return activation(x) if activation is not None else x


def _stem(builder, x):
    """slim's `Conv2d_1a_3x3` … `MaxPool_5a_3x3`: stride 8, 192 channels; every padding
    "same" (`align_feature_maps`)."""
    x = builder.conv(x, 32, 3, "conv2d_1a_3x3", strides=2)
    x = builder.conv(x, 32, 3, "conv2d_2a_3x3")
    x = builder.conv(x, 64, 3, "conv2d_2b_3x3")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="maxpool_3a_3x3")(x)
    x = builder.conv(x, 80, 1, "conv2d_3b_1x1")
    x = builder.conv(x, 192, 3, "conv2d_4a_3x3")
    return keras.layers.MaxPooling2D(3, 2, padding="same", name="maxpool_5a_3x3")(x)


def _mixed_5b(builder, x):
    """slim's `Mixed_5b` (Inception-A): four branches concatenated, 320 channels."""
    branch_0 = builder.conv(x, 96, 1, "mixed_5b_branch_0_conv2d_1x1")
    branch_1 = builder.conv(x, 48, 1, "mixed_5b_branch_1_conv2d_0a_1x1")
    branch_1 = builder.conv(branch_1, 64, 5, "mixed_5b_branch_1_conv2d_0b_5x5")
    branch_2 = builder.conv(x, 64, 1, "mixed_5b_branch_2_conv2d_0a_1x1")
    branch_2 = builder.conv(branch_2, 96, 3, "mixed_5b_branch_2_conv2d_0b_3x3")
    branch_2 = builder.conv(branch_2, 96, 3, "mixed_5b_branch_2_conv2d_0c_3x3")
    branch_3 = keras.layers.AveragePooling2D(
        3, 1, padding="same", name="mixed_5b_branch_3_avgpool_0a_3x3"
    )(x)
    branch_3 = builder.conv(branch_3, 64, 1, "mixed_5b_branch_3_conv2d_0b_1x1")
    return keras.layers.Concatenate(name="mixed_5b")([branch_0, branch_1, branch_2, branch_3])


def _mixed_6a(builder, x, stride):
    """slim's `Mixed_6a` (Reduction-A, "same" padding): 1088 channels at stride 16, or at
    stride 8 with `stride=1` (atrous)."""
    branch_0 = builder.conv(x, 384, 3, "mixed_6a_branch_0_conv2d_1a_3x3", strides=stride)
    branch_1 = builder.conv(x, 256, 1, "mixed_6a_branch_1_conv2d_0a_1x1")
    branch_1 = builder.conv(branch_1, 256, 3, "mixed_6a_branch_1_conv2d_0b_3x3")
    branch_1 = builder.conv(
        branch_1, 384, 3, "mixed_6a_branch_1_conv2d_1a_3x3", strides=stride
    )
    branch_2 = keras.layers.MaxPooling2D(
        3, stride, padding="same", name="mixed_6a_branch_2_maxpool_1a_3x3"
    )(x)
    return keras.layers.Concatenate(name="mixed_6a")([branch_0, branch_1, branch_2])


def _mixed_7a(builder, x, reduction_padding):
    """slim's `Mixed_7a` (Reduction-B): stride 2, 2080 channels; its strided convolutions and
    pooling pad with `reduction_padding`."""
    branch_0 = builder.conv(x, 256, 1, "mixed_7a_branch_0_conv2d_0a_1x1")
    branch_0 = builder.conv(
        branch_0, 384, 3, "mixed_7a_branch_0_conv2d_1a_3x3", 2, reduction_padding
    )
    branch_1 = builder.conv(x, 256, 1, "mixed_7a_branch_1_conv2d_0a_1x1")
    branch_1 = builder.conv(
        branch_1, 288, 3, "mixed_7a_branch_1_conv2d_1a_3x3", 2, reduction_padding
    )
    branch_2 = builder.conv(x, 256, 1, "mixed_7a_branch_2_conv2d_0a_1x1")
    branch_2 = builder.conv(branch_2, 288, 3, "mixed_7a_branch_2_conv2d_0b_3x3")
    branch_2 = builder.conv(
        branch_2, 320, 3, "mixed_7a_branch_2_conv2d_1a_3x3", 2, reduction_padding
    )
    branch_3 = keras.layers.MaxPooling2D(
        3, 2, padding=reduction_padding, name="mixed_7a_branch_3_maxpool_1a_3x3"
    )(x)
    return keras.layers.Concatenate(name="mixed_7a")([branch_0, branch_1, branch_2, branch_3])


# Branches of each residual block type: (branch, [(filters, kernel size, slim name)]).
_BLOCK_BRANCHES = {
    "block35": (
        (0, ((32, 1, "conv2d_1x1"),)),
        (1, ((32, 1, "conv2d_0a_1x1"), (32, 3, "conv2d_0b_3x3"))),
        (2, ((32, 1, "conv2d_0a_1x1"), (48, 3, "conv2d_0b_3x3"), (64, 3, "conv2d_0c_3x3"))),
    ),
    "block17": (
        (0, ((192, 1, "conv2d_1x1"),)),
        (1, ((128, 1, "conv2d_0a_1x1"), (160, (1, 7), "conv2d_0b_1x7"),
             (192, (7, 1), "conv2d_0c_7x1"))),
    ),
    "block8": (
        (0, ((192, 1, "conv2d_1x1"),)),
        (1, ((192, 1, "conv2d_0a_1x1"), (224, (1, 3), "conv2d_0b_1x3"),
             (256, (3, 1), "conv2d_0c_3x1"))),
    ),
}


def _residual_block(builder, x, block_type, index, rate=1, last=False):
    """An Inception-ResNet block (slim `block35` / `block17` / `block8`): its branches
    concatenated (`{name}_mixed`), a 1x1 convolution with bias back to the input depth
    (`{name}_conv`), added scaled (`{name}_scale`), then a ReLU (`{name}_ac`), where
    `name = f"{block_type}_{index}"`. The `last` block8 is added unscaled and without ReLU
    (slim's `Block8`)."""
    name = f"{block_type}_{index}"
    branches = []
    for branch, convs in _BLOCK_BRANCHES[block_type]:
        y = x
        for filters, kernel_size, conv_name in convs:
            y = builder.conv(
                y, filters, kernel_size, f"{name}_branch_{branch}_{conv_name}", rate=rate
            )
        branches.append(y)
    mixed = keras.layers.Concatenate(name=f"{name}_mixed")(branches)
    up = keras.layers.Conv2D(
        x.shape[-1],
        1,
        name=f"{name}_conv",
        **builder.hyperparams.conv_kwargs(use_bias=True),
    )(mixed)
    scale = 1.0 if last else BLOCK_SCALES[block_type]
    x = ScaledResidual(scale, name=f"{name}_scale")([x, up])
    if last:
        return x
    return keras.layers.Activation("relu", name=f"{name}_ac")(x)
