"""Feature pyramid network: the top-down pathway of FPN, RetinaNet and FPNLite."""

import keras

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# TF OD API conv_hyperparams of the FPN configs (RetinaNet, FPNLite): batch_norm decay 0.997,
# epsilon 0.001.
_BATCH_NORM_MOMENTUM = 0.997
_BATCH_NORM_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="kdet")
class FeaturePyramid(keras.layers.Layer):
    """Turns backbone maps of levels `min_level..k` into pyramid levels `min_level..max_level`.

    Level `l` has stride `2**l`. The coarsest backbone map (level `k`) goes through a 1x1
    convolution to `depth` channels; each finer level adds its own 1x1 lateral projection to
    the nearest-neighbour x2 upsampling of the level above and smooths the sum with a 3x3
    convolution (separable with `use_depthwise`, the FPNLite head), batch norm and the
    activation. Levels `k + 1..max_level` are stride-2 3x3 convolutions (again separable with
    `use_depthwise`) + batch norm + activation, each on the level below, starting from the
    projected level `k`. Projections have a bias and no activation; all outputs have `depth`
    channels. This is the TF OD API `KerasFpnTopDownFeatureMaps` plus the coarse layers of its
    SSD FPN extractors; like the Keras version (not the slim one) the top-down pathway carries
    the smoothed map down to the next level.

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
        activation: str. Keras activation after each batch norm. Defaults to `"relu6"` (the
            `RELU_6` of the TF OD API RetinaNet and FPNLite configs).
        kernel_initializer: Keras initializer (name, config dict or instance) of every
            convolution kernel; each layer gets its own copy. Defaults to `None`, meaning
            `TruncatedNormal(stddev=0.03)` (the TF OD API RetinaNet conv_hyperparams).
        kernel_regularizer: `keras.regularizers.Regularizer` (or its serialized form) of every
            convolution kernel (the pointwise ones of separable convolutions), or `None`: the
            TF OD API `conv_hyperparams` regularizer. Biases are not regularized. Defaults to
            `None`.
        regularize_depthwise: bool. Regularize the depthwise kernels of the separable
            convolutions too (TF OD API `regularize_depthwise`). Defaults to `False`.
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
        activation="relu6",
        kernel_initializer=None,
        kernel_regularizer=None,
        regularize_depthwise=False,
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
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.03)
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.regularize_depthwise = regularize_depthwise

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
                kernel_initializer=self._fresh_initializer(),
                kernel_regularizer=self.kernel_regularizer,
                name=f"projection_{level}",
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
            top_down = self.smoothing_blocks[index](top_down, training=training)
            pyramid.insert(0, top_down)
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

    def _fresh_initializer(self):
        # An unseeded Keras initializer draws its seed once, so a shared instance would give
        # every layer of the same shape identical weights.
        return keras.initializers.get(keras.initializers.serialize(self.kernel_initializer))

    def _conv_block(self, name, strides):
        """3x3 convolution (separable with `use_depthwise`), batch norm and activation."""
        padding = "same"
        layers = []
        if self.use_explicit_padding and strides > 1:
            padding = "valid"
            layers.append(keras.layers.ZeroPadding2D(1, name=f"{name}_padding"))
        if self.use_depthwise:
            conv = keras.layers.SeparableConv2D(
                self.depth,
                3,
                strides=strides,
                padding=padding,
                use_bias=False,
                depthwise_initializer=self._fresh_initializer(),
                pointwise_initializer=self._fresh_initializer(),
                depthwise_regularizer=(
                    self.kernel_regularizer if self.regularize_depthwise else None
                ),
                pointwise_regularizer=self.kernel_regularizer,
                name=f"{name}_depthwise_conv",
            )
        else:
            conv = keras.layers.Conv2D(
                self.depth,
                3,
                strides=strides,
                padding=padding,
                use_bias=False,
                kernel_initializer=self._fresh_initializer(),
                kernel_regularizer=self.kernel_regularizer,
                name=f"{name}_conv",
            )
        layers += [
            conv,
            FusedBatchNormalization(
                momentum=_BATCH_NORM_MOMENTUM, epsilon=_BATCH_NORM_EPSILON, name=f"{name}_batchnorm"
            ),
            keras.layers.Activation(self.activation, name=name),
        ]
        return keras.Sequential(layers, name=name)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "min_level": self.min_level,
                "max_level": self.max_level,
                "depth": self.depth,
                "use_depthwise": self.use_depthwise,
                "use_explicit_padding": self.use_explicit_padding,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "regularize_depthwise": self.regularize_depthwise,
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
