"""Feature pyramid network: the top-down pathway of FPN, RetinaNet and FPNLite."""

import keras

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.conv_hyperparams import ConvHyperparamsProperties

# The `FeaturePyramid` default: the TF OD API RetinaNet conv_hyperparams
# (truncated_normal_initializer stddev 0.03, RELU_6, batch_norm decay 0.997, epsilon 0.001,
# scale true).
DEFAULT_CONV_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
    activation="relu6",
    batch_norm={"momentum": 0.997, "epsilon": 1e-3, "center": True, "scale": True},
)


def pyramid_hyperparams(
    conv_hyperparams=None,
    default=DEFAULT_CONV_HYPERPARAMS,
    activation=None,
    kernel_initializer=None,
    kernel_regularizer=None,
    regularize_depthwise=None,
):
    """The `ConvHyperparams` of a pyramid: `conv_hyperparams` (or `default`), with the
    arguments of components saved before `conv_hyperparams` existed folded in.

    Args:
        conv_hyperparams: a `ConvHyperparams`, its config, or None (`default`).
        default: the `ConvHyperparams` used when `conv_hyperparams` is None.
        activation, kernel_initializer, kernel_regularizer, regularize_depthwise: the old
            separate arguments, or None (absent).

    Returns:
        A `ConvHyperparams`.
    """
    hyperparams = conv_hyperparams_lib.get(conv_hyperparams) or default
    changes = {}
    if activation is not None:
        changes["activation"] = activation
    if kernel_initializer is not None:
        changes["kernel_initializer"] = keras.initializers.get(kernel_initializer)
    if changes:
        hyperparams = hyperparams.replace(**changes)
    return conv_hyperparams_lib.with_legacy_regularization(
        hyperparams, kernel_regularizer, regularize_depthwise
    )


