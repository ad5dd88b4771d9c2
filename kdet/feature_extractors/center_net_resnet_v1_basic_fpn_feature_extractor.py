"""CenterNet `resnet_v1_18_fpn` / `resnet_v1_34_fpn`: the TF OD API's basic-block ResNets with
the top-down FPN of its ResNet-v1 FPN extractors."""

import keras

from kdet.feature_extractors.center_net_body_feature_extractor import CenterNetBodyFeatureExtractor
from kdet.feature_extractors.center_net_resnet_feature_extractor import RESNET_V1_FPN_FILTERS
from kdet.feature_extractors.center_net_upsampling import top_down_upsampling
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.resnet_v1_basic_body import basic_body_endpoints
from kdet.feature_extractors.resnet_v1_basic_body import resnet_v1_basic_body


class CenterNetResNetV1BasicFPNFeatureExtractor(CenterNetBodyFeatureExtractor):
    """A basic-block ResNet with a top-down FPN to stride 4 (the TF OD API's
    `CenterNetResnetV1FpnFeatureExtractor` with `resnet_type` `resnet_v1_18` / `resnet_v1_34`).

    `resnet_v1_basic_body(depth)` (the TF OD API's `keras_models.resnet_v1.resnet_v1_{depth}`:
    pre-activation basic blocks), endpoints `basic_body_endpoints(depth)` (the last block of
    each stage, strides 4..32, 64..512 channels), then `top_down_upsampling` with lateral
    depths 256, 128, 64: one map of 64 channels at stride 4. Preprocessing as the ResNet-50
    FPN's (`"caffe"`: BGR, ImageNet means subtracted, after the base class's statistics).
    Subclasses set `depth` (18 or 34).

    Weights: random (`keras.applications` has no ResNet-18/34), or a TF OD API CenterNet or
    classification checkpoint (`kdet.checkpoints.restore_tfod_checkpoint`), whose final
    `post_bn` batch norm (after the last endpoint) is left unread.

    Args:
        backbone_weights: `None` only. Defaults to `None`.
        **kwargs: see `CenterNetBodyFeatureExtractor`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("resnet_v1_18_fpn")
    images = tf.random.uniform([1, 64, 64, 3], maxval=255)
    extractor(extractor.preprocess(images))  # [[1, 16, 16, 64]]
    ```

    Reference: [He et al., 2016](https://arxiv.org/abs/1512.03385),
    [Objects as Points](https://arxiv.org/abs/1904.07850).
    """

    depth = None
    BODY_PREPROCESSING = "caffe"

    def __init__(self, backbone_weights=None, **kwargs):
        if backbone_weights is not None:
            raise ValueError(
                f"resnet_v1_{self.depth}_fpn: backbone_weights must be None (keras.applications "
                f"has no ResNet-{self.depth}); got {backbone_weights!r}. Restore a TF OD API "
                "checkpoint with kdet.checkpoints.restore_tfod_checkpoint instead"
            )
        super().__init__(backbone_weights=backbone_weights, **kwargs)
        resnet = resnet_v1_basic_body(self.depth)
        endpoints = [resnet.get_layer(name).output for name in basic_body_endpoints(self.depth)]
        body = keras.Model(resnet.input, endpoints, name=resnet.name)
        images = keras.Input((None, None, 3))
        self.feature_model = keras.Model(
            images, top_down_upsampling(body(images), RESNET_V1_FPN_FILTERS), name="feature_model"
        )


@register_feature_extractor("resnet_v1_18_fpn")
class CenterNetResNet18V1FPNFeatureExtractor(CenterNetResNetV1BasicFPNFeatureExtractor):
    """`CenterNetResNetV1BasicFPNFeatureExtractor` on ResNet-18 (TF OD API type
    `resnet_v1_18_fpn`)."""

    depth = 18


@register_feature_extractor("resnet_v1_34_fpn")
class CenterNetResNet34V1FPNFeatureExtractor(CenterNetResNetV1BasicFPNFeatureExtractor):
    """`CenterNetResNetV1BasicFPNFeatureExtractor` on ResNet-34 (TF OD API type
    `resnet_v1_34_fpn`)."""

    depth = 34
