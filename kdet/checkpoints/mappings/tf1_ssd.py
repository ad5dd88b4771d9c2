"""TF1 (TF-Slim name) mappings of kdet's SSD, its convolutional box predictor and the SSD
MobileNetV2 feature extractor (`ssd_mobilenet_v2`): what TF1 training, the TF1 zoo's
`model.ckpt` and its frozen graphs (`kdet.zoo.tf_od_api_converter`) name each weight.

A TF1 SSD keeps its feature extractor under `FeatureExtractor/` (the MobileNetV2 body and the
extra layers under `FeatureExtractor/MobilenetV2/`) and the box predictor of feature map `i`
under `BoxPredictor_i/`. kdet's layers carry those scopes in their names:

- the body, `keras.applications.MobileNetV2`'s layer names: `Conv1` / `bn_Conv1` ← `Conv`,
  `expanded_conv_depthwise` ← `expanded_conv/depthwise`, `block_3_expand(_BN)` ←
  `expanded_conv_3/expand`, `Conv_1` / `Conv_1_bn` ← `Conv_1`;
- the extra layers, `X_conv` / `X_batchnorm` ← `X` (`layer_19_2_Conv2d_2_3x3_s2_512_depthwise`);
- the box predictor, `BoxPredictor_i_X` / `BoxPredictor_i_X_batchnorm` ← `BoxPredictor_i/X`
  (`BoxPredictor_0/ClassPredictor`, `BoxPredictor_0/Conv2d_0_1x1_256`).
"""

import re

from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import (
    SSDMobileNetV2FeatureExtractor,
)
from kdet.models.ssd.convolutional_box_predictor import ConvolutionalBoxPredictor
from kdet.models.ssd.ssd import SSD

# Slim scope of the SSD feature extractor (TF OD API `SSDMetaArch._extract_features_scope`).
FEATURE_EXTRACTOR_SCOPE = "FeatureExtractor"
# Slim scope of MobileNetV2 (`mobilenet_v2.mobilenet_base`), in detection and classification
# checkpoints alike.
MOBILENET_V2_SCOPE = "MobilenetV2"

# keras.applications.MobileNetV2 layer name → TF-Slim MobileNetV2 scope.
_MOBILENET_V2_SCOPES = (
    (re.compile(r"(?:bn_)?Conv1"), "Conv"),
    (re.compile(r"expanded_conv_(depthwise|project)(?:_BN)?"), r"expanded_conv/\1"),
    (re.compile(r"block_(\d+)_(expand|depthwise|project)(?:_BN)?"), r"expanded_conv_\1/\2"),
    (re.compile(r"Conv_1(?:_bn)?"), "Conv_1"),
)


def mobilenet_v2_scope(layer_name):
    """The TF-Slim MobileNetV2 scope of a `keras.applications.MobileNetV2` layer name
    (`block_3_expand_BN` → `expanded_conv_3/expand`), or None."""
    for pattern, template in _MOBILENET_V2_SCOPES:
        match = pattern.fullmatch(layer_name)
        if match:
            return match.expand(template)
    return None


def extra_layer_scope(layer_name):
    """`X_conv`, `X_batchnorm` → `X`: the TF OD API Keras names of the layers of slim scope X."""
    return re.sub(r"_(conv|batchnorm)$", "", layer_name)


def _box_predictor_scope(layer_name):
    match = re.fullmatch(r"(BoxPredictor_\d+)_(.+?)(?:_batchnorm)?", layer_name)
    return f"{match[1]}/{match[2]}" if match else None


@register_tf1_mapping(SSD)
def _ssd(model, scope):
    return tf1_layer_pairs(
        model.feature_extractor, slim_scope(scope, FEATURE_EXTRACTOR_SCOPE)
    ) + tf1_layer_pairs(model.box_predictor, scope)


@register_tf1_mapping(SSDMobileNetV2FeatureExtractor)
def _ssd_mobilenet_v2(extractor, scope):
    scope = slim_scope(scope, MOBILENET_V2_SCOPE)
    extra_layers = [layer for block in extractor.extra_layers for layer in weighted_layers(block)]
    return slim_pairs(
        weighted_layers(extractor.body), scope, mobilenet_v2_scope, BACKBONE
    ) + slim_pairs(extra_layers, scope, extra_layer_scope, EXTRACTOR)


@register_tf1_mapping(ConvolutionalBoxPredictor)
def _convolutional_box_predictor(predictor, scope):
    heads = predictor.towers + predictor.box_heads + predictor.class_heads
    layers = [layer for head in heads for layer in weighted_layers(head)]
    return slim_pairs(layers, scope, _box_predictor_scope, HEADS)
