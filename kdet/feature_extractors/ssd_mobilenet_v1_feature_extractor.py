"""MobileNetV1 SSD feature extractor: Conv2d_11 and Conv2d_13 pointwise and four extra layers."""

import keras

from kdet.feature_extractors.mobilenet_v1_body import mobilenet_v1_body
from kdet.feature_extractors.mobilenet_v1_body import mobilenet_v1_filters
from kdet.feature_extractors.multi_resolution_feature_maps import SSDMultiResolutionFeatureExtractor
from kdet.feature_extractors.multi_resolution_feature_maps import extra_feature_map_layers
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import DEFAULT_CONV_HYPERPARAMS

# The body maps SSD reads: TF OD API `Conv2d_11_pointwise` (stride 16) and
# `Conv2d_13_pointwise` (stride 32).
BODY_ENDPOINTS = ("conv_pw_11_relu", "conv_pw_13_relu")
# Depths of the four extra feature maps built on Conv2d_13_pointwise (TF OD API
# feature_map_layout).
EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)
# The TF OD API's own MobileNetV1 settings without override_base_feature_extractor_hyperparams
# (slim `mobilenet_v1_arg_scope`, Keras `keras_models/mobilenet_v1.py`).
BODY_KERNEL_STDDEV = 0.09
BODY_BATCH_NORM_MOMENTUM = 0.9997


