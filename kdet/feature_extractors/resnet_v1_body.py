"""The TF OD API's TF2 ResNet V1 body (`models/keras_models/resnet_v1.py`), rebuilt from the
`keras.applications` ResNet layout it is made of."""

import functools

import keras

from kdet.feature_extractors.kernel_regularization import hyperparams_clone
from kdet.layers.conv_hyperparams import ConvHyperparams

RESNETS = {
    50: keras.applications.ResNet50,
    101: keras.applications.ResNet101,
    152: keras.applications.ResNet152,
}
# The last block of stage 4 (`conv4_*`) of each depth: the Faster R-CNN proposal features.
CONV4_LAST_LAYERS = {
    50: "conv4_block6_out",
    101: "conv4_block23_out",
    152: "conv4_block36_out",
}
# The TF OD API's ResNet batch norms when no `conv_hyperparams` set them up.
TF_OD_API_BATCH_NORM = {"momentum": 0.997, "epsilon": 1e-5, "scale": True, "center": True}


def tf_od_api_resnet_hyperparams(weight_decay=0.0):
    """The layer settings of the TF OD API's ResNet V1 body built without `conv_hyperparams`
    (its Faster R-CNN extractors): variance-scaling kernels (scale 1, fan in, truncated
    normal), an L2 regularizer of `weight_decay` (none for 0), batch norms with scale, momentum
    0.997 and epsilon 1e-5, ReLU.

    Args:
        weight_decay: float. Defaults to `0.0` (the TF OD API Faster R-CNN extractors').

    Returns:
        A `kdet.layers.ConvHyperparams`.
    """
    return ConvHyperparams(
        kernel_initializer=keras.initializers.VarianceScaling(),
        kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None,
        activation="relu",
        batch_norm=dict(TF_OD_API_BATCH_NORM),
    )


def resnet_v1_body(
    depth=50,
    depth_multiplier=1.0,
    min_depth=8,
    hyperparams=None,
    weights=None,
    clone_function=None,
):
    """A ResNet V1 body laid out as the TF OD API's TF2 one.

    `keras.applications.ResNet{depth}` without its top, rebuilt with what the TF OD API's
    `resnet_v1.resnet_v1_{depth}` changes in it: convolutions without bias, filters
    `max(int(filters * depth_multiplier), min_depth)`, the first max-pool with TF "SAME"
    padding instead of Keras's one-pixel zero padding and "valid" pooling (on even sizes
    every later map is the TF OD API's, not shifted by a pixel), and kernels, batch norms and
    ReLUs set up by `hyperparams`. Layer names (and their order, by which TF2 checkpoints
    name them) are `keras.applications`'.

    Args:
        depth: int, 50, 101 or 152. Defaults to `50`.
        depth_multiplier: float. Width multiplier of every convolution. Defaults to `1.0`.
        min_depth: int. The fewest filters of a convolution. Defaults to `8`.
        hyperparams: a `kdet.layers.ConvHyperparams` (a config's `conv_hyperparams` with
            `override_base_feature_extractor_hyperparams`), or `None` for
            `tf_od_api_resnet_hyperparams()`. A bias is never added (the TF OD API drops them
            whatever the hyperparams say). Defaults to `None`.
        weights: `None` or `"imagenet"`: the `keras.applications` ImageNet weights, each
            convolution bias folded into the batch norm after it (`moving_mean - bias`: the
            same function in inference mode). Only at `depth_multiplier` 1 with batch norms
            that have a scale and a center. Defaults to `None`.
        clone_function: optional function from a `keras.applications` layer to its copy
            (e.g. atrous convolutions), applied before the changes above. Defaults to `None`.

    Returns:
        A functional `keras.Model` from preprocessed images `[batch, height, width, 3]` to the
        stage-5 output `conv5_block3_out`; every block output (`conv4_block6_out`, …) is
        reachable with `get_layer(name).output`.

    Raises:
        ValueError: an unknown `depth`, or `weights` that cannot load into this layout.

    Example:
    ```python
    body = resnet_v1_body(50, depth_multiplier=0.25)
    body(tf.zeros([1, 128, 128, 3])).shape  # (1, 4, 4, 512)
    ```

    Reference:
        [He et al., 2016](https://arxiv.org/abs/1512.03385); TF OD API
        `object_detection/models/keras_models/resnet_v1.py`.
    """
    if depth not in RESNETS:
        raise ValueError(f"depth must be one of {sorted(RESNETS)}; got {depth}")
    hyperparams = hyperparams or tf_od_api_resnet_hyperparams()
    if weights is not None:
        _check_weights_fit(weights, depth_multiplier, hyperparams)
    resnet = RESNETS[depth](input_shape=(None, None, 3), include_top=False, weights=weights)
    tf_od_api_layer = functools.partial(
        _tf_od_api_layer,
        depth_multiplier=depth_multiplier,
        min_depth=min_depth,
        clone_function=clone_function,
    )
    body = keras.models.clone_model(
        resnet,
        clone_function=lambda layer: hyperparams_clone(layer, hyperparams, tf_od_api_layer),
    )
    if weights is not None:
        copy_folding_conv_biases(resnet, {layer.name: layer for layer in body.layers})
    return body


