"""The blocks of the mobile bodies (MobileNetV3, MobileNet EdgeTPU, MobileDet), once each.

- `ConvBatchNorm`: a convolution (or depthwise convolution), batch norm and activation.
- `SqueezeExcite`: channel gating by a global-pooled two-layer bottleneck.
- `InvertedBottleneck`: 1x1 expansion, depthwise convolution, optional squeeze-excite, 1x1
  linear projection and residual (MobileNetV2/V3 `expanded_conv`, MobileDet `IBN`); without
  expansion (`IBNNoExpansion`); or "fused", the expansion a full k x k convolution and no
  depthwise one (EdgeTPU `mbv3_fused`, MobileDet `FusedConv`).
- `TuckerConv`: 1x1 reduction, k x k convolution between the two ranks, 1x1 projection
  (MobileDet `TuckerConv`).

Activations are named as `keras.activations` names them: `"relu"`, `"relu6"`, `"hard_swish"`
(MobileNetV3's `x * relu6(x + 3) / 6`, MobileDet's `swish6`), `"hard_sigmoid"`, `"sigmoid"`,
`None` (linear). Each block's sublayers are listed, in call order and with their roles, by its
`units` (what checkpoint mappings read).
"""

import keras

from kdet.layers import conv_hyperparams as conv_hyperparams_lib

# Blocks without `hyperparams`: Keras's default initializer, TF-Slim's batch norm.
_DEFAULT_HYPERPARAMS = conv_hyperparams_lib.ConvHyperparams(
    batch_norm={"momentum": 0.997, "epsilon": 1e-3, "center": True, "scale": True}
)


def _hyperparams(hyperparams):
    return conv_hyperparams_lib.get(hyperparams) or _DEFAULT_HYPERPARAMS


def _activation_layer(activation):
    if activation is None:
        return None
    if activation == "relu6":
        return keras.layers.ReLU(max_value=6.0, name="relu6")
    return keras.layers.Activation(activation, name=activation)


class _Block(keras.layers.Layer):
    """Stores `hyperparams` (a `ConvHyperparams`, its config, or None) and serializes it."""

    def __init__(self, hyperparams=None, **kwargs):
        super().__init__(**kwargs)
        self.hyperparams = _hyperparams(hyperparams)

    def get_config(self):
        config = super().get_config()
        config["hyperparams"] = keras.saving.serialize_keras_object(self.hyperparams)
        return config


@keras.saving.register_keras_serializable(package="kdet")
class ConvBatchNorm(_Block):
    """Convolution, batch norm, activation: TF-Slim's `conv2d` (or `separable_conv2d` without
    pointwise filters) with `normalizer_fn=batch_norm`.

    Args:
        filters: int, or None for a depthwise convolution.
        kernel_size: int.
        strides: int. Defaults to `1`.
        activation: activation name or None. Defaults to `"relu"`.
        batch_norm: bool. False: no batch norm, the convolution has a bias. Defaults to
            `True`.
        hyperparams: a `kdet.layers.ConvHyperparams` (initializer, regularizer, batch norm
            settings; its activation is not used), its config, or None. Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Input `[batch, height, width, channels]` → `[batch, height / strides, width / strides,
    filters or channels]` ("same" padding).
    """

    def __init__(self, filters, kernel_size, strides=1, activation="relu", batch_norm=True,
                 hyperparams=None, **kwargs):
        super().__init__(hyperparams=hyperparams, **kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.use_batch_norm = bool(batch_norm)
        use_bias = None if self.use_batch_norm else True
        common = {"strides": strides, "padding": "same"}
        if filters is None:
            self.conv = keras.layers.DepthwiseConv2D(
                kernel_size, **common, **self.hyperparams.depthwise_conv_kwargs(use_bias),
                name="depthwise",
            )
        else:
            self.conv = keras.layers.Conv2D(
                filters, kernel_size, **common, **self.hyperparams.conv_kwargs(use_bias),
                name="conv",
            )
        self.batch_norm = (
            self.hyperparams.batch_norm_layer(name="batchnorm") if self.use_batch_norm else None
        )
        if self.use_batch_norm and self.batch_norm is None:
            raise ValueError(
                f"{self.name}: batch_norm=True needs hyperparams with a batch_norm; got "
                f"{self.hyperparams!r}"
            )
        self.activation_layer = _activation_layer(activation)

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.batch_norm is not None:
            self.batch_norm.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        outputs = self.conv(inputs)
        if self.batch_norm is not None:
            outputs = self.batch_norm(outputs, training=training)
        if self.activation_layer is not None:
            outputs = self.activation_layer(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "activation": self.activation, "batch_norm": self.use_batch_norm,
        })
        return config


