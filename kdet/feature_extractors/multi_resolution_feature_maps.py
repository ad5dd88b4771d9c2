"""The extra feature maps the plain SSD extractors build on their body's last map.

The TF OD API's `multi_resolution_feature_maps` (TF1, slim) and
`KerasMultiResolutionFeatureMaps` (TF2) with `insert_1x1_conv=True`: each extra map is a 1x1
convolution to half its depth, then a stride-2 convolution (or depthwise + 1x1 with
`use_depthwise`), each followed by batch norm and activation. SSD MobileNetV1 and V2 share it;
the layer names are the TF OD API's, so checkpoints map by name.

`SSDMultiResolutionFeatureExtractor` is the extractor around them: a body's maps, then the
extra layers grown one from another out of the body's last map.
"""

import keras

from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor
from kdet.feature_extractors.ssd_feature_extractor import check_pad_to_multiple
from kdet.feature_extractors.ssd_feature_extractor import extractor_hyperparams
from kdet.feature_extractors.ssd_feature_extractor import pad_to_multiple
from kdet.layers.conv_hyperparams import ConvHyperparamsProperties


class SSDMultiResolutionFeatureExtractor(ConvHyperparamsProperties, SSDFeatureExtractor):
    """A body's feature maps plus extra layers on its last one: the plain SSD extractor.

    What the SSD MobileNetV1 / V2, Inception and mobile (MobileNetV3, EdgeTPU, MobileDet)
    extractors share, the TF OD API's `multi_resolution_feature_maps` layout: images (scaled
    to [-1, 1] by `preprocess`) are zero-padded to `pad_to_multiple`, the body gives its maps,
    and each extra layer (`extra_feature_map_layers`) turns the previous map into the next.

    A subclass calls this `__init__`, then sets `self.body` (a `keras.Model`, images
    `[batch, height, width, 3]` → one map or a list of maps `[batch, h_i, w_i, c_i]`, finest
    first) and `self.extra_layers` (list of layers, each `[batch, h, w, c]` → the next map).
    `get_config` holds the arguments stored here but `use_depthwise` (which not every
    subclass takes); a subclass adds its own.

    Args:
        depth_multiplier: float, stored as given.
        min_depth: int, stored as given.
        use_depthwise: stored as given (a subclass passes `bool(...)` where it wants one).
        use_explicit_padding: bool.
        pad_to_multiple: int >= 1 (`check_pad_to_multiple`).
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `default_conv_hyperparams`.
        default_conv_hyperparams: a `kdet.layers.ConvHyperparams`.
        override_base_feature_extractor_hyperparams: bool.
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`.
        kernel_regularizer, regularize_depthwise: legacy arguments folded into
            `conv_hyperparams` (`extractor_hyperparams`), or `None`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        depth_multiplier,
        min_depth,
        use_depthwise,
        use_explicit_padding,
        pad_to_multiple,
        conv_hyperparams,
        default_conv_hyperparams,
        override_base_feature_extractor_hyperparams,
        backbone_weights=None,
        kernel_regularizer=None,
        regularize_depthwise=None,
        **kwargs,
    ):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.use_depthwise = use_depthwise
        self.use_explicit_padding = bool(use_explicit_padding)
        self.pad_to_multiple = check_pad_to_multiple(pad_to_multiple)
        self.conv_hyperparams = extractor_hyperparams(
            conv_hyperparams, default_conv_hyperparams, kernel_regularizer, regularize_depthwise
        )
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams
        )

    def _body_maps(self, outputs):
        """The body's outputs (or output shapes) as a list, one per body map."""
        return list(outputs) if len(self.body.outputs) > 1 else [outputs]

    def build(self, input_shape):
        feature_shape = self._body_maps(self.body.compute_output_shape(input_shape))[-1]
        for extra_layer in self.extra_layers:
            extra_layer.build(feature_shape)
            feature_shape = extra_layer.compute_output_shape(feature_shape)

    def preprocess(self, images):
        """float32 `[batch, height, width, 3]` pixels 0..255 → `x * 2 / 255 - 1`, in [-1, 1]."""
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def call(self, images, training=None):
        """Preprocessed images `[batch, height, width, 3]` → list of the body's maps and then
        the extra maps, `[batch, h_i, w_i, c_i]` each, finest first."""
        images = pad_to_multiple(images, self.pad_to_multiple)
        feature_maps = self._body_maps(self.body(images, training=training))
        for extra_layer in self.extra_layers:
            feature_maps.append(extra_layer(feature_maps[-1], training=training))
        return feature_maps

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_multiplier": self.depth_multiplier,
                "min_depth": self.min_depth,
                "use_explicit_padding": self.use_explicit_padding,
                "pad_to_multiple": self.pad_to_multiple,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "override_base_feature_extractor_hyperparams": (
                    self.override_base_feature_extractor_hyperparams
                ),
            }
        )
        return config


