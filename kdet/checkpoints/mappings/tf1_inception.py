"""TF1 (TF-Slim name) mappings of kdet's Inception extractors (`ssd_inception_v2`,
`ssd_inception_v3`, `faster_rcnn_inception_v2`): what TF1 training, the TF1 zoo's
`model.ckpt` and slim's classification checkpoints (`inception_v2.ckpt`) name each weight.

The bodies' layers carry slim's scopes with `/` written `_`
(`kdet.feature_extractors.inception_body`): `Mixed_4c_Branch_1_Conv2d_0b_3x3_conv` / `_batchnorm`
← `Mixed_4c/Branch_1/Conv2d_0b_3x3`, `Conv2d_1a_7x7_conv` ← `Conv2d_1a_7x7`. A TF1 SSD keeps the
body and its extra layers (`Mixed_5c_2_Conv2d_2_3x3_s2_512`, ...) under
`FeatureExtractor/InceptionV2/` (`InceptionV3`); a TF1 Faster R-CNN keeps the body up to
`Mixed_4e` under `FirstStageFeatureExtractor/InceptionV2/` and `Mixed_5a`–`Mixed_5c` under
`SecondStageFeatureExtractor/InceptionV2/`.
"""

import re

from kdet.checkpoints.mappings.tf1_faster_rcnn import FIRST_STAGE_EXTRACTOR_SCOPE
from kdet.checkpoints.mappings.tf1_faster_rcnn import SECOND_STAGE_EXTRACTOR_SCOPE
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.faster_rcnn_inception_v2_feature_extractor import (
    FasterRCNNInceptionV2FeatureExtractor,
)
from kdet.feature_extractors.ssd_inception_feature_extractor import SSDInceptionFeatureExtractor

_INCEPTION_LAYER = re.compile(r"(?:(Mixed_\d[a-z])_(Branch_\d)_)?(.+)_(?:conv|batchnorm)")


def inception_scope(layer_name):
    """The slim scope of an Inception body layer or SSD extra layer (`X_conv`, `X_batchnorm`):
    `Mixed_4c_Branch_1_Conv2d_0b_3x3_conv` → `Mixed_4c/Branch_1/Conv2d_0b_3x3`,
    `Mixed_5c_2_Conv2d_2_3x3_s2_512_batchnorm` → `Mixed_5c_2_Conv2d_2_3x3_s2_512`; None for
    other names."""
    match = _INCEPTION_LAYER.fullmatch(layer_name)
    return slim_scope(*match.groups()) if match else None


@register_tf1_mapping(SSDInceptionFeatureExtractor)
def _ssd_inception(extractor, scope):
    scope = slim_scope(scope, extractor.ARCHITECTURE)
    extra_layers = [layer for block in extractor.extra_layers for layer in weighted_layers(block)]
    return slim_pairs(
        weighted_layers(extractor.body), scope, inception_scope, BACKBONE
    ) + slim_pairs(extra_layers, scope, inception_scope, EXTRACTOR)


@register_tf1_mapping(FasterRCNNInceptionV2FeatureExtractor)
def _faster_rcnn_inception_v2(extractor, scope):
    return slim_pairs(
        weighted_layers(extractor.proposal_body),
        slim_scope(scope, FIRST_STAGE_EXTRACTOR_SCOPE, "InceptionV2"),
        inception_scope,
        BACKBONE,
    ) + slim_pairs(
        weighted_layers(extractor.box_classifier_body),
        slim_scope(scope, SECOND_STAGE_EXTRACTOR_SCOPE, "InceptionV2"),
        inception_scope,
        BACKBONE,
    )
