"""Feature extractors: the pluggable bodies of SSD and Faster R-CNN, and their registry."""

from kdet.feature_extractors.bifpn import BiFPN
from kdet.feature_extractors.bifpn import WeightedFeatureFusion
from kdet.feature_extractors.center_net_feature_extractor import CenterNetFeatureExtractor
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglass10FeatureExtractor,
)
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglass20FeatureExtractor,
)
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglass32FeatureExtractor,
)
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglass52FeatureExtractor,
)
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglass104FeatureExtractor,
)
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglassFeatureExtractor,
)
from kdet.feature_extractors.center_net_mobilenet_v2_feature_extractor import (
    CenterNetMobileNetV2FeatureExtractor,
)
from kdet.feature_extractors.center_net_mobilenet_v2_feature_extractor import (
    CenterNetMobileNetV2FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_mobilenet_v2_feature_extractor import (
    CenterNetMobileNetV2FPNSepConvFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNet50V1FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNet50V2FeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNet101V1FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNet101V2FeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNetV1FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNetV2FeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_v1_basic_fpn_feature_extractor import (
    CenterNetResNet18V1FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_v1_basic_fpn_feature_extractor import (
    CenterNetResNet34V1FPNFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_v1_basic_fpn_feature_extractor import (
    CenterNetResNetV1BasicFPNFeatureExtractor,
)
from kdet.feature_extractors.embedded_ssd_mobilenet_v1_feature_extractor import (
    EmbeddedSSDMobileNetV1FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_feature_extractor import FasterRCNNFeatureExtractor
from kdet.feature_extractors.faster_rcnn_fpn_feature_extractor import FasterRCNNFPNFeatureExtractor
from kdet.feature_extractors.faster_rcnn_inception_resnet_v2_feature_extractor import (
    FasterRCNNInceptionResNetV2FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_inception_v2_feature_extractor import (
    FasterRCNNInceptionV2FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_mobilenet_v2_feature_extractor import (
    FasterRCNNMobileNetV2FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_mobilenet_v2_fpn_feature_extractor import (
    FasterRCNNMobileNetV2FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_nas_feature_extractor import FasterRCNNNASFeatureExtractor
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet50FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet101FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet152FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNetFPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet50FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet101FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet152FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNetFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.fpn import FeaturePyramid
from kdet.feature_extractors.keras_backbone import KerasBackboneFasterRCNNC4FeatureExtractor
from kdet.feature_extractors.keras_backbone import KerasBackboneFasterRCNNFPNFeatureExtractor
from kdet.feature_extractors.keras_backbone import KerasBackboneSSDFPNFeatureExtractor
from kdet.feature_extractors.keras_backbone import from_keras_backbone
from kdet.feature_extractors.keras_backbone import register_keras_backbone
from kdet.feature_extractors.mnasfpn import MnasFPN
from kdet.feature_extractors.registry import available_feature_extractors
from kdet.feature_extractors.registry import build_feature_extractor
from kdet.feature_extractors.registry import get_feature_extractor_class
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB0BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB1BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB2BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB3BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB4BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB5BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB6BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetB7BiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetBiFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_feature_extractor import SSDFeatureExtractor
from kdet.feature_extractors.ssd_fpn_feature_extractor import SSDFPNFeatureExtractor
from kdet.feature_extractors.ssd_inception_feature_extractor import SSDInceptionFeatureExtractor
from kdet.feature_extractors.ssd_inception_feature_extractor import SSDInceptionV2FeatureExtractor
from kdet.feature_extractors.ssd_inception_feature_extractor import SSDInceptionV3FeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileDetCPUFeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileDetDSPFeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileDetEdgeTPUFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileDetGPUFeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileFeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileNetEdgeTPUFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileNetV3LargeFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileNetV3SmallFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_fpn_feature_extractor import (
    SSDMobileNetFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import (
    SSDMobileNetV1FeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v1_fpn_feature_extractor import (
    SSDMobileNetV1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v1_ppn_feature_extractor import (
    SSDMobileNetV1PPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import (
    SSDMobileNetV2FeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v2_fpn_feature_extractor import (
    SSDMobileNetV2FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v2_mnasfpn_feature_extractor import (
    SSDMobileNetV2MnasFPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet50V1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet101V1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet152V1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNetV1FPNFeatureExtractor,
)

__all__ = [
    "BiFPN",
    "CenterNetFeatureExtractor",
    "CenterNetHourglass10FeatureExtractor",
    "CenterNetHourglass20FeatureExtractor",
    "CenterNetHourglass32FeatureExtractor",
    "CenterNetHourglass52FeatureExtractor",
    "CenterNetHourglass104FeatureExtractor",
    "CenterNetHourglassFeatureExtractor",
    "CenterNetMobileNetV2FPNFeatureExtractor",
    "CenterNetMobileNetV2FPNSepConvFeatureExtractor",
    "CenterNetMobileNetV2FeatureExtractor",
    "CenterNetResNet18V1FPNFeatureExtractor",
    "CenterNetResNet34V1FPNFeatureExtractor",
    "CenterNetResNet50V1FPNFeatureExtractor",
    "CenterNetResNet50V2FeatureExtractor",
    "CenterNetResNet101V1FPNFeatureExtractor",
    "CenterNetResNet101V2FeatureExtractor",
    "CenterNetResNetV1BasicFPNFeatureExtractor",
    "CenterNetResNetV1FPNFeatureExtractor",
    "CenterNetResNetV2FeatureExtractor",
    "EmbeddedSSDMobileNetV1FeatureExtractor",
    "FasterRCNNFPNFeatureExtractor",
    "FasterRCNNFeatureExtractor",
    "FasterRCNNInceptionResNetV2FeatureExtractor",
    "FasterRCNNInceptionV2FeatureExtractor",
    "FasterRCNNMobileNetV2FPNFeatureExtractor",
    "FasterRCNNMobileNetV2FeatureExtractor",
    "FasterRCNNNASFeatureExtractor",
    "FasterRCNNResNet50FPNFeatureExtractor",
    "FasterRCNNResNet50FeatureExtractor",
    "FasterRCNNResNet101FPNFeatureExtractor",
    "FasterRCNNResNet101FeatureExtractor",
    "FasterRCNNResNet152FPNFeatureExtractor",
    "FasterRCNNResNet152FeatureExtractor",
    "FasterRCNNResNetFPNFeatureExtractor",
    "FasterRCNNResNetFeatureExtractor",
    "FasterRCNNSplitBodyFeatureExtractor",
    "FeaturePyramid",
    "KerasBackboneFasterRCNNC4FeatureExtractor",
    "KerasBackboneFasterRCNNFPNFeatureExtractor",
    "KerasBackboneSSDFPNFeatureExtractor",
    "MnasFPN",
    "SSDEfficientNetB0BiFPNFeatureExtractor",
    "SSDEfficientNetB1BiFPNFeatureExtractor",
    "SSDEfficientNetB2BiFPNFeatureExtractor",
    "SSDEfficientNetB3BiFPNFeatureExtractor",
    "SSDEfficientNetB4BiFPNFeatureExtractor",
    "SSDEfficientNetB5BiFPNFeatureExtractor",
    "SSDEfficientNetB6BiFPNFeatureExtractor",
    "SSDEfficientNetB7BiFPNFeatureExtractor",
    "SSDEfficientNetBiFPNFeatureExtractor",
    "SSDFPNFeatureExtractor",
    "SSDFeatureExtractor",
    "SSDInceptionFeatureExtractor",
    "SSDInceptionV2FeatureExtractor",
    "SSDInceptionV3FeatureExtractor",
    "SSDMobileDetCPUFeatureExtractor",
    "SSDMobileDetDSPFeatureExtractor",
    "SSDMobileDetEdgeTPUFeatureExtractor",
    "SSDMobileDetGPUFeatureExtractor",
    "SSDMobileFeatureExtractor",
    "SSDMobileNetEdgeTPUFeatureExtractor",
    "SSDMobileNetFPNFeatureExtractor",
    "SSDMobileNetV1FPNFeatureExtractor",
    "SSDMobileNetV1FeatureExtractor",
    "SSDMobileNetV1PPNFeatureExtractor",
    "SSDMobileNetV2FPNFeatureExtractor",
    "SSDMobileNetV2FeatureExtractor",
    "SSDMobileNetV2MnasFPNFeatureExtractor",
    "SSDMobileNetV3LargeFeatureExtractor",
    "SSDMobileNetV3SmallFeatureExtractor",
    "SSDResNet50V1FPNFeatureExtractor",
    "SSDResNet101V1FPNFeatureExtractor",
    "SSDResNet152V1FPNFeatureExtractor",
    "SSDResNetV1FPNFeatureExtractor",
    "WeightedFeatureFusion",
    "available_feature_extractors",
    "build_feature_extractor",
    "from_keras_backbone",
    "get_feature_extractor_class",
    "register_feature_extractor",
    "register_keras_backbone",
]