@keras.saving.register_keras_serializable(package="kdet")
class FeaturePyramid(ConvHyperparamsProperties, keras.layers.Layer):
    """Turns backbone maps of levels `min_level..k` into pyramid levels `min_level..max_level`.

    Level `l` has stride `2**l`. The coarsest backbone map (level `k`) goes through a 1x1
    convolution to `depth` channels; each finer level adds its own 1x1 lateral projection to
    the nearest-neighbour x2 upsampling of the level above and smooths the sum with a 3x3
    convolution (separable with `use_depthwise`, the FPNLite head), batch norm and the
    activation. Levels `k + 1..max_level` are stride-2 3x3 convolutions (again separable with
    `use_depthwise`) + batch norm + activation, each on the level below, starting from the
    projected level `k`. Projections have a bias and no batch norm nor activation (as in the
    TF OD API, whatever `conv_hyperparams` say); all outputs have `depth` channels.
    `conv_hyperparams` (the TF OD API `conv_hyperparams` of the feature extractor) give every
    convolution its initializer and regularizer and the smoothing and extra layers their batch
    norm (none without `batch_norm`: the convolutions then keep a bias) and activation.

    This is the TF OD API `KerasFpnTopDownFeatureMaps` plus the coarse layers of its SSD FPN
    extractors; like that Keras version the top-down pathway carries the smoothed map down
    to the next level. With `slim_layout` it is the TF OD API's TF1 (TF-Slim)
    `fpn_top_down_feature_maps`, which carries the sum before smoothing (same weights).

    The upsampled map is cropped to the size of the finer map, so inputs whose side is not a
    multiple of `2**k` work with backbones that round odd sizes up ("same" padding).

    Args:
        min_level: int. Level of the first input map and of the first output.
        max_level: int. Level of the last output. Inputs must stop at or below it.
        depth: int. Channels of every output map.
        use_depthwise: bool. Separable (depthwise 3x3 + pointwise) instead of plain 3x3
            convolutions for the smoothing and extra layers. Defaults to `False`.
        use_explicit_padding: bool. Pad the stride-2 extra layers by one pixel on every side
            and convolve with "valid" padding (TF OD API `use_explicit_padding`), instead of
            "same" padding. On stride-1 layers the two agree. Defaults to `False`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `DEFAULT_CONV_HYPERPARAMS`: `TruncatedNormal(stddev=0.03)` kernels, no
            regularizer, batch norm momentum 0.997, epsilon 1e-3 with scale, ReLU6 (the TF
            OD API RetinaNet conv_hyperparams). Each layer gets its own initializer copy.
            Defaults to `None`.
        activation: `"relu"`, `"relu6"`, `"swish"` or `None`: replaces the activation of
            `conv_hyperparams` (the argument of pyramids saved before `conv_hyperparams`).
            Defaults to `None` (keep it).
        kernel_initializer: a Keras initializer replacing that of `conv_hyperparams`, or
            `None` (keep it). Defaults to `None`.
        kernel_regularizer: a Keras regularizer replacing that of `conv_hyperparams`, or
            `None` (keep it). Defaults to `None`.
        regularize_depthwise: bool replacing that of `conv_hyperparams`, or `None` (keep
            it). Defaults to `None`.
        slim_layout: bool. The top-down pathway of the TF OD API's TF1 (TF-Slim) FPN: level
            `l` receives the upsampled sum `projection + upsampled` of level `l + 1`, not its
            smoothed output. Defaults to `False` (the TF2 Keras pathway).
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        inputs: list of float tensors `[batch, h_l, w_l, c_l]` for levels `min_level, ...,
            k`, finest first, or a dict `{level: tensor}` with those levels as keys.

    Returns:
        A list of `max_level - min_level + 1` float tensors `[batch, h_l, w_l, depth]`,
        finest first.

    Example:
    ```python
    pyramid = kdet.feature_extractors.FeaturePyramid(min_level=3, max_level=7, depth=64)
    c3, c4, c5 = tf.zeros([1, 16, 16, 32]), tf.zeros([1, 8, 8, 64]), tf.zeros([1, 4, 4, 128])
    [p.shape[1] for p in pyramid([c3, c4, c5])]  # [16, 8, 4, 2, 1]
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/feature_map_generators.py`.
    """

    def __init__(
        self,
        min_level,
        max_level,
        depth,
        use_depthwise=False,
        use_explicit_padding=False,
        conv_hyperparams=None,
        activation=None,
        kernel_initializer=None,
        kernel_regularizer=None,
        regularize_depthwise=None,
        slim_layout=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if min_level > max_level:
            raise ValueError(
                f"min_level must not exceed max_level; got min_level={min_level}, "
                f"max_level={max_level}."
            )
        if depth < 1:
            raise ValueError(f"depth must be a positive number of channels; got {depth}.")
        self.min_level = min_level
        self.max_level = max_level
        self.depth = depth
        self.use_depthwise = use_depthwise
        self.use_explicit_padding = use_explicit_padding
        self.slim_layout = bool(slim_layout)
        self.conv_hyperparams = pyramid_hyperparams(
            conv_hyperparams,
            activation=activation,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            regularize_depthwise=regularize_depthwise,
        )

    def build(self, input_shape):
        shapes = self._level_list(input_shape)
        for level, shape in enumerate(shapes, start=self.min_level):
            if len(shape) != 4 or shape[-1] is None:
                raise ValueError(
                    f"{type(self).__name__} expects 4-D feature maps [batch, height, width, "
                    f"channels] with known channels; level {level} has shape {shape}."
                )
        top_level = self.min_level + len(shapes) - 1
        if top_level > self.max_level:
            raise ValueError(
                f"{type(self).__name__} got input levels {self.min_level}..{top_level}, above "
                f"max_level={self.max_level}; pass only the levels up to max_level."
            )
        self.lateral_convs = [
            keras.layers.Conv2D(
                self.depth,
                1,
                name=f"projection_{level}",
                **self.conv_hyperparams.conv_kwargs(use_bias=True),
            )
            for level in range(self.min_level, top_level + 1)
        ]
        self.smoothing_blocks = [
            self._conv_block(f"smoothing_{level}", strides=1)
            for level in range(self.min_level, top_level)
        ]
        self.extra_blocks = [
            self._conv_block(f"bottom_up_{level}", strides=2)
            for level in range(top_level + 1, self.max_level + 1)
        ]
        pyramid_shape = (None, None, None, self.depth)
        for lateral_conv, shape in zip(self.lateral_convs, shapes):
            lateral_conv.build(shape)
        for block in self.smoothing_blocks + self.extra_blocks:
            block.build(pyramid_shape)

    def call(self, inputs, training=None):
        features = self._level_list(inputs)
        top_down = self.lateral_convs[-1](features[-1])
        pyramid = [top_down]
        for index in reversed(range(len(features) - 1)):
            lateral = self.lateral_convs[index](features[index])
            top_down = _upsample_like(top_down, lateral) + lateral
            smoothed = self.smoothing_blocks[index](top_down, training=training)
            if not self.slim_layout:
                top_down = smoothed
            pyramid.insert(0, smoothed)
        coarse = pyramid[-1]
        for block in self.extra_blocks:
            coarse = block(coarse, training=training)
            pyramid.append(coarse)
        return pyramid

    def _level_list(self, inputs):
        """Maps (or their shapes), finest first, from a list or a `{level: map}` dict."""
        if not isinstance(inputs, dict):
            return list(inputs)
        # Keys may come back as strings from a saved build config.
        by_level = {int(level): value for level, value in inputs.items()}
        expected = list(range(self.min_level, self.min_level + len(by_level)))
        if sorted(by_level) != expected:
            raise ValueError(
                f"{type(self).__name__} needs consecutive levels starting at "
                f"min_level={self.min_level}, i.e. {expected}; got levels {sorted(by_level)}."
            )
        return [by_level[level] for level in expected]

    def _conv_block(self, name, strides):
        """3x3 convolution (separable with `use_depthwise`), batch norm and activation."""
        padding = "same"
        layers = []
        if self.use_explicit_padding and strides > 1:
            padding = "valid"
            layers.append(keras.layers.ZeroPadding2D(1, name=f"{name}_padding"))
        hyperparams = self.conv_hyperparams
        if self.use_depthwise:
            conv = keras.layers.SeparableConv2D(
                self.depth,
                3,
                strides=strides,
                padding=padding,
                name=f"{name}_depthwise_conv",
                **hyperparams.separable_conv_kwargs(),
            )
        else:
            conv = keras.layers.Conv2D(
                self.depth,
                3,
                strides=strides,
                padding=padding,
                name=f"{name}_conv",
                **hyperparams.conv_kwargs(),
            )
        layers += [
            conv,
            hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
            hyperparams.activation_layer(name=name),
        ]
        return keras.Sequential([layer for layer in layers if layer is not None], name=name)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "min_level": self.min_level,
                "max_level": self.max_level,
                "depth": self.depth,
                "use_depthwise": self.use_depthwise,
                "use_explicit_padding": self.use_explicit_padding,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "slim_layout": self.slim_layout,
            }
        )
        return config


