"""The MobileNetV2 body shared by kdet's MobileNet feature extractors."""

import keras

from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.kernel_regularization import regularize_kernels
from kdet.layers.fused_batch_normalization import copy_layer_weights


def mobilenet_v2_body(
    depth_multiplier=1.0,
    weights=None,
    kernel_regularizer=None,
    regularize_depthwise=False,
    hyperparams=None,
    use_explicit_padding=False,
    min_depth=None,
    last_conv_depth=None,
    slim_layout=False,
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
        min_depth: int or None. The fewest filters of every convolution but the expansions
            (`block_N_expand`), as the TF OD API's Keras MobileNetV2 `min_depth` (Keras has no
            such floor: with `depth_multiplier` 0.25 its `Conv1` has 8 filters, the TF OD
            API's 16 with `min_depth: 16`). Expansions grow with their floored inputs, and, as
            in the TF OD API, a block whose projection was floored loses its residual `add`.
            `None`: no floor. Defaults to `None`.
        last_conv_depth: int or None. Filters of the last convolution `Conv_1`. `None`:
            Keras's rule (1280 for every `depth_multiplier` ≤ 1; see `tf_od_api_last_conv_depth`
            for the TF OD API's). Defaults to `None`.
        slim_layout: bool. The residuals of TF-Slim's MobileNetV2 (the TF OD API's TF1
            extractors): a stride-1 block adds its input whenever its input and output depths
            are equal after `min_depth`, so the blocks `min_depth` floored keep their `add`,
            and one is added (`<block>_add`) where Keras's MobileNetV2 has none (e.g.
            `expanded_conv` at depth multiplier 0.35). `False`: the TF OD API's Keras
            MobileNetV2 (TF2) rule (see `min_depth`). The two agree unless `min_depth` raises
            depths. Defaults to `False`.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` (MobileNet-normalized) to
        `out_relu`; other endpoints are reachable with `get_layer(name).output`.
    """
    if weights is not None:
        _check_keras_depths(weights, depth_multiplier, min_depth, last_conv_depth)
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(None, None, 3), alpha=depth_multiplier, include_top=False, weights=weights
    )
    added_residuals = _slim_residuals_to_add(mobilenet, min_depth) if slim_layout else []

    # The stride-2 depthwise convolutions follow a ZeroPadding2D; "same" padding replaces both
    # (or a one-pixel pad on every side and "valid" padding, with use_explicit_padding).
    def same_padding_regularized(layer):
        if (
            isinstance(layer, keras.layers.Add)
            and not slim_layout
            and _loses_residual(mobilenet, layer, min_depth)
        ):
            return SkipResidual(name=layer.name)
        if isinstance(layer, keras.layers.ZeroPadding2D):
            if use_explicit_padding:
                return keras.layers.ZeroPadding2D(1, name=layer.name)
            return keras.layers.Identity(name=layer.name)
        config = regularize_kernels(layer.get_config(), kernel_regularizer, regularize_depthwise)
        if "filters" in config:
            filters = _filters(layer.name, config["filters"], min_depth, last_conv_depth)
            config["filters"] = filters
        if use_explicit_padding and layer.name == "Conv1":
            config["padding"] = "valid"
        elif not use_explicit_padding and config.get("padding") == "valid":
            config["padding"] = "same"
        return layer.__class__.from_config(config)

    if hyperparams is not None:
        hyperparams = hyperparams.replace(regularize_depthwise=True)
    body = clone_body(
        mobilenet,
        clone_function=same_padding_regularized,
        hyperparams=hyperparams,
        keep_weights=weights is not None,
    )
    return _with_added_residuals(body, added_residuals) if added_residuals else body


# MobileNetV2's expansion factor: each `block_N_expand` has 6 × the filters of its input.
_EXPANSION = 6


def tf_od_api_last_conv_depth(depth_multiplier):
    """Filters of MobileNetV2's last convolution `Conv_1` in the TF OD API (TF1 slim and TF2
    Keras alike): 1280 scaled by a `depth_multiplier` below 1 (rounded to a multiple of 8, as
    Keras rounds the other layers), 1280 otherwise. Keras keeps 1280 for every multiplier ≤ 1.

    Args:
        depth_multiplier: float.

    Returns:
        int.
    """
    return 1280 if depth_multiplier >= 1.0 else make_divisible_by_8(1280 * depth_multiplier)


def make_divisible_by_8(value):
    """MobileNet channel rounding: nearest multiple of 8, at least 8 and 90% of `value`."""
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def _check_keras_depths(weights, depth_multiplier, min_depth, last_conv_depth):
    """Raises a ValueError if `min_depth` or `last_conv_depth` change a depth of Keras's
    MobileNetV2 (so its `weights` could not load)."""
    keras_last_conv_depth = 1280 if depth_multiplier <= 1.0 else make_divisible_by_8(
        1280 * depth_multiplier
    )
    # The narrowest convolution but the expansions: `expanded_conv_project`, 16 × multiplier.
    narrowest = make_divisible_by_8(16 * depth_multiplier)
    if (last_conv_depth not in (None, keras_last_conv_depth)) or (
        min_depth is not None and narrowest < min_depth
    ):
        raise ValueError(
            f"{weights} weights are Keras's MobileNetV2 at depth multiplier "
            f"{depth_multiplier} (Conv_1 of {keras_last_conv_depth} filters, its narrowest "
            f"layers {narrowest}); min_depth={min_depth} and last_conv_depth={last_conv_depth} "
            "change its depths (the TF OD API's differ from Keras's below depth multiplier 1): "
            "use depth multiplier 1, or Keras's depths (the extractors' "
            "tf_od_api_body_depths=False)"
        )


def _filters(name, filters, min_depth, last_conv_depth):
    """Filters of the convolution `name` of the body, after `last_conv_depth`/`min_depth`."""
    if name == "Conv_1" and last_conv_depth is not None:
        filters = last_conv_depth
    if min_depth is None:
        return filters
    if name.endswith("_expand"):
        # An expansion has 6 × its input's filters, and its input (a projection) has at
        # least `min_depth`; the expansion itself has no floor.
        return max(filters, _EXPANSION * min_depth)
    return max(filters, min_depth)


def _loses_residual(mobilenet, add, min_depth):
    """Whether the TF OD API's MobileNetV2 has no residual `add` (`block_N_add`): its
    projection has fewer filters than `min_depth` before the floor, so Keras's block builder
    (which compares them with the floored input's) sees different depths and leaves it out."""
    project = mobilenet.get_layer(add.name.replace("_add", "_project"))
    return min_depth is not None and project.filters < min_depth


def _slim_residuals_to_add(mobilenet, min_depth):
    """The blocks of `mobilenet` (Keras's MobileNetV2) where TF-Slim's MobileNetV2 adds a
    residual and Keras's has no `add`: stride-1 blocks whose input and output depths
    `min_depth` makes equal (e.g. `expanded_conv` at depth multiplier 0.35 or 0.5 with
    `min_depth` 16: 16 → 16 in Slim, 16 → 8 in Keras)."""
    blocks = []
    previous = "Conv1"
    for block in ["expanded_conv", *(f"block_{index}" for index in range(1, 17))]:
        project = mobilenet.get_layer(f"{block}_project")
        depths = {
            _filters(name, mobilenet.get_layer(name).filters, min_depth, None)
            for name in (previous, project.name)
        }
        stride = mobilenet.get_layer(f"{block}_depthwise").strides[0]
        has_add = any(layer.name == f"{block}_add" for layer in mobilenet.layers)
        if stride == 1 and len(depths) == 1 and not has_add:
            blocks.append(block)
        previous = project.name
    return blocks


def _with_added_residuals(body, blocks):
    """A copy of `body` (its weights too) with an `Add` named `<block>_add` after each block's
    `<block>_project_BN`, adding the block's input, as Slim's MobileNetV2 does."""
    block_inputs = {}

    def call(layer, *args, **kwargs):
        block, _, part = layer.name.rpartition("_")
        first = {"expanded_conv": "depthwise"}.get(block, "expand")
        if block in blocks and part == first:
            block_inputs[block] = args[0]
        outputs = layer(*args, **kwargs)
        block = layer.name.removesuffix("_project_BN")
        if block in blocks and block != layer.name:
            outputs = keras.layers.Add(name=f"{block}_add")([block_inputs[block], outputs])
        return outputs

    copy = keras.models.clone_model(body, call_function=call)
    copy_layer_weights(body, copy)
    return copy


@keras.saving.register_keras_serializable(package="kdet")
class SkipResidual(keras.layers.Layer):
    """`[shortcut, residual]` → `residual`: a residual `Add` left out (see
    `mobilenet_v2_body`'s `min_depth`), keeping the layer's name and place."""

    def call(self, inputs):
        return inputs[-1]

    def compute_output_shape(self, input_shape):
        return input_shape[-1]


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
