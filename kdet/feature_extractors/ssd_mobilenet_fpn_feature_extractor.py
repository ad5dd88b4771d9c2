"""Base of the MobileNet SSD FPN feature extractors: a width-scaled pyramid on a MobileNet."""

import keras

from kdet.feature_extractors.fpn import DEFAULT_CONV_HYPERPARAMS
from kdet.feature_extractors.ssd_fpn_feature_extractor import SSDFPNFeatureExtractor

# The pyramid's default conv_hyperparams: those of the TF OD API MobileNet FPN and FPNLite
# configs (random_normal_initializer stddev 0.01, RELU_6, batch_norm decay 0.997, epsilon
# 0.001, scale true), without their regularizer.
MOBILENET_FPN_CONV_HYPERPARAMS = DEFAULT_CONV_HYPERPARAMS.replace(
    kernel_initializer=keras.initializers.RandomNormal(stddev=0.01)
)


class SSDMobileNetFPNFeatureExtractor(SSDFPNFeatureExtractor):
    """A MobileNet body with a feature pyramid scaled by the depth multiplier.

    What the TF OD API MobileNetV1 and MobileNetV2 FPN extractors share on top of
    `SSDFPNFeatureExtractor`: the body takes MobileNet inputs (`preprocess` maps pixels 0..255
    to -1..1), the pyramid has `max(additional_layer_depth * depth_multiplier, min_depth)`
    channels, optionally separable 3x3 convolutions (`use_depthwise`), and by default
    (`MOBILENET_FPN_CONV_HYPERPARAMS`) kernels drawn from `RandomNormal(stddev=0.01)`. A
    subclass builds its MobileNet body (scaled by `depth_multiplier`, its kernels regularized
    by the `conv_hyperparams` regularizer, or set up by `body_hyperparams`) as
    `SSDFPNFeatureExtractor` describes and hands it to `attach_body`.

    Args:
        depth_multiplier: float. Width multiplier of the body and the pyramid.
        min_depth: int. Lower bound on the pyramid depth.
        fpn_min_level: int. Finest pyramid level; must be a level of the body.
        fpn_max_level: int. Coarsest pyramid level; levels above the body's last one are
            stride-2 layers of the pyramid.
        additional_layer_depth: int. Channels of the pyramid maps before the depth
            multiplier.
        use_depthwise: bool. Separable 3x3 pyramid convolutions (depthwise 3x3 + pointwise).
        backbone_weights: `None` or `"imagenet"`, see `SSDFeatureExtractor`. Defaults to
            `None`.
        **kwargs: `conv_hyperparams`, `override_base_feature_extractor_hyperparams` (see
            `SSDFPNFeatureExtractor`) and `keras.layers.Layer` arguments.
    """

    DEFAULT_CONV_HYPERPARAMS = MOBILENET_FPN_CONV_HYPERPARAMS

    def __init__(
        self,
        depth_multiplier,
        min_depth,
        fpn_min_level,
        fpn_max_level,
        additional_layer_depth,
        use_depthwise,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(
            fpn_min_level,
            fpn_max_level,
            additional_layer_depth,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.use_depthwise = use_depthwise

    @property
    def pyramid_depth(self):
        """Channels of every pyramid map: `max(additional_layer_depth * depth_multiplier,
        min_depth)`."""
        return max(int(self.additional_layer_depth * self.depth_multiplier), self.min_depth)

    def attach_body(self, body, **pyramid_options):
        """Sets `body` and a `feature_pyramid` with the MobileNet FPN settings.

        Args:
            body: see `SSDFPNFeatureExtractor.attach_body`.
            **pyramid_options: further `FeaturePyramid` arguments (`use_explicit_padding`).
        """
        super().attach_body(body, use_depthwise=self.use_depthwise, **pyramid_options)

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_multiplier": self.depth_multiplier,
                "min_depth": self.min_depth,
                "use_depthwise": self.use_depthwise,
            }
        )
        return config
