"""MobileNetV2 CenterNet feature extractors: `mobilenet_v2_fpn` / `mobilenet_v2_fpn_sep_conv`
(top-down FPN upsampling) and `mobilenet_v2` (transposed-convolution upsampling)."""

import keras

from kdet.feature_extractors.center_net_body_feature_extractor import CenterNetBodyFeatureExtractor
from kdet.feature_extractors.center_net_upsampling import check_interpolation
from kdet.feature_extractors.center_net_upsampling import top_down_upsampling
from kdet.feature_extractors.center_net_upsampling import transposed_conv_upsampling
from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.mobilenet_v2_body import tf_od_api_last_conv_depth
from kdet.feature_extractors.registry import register_feature_extractor

# The body's maps at strides 4, 8, 16 and 32 the top-down pathway reads (TF OD API
# `_MOBILENET_V2_FPN_SKIP_LAYERS`).
FPN_ENDPOINTS = ("block_2_add", "block_5_add", "block_9_add", "out_relu")
# Channels of the top-down pathway's lateral convolutions, coarsest merge first.
FPN_FILTERS = (64, 32, 24)


def _mobilenet_v2(depth_multiplier, weights, endpoints):
    """The TF OD API's Keras MobileNetV2 as CenterNet builds it (no `min_depth`, `Conv_1`
    scaled below multiplier 1), a model from images to the outputs of `endpoints`."""
    body = mobilenet_v2_body(
        depth_multiplier, weights, last_conv_depth=tf_od_api_last_conv_depth(depth_multiplier)
    )
    outputs = [body.get_layer(endpoint).output for endpoint in endpoints]
    return keras.Model(
        body.input, outputs if len(outputs) > 1 else outputs[0], name="mobilenetv2"
    )


@register_feature_extractor("mobilenet_v2_fpn")
class CenterNetMobileNetV2FPNFeatureExtractor(CenterNetBodyFeatureExtractor):
    """MobileNetV2 with a top-down FPN to stride 4 (TF OD API
    `CenterNetMobileNetV2FPNFeatureExtractor`, the `centernet_mobilenetv2fpn` zoo models).

    The "same"-padded `keras.applications.MobileNetV2` body of kdet's MobileNet extractors
    (width `depth_multiplier`; its last convolution `Conv_1` of 1280 filters scaled by a
    multiplier below 1, the TF OD API rule), endpoints `block_2_add`, `block_5_add`,
    `block_9_add`, `out_relu` (strides 4..32), then `top_down_upsampling` with lateral depths
    64, 32, 24: one map of 24 channels at stride 4.

    Args:
        depth_multiplier: float, width multiplier of the body (not of the pyramid, as in the
            TF OD API). Defaults to `1.0`.
        use_separable_conv: bool, the pyramid's 3x3 convolutions are separable. Defaults to
            `False`.
        upsampling_interpolation: `"nearest"` or `"bilinear"`. Defaults to `"nearest"`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` MobileNetV2 weights,
            at depth multiplier 1 only: below it the TF OD API's `Conv_1` is narrower than
            Keras's). The TF OD API loads them whenever the multiplier is 1. Defaults to
            `None`.
        **kwargs: see `CenterNetBodyFeatureExtractor`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor(
        "mobilenet_v2_fpn", depth_multiplier=0.35)
    [features] = extractor(extractor.preprocess(tf.zeros([1, 128, 128, 3])))  # [1, 32, 32, 24]
    ```
    """

    BODY_PREPROCESSING = "tf"

    def __init__(
        self,
        depth_multiplier=1.0,
        use_separable_conv=False,
        upsampling_interpolation="nearest",
        backbone_weights=None,
        **kwargs,
    ):
        check_interpolation(upsampling_interpolation)
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        self.depth_multiplier = float(depth_multiplier)
        self.use_separable_conv = bool(use_separable_conv)
        self.upsampling_interpolation = upsampling_interpolation
        body = _mobilenet_v2(self.depth_multiplier, backbone_weights, FPN_ENDPOINTS)
        images = keras.Input((None, None, 3))
        features = top_down_upsampling(
            body(images),
            FPN_FILTERS,
            use_separable_conv=self.use_separable_conv,
            interpolation=upsampling_interpolation,
        )
        self.feature_model = keras.Model(images, features, name="feature_model")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_multiplier": self.depth_multiplier,
                "use_separable_conv": self.use_separable_conv,
                "upsampling_interpolation": self.upsampling_interpolation,
            }
        )
        return config


@register_feature_extractor("mobilenet_v2_fpn_sep_conv")
class CenterNetMobileNetV2FPNSepConvFeatureExtractor(CenterNetMobileNetV2FPNFeatureExtractor):
    """`CenterNetMobileNetV2FPNFeatureExtractor` with separable pyramid convolutions by
    default (TF OD API type `mobilenet_v2_fpn_sep_conv`).

    The TF OD API's builder makes the convolutions separable for this type only when the
    config also sets `use_separable_conv` (true in its zoo config); kdet takes the name at
    its word.

    Args:
        use_separable_conv: bool. Defaults to `True`.
        **kwargs: see `CenterNetMobileNetV2FPNFeatureExtractor`.
    """

    def __init__(self, use_separable_conv=True, **kwargs):
        super().__init__(use_separable_conv=use_separable_conv, **kwargs)


@register_feature_extractor("mobilenet_v2")
class CenterNetMobileNetV2FeatureExtractor(CenterNetBodyFeatureExtractor):
    """MobileNetV2 with three learned ×2 upsamplings (TF OD API
    `CenterNetMobileNetV2FeatureExtractor`).

    The body of `CenterNetMobileNetV2FPNFeatureExtractor` up to `out_relu` (stride 32), then
    `transposed_conv_upsampling` with 1x1 convolutions: one map of 64 channels at stride 4.

    Args:
        depth_multiplier: float, width multiplier of the body. Defaults to `1.0`.
        backbone_weights: `None` or `"imagenet"` (at depth multiplier 1). Defaults to `None`.
        **kwargs: see `CenterNetBodyFeatureExtractor`.
    """

    BODY_PREPROCESSING = "tf"

    def __init__(self, depth_multiplier=1.0, backbone_weights=None, **kwargs):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        self.depth_multiplier = float(depth_multiplier)
        body = _mobilenet_v2(self.depth_multiplier, backbone_weights, ["out_relu"])
        images = keras.Input((None, None, 3))
        self.feature_model = keras.Model(
            images, transposed_conv_upsampling(body(images), kernel_size=1), name="feature_model"
        )

    def get_config(self):
        config = super().get_config()
        config["depth_multiplier"] = self.depth_multiplier
        return config