def backbone_endpoints(level_endpoints, min_level, max_level):
    """Names of the backbone maps an FPN of levels `min_level..max_level` reads.

    Args:
        level_endpoints: dict `{level: layer name}` of the backbone's maps.
        min_level: int. Finest pyramid level; must be a key of `level_endpoints`.
        max_level: int. Coarsest pyramid level; levels above the backbone's last one are
            built by `FeaturePyramid`'s extra layers.

    Returns:
        The layer names of levels `min_level..min(max_level, last backbone level)`.
    """
    if min_level not in level_endpoints or min_level > max_level:
        raise ValueError(
            f"fpn_min_level must be one of the backbone levels {sorted(level_endpoints)} and at "
            f"most fpn_max_level; got fpn_min_level={min_level}, fpn_max_level={max_level}."
        )
    top_level = min(max_level, max(level_endpoints))
    return [level_endpoints[level] for level in range(min_level, top_level + 1)]


def _upsample_like(top_down, reference):
    """Nearest-neighbour x2 upsampling of `top_down`, cropped to the size of `reference`."""
    upsampled = keras.ops.repeat(keras.ops.repeat(top_down, 2, axis=1), 2, axis=2)
    shape = keras.ops.shape(reference)
    return upsampled[:, : shape[1], : shape[2], :]
