"""The MobileNetV2 body shared by kdet's MobileNet feature extractors."""

import keras

from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.kernel_regularization import regularize_kernels


def mobilenet_v2_body(
    depth_multiplier=1.0,
    weights=None,
    kernel_regularizer=None,
    regularize_depthwise=False,
    hyperparams=None,
    use_explicit_padding=False,
):
    """`keras.applications.MobileNetV2` without its top, with TF "SAME" padding everywhere.

    Keras pads its stride-2 convolutions by `(0, 1)` for unknown input sizes, which equals TF
    "SAME" padding only on even sizes: at 300×300 it would give 18×18 / 9×9 maps instead of the
    TF OD API's 19×19 / 10×10. The model is cloned with "same" padding instead; layer names
    (and so weight conversion from TF OD API graphs) are unchanged. Its batch norms are
    `kdet.layers.FusedBatchNormalization` (TF's fused kernel; same weights). With
    `kernel_regularizer` the clone's convolution kernels are regularized (see
    `kdet.feature_extractors.kernel_regularization.regularize_kernels`).

    Args:
        depth_multiplier: float. MobileNetV2 `alpha`. Defaults to `1.0`.
        weights: `None` or `"imagenet"` (downloaded by Keras on first use). Defaults to `None`.
        kernel_regularizer: a `keras.regularizers.Regularizer` for the kernels of the 1x1
            and full convolutions, or `None`. Defaults to `None`.
        regularize_depthwise: bool. Also regularize the depthwise kernels. Defaults to `False`.
        hyperparams: a `kdet.layers.ConvHyperparams`, or `None` (Keras's MobileNetV2
            settings). Defaults to `None`.
        use_explicit_padding: bool. Pad one pixel on every side before the stride-2 depthwise
            convolutions and convolve with "valid" padding, as the TF OD API's
            `use_explicit_padding` (on stride 1 the two agree). The first convolution `Conv1`
            is then "valid" too: feed the body images padded by `pad_input`. Defaults to
            `False`.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` (MobileNet-normalized) to
        `out_relu`; other endpoints are reachable with `get_layer(name).output`.
    """
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(None, None, 3), alpha=depth_multiplier, include_top=False, weights=weights
    )

    # The stride-2 depthwise convolutions follow a ZeroPadding2D; "same" padding replaces both
    # (or a one-pixel pad on every side and "valid" padding, with use_explicit_padding).
    def same_padding_regularized(layer):
        if isinstance(layer, keras.layers.ZeroPadding2D):
            if use_explicit_padding:
                return keras.layers.ZeroPadding2D(1, name=layer.name)
            return keras.layers.Identity(name=layer.name)
        config = regularize_kernels(layer.get_config(), kernel_regularizer, regularize_depthwise)
        if use_explicit_padding and layer.name == "Conv1":
            config["padding"] = "valid"
        elif not use_explicit_padding and config.get("padding") == "valid":
            config["padding"] = "same"
        return layer.__class__.from_config(config)

    if hyperparams is not None:
        hyperparams = hyperparams.replace(regularize_depthwise=True)
    return clone_body(
        mobilenet,
        clone_function=same_padding_regularized,
        hyperparams=hyperparams,
        keep_weights=weights is not None,
    )


def pad_input(body, name):
    """`body` behind a one-pixel zero padding of its images (`Conv1_pad`), for a body built
    with `use_explicit_padding`.

    Args:
        body: a `keras.Model` from images `[batch, height, width, 3]`.
        name: str, the name of the returned model.

    Returns:
        A `keras.Model` from the same images to the same outputs.
    """
    images = keras.Input((None, None, 3))
    padded = keras.layers.ZeroPadding2D(1, name="Conv1_pad")(images)
    return keras.Model(images, body(padded), name=name)