@keras.saving.register_keras_serializable(package="kdet")
class SqueezeExcite(_Block):
    """`x * gating(excite(activation(squeeze(mean over height and width of x))))`: two 1x1
    convolutions with biases, no batch norm (Hu et al., 2018).

    Args:
        filters: int, the channels of the squeeze convolution.
        activation: activation name of the squeeze convolution. Defaults to `"relu"`.
        gating: activation name of the excite convolution. Defaults to `"hard_sigmoid"`
            (MobileNetV3; MobileDet uses `"sigmoid"`).
        hyperparams: see `ConvBatchNorm` (initializer, regularizer). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Input and output `[batch, height, width, channels]`.
    """

    def __init__(self, filters, activation="relu", gating="hard_sigmoid", hyperparams=None,
                 **kwargs):
        super().__init__(hyperparams=hyperparams, **kwargs)
        self.filters = filters
        self.activation = activation
        self.gating = gating
        self.squeeze = ConvBatchNorm(filters, 1, activation=activation, batch_norm=False,
                                     hyperparams=self.hyperparams, name="squeeze")
        self.excite = None

    def build(self, input_shape):
        self.excite = ConvBatchNorm(input_shape[-1], 1, activation=self.gating,
                                    batch_norm=False, hyperparams=self.hyperparams,
                                    name="excite")
        pooled = (input_shape[0], 1, 1, input_shape[-1])
        self.squeeze.build(pooled)
        self.excite.build(self.squeeze.compute_output_shape(pooled))

    def call(self, inputs):
        pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
        return inputs * self.excite(self.squeeze(pooled))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "activation": self.activation, "gating": self.gating}
        )
        return config


@keras.saving.register_keras_serializable(package="kdet")
class InvertedBottleneck(_Block):
    """Inverted residual bottleneck (Sandler et al., 2018) with the MobileNetV3 / MobileDet
    options.

    `expand` (1x1 to `expansion_filters`; with `fused` a `kernel_size` convolution of stride
    `strides`) → `depthwise` (`kernel_size`, stride `strides`; none when `fused`) →
    `squeeze_excite` (with `squeeze_excite_filters`) → `project` (1x1 to `filters`, batch norm,
    linear) → `+ inputs` when `residual`, the stride is 1 and the depths agree (TF-Slim's
    `expanded_conv` rule). Every convolution but the projection is followed by batch norm and
    `activation`.

    Args:
        filters: int, the output channels.
        expansion_filters: int, or None for no expansion (`IBNNoExpansion`, or an
            `expanded_conv` whose expansion would not widen its input).
        kernel_size: int. Defaults to `3`.
        strides: int. Defaults to `1`.
        activation: activation name. Defaults to `"relu"`.
        fused: bool. Defaults to `False`.
        squeeze_excite_filters: int or None (no squeeze-excite). Defaults to `None`.
        squeeze_excite_activation: activation name inside the squeeze-excite, or None for
            `activation`. Defaults to `None`.
        squeeze_excite_gating: gating activation name. Defaults to `"hard_sigmoid"`.
        residual: bool. Defaults to `True`.
        return_expansion: bool. Also return the expansion's output (the TF OD API
            `layer_N/expansion_output` feature map). Defaults to `False`.
        hyperparams: see `ConvBatchNorm`. Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Input `[batch, height, width, channels]` → `[batch, height / strides, width / strides,
    filters]` (and, with `return_expansion`, the expansion `[batch, h, w,
    expansion_filters]`: after the stride when `fused`, before it otherwise).
    """

    def __init__(self, filters, expansion_filters=None, kernel_size=3, strides=1,
                 activation="relu", fused=False, squeeze_excite_filters=None,
                 squeeze_excite_activation=None, squeeze_excite_gating="hard_sigmoid",
                 residual=True, return_expansion=False, hyperparams=None, **kwargs):
        super().__init__(hyperparams=hyperparams, **kwargs)
        self.filters = filters
        self.expansion_filters = expansion_filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.fused = bool(fused)
        self.squeeze_excite_filters = squeeze_excite_filters
        self.squeeze_excite_activation = squeeze_excite_activation
        self.squeeze_excite_gating = squeeze_excite_gating
        self.residual = bool(residual)
        self.return_expansion = bool(return_expansion)
        if return_expansion and expansion_filters is None:
            raise ValueError(f"{self.name}: return_expansion needs an expansion_filters")
        if fused and expansion_filters is None and strides != 1:
            raise ValueError(f"{self.name}: a fused block without expansion cannot stride")
        hyperparams = self.hyperparams
        self.expand = None
        if expansion_filters is not None:
            self.expand = ConvBatchNorm(
                expansion_filters, kernel_size if fused else 1, strides if fused else 1,
                activation, hyperparams=hyperparams, name="expand",
            )
        self.depthwise = None if fused else ConvBatchNorm(
            None, kernel_size, strides, activation, hyperparams=hyperparams, name="depthwise"
        )
        self.squeeze_excite = None
        if squeeze_excite_filters:
            self.squeeze_excite = SqueezeExcite(
                squeeze_excite_filters, squeeze_excite_activation or activation,
                squeeze_excite_gating, hyperparams=hyperparams, name="squeeze_excite",
            )
        self.project = ConvBatchNorm(filters, 1, activation=None, hyperparams=hyperparams,
                                     name="project")

    @property
    def units(self):
        """`[(role, sublayer)]` in call order; roles `expand`, `depthwise`, `squeeze_excite`,
        `project`."""
        units = [("expand", self.expand), ("depthwise", self.depthwise),
                 ("squeeze_excite", self.squeeze_excite), ("project", self.project)]
        return [(role, layer) for role, layer in units if layer is not None]

    def build(self, input_shape):
        shape = input_shape
        for _, layer in self.units:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._adds_input = (
            self.residual and self.strides == 1 and input_shape[-1] == self.filters
        )

    def call(self, inputs, training=None):
        outputs = inputs
        expansion = None
        for role, layer in self.units:
            outputs = layer(outputs, training=training)
            if role == "expand":
                expansion = outputs
        if self._adds_input:
            outputs = outputs + inputs
        return [outputs, expansion] if self.return_expansion else outputs

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for role, layer in self.units:
            shape = layer.compute_output_shape(shape)
            if role == "expand":
                expansion_shape = shape
        return [shape, expansion_shape] if self.return_expansion else shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "expansion_filters": self.expansion_filters,
            "kernel_size": self.kernel_size, "strides": self.strides,
            "activation": self.activation, "fused": self.fused,
            "squeeze_excite_filters": self.squeeze_excite_filters,
            "squeeze_excite_activation": self.squeeze_excite_activation,
            "squeeze_excite_gating": self.squeeze_excite_gating, "residual": self.residual,
            "return_expansion": self.return_expansion,
        })
        return config


