"""The TF OD API's ResNet V1 bodies: its TF2 one (`models/keras_models/resnet_v1.py`), rebuilt
from the `keras.applications` ResNet layout it is made of, and its TF1 one (TF-Slim
`nets/resnet_v1.py`, `slim_layout=True`), which strides and pads differently."""

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
# Bottleneck units of slim's `block1..4` (Keras stages `conv2..5`) of each depth.
SLIM_UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Bottleneck depth of slim's `block1..4` before the depth multiplier (output: 4 times it).
SLIM_BASE_DEPTHS = (64, 128, 256, 512)
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
    slim_layout=False,
    output_stride=None,
):
    """A ResNet V1 body laid out as the TF OD API's TF2 one (or, with `slim_layout`, its TF1
    one: `slim_resnet_v1_body`).

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
        slim_layout: bool. Build the TF1 (TF-Slim) layout instead, see
            `slim_resnet_v1_body` (no `weights` nor `clone_function` then). Defaults to
            `False`.
        output_stride: `None`, 8 or 16: only with `slim_layout`, see `slim_resnet_v1_body`
            (the TF2 layout's atrous copies come from `clone_function`). Defaults to `None`.

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
    if slim_layout:
        if weights is not None or clone_function is not None:
            raise ValueError(
                "the slim (TF1) ResNet layout takes neither weights nor a clone_function; got "
                f"weights={weights!r}, clone_function={clone_function!r}"
            )
        return slim_resnet_v1_body(depth, depth_multiplier, min_depth, hyperparams, output_stride)
    if output_stride is not None:
        raise ValueError(
            f"output_stride ({output_stride}) is for the slim layout only; the TF2 layout's "
            "atrous convolutions come from a clone_function"
        )
    hyperparams = hyperparams or tf_od_api_resnet_hyperparams()
    if weights is not None:
        _check_weights_fit(weights, depth_multiplier, hyperparams)
    tf_od_api_layer = functools.partial(
        _tf_od_api_layer,
        hyperparams=hyperparams,
        depth_multiplier=depth_multiplier,
        min_depth=min_depth,
        clone_function=clone_function,
    )
    # Built straight from the layout, not as a `keras.models.clone_model` of a built Keras
    # ResNet: one graph construction instead of two, no full-width variables drawn at a
    # small depth multiplier, each layer made once (measured, ResNet-101 on a busy 2-core
    # CPU: 5.7-6.3 s → 2.2 s at depth multiplier 0.0625, 4.7-4.9 s → 2.9-3.4 s at 1).
    body = keras_resnet_v1_layout(depth, tf_od_api_layer)
    if weights is not None:
        resnet = RESNETS[depth](input_shape=(None, None, 3), include_top=False, weights=weights)
        copy_folding_conv_biases(resnet, {layer.name: layer for layer in body.layers})
    return body


def keras_resnet_v1_layout(depth, make_layer):
    """`keras.applications.ResNet{depth}` without top (`input_shape=(None, None, 3)`), each
    of its layers passed through `make_layer` before it is called.

    The layers are those `keras.applications` creates, with their names and configs, built
    in the same order (`keras.src.applications.resnet`'s `ResNet`, `stack_residual_blocks_v1`
    and `residual_block_v1`), so the model's layers come in `keras.applications`' order, by
    which TF2 checkpoints name them (`layer_with_weights-N`). `make_layer` gets each one
    unbuilt, and what it returns is built in its place: the copy `keras.models.clone_model`
    would make with it as `clone_function`, without building the Keras model first.

    Args:
        depth: int, 50, 101 or 152.
        make_layer: function from a new `keras.applications` layer to the layer to use.

    Returns:
        A functional `keras.Model` named `resnet{depth}`, images `[batch, height, width, 3]`
        → the output of `conv5_block3_out`.
    """
    layers = keras.layers

    def apply(layer, x):
        return make_layer(layer)(x)

    def conv_bn(x, filters, kernel_size, name, strides=1, padding="valid"):
        x = apply(layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                                name=f"{name}_conv"), x)
        return apply(layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=f"{name}_bn"), x)

    def block(x, filters, name, stride=1, conv_shortcut=True):
        shortcut = x
        if conv_shortcut:
            shortcut = conv_bn(x, 4 * filters, 1, f"{name}_0", strides=stride)
        x = conv_bn(x, filters, 1, f"{name}_1", strides=stride)
        x = apply(layers.Activation("relu", name=f"{name}_1_relu"), x)
        x = conv_bn(x, filters, 3, f"{name}_2", padding="same")
        x = apply(layers.Activation("relu", name=f"{name}_2_relu"), x)
        x = conv_bn(x, 4 * filters, 1, f"{name}_3")
        x = apply(layers.Add(name=f"{name}_add"), [shortcut, x])
        return apply(layers.Activation("relu", name=f"{name}_out"), x)

    images = layers.Input(shape=(None, None, 3))
    x = apply(layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad"), images)
    x = conv_bn(x, 64, 7, "conv1", strides=2)
    x = apply(layers.Activation("relu", name="conv1_relu"), x)
    x = apply(layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad"), x)
    x = apply(layers.MaxPooling2D(3, strides=2, name="pool1_pool"), x)
    for stage, (blocks, filters) in enumerate(zip(SLIM_UNITS[depth], SLIM_BASE_DEPTHS), 2):
        x = block(x, filters, f"conv{stage}_block1", stride=1 if stage == 2 else 2)
        for index in range(2, blocks + 1):
            x = block(x, filters, f"conv{stage}_block{index}", conv_shortcut=False)
    return keras.Model(images, x, name=f"resnet{depth}")


def slim_resnet_v1_body(
    depth=50,
    depth_multiplier=1.0,
    min_depth=8,
    hyperparams=None,
    output_stride=None,
    store_non_strided_activations=False,
):
    """A ResNet V1 body laid out as TF-Slim's `resnet_v1_{depth}` (the TF OD API's TF1 ResNet
    extractors and the slim classification checkpoints `resnet_v1_50.ckpt`, ...).

    It differs from the TF2 layout (`resnet_v1_body`) in where and how it strides: each of
    slim's `block1..3` (Keras stages `conv2..4`) strides in the 3x3 convolution of its LAST
    unit (Keras: the first unit's 1x1 convolutions), a strided convolution pads explicitly
    (`conv2d_same`: `(k - 1) // 2` before, the rest after, then "valid"), a unit whose input
    and output depths match subsamples its shortcut (every `s`-th pixel) rather than adding
    it as it is, and the root convolution keeps 64 filters at any `depth_multiplier`: each
    block's bottleneck depth is `max(int(base * depth_multiplier), min_depth)` (bases 64, 128,
    256, 512) and its output depth four times that. With `output_stride` the blocks stop
    striding once that stride is reached and their 3x3 convolutions dilate instead (slim's
    `stack_blocks_dense`). Stage 5 (slim's `block4`: three units, depth `4 * 512 *
    multiplier`) never strides nor dilates, as in slim's classification network and in the
    second stage the TF1 Faster R-CNN extractor builds on its RoI crops.

    Layers carry `keras.applications` ResNet names (`conv1_conv`, `conv4_block6_2_conv`,
    `conv4_block6_0_conv` for the shortcut convolution, `conv4_block6_out`, ...), so slim
    scope `resnet_v1_50/block3/unit_6/bottleneck_v1/conv2` is layer `conv4_block6_2_conv` and
    its batch norm `conv4_block6_2_bn`.

    Args:
        depth: int, 50, 101 or 152. Defaults to `50`.
        depth_multiplier: float. Width multiplier of the bottleneck units. Defaults to `1.0`.
        min_depth: int. The fewest bottleneck filters (slim's `min_base_depth`). Defaults to
            `8`.
        hyperparams: a `kdet.layers.ConvHyperparams`, or `None` for
            `tf_od_api_resnet_hyperparams()`. Convolutions have no bias when a batch norm
            follows them. Defaults to `None`.
        output_stride: `None` (slim's classification network: stage 4 at stride 32), 16
            (stage 4 does not stride: the TF1 Faster R-CNN's `first_stage_features_stride`)
            or 8 (neither does stage 3, and stage 4 is atrous, rate 2). Defaults to `None`.
        store_non_strided_activations: bool. As slim's `store_non_strided_activations` (the
            TF OD API's TF1 SSD ResNet FPN extractors): each of `block1..3` runs its last unit
            at stride 1, so its output `conv{s}_block{u}_out` has the stride of its input, and
            subsamples after it (`conv{s}_subsample`, every 2nd pixel): the next block's input
            and the weights are the same as without it. Not with `output_stride`. Defaults to
            `False`.

    Returns:
        A functional `keras.Model` from preprocessed images `[batch, height, width, 3]` to
        the stage-5 output `conv5_block3_out` (stride 32 or `output_stride`, `4 * max(int(512
        * depth_multiplier), min_depth)` channels); every block output is reachable with
        `get_layer`.

    Raises:
        ValueError: an unknown `depth` or `output_stride`.

    Example:
    ```python
    body = slim_resnet_v1_body(50, depth_multiplier=0.25, output_stride=16)
    body(tf.zeros([1, 128, 128, 3])).shape  # (1, 8, 8, 512)
    ```

    Reference:
        TF-Slim `nets/resnet_v1.py`, `nets/resnet_utils.py`.
    """
    if depth not in SLIM_UNITS:
        raise ValueError(f"depth must be one of {sorted(SLIM_UNITS)}; got {depth}")
    if output_stride not in (None, 8, 16):
        raise ValueError(f"output_stride must be None, 8 or 16; got {output_stride}")
    if store_non_strided_activations and output_stride is not None:
        raise ValueError(
            "store_non_strided_activations is for output_stride=None; got "
            f"output_stride={output_stride}"
        )
    hyperparams = hyperparams or tf_od_api_resnet_hyperparams()
    images = keras.Input((None, None, 3))
    x = _slim_conv(images, hyperparams, 64, 7, 2, 1, "conv1")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1_pool")(x)
    stride, rate = 4, 1
    for stage, (units, base) in enumerate(zip(SLIM_UNITS[depth], SLIM_BASE_DEPTHS), start=2):
        bottleneck = max(int(base * depth_multiplier), min_depth)
        subsample = 1
        for unit in range(1, units + 1):
            unit_stride = 2 if stage < 5 and unit == units else 1
            if store_non_strided_activations:
                subsample, unit_stride = unit_stride, 1
            name = f"conv{stage}_block{unit}"
            if stage == 5:
                x = _slim_bottleneck(x, hyperparams, bottleneck, 1, 1, name)
            elif output_stride is not None and stride == output_stride:
                x = _slim_bottleneck(x, hyperparams, bottleneck, 1, rate, name)
                rate *= unit_stride
            else:
                x = _slim_bottleneck(x, hyperparams, bottleneck, unit_stride, 1, name)
                stride *= unit_stride
        if subsample > 1:
            x = keras.layers.MaxPooling2D(1, subsample, name=f"conv{stage}_subsample")(x)
    return keras.Model(images, x, name=f"resnet_v1_{depth}")


def _slim_bottleneck(x, hyperparams, bottleneck, stride, rate, name):
    """Slim's `resnet_v1.bottleneck` unit (`{name}_1..3_conv`, shortcut `{name}_0_*`)."""
    depth = 4 * bottleneck
    if x.shape[-1] == depth:
        shortcut = x
        if stride > 1:
            shortcut = keras.layers.MaxPooling2D(1, stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = _slim_conv(x, hyperparams, depth, 1, stride, 1, f"{name}_0", activation=False)
    residual = _slim_conv(x, hyperparams, bottleneck, 1, 1, 1, f"{name}_1")
    residual = _slim_conv(residual, hyperparams, bottleneck, 3, stride, rate, f"{name}_2")
    residual = _slim_conv(residual, hyperparams, depth, 1, 1, 1, f"{name}_3", activation=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _slim_conv(x, hyperparams, filters, kernel_size, stride, rate, name, activation=True):
    """Slim's convolution + batch norm (+ activation), `{name}_conv/_bn/_relu`; strided ones
    as `resnet_utils.conv2d_same` (explicit padding, then "valid")."""
    padding = "same"
    if stride > 1 and kernel_size > 1:
        total = (kernel_size - 1) * rate
        x = keras.layers.ZeroPadding2D(
            ((total // 2, total - total // 2),) * 2, name=f"{name}_pad"
        )(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        dilation_rate=rate,
        padding=padding,
        name=f"{name}_conv",
        **hyperparams.conv_kwargs(),
    )(x)
    batch_norm = hyperparams.batch_norm_layer(name=f"{name}_bn")
    if batch_norm is not None:
        x = batch_norm(x)
    act = hyperparams.activation_layer(name=f"{name}_relu") if activation else None
    return act(x) if act is not None else x


def _tf_od_api_layer(layer, hyperparams, depth_multiplier, min_depth, clone_function):
    """The layer the TF OD API's `_LayersOverride` builds in place of a new, unbuilt
    `keras.applications` ResNet layer: batch norms and ReLUs set up by `hyperparams`
    (`hyperparams_clone`), convolutions narrowed, without bias and with the hyperparams'
    initializer and regularizer, the first pool "SAME"; other layers are used as they are
    (each layer is made once: the body's build time is mostly layer making)."""
    if isinstance(layer, keras.layers.BatchNormalization | keras.layers.Activation):
        return hyperparams_clone(layer, hyperparams)
    if layer.name == "pool1_pad":
        # The TF OD API replaces Keras's explicit padding by a no-op ...
        return keras.layers.Identity(name=layer.name)
    copy = clone_function(layer) if clone_function else layer
    config = copy.get_config()
    if layer.name == "pool1_pool":
        # ... and pools with "SAME" padding (slim's resnet arg scope).
        config["padding"] = "same"
    elif isinstance(copy, keras.layers.Conv2D):
        config["filters"] = max(int(config["filters"] * depth_multiplier), min_depth)
        config["use_bias"] = False
        config = hyperparams.layer_config_overrides(config)
    else:
        return copy
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


# The TF OD API's ResNet preprocessing: RGB channel means subtracted (VGG's).
CHANNEL_MEANS = (123.68, 116.779, 103.939)


class ResNetBodyOptions:
    """What the feature extractors built on `resnet_v1_body` share: the TF OD API's ResNet
    preprocessing (`CHANNEL_MEANS` subtracted) and the body's arguments in `get_config`
    (`depth_multiplier`, `min_depth`, `tf_od_api_body`, and `slim_layout` where the extractor
    has one); extractors saved before 2026-12 (no `tf_od_api_body`) load with the
    `keras.applications` body they had. Mixed in before the extractor's base class."""

    def preprocess(self, images):
        return keras.ops.cast(images, "float32") - keras.ops.convert_to_tensor(CHANNEL_MEANS)

    def get_config(self):
        config = super().get_config()
        config.update(
            depth_multiplier=self.depth_multiplier,
            min_depth=self.min_depth,
            tf_od_api_body=self.tf_od_api_body,
        )
        if hasattr(self, "slim_layout"):
            config["slim_layout"] = self.slim_layout
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config({"tf_od_api_body": False, **config})