def _tf_od_api_layer(layer, depth_multiplier, min_depth, clone_function):
    """The copy of one `keras.applications` ResNet layer (but batch norms and ReLUs, which
    `hyperparams_clone` replaces) as the TF OD API's `_LayersOverride` builds it."""
    copy = clone_function(layer) if clone_function else layer
    config = copy.get_config()
    if layer.name == "pool1_pad":
        # The TF OD API replaces Keras's explicit padding by a no-op ...
        return keras.layers.Identity(name=layer.name)
    if layer.name == "pool1_pool":
        # ... and pools with "SAME" padding (slim's resnet arg scope).
        config["padding"] = "same"
    elif isinstance(copy, keras.layers.Conv2D):
        config["filters"] = max(int(config["filters"] * depth_multiplier), min_depth)
        config["use_bias"] = False
    return copy.__class__.from_config(config)


def _check_weights_fit(weights, depth_multiplier, hyperparams):
    """Raises a ValueError unless Keras's `weights` can load into the TF OD API layout."""
    batch_norm = hyperparams.batch_norm
    if depth_multiplier != 1.0 or not (
        batch_norm and batch_norm["scale"] and batch_norm["center"]
    ):
        raise ValueError(
            f"{weights} weights are keras.applications' ResNet: they load into the TF OD API "
            "layout (their convolution biases folded into the batch norms) only at depth "
            f"multiplier 1 with batch norms that scale and center; got depth_multiplier="
            f"{depth_multiplier} and batch_norm={batch_norm}. Start from random weights, or "
            "from a TF OD API checkpoint (kdet.checkpoints.restore_tfod_checkpoint)"
        )


def restore_keras_resnet(source, bodies):
    """`restore_from_classification_checkpoint` of an extractor with a `resnet_v1_body`:
    the layers of `bodies` (keras Models made of the body's layers) take the weights of the
    `keras.applications` ResNet `source` (a `keras.Model` or a `.keras` path), see
    `copy_folding_conv_biases`.

    Returns:
        The sorted names of the restored layers.
    """
    if not isinstance(source, keras.layers.Layer):
        source = keras.saving.load_model(source, compile=False)
    layers = {layer.name: layer for body in bodies for layer in body.layers}
    return copy_folding_conv_biases(source, layers)


def copy_folding_conv_biases(source, target_layers):
    """Copies the weights of a `keras.applications` ResNet (convolutions with bias) into the
    layers of the same names of a `resnet_v1_body` (convolutions without bias): each bias
    moves into the moving mean of the batch norm after its convolution (`{name}_conv` →
    `{name}_bn`), as `bn(x + b)` equals `bn'(x)` with `moving_mean' = moving_mean - b` in
    inference mode.

    Args:
        source: a `keras.Model` with the `keras.applications` ResNet layers.
        target_layers: dict, layer name → layer of the TF OD API layout (every name of
            `source`'s layers with weights must be there).

    Returns:
        The sorted names of the target layers set.

    Raises:
        ValueError: a layer is missing from `target_layers` or its shapes differ.
    """
    biases = {}
    pairs = []
    for layer in source.layers:
        if not layer.weights:
            continue
        target = target_layers.get(layer.name)
        if target is None:
            raise ValueError(f"no layer {layer.name!r} to restore {source.name!r} into")
        if isinstance(layer, keras.layers.Conv2D):
            values = [layer.kernel.numpy()]
            biases[layer.name.removesuffix("_conv") + "_bn"] = layer.bias.numpy()
        else:
            gamma, beta, mean, variance = layer.get_weights()
            values = [gamma, beta, mean - biases[layer.name], variance]
        theirs = [value.shape for value in values]
        ours = [tuple(weight.shape) for weight in target.weights]
        if theirs != ours:
            raise ValueError(
                f"layer {layer.name!r}: {source.name!r} has (bias-folded) weights of shapes "
                f"{theirs}, this model {ours}; is it the same ResNet at depth multiplier 1?"
            )
        pairs.append((target, values))
    for target, values in pairs:
        target.set_weights(values)
    return sorted(target.name for target, _ in pairs)