@keras.saving.register_keras_serializable(package="kdet")
class TuckerConv(_Block):
    """Tucker convolution (MobileDet, Xiong et al., 2021): `reduce` (1x1 to `input_rank`) →
    `conv` (`kernel_size`, stride `strides`, to `output_rank`) → `project` (1x1 to `filters`,
    linear) → `+ inputs` when `residual`, the stride is 1 and the depths agree. Batch norm
    after each convolution, `activation` after the first two.

    Args:
        filters: int, the output channels.
        input_rank: int.
        output_rank: int.
        kernel_size: int. Defaults to `3`.
        strides: int. Defaults to `1`.
        activation: activation name. Defaults to `"relu6"`.
        residual: bool. Defaults to `True`.
        hyperparams: see `ConvBatchNorm`. Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Input `[batch, height, width, channels]` → `[batch, height / strides, width / strides,
    filters]`.
    """

    def __init__(self, filters, input_rank, output_rank, kernel_size=3, strides=1,
                 activation="relu6", residual=True, hyperparams=None, **kwargs):
        super().__init__(hyperparams=hyperparams, **kwargs)
        self.filters = filters
        self.input_rank = input_rank
        self.output_rank = output_rank
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.residual = bool(residual)
        hyperparams = self.hyperparams
        self.reduce = ConvBatchNorm(input_rank, 1, 1, activation, hyperparams=hyperparams,
                                    name="reduce")
        self.conv = ConvBatchNorm(output_rank, kernel_size, strides, activation,
                                  hyperparams=hyperparams, name="conv")
        self.project = ConvBatchNorm(filters, 1, activation=None, hyperparams=hyperparams,
                                     name="project")

    @property
    def units(self):
        """`[(role, sublayer)]` in call order: `reduce`, `conv`, `project`."""
        return [("reduce", self.reduce), ("conv", self.conv), ("project", self.project)]

    def build(self, input_shape):
        shape = input_shape
        for _, layer in self.units:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self._adds_input = (
            self.residual and self.strides == 1 and input_shape[-1] == self.filters
        )

    def call(self, inputs, training=None):
        outputs = inputs
        for _, layer in self.units:
            outputs = layer(outputs, training=training)
        return outputs + inputs if self._adds_input else outputs

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for _, layer in self.units:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "input_rank": self.input_rank,
            "output_rank": self.output_rank, "kernel_size": self.kernel_size,
            "strides": self.strides, "activation": self.activation, "residual": self.residual,
        })
        return config


def make_divisible(value, divisor=8, min_value=None):
    """MobileNet channel rounding (TF-Slim `_make_divisible`): `value` to the nearest multiple
    of `divisor`, at least `min_value` (default `divisor`) and 90% of `value`."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * value else rounded)


def sequential_body(blocks, endpoints, name):
    """A functional `keras.Model` running `blocks` one after the other.

    Args:
        blocks: list of Keras layers; a block built with `return_expansion` gives
            `[output, expansion]` and passes `output` on.
        endpoints: list of `(block index, "output" or "expansion")`, the model's outputs.
        name: str, the model's name.

    Returns:
        A `keras.Model` from images `[batch, height, width, 3]` to the endpoints' tensors.
    """
    images = keras.Input((None, None, 3))
    outputs = {}
    net = images
    for index, block in enumerate(blocks):
        net = block(net)
        if isinstance(net, (list, tuple)):
            net, outputs[index, "expansion"] = net
        outputs[index, "output"] = net
    missing = [endpoint for endpoint in endpoints if endpoint not in outputs]
    if missing:
        raise ValueError(f"{name}: no endpoints {missing} among its {len(blocks)} blocks")
    return keras.Model(images, [outputs[endpoint] for endpoint in endpoints], name=name)