class SSDMobileNetV1FeatureExtractorBase(SSDMultiResolutionFeatureExtractor):
    """A MobileNetV1 body's maps plus the extra layers on its last one, for SSD.

    What `SSDMobileNetV1FeatureExtractor` (`ssd_mobilenet_v1`),
    `SSDMobileNetV1PPNFeatureExtractor` and `EmbeddedSSDMobileNetV1FeatureExtractor` share:
    the MobileNetV1 body (see `SSDMobileNetV1FeatureExtractor` for its settings and
    `slim_layout`), its maps `body_endpoints` (`Conv2d_11_pointwise`, `Conv2d_13_pointwise`),
    and extra layers (`kdet.feature_extractors.multi_resolution_feature_maps`) of nominal
    depths `extra_layer_depths` and stride-2 kernel sizes `extra_layer_kernel_sizes` on the
    last one. A subclass passes its layout and stores its own arguments in `get_config`.

    Args:
        depth_multiplier: float.
        min_depth: int.
        body_endpoints: sequence of `keras.applications.MobileNet` layer names, e.g.
            `("conv_pw_11_relu", "conv_pw_13_relu")`.
        extra_layer_depths: sequence of int.
        extra_layer_kernel_sizes: sequence of int, one per extra layer.
        use_depthwise, use_explicit_padding, pad_to_multiple, conv_hyperparams,
            override_base_feature_extractor_hyperparams, backbone_weights, slim_layout: see
            `SSDMobileNetV1FeatureExtractor`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        depth_multiplier,
        min_depth,
        body_endpoints,
        extra_layer_depths,
        extra_layer_kernel_sizes,
        use_depthwise=False,
        use_explicit_padding=False,
        pad_to_multiple=1,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        slim_layout=False,
        **kwargs,
    ):
        super().__init__(
            depth_multiplier,
            min_depth,
            bool(use_depthwise),
            use_explicit_padding,
            pad_to_multiple,
            conv_hyperparams,
            DEFAULT_CONV_HYPERPARAMS,
            override_base_feature_extractor_hyperparams,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.slim_layout = bool(slim_layout)
        self.body = self._make_body(body_endpoints)
        self.extra_layers = extra_feature_map_layers(
            "Conv2d_13_pointwise",
            len(body_endpoints),
            extra_layer_depths,
            self.conv_hyperparams,
            depth_multiplier,
            min_depth,
            kernel_sizes=extra_layer_kernel_sizes,
            use_depthwise=self.use_depthwise,
            use_explicit_padding=self.use_explicit_padding,
        )

    def _make_body(self, endpoints):
        """The MobileNetV1 body, images → the outputs of the layers named `endpoints`."""
        rule = "tf_od_api_tf1" if self.slim_layout else "tf_od_api_tf2"
        filters = mobilenet_v1_filters(self.depth_multiplier, None, self.min_depth, rule)
        if self.backbone_weights is not None and filters != mobilenet_v1_filters(
            self.depth_multiplier, rule="keras"
        ):
            raise ValueError(
                f"{self.backbone_weights} weights are Keras's MobileNet at depth multiplier "
                f"{self.depth_multiplier}; the TF OD API's body depths (min_depth="
                f"{self.min_depth}, slim_layout={self.slim_layout}) differ from its: use "
                "depth multiplier 1"
            )
        return mobilenet_v1_body(
            list(endpoints),
            self.depth_multiplier,
            self.backbone_weights,
            conv_filters=filters,
            use_explicit_padding=self.use_explicit_padding,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=BODY_KERNEL_STDDEV),
            kernel_regularizer=self.kernel_regularizer,
            batch_norm_momentum=BODY_BATCH_NORM_MOMENTUM,
            hyperparams=(
                self.conv_hyperparams
                if self.override_base_feature_extractor_hyperparams
                else None
            ),
        )

    def get_config(self):
        config = super().get_config()
        config["slim_layout"] = self.slim_layout
        return config


@register_feature_extractor("ssd_mobilenet_v1")
class SSDMobileNetV1FeatureExtractor(SSDMobileNetV1FeatureExtractorBase):
    """MobileNetV1 body plus four extra layers: the six feature maps of SSD MobileNetV1.

    The body is `keras.applications.MobileNet` (`alpha=depth_multiplier`) with the TF OD API's
    padding (see `kdet.feature_extractors.mobilenet_v1_body`). Its feature maps are
    `conv_pw_11_relu` (TF OD API `Conv2d_11_pointwise`, 512 channels at depth multiplier 1,
    stride 16) and `conv_pw_13_relu` (`Conv2d_13_pointwise`, 1024, stride 32). Four extra
    layers follow, of depths 512, 256, 256 and 128, each a 1x1 convolution to half the depth
    and a stride-2 3x3 convolution (depthwise 3x3 + 1x1 with `use_depthwise`: the SSDLite
    `ssdlite_mobilenet_v1_coco` layout), every convolution followed by batch norm and the
    `conv_hyperparams` activation (see `kdet.feature_extractors.multi_resolution_feature_maps`).
    At 300x300 the maps are 19, 10, 5, 3, 2 and 1 pixels wide. This is the TF OD API
    `SSDMobileNetV1FeatureExtractor` (`ssd_mobilenet_v1`, TF1) and
    `SSDMobileNetV1KerasFeatureExtractor` (`ssd_mobilenet_v1_keras`, TF2).

    `conv_hyperparams` set up the extra layers. The body keeps the TF OD API's MobileNetV1
    settings (kernels `TruncatedNormal(stddev=0.09)`, batch norm momentum 0.9997, epsilon 1e-3,
    ReLU6; slim's `mobilenet_v1_arg_scope` and TF2's `keras_models/mobilenet_v1.py`), its
    kernels (depthwise ones included) regularized by the `conv_hyperparams` regularizer. With
    `override_base_feature_extractor_hyperparams` the body takes `conv_hyperparams` instead.

    The extra layers carry the TF OD API names (`Conv2d_13_pointwise_1_Conv2d_2_1x1_256_conv`,
    `Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_512_conv`, ..., each with its `_batchnorm`), the
    body Keras's MobileNet names (`conv_pw_11`, `conv_pw_11_bn`, ...).

    Args:
        depth_multiplier: float. Width multiplier of the body and the extra layers. Defaults
            to `1.0`.
        min_depth: int. Lower bound on every depth. Defaults to `16`.
        num_layers: int, 1..6. How many feature maps (TF OD API `num_layers`: the first ones
            of the six). Defaults to `6`.
        use_depthwise: bool. Build the stride-2 extra convolutions as depthwise 3x3 + 1x1.
            Defaults to `False`.
        use_explicit_padding: bool. Pad before every stride-2 convolution of the body and the
            extra layers and convolve with "valid" padding (TF OD API
            `use_explicit_padding`), instead of "same" padding. Defaults to `False`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it before the body (TF OD API `pad_to_multiple`). Defaults to `1` (no padding).
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `DEFAULT_CONV_HYPERPARAMS` of `ssd_mobilenet_v2_feature_extractor` (those of the
            `ssd_mobilenet_v1_coco` config without its regularizer). Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too. Defaults to `False`.
        backbone_weights: `None` or `"imagenet"` (Keras's MobileNet: the body's depths must be
            Keras's, which they are at depth multiplier 1). Defaults to `None`.
        slim_layout: bool. The TF OD API's TF1 (TF-Slim) `ssd_mobilenet_v1` rather than its
            TF2 `ssd_mobilenet_v1_keras`: body depths `max(int(d * depth_multiplier),
            min_depth)` (TF2 scales Keras's MobileNet a second time, see
            `mobilenet_v1_filters`; both agree at depth multiplier 1). The config translator
            sets it for `type: "ssd_mobilenet_v1"`. Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV1FeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 300, 300, 3]))
    [f.shape[1] for f in extractor(images)]  # [19, 10, 5, 3, 2, 1]
    ```

    Reference:
        [Liu et al., 2016](https://arxiv.org/abs/1512.02325); TF OD API
        `object_detection/models/ssd_mobilenet_v1_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        num_layers=6,
        use_depthwise=False,
        use_explicit_padding=False,
        pad_to_multiple=1,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        backbone_weights=None,
        slim_layout=False,
        **kwargs,
    ):
        max_layers = len(BODY_ENDPOINTS) + len(EXTRA_LAYER_DEPTHS)
        if int(num_layers) != num_layers or not 1 <= num_layers <= max_layers:
            raise ValueError(
                f"SSDMobileNetV1FeatureExtractor: num_layers must be an integer in "
                f"1..{max_layers}; got {num_layers!r}"
            )
        num_extra = max(int(num_layers) - len(BODY_ENDPOINTS), 0)
        super().__init__(
            depth_multiplier,
            min_depth,
            BODY_ENDPOINTS[:num_layers],
            EXTRA_LAYER_DEPTHS[:num_extra],
            (3,) * num_extra,
            use_depthwise=use_depthwise,
            use_explicit_padding=use_explicit_padding,
            pad_to_multiple=pad_to_multiple,
            conv_hyperparams=conv_hyperparams,
            override_base_feature_extractor_hyperparams=(
                override_base_feature_extractor_hyperparams
            ),
            backbone_weights=backbone_weights,
            slim_layout=slim_layout,
            **kwargs,
        )
        self.num_layers = int(num_layers)

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "use_depthwise": self.use_depthwise})
        return config
