"""MobileNetV2 SSD feature extractor: layer_15 expansion, layer_19 and four extra layers."""

import keras

from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.mobilenet_v2_body import pad_input
from kdet.feature_extractors.mobilenet_v2_body import tf_od_api_last_conv_depth
from kdet.feature_extractors.multi_resolution_feature_maps import SSDMultiResolutionFeatureExtractor
from kdet.feature_extractors.multi_resolution_feature_maps import extra_feature_map_layers
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.layers.conv_hyperparams import ConvHyperparams

# Depths of the four extra feature maps built on top of layer_19 (TF OD API feature_map_layout).
EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)
# The default conv_hyperparams: those of the TF OD API ssd_mobilenet_v2 configs
# (truncated_normal_initializer stddev 0.03, RELU_6, batch_norm decay 0.9997, epsilon 0.001,
# scale true), without their regularizer.
DEFAULT_CONV_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
    activation="relu6",
    batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "center": True, "scale": True},
)


@register_feature_extractor("ssd_mobilenet_v2")
class SSDMobileNetV2FeatureExtractor(SSDMultiResolutionFeatureExtractor):
    """MobileNetV2 body plus four extra layers: the six feature maps of SSD MobileNetV2.

    The body is `keras.applications.MobileNetV2` with TF "SAME" padding on its stride-2
    convolutions (see below). Its feature maps are `block_13_expand_relu` (TF OD API
    `layer_15/expansion_output`, 576 channels at depth multiplier 1) and `out_relu`
    (`layer_19`, 1280 channels). Four extra layers follow, of depths 512, 256, 256 and 128, each
    a 1x1 convolution to half the depth and a stride-2 3x3 convolution (depthwise 3x3 + 1x1
    with `use_depthwise`), every convolution followed by batch norm and ReLU6. At 300x300 the
    maps are 19, 10, 5, 3, 2 and 1 pixels wide. This is the TF OD API
    `SSDMobileNetV2KerasFeatureExtractor` with `KerasMultiResolutionFeatureMaps`.

    `conv_hyperparams` (the TF OD API `conv_hyperparams` of the feature extractor) set up the
    extra layers: kernel initializer and regularizer, batch norm and activation. The body keeps
    Keras's MobileNetV2 settings (batch norm momentum 0.999, epsilon 1e-3, ReLU6), its kernels
    regularized by the `conv_hyperparams` regularizer (depthwise ones with
    `regularize_depthwise`): the TF OD API regularizes its body with a fixed L2 weight 4e-5
    (depthwise kernels too), the weight of every sample config. With
    `override_base_feature_extractor_hyperparams` the body takes `conv_hyperparams` too (see
    `kdet.feature_extractors.mobilenet_v2_body`), as in the TF OD API.

    The extra layers carry the TF OD API names (`layer_19_1_Conv2d_2_1x1_256_conv`,
    `layer_19_2_Conv2d_2_3x3_s2_512_depthwise_conv`, ..., each with its `_batchnorm`), so
    `kdet.zoo.tf_od_api_converter` loads TF OD API weights by name.

    `keras.applications.MobileNetV2` pads its stride-2 depthwise convolutions by `(0, 1)` on a
    dynamic input size, which equals "SAME" only on even sizes: at 300x300 it would give
    18x18 instead of 19x19 maps. The body here drops those `ZeroPadding2D` layers and uses
    "same" padding instead, which matches the TF OD API graphs at every input size.

    Args:
        depth_multiplier: float. Width multiplier of the body (`alpha` of
            `keras.applications.MobileNetV2`) and of the extra layers. Defaults to `1.0`.
        min_depth: int. Lower bound on the depth of the extra layers and of the body's
            convolutions but its expansions (TF OD API `min_depth`). Defaults to `16`.
        use_depthwise: bool. Build the stride-2 extra convolutions as depthwise 3x3 + 1x1
            (the `ssd_mobilenet_v2_coco` layout) instead of a plain 3x3 convolution. Defaults
            to `True`.
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to `None`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config), or `None` for
            `DEFAULT_CONV_HYPERPARAMS` (`TruncatedNormal(stddev=0.03)`, batch norm momentum
            0.9997, epsilon 1e-3 with scale, ReLU6, no regularizer). Its regularizer, e.g.
            `keras.regularizers.L2(0.5 * 4e-5)` for `l2_regularizer { weight: 0.00004 }`,
            also goes to the body. Defaults to `None`.
        override_base_feature_extractor_hyperparams: bool. Set up the body with
            `conv_hyperparams` too. Defaults to `False`.
        use_explicit_padding: bool. Pad one pixel on every side before every stride-2 3x3
            convolution of the body and the extra layers and convolve with "valid" padding
            (TF OD API `use_explicit_padding`), instead of "same" padding (which pads only
            bottom/right on even sizes). Defaults to `False`.
        pad_to_multiple: int. Zero-pad the preprocessed images bottom/right to a multiple of
            it before the body (TF OD API `pad_to_multiple`; the SSD model's anchors still
            cover the unpadded image, as in the TF OD API). Defaults to `1` (no padding).
        tf_od_api_body_depths: bool. The body's depths as in the TF OD API (TF1 and TF2):
            `min_depth` bounds them and the depth multiplier also scales the last convolution
            `Conv_1` (`keras.applications.MobileNetV2` keeps 1280 filters for every multiplier
            ≤ 1 and has no `min_depth`). `False`: Keras's depths, which extractors saved before
            2026-12 load with. Both agree at depth multiplier 1. Defaults to `True`.
        slim_layout: bool. The body's residuals as in the TF OD API's TF1 (TF-Slim)
            `ssd_mobilenet_v2` rather than its TF2 `ssd_mobilenet_v2_keras` (see
            `mobilenet_v2_body`); only differs where `min_depth` raises depths (depth
            multiplier below 1) and with `tf_od_api_body_depths`. The config translator sets
            it for `type: "ssd_mobilenet_v2"`. Defaults to `False`.
        kernel_regularizer: a Keras regularizer replacing that of `conv_hyperparams` (the
            argument of extractors saved before `conv_hyperparams`), or `None`. Defaults to
            `None`.
        regularize_depthwise: bool replacing that of `conv_hyperparams`, or `None`. Defaults
            to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.SSDMobileNetV2FeatureExtractor()
    images = extractor.preprocess(tf.zeros([1, 300, 300, 3]))
    [f.shape[1] for f in extractor(images)]  # [19, 10, 5, 3, 2, 1]
    ```

    Reference:
        [Sandler et al., 2018](https://arxiv.org/abs/1801.04381); TF OD API
        `object_detection/models/ssd_mobilenet_v2_keras_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        use_depthwise=True,
        backbone_weights=None,
        conv_hyperparams=None,
        override_base_feature_extractor_hyperparams=False,
        use_explicit_padding=False,
        pad_to_multiple=1,
        tf_od_api_body_depths=True,
        slim_layout=False,
        kernel_regularizer=None,
        regularize_depthwise=None,
        **kwargs,
    ):
        super().__init__(
            depth_multiplier,
            min_depth,
            use_depthwise,
            use_explicit_padding,
            pad_to_multiple,
            conv_hyperparams,
            DEFAULT_CONV_HYPERPARAMS,
            override_base_feature_extractor_hyperparams,
            backbone_weights=backbone_weights,
            kernel_regularizer=kernel_regularizer,
            regularize_depthwise=regularize_depthwise,
            **kwargs,
        )
        self.tf_od_api_body_depths = bool(tf_od_api_body_depths)
        self.slim_layout = bool(slim_layout)
        hyperparams = self.conv_hyperparams
        body = mobilenet_v2_body(
            depth_multiplier,
            backbone_weights,
            hyperparams.kernel_regularizer,
            hyperparams.regularize_depthwise,
            hyperparams=hyperparams if self.override_base_feature_extractor_hyperparams else None,
            use_explicit_padding=self.use_explicit_padding,
            **(
                {"min_depth": min_depth,
                 "last_conv_depth": tf_od_api_last_conv_depth(depth_multiplier),
                 "slim_layout": self.slim_layout}
                if self.tf_od_api_body_depths else {}
            ),
        )
        self.body = keras.Model(
            body.input,
            [body.get_layer(name).output for name in ("block_13_expand_relu", "out_relu")],
            name="MobilenetV2",
        )
        if self.use_explicit_padding:
            self.body = pad_input(self.body, name="MobilenetV2_explicit_padding")
        self.extra_layers = extra_feature_map_layers(
            "layer_19",
            2,
            EXTRA_LAYER_DEPTHS,
            self.conv_hyperparams,
            depth_multiplier,
            min_depth,
            use_depthwise=use_depthwise,
            use_explicit_padding=self.use_explicit_padding,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_depthwise": self.use_depthwise,
                "tf_od_api_body_depths": self.tf_od_api_body_depths,
                "slim_layout": self.slim_layout,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Extractors saved before 2026-12 had Keras's body depths.
        return cls(**{"tf_od_api_body_depths": False, **config})
