"""The two ways the TF OD API's CenterNet extractors bring a classification body's stride-32
features back to stride 4, as functional Keras layers (named, so saved weights load by name).

- `transposed_conv_upsampling` (ResNet-v2, MobileNetV2): three times a convolution and a
  stride-2 transposed convolution, each with batch norm and ReLU.
- `top_down_upsampling` (ResNet-v1 FPN, MobileNetV2 FPN): an FPN top-down pathway over the
  stride-4..32 maps, one output at stride 4.
"""

import keras

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# Channels of the three stride-2 steps of the TF OD API's transposed-convolution upsampling.
TRANSPOSED_CONV_FILTERS = (256, 128, 64)
INTERPOLATIONS = ("nearest", "bilinear")


def _batch_norm_relu(features, name):
    """Keras-default batch norm (the TF OD API builds `BatchNormalization()`), then ReLU."""
    features = FusedBatchNormalization(name=f"{name}_bn")(features)
    return keras.layers.ReLU(name=f"{name}_relu")(features)


def check_interpolation(interpolation):
    """Rejects an `upsampling_interpolation` other than `"nearest"` and `"bilinear"`."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"upsampling_interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}"
        )


def transposed_conv_upsampling(features, kernel_size, filters=TRANSPOSED_CONV_FILTERS):
    """Stride 32 → 4 with learned upsampling (CenterNet paper, without deformable
    convolutions; the TF OD API's `CenterNetResnetFeatureExtractor`).

    Each of the three steps: a `kernel_size` convolution (with bias), batch norm, ReLU, a 3x3
    stride-2 `Conv2DTranspose` (with bias), batch norm, ReLU.

    Args:
        features: symbolic `[batch, h, w, c]` (stride 32).
        kernel_size: int, of the convolutions before each transposed one (3 for ResNet-v2,
            1 for MobileNetV2).
        filters: 3 ints, channels of each step. Defaults to `(256, 128, 64)`.

    Returns:
        symbolic `[batch, 8 * h, 8 * w, filters[-1]]`.
    """
    for index, depth in enumerate(filters):
        name = f"upsampling_{index}"
        features = keras.layers.Conv2D(
            depth, kernel_size, padding="same", name=f"{name}_conv"
        )(features)
        features = _batch_norm_relu(features, f"{name}_conv")
        features = keras.layers.Conv2DTranspose(
            depth, 3, strides=2, padding="same", name=f"{name}_conv_transpose"
        )(features)
        features = _batch_norm_relu(features, f"{name}_conv_transpose")
    return features


def top_down_upsampling(endpoints, filters, use_separable_conv=False, interpolation="nearest"):
    """An FPN top-down pathway that keeps only its stride-4 map (the TF OD API's
    `CenterNetResnetV1FpnFeatureExtractor` / `CenterNetMobileNetV2FPNFeatureExtractor`).

    A 1x1 convolution takes the coarsest endpoint to `filters[0]` channels; then, for each
    finer endpoint: ×2 upsampling, plus a 1x1 convolution of the endpoint (`filters[i]`
    channels), a 3x3 convolution to `filters[i + 1]` channels (`filters[-1]` at the end),
    batch norm, ReLU. Unlike the FPN paper, the maps narrow as they get finer.

    Args:
        endpoints: list of symbolic maps at strides 4, 8, 16, 32 (finest first), each twice
            the size of the next.
        filters: `len(endpoints) - 1` ints, channels of the lateral 1x1 convolutions from the
            coarsest merge to the finest (ResNet `[256, 128, 64]`, MobileNetV2 `[64, 32, 24]`).
        use_separable_conv: bool, the 3x3 convolutions are `SeparableConv2D`. Defaults to
            `False`.
        interpolation: `"nearest"` or `"bilinear"`, of the upsampling. Defaults to
            `"nearest"`.

    Returns:
        symbolic `[batch, h_0, w_0, filters[-1]]`, the size of `endpoints[0]`.
    """
    if len(filters) != len(endpoints) - 1:
        raise ValueError(
            f"top_down_upsampling takes one filter count per merge ({len(endpoints) - 1}); "
            f"got {list(filters)}"
        )
    check_interpolation(interpolation)
    conv_class = keras.layers.SeparableConv2D if use_separable_conv else keras.layers.Conv2D
    top_down = keras.layers.Conv2D(filters[0], 1, name="top_down_lateral_conv")(endpoints[-1])
    for index, depth in enumerate(filters):
        name = f"top_down_{index}"
        top_down = keras.layers.UpSampling2D(
            2, interpolation=interpolation, name=f"{name}_upsampling"
        )(top_down)
        lateral = keras.layers.Conv2D(depth, 1, name=f"{name}_lateral_conv")(
            endpoints[-2 - index]
        )
        top_down = keras.layers.Add(name=f"{name}_add")([top_down, lateral])
        next_depth = filters[min(index + 1, len(filters) - 1)]
        top_down = conv_class(next_depth, 3, padding="same", name=f"{name}_conv")(top_down)
        top_down = _batch_norm_relu(top_down, f"{name}_conv")
    return top_down
