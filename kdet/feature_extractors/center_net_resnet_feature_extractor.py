"""ResNet CenterNet feature extractors: `resnet_v2_50` / `resnet_v2_101` (transposed-convolution
upsampling) and `resnet_v1_50_fpn` / `resnet_v1_101_fpn` (top-down FPN upsampling)."""

import keras

from kdet.feature_extractors.center_net_body_feature_extractor import CenterNetBodyFeatureExtractor
from kdet.feature_extractors.center_net_upsampling import top_down_upsampling
from kdet.feature_extractors.center_net_upsampling import transposed_conv_upsampling
from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.resnet_v1_body import CONV4_LAST_LAYERS
from kdet.feature_extractors.resnet_v1_body import RESNETS

RESNET_V2S = {50: keras.applications.ResNet50V2, 101: keras.applications.ResNet101V2}
# Channels of the top-down pathway's lateral convolutions, coarsest merge first; the output
# has the last.
RESNET_V1_FPN_FILTERS = (256, 128, 64)


def _keras_resnet(resnet_class, weights, name, endpoints):
    """`resnet_class` (a `keras.applications` ResNet, fused batch norms) without its top as a
    model named `name` from images to the outputs of the layers `endpoints`."""
    resnet = clone_body(
        resnet_class(include_top=False, weights=weights, input_shape=(None, None, 3))
    )
    outputs = [resnet.get_layer(endpoint).output for endpoint in endpoints]
    return keras.Model(resnet.input, outputs if len(outputs) > 1 else outputs[0], name=name)


class CenterNetResNetV2FeatureExtractor(CenterNetBodyFeatureExtractor):
    """ResNet-v2 with three learned ×2 upsamplings (TF OD API `CenterNetResnetFeatureExtractor`).

    `keras.applications.ResNet{depth}V2` up to `conv5_block3_out` (stride 32, before the
    final batch norm), then `transposed_conv_upsampling` with 3x3 convolutions: one map of 64
    channels at stride 4. Subclasses set `depth` (50 or 101).

    Args:
        backbone_weights: `None` or `"imagenet"` (`keras.applications` ResNet-v2 weights).
            Defaults to `None`.
        **kwargs: see `CenterNetBodyFeatureExtractor`.

    Reference: [He et al., 2016](https://arxiv.org/abs/1603.05027),
    [Objects as Points](https://arxiv.org/abs/1904.07850).
    """

    depth = None
    BODY_PREPROCESSING = "tf"

    def __init__(self, backbone_weights=None, **kwargs):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        body = _keras_resnet(
            RESNET_V2S[self.depth], backbone_weights, f"resnet{self.depth}v2", ["conv5_block3_out"]
        )
        images = keras.Input((None, None, 3))
        self.feature_model = keras.Model(
            images, transposed_conv_upsampling(body(images), kernel_size=3), name="feature_model"
        )


@register_feature_extractor("resnet_v2_50")
class CenterNetResNet50V2FeatureExtractor(CenterNetResNetV2FeatureExtractor):
    """`CenterNetResNetV2FeatureExtractor` on ResNet-50-v2 (TF OD API type `resnet_v2_50`)."""

    depth = 50


@register_feature_extractor("resnet_v2_101")
class CenterNetResNet101V2FeatureExtractor(CenterNetResNetV2FeatureExtractor):
    """`CenterNetResNetV2FeatureExtractor` on ResNet-101-v2 (TF OD API type `resnet_v2_101`)."""

    depth = 101


class CenterNetResNetV1FPNFeatureExtractor(CenterNetBodyFeatureExtractor):
    """ResNet-v1 with a top-down FPN to stride 4 (TF OD API
    `CenterNetResnetV1FpnFeatureExtractor`).

    `keras.applications.ResNet{depth}` (as the TF OD API builds it: biases, Keras padding),
    endpoints `conv2_block3_out` … `conv5_block3_out` (strides 4..32), then
    `top_down_upsampling` with lateral depths 256, 128, 64: one map of 64 channels at stride
    4. Subclasses set `depth` (50 or 101).

    Args:
        backbone_weights: `None` or `"imagenet"` (`keras.applications` ResNet weights).
            Defaults to `None`.
        **kwargs: see `CenterNetBodyFeatureExtractor`.

    Reference: [Lin et al., 2017](https://arxiv.org/abs/1612.03144),
    [Objects as Points](https://arxiv.org/abs/1904.07850).
    """

    depth = None
    BODY_PREPROCESSING = "caffe"

    def __init__(self, backbone_weights=None, **kwargs):
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        endpoints = [
            "conv2_block3_out", "conv3_block4_out", CONV4_LAST_LAYERS[self.depth],
            "conv5_block3_out",
        ]
        body = _keras_resnet(RESNETS[self.depth], backbone_weights, f"resnet{self.depth}", endpoints)
        images = keras.Input((None, None, 3))
        self.feature_model = keras.Model(
            images, top_down_upsampling(body(images), RESNET_V1_FPN_FILTERS), name="feature_model"
        )


@register_feature_extractor("resnet_v1_50_fpn")
class CenterNetResNet50V1FPNFeatureExtractor(CenterNetResNetV1FPNFeatureExtractor):
    """`CenterNetResNetV1FPNFeatureExtractor` on ResNet-50 (TF OD API type `resnet_v1_50_fpn`)."""

    depth = 50


@register_feature_extractor("resnet_v1_101_fpn")
class CenterNetResNet101V1FPNFeatureExtractor(CenterNetResNetV1FPNFeatureExtractor):
    """`CenterNetResNetV1FPNFeatureExtractor` on ResNet-101 (TF OD API type
    `resnet_v1_101_fpn`)."""

    depth = 101
