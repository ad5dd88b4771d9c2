"""The MobileNetV1 body of kdet's MobileNetV1 feature extractors."""

import functools

import keras

from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.kernel_regularization import regularize_kernels
from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# Filters of MobileNetV1's convolutions at depth multiplier 1 (Keras layer names).
MOBILENET_V1_FILTERS = {
    "conv1": 32,
    **{
        f"conv_pw_{block}": filters
        for block, filters in enumerate(
            (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024), start=1
        )
    },
}


# How `mobilenet_v1_filters` scales MobileNetV1's convolutions.
FILTER_RULES = ("keras", "tf_od_api_tf2", "tf_od_api_tf1")


def mobilenet_v1_filters(depth_multiplier, conv_defs=None, min_depth=None, rule="tf_od_api_tf2"):
    """Filters of each MobileNetV1 convolution, `{Keras layer name: filters}`.

    - `"keras"`: Keras's `MobileNet(alpha=depth_multiplier)`, `int(filters *
      depth_multiplier)`.
    - `"tf_od_api_tf2"`: the TF OD API's Keras body (`object_detection/models/keras_models/
      mobilenet_v1.py`, which every TF2 `ssd_mobilenet_v1*_keras` extractor and checkpoint
      uses) builds that Keras model and scales each convolution again when it makes it:
      `max(int(int(filters * m) * m), min_depth)`, or `max(int(conv_defs[name] * m),
      min_depth)` for the layers its `conv_defs` set.
    - `"tf_od_api_tf1"`: the TF OD API's TF1 slim body (`nets/mobilenet_v1.py`):
      `max(int(filters * m), min_depth)`, `conv_defs` replacing `filters`.

    At depth multiplier 1 the three agree (unless `min_depth` exceeds 32).

    Args:
        depth_multiplier: float.
        conv_defs: optional dict `{layer name: filters before the depth multiplier}`
            replacing MobileNetV1's (the TF OD API `conv_defs`, e.g. `{"conv_pw_13": 256}`).
        min_depth: int or None. The TF OD API's lower bound (not in `"keras"`).
        rule: one of `FILTER_RULES`. Defaults to `"tf_od_api_tf2"`.

    Returns:
        dict `{layer name: filters}` of `conv1` and `conv_pw_1`..`conv_pw_13`.
    """
    if rule not in FILTER_RULES:
        raise ValueError(f"rule must be one of {FILTER_RULES}; got {rule!r}")
    conv_defs = conv_defs or {}
    filters = {}
    for name, base in MOBILENET_V1_FILTERS.items():
        depth = int(conv_defs.get(name, base) * depth_multiplier)
        if rule == "tf_od_api_tf2" and name not in conv_defs:
            depth = int(depth * depth_multiplier)
        if rule != "keras":
            depth = max(depth, min_depth or 0)
        filters[name] = depth
    return filters