def scaled_depth(depth, depth_multiplier, min_depth):
    """`max(int(depth * depth_multiplier), min_depth)`: the TF OD API `get_depth_fn`."""
    return max(int(depth * depth_multiplier), min_depth)


def extra_feature_map_layers(
    base_name,
    first_index,
    depths,
    hyperparams,
    depth_multiplier=1.0,
    min_depth=16,
    kernel_sizes=None,
    use_depthwise=False,
    use_explicit_padding=False,
):
    """One `keras.Sequential` per extra feature map, each fed the previous map.

    Map `index` (`first_index`, `first_index + 1`, ...) of nominal depth `d` and kernel size
    `k` is a 1x1 convolution `{base_name}_1_Conv2d_{index}_1x1_{d // 2 scaled}`, then a
    stride-2 `k`x`k` convolution `{base_name}_2_Conv2d_{index}_{k}x{k}_s2_{d scaled}` (with
    `use_depthwise`: a depthwise `k`x`k` convolution `..._depthwise` and a 1x1 convolution),
    each `[conv, batch norm, activation]` as `conv_block` names them; depths are scaled by
    `scaled_depth`. The Sequential is named `{base_name}_Conv2d_{index}`.

    Args:
        base_name: str. TF OD API name of the body map the extra maps grow from
            (`"layer_19"` for MobileNetV2, `"Conv2d_13_pointwise"` for MobileNetV1).
        first_index: int. Position of the first extra map in the TF OD API
            `feature_map_layout` (the number of body maps before it).
        depths: sequence of int, the nominal depth of each extra map.
        hyperparams: a `kdet.layers.ConvHyperparams` setting up every layer.
        depth_multiplier: float. Defaults to `1.0`.
        min_depth: int. Defaults to `16`.
        kernel_sizes: sequence of int, the stride-2 kernel size of each map, or `None` for 3
            everywhere (the TF OD API `conv_kernel_size`). Defaults to `None`.
        use_depthwise: bool. Defaults to `False`.
        use_explicit_padding: bool. Pad as TF OD API `ops.fixed_padding` before each stride-2
            convolution and convolve with "valid" padding, instead of "same". Defaults to
            `False`.

    Returns:
        list of `keras.Sequential`, `[batch, h, w, c]` → `[batch, ceil(h / 2), ceil(w / 2),
        d scaled]` each.
    """
    kernel_sizes = kernel_sizes or (3,) * len(depths)
    blocks = []
    for index, depth, kernel_size in zip(
        range(first_index, first_index + len(depths)), depths, kernel_sizes
    ):
        reduced = scaled_depth(depth // 2, depth_multiplier, min_depth)
        out = scaled_depth(depth, depth_multiplier, min_depth)
        layers = conv_block(hyperparams, f"{base_name}_1_Conv2d_{index}_1x1_{reduced}", 1, reduced)
        name = f"{base_name}_2_Conv2d_{index}_{kernel_size}x{kernel_size}_s2_{out}"
        if use_depthwise:
            layers += conv_block(
                hyperparams, f"{name}_depthwise", kernel_size, strides=2,
                explicit_padding=use_explicit_padding,
            )
            layers += conv_block(hyperparams, name, 1, out)
        else:
            layers += conv_block(
                hyperparams, name, kernel_size, out, strides=2,
                explicit_padding=use_explicit_padding,
            )
        blocks.append(keras.Sequential(layers, name=f"{base_name}_Conv2d_{index}"))
    return blocks


def conv_block(hyperparams, name, kernel_size, filters=None, strides=1, explicit_padding=False):
    """`[conv, batch norm, activation]` named `{name}_conv`, `{name}_batchnorm`, `{name}`.

    `filters=None` makes the convolution depthwise. `hyperparams` (a `ConvHyperparams`) set up
    all three; without batch norm or activation those layers are left out. With
    `explicit_padding` a `{name}_padding` layer pads as TF OD API `ops.fixed_padding`
    (`(kernel_size - 1) // 2` pixels before, the rest after: one on every side for 3x3) and
    the convolution is "valid".
    """
    padding = []
    if explicit_padding and kernel_size > 1:
        before = (kernel_size - 1) // 2
        after = kernel_size - 1 - before
        padding = [
            keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{name}_padding")
        ]
    conv_kwargs = {
        "strides": strides,
        "padding": "valid" if padding else "same",
        "name": f"{name}_conv",
    }
    if filters is None:
        conv = keras.layers.DepthwiseConv2D(
            kernel_size, **conv_kwargs, **hyperparams.depthwise_conv_kwargs()
        )
    else:
        conv = keras.layers.Conv2D(
            filters, kernel_size, **conv_kwargs, **hyperparams.conv_kwargs()
        )
    layers = [
        *padding,
        conv,
        hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
        hyperparams.activation_layer(name=name),
    ]
    return [layer for layer in layers if layer is not None]
