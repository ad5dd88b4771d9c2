"""The TF OD API's basic-block ResNet-18 and ResNet-34 (`models/keras_models/resnet_v1.py`
`resnet_v1_18` / `resnet_v1_34`), the bodies of its `resnet_v1_18_fpn` / `resnet_v1_34_fpn`
CenterNet extractors."""

import keras

from kdet.feature_extractors.resnet_v1_body import SLIM_BASE_DEPTHS
from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# Basic blocks of the stages `conv2..5` of each depth.
BASIC_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
# keras.applications' ResNet batch-norm epsilon, which the TF OD API's basic blocks keep.
_EPSILON = 1.001e-5


def basic_body_endpoints(depth):
    """The names of the last block outputs of the stages `conv2..5` of the basic-block ResNet
    of `depth` (strides 4, 8, 16, 32): the maps the TF OD API's CenterNet FPN reads."""
    return [
        f"conv{stage}_block{blocks}_out"
        for stage, blocks in enumerate(BASIC_BLOCKS[depth], start=2)
    ]


def resnet_v1_basic_body(depth=18):
    """The basic-block ResNet of the TF OD API, laid out as its `resnet_v1_18` /
    `resnet_v1_34` (TF2 `keras_models/resnet_v1.py`).

    Despite the `v1` in its name the TF OD API builds it with `keras.applications`' ResNet
    scaffold in pre-activation mode, with its own blocks:
    - stem: `conv1_conv` (7x7, stride 2, with bias, after 3 pixels of zero padding, no batch
      norm), then `pool1_pool` (3x3 max pool, stride 2, after 1 pixel of zero padding);
    - stages `conv2..5` (`BASIC_BLOCKS[depth]` blocks of 64, 128, 256, 512 filters), each
      block `{name}` = `conv{stage}_block{i}`: `{name}_preact_bn` + `_preact_relu` on its
      input, then `{name}_1_conv` (3x3, stride 1) and `{name}_2_conv` (3x3, stride `s`), each
      zero-padded by 1 pixel, without bias, followed by batch norm and ReLU; the output
      `{name}_out` adds (no ReLU after) the shortcut: in a stage's first block `{name}_0_conv`
      (1x1, with bias) of the pre-activation, else the block input, subsampled by a 1x1 max
      pool `{name}_0_pool` where the block strides. Only the LAST block of stages 3..5
      strides (`s` = 2).
    Batch norms are Keras-default (momentum 0.99) with epsilon 1.001e-5, on TF's fused
    kernel. The TF OD API's model then ends in a batch norm and ReLU (`post_bn`, `post_relu`)
    that its CenterNet FPN never reads (it reads `basic_body_endpoints`): kdet leaves them out.
    Layers are created in the TF OD API's order, so they come in its checkpoint order
    (`layer_with_weights-N`: per block `preact_bn`, `1_conv`, `1_bn`, `2_conv`, `2_bn`, then
    `0_conv`).

    Args:
        depth: int, 18 or 34. Defaults to `18`.

    Returns:
        A functional `keras.Model` named `resnet{depth}` from preprocessed images
        `[batch, height, width, 3]` to the last block output of `conv5`
        `[batch, height / 32, width / 32, 512]`; every block output is reachable with
        `get_layer(name).output`.

    Raises:
        ValueError: a `depth` other than 18 and 34.

    Example:
    ```python
    body = resnet_v1_basic_body(18)
    body(tf.zeros([1, 64, 64, 3])).shape  # (1, 2, 2, 512)
    ```

    Reference:
        [He et al., 2016](https://arxiv.org/abs/1512.03385); TF OD API
        `object_detection/models/keras_models/resnet_v1.py`.
    """
    if depth not in BASIC_BLOCKS:
        raise ValueError(f"depth must be one of {sorted(BASIC_BLOCKS)}; got {depth}")
    layers = keras.layers
    images = layers.Input(shape=(None, None, 3))
    x = layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(images)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (blocks, filters) in enumerate(zip(BASIC_BLOCKS[depth], SLIM_BASE_DEPTHS), 2):
        for index in range(1, blocks + 1):
            stride = 2 if stage > 2 and index == blocks else 1
            x = _basic_block(x, filters, stride, index == 1, f"conv{stage}_block{index}")
    return keras.Model(images, x, name=f"resnet{depth}")


def _basic_block(x, filters, stride, conv_shortcut, name):
    """One pre-activation basic block of the TF OD API's `block_basic` (see
    `resnet_v1_basic_body`)."""
    layers = keras.layers
    preact = FusedBatchNormalization(epsilon=_EPSILON, name=f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(filters, 1, name=f"{name}_0_conv")(preact)
    elif stride > 1:
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    residual = preact
    for conv, conv_stride in ((1, 1), (2, stride)):
        residual = layers.ZeroPadding2D(((1, 1), (1, 1)), name=f"{name}_{conv}_pad")(residual)
        residual = layers.Conv2D(
            filters, 3, strides=conv_stride, use_bias=False, name=f"{name}_{conv}_conv"
        )(residual)
        residual = FusedBatchNormalization(epsilon=_EPSILON, name=f"{name}_{conv}_bn")(residual)
        residual = layers.Activation("relu", name=f"{name}_{conv}_relu")(residual)
    return layers.Add(name=f"{name}_out")([shortcut, residual])