def mobilenet_v1_body(
    endpoints,
    depth_multiplier=1.0,
    weights=None,
    conv_filters=None,
    use_explicit_padding=False,
    kernel_initializer=None,
    kernel_regularizer=None,
    batch_norm_momentum=0.99,
    hyperparams=None,
):
    """`keras.applications.MobileNet` without its top, laid out as the TF OD API's Keras body.

    The TF OD API builds its MobileNetV1 (`object_detection/models/keras_models/
    mobilenet_v1.py`) from the Keras application with TF "SAME" padding everywhere, or with
    `use_explicit_padding` a one-pixel pad on every side before each 3x3 convolution and
    "valid" padding (on stride 1 the two agree). Keras pads its stride-2 convolutions by
    `(0, 1)`, which is "SAME" on even sizes only; the copy made here pads as the TF OD API
    does, keeping Keras's layer names. Its batch norms are `kdet.layers.FusedBatchNormalization`
    (TF's fused kernel; same weights), and every convolution kernel, depthwise ones included,
    gets `kernel_regularizer`, as the TF OD API's body regularizes them.

    Args:
        endpoints: list of layer names whose outputs the body returns, e.g.
            `["conv_pw_5_relu", "conv_pw_13_relu"]`.
        depth_multiplier: float. MobileNet `alpha`. Defaults to `1.0`.
        weights: `None` or `"imagenet"` (downloaded by Keras on first use). Defaults to
            `None`.
        conv_filters: optional dict `{convolution name: filters}` replacing Keras's number
            of filters of those layers (e.g. `{"conv_pw_13": 256}`, after the depth
            multiplier; `mobilenet_v1_filters` gives the TF OD API's). Layers whose weight
            shapes change start from random weights. Defaults to `None`.
        use_explicit_padding: bool. Pad one pixel on every side before the stride-2
            convolutions and convolve with "valid" padding (TF OD API
            `use_explicit_padding`), instead of "same" padding. Defaults to `False`.
        kernel_initializer: a Keras initializer the convolution kernels are drawn from (each
            layer its own draw) when `weights` is `None`, or `None` to keep Keras's.
            Defaults to `None`.
        kernel_regularizer: a `keras.regularizers.Regularizer` for every convolution kernel,
            or `None`. Defaults to `None`.
        batch_norm_momentum: float. Momentum of the batch norms (TF OD API `decay`); their
            epsilon is Keras's 1e-3, the TF OD API's. Defaults to `0.99` (Keras's).
        hyperparams: a `kdet.layers.ConvHyperparams` setting up the body instead of
            `kernel_initializer`, `kernel_regularizer` and `batch_norm_momentum`
            (`override_base_feature_extractor_hyperparams`), as the TF OD API's
            `keras_models/mobilenet_v1.py` does with `conv_hyperparams`: every kernel,
            depthwise ones included, takes their initializer and regularizer, every batch
            norm theirs (none without `batch_norm`), every ReLU6 their activation. Defaults to
            `None`.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` (MobileNet-normalized, in
        -1..1) to the list of the `endpoints`' outputs `[batch, h_i, w_i, c_i]`.

    Example:
    ```python
    body = mobilenet_v1_body(["conv_pw_11_relu", "conv_pw_13_relu"])
    c4, c5 = body(tf.zeros([1, 128, 128, 3]))  # [1, 8, 8, 512], [1, 4, 4, 1024]
    ```
    """
    mobilenet = keras.applications.MobileNet(
        input_shape=(None, None, 3), alpha=depth_multiplier, include_top=False, weights=weights
    )
    changed = {
        name: filters
        for name, filters in (conv_filters or {}).items()
        if mobilenet.get_layer(name).filters != filters
    }
    if changed:
        mobilenet = _with_conv_filters(mobilenet, changed)
    if hyperparams is not None:
        hyperparams = hyperparams.replace(regularize_depthwise=True)
    body = clone_body(
        mobilenet,
        clone_function=functools.partial(
            _detection_layer,
            kernel_regularizer=kernel_regularizer,
            use_explicit_padding=use_explicit_padding,
        ),
        hyperparams=hyperparams,
        keep_weights=weights is not None,
    )
    if hyperparams is None:
        for layer in body.layers:
            if isinstance(layer, FusedBatchNormalization):
                layer.momentum = batch_norm_momentum
        if weights is None and kernel_initializer is not None:
            _draw_kernels(body, kernel_initializer)
    features = keras.Model(
        body.input, [body.get_layer(name).output for name in endpoints], name="MobilenetV1"
    )
    if not use_explicit_padding:
        return features
    # `conv1`, the first layer, has no padding layer of its own in Keras's MobileNet.
    images = keras.Input((None, None, 3))
    padded = keras.layers.ZeroPadding2D(1, name="conv1_pad")(images)
    return keras.Model(images, features(padded), name="MobilenetV1_explicit_padding")


def _detection_layer(layer, kernel_regularizer, use_explicit_padding):
    """A copy of a layer of Keras's MobileNet with the TF OD API's padding and regularizer."""
    if isinstance(layer, keras.layers.ZeroPadding2D):
        # Keras's `(0, 1)` pads before its "valid" stride-2 depthwise convolutions.
        if use_explicit_padding:
            return keras.layers.ZeroPadding2D(1, name=layer.name)
        return keras.layers.Identity(name=layer.name)
    config = regularize_kernels(layer.get_config(), kernel_regularizer, regularize_depthwise=True)
    if use_explicit_padding and layer.name == "conv1":
        config["padding"] = "valid"
    elif not use_explicit_padding and config.get("padding") == "valid":
        config["padding"] = "same"
    return layer.__class__.from_config(config)


def _with_conv_filters(mobilenet, conv_filters):
    """A copy of `mobilenet` with `conv_filters`; layers of unchanged shapes keep weights."""

    def clone(layer):
        config = layer.get_config()
        if layer.name in conv_filters:
            config["filters"] = conv_filters[layer.name]
        return layer.__class__.from_config(config)

    narrowed = keras.models.clone_model(mobilenet, clone_function=clone)
    for layer in narrowed.layers:
        if not layer.weights:
            continue
        weights = mobilenet.get_layer(layer.name).get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
    return narrowed


def _draw_kernels(model, initializer):
    """Draws every convolution kernel of `model` anew from a fresh copy of `initializer`.

    An unseeded Keras initializer draws its seed once, so one shared instance would give
    every kernel of the same shape the same values.
    """
    serialized = keras.initializers.serialize(initializer)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            kernel.assign(keras.initializers.get(serialized)(kernel.shape, kernel.dtype))
