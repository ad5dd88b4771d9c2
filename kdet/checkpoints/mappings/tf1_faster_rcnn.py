"""TF1 (TF-Slim name) mappings of kdet's Faster R-CNN with a ResNet V1 extractor
(`faster_rcnn_resnet{50,101,152}`, built with `slim_layout`): what TF1 training, the TF1 zoo's
`model.ckpt` and the slim classification checkpoints (`resnet_v1_50.ckpt`) name each weight.

A TF1 Faster R-CNN keeps
- the body up to `block3` under `FirstStageFeatureExtractor/resnet_v1_50/` and the stage-5
  units it runs on the RoI crops under `SecondStageFeatureExtractor/resnet_v1_50/block4/`;
  kdet's body layers carry `keras.applications` names, `conv{s}_block{u}_{k}_conv` / `_bn` ←
  `block{s-1}/unit_{u}/bottleneck_v1/conv{k}` (`shortcut` for k = 0), `conv1_conv` ← `conv1`;
- the RPN's 3x3 convolution under `Conv/`, its predictors under
  `FirstStageBoxPredictor/{BoxEncodingPredictor,ClassPredictor}`, the box classifier's dense
  layers under `SecondStageBoxPredictor/{BoxEncodingPredictor,ClassPredictor}` (a batch norm
  in the scope of its convolution or dense layer);
- Mask R-CNN's mask head (`number_of_stages: 3`) under `SecondStageBoxPredictor/` too, its
  unnamed slim convolutions in order: `Conv`, `Conv_1`, ... (`Conv_3`, with biases, the last
  of the zoo configs' four).

Slim's `resnet_v1` also builds a `block4` in the first stage (`FirstStageFeatureExtractor/
resnet_v1_50/block4/`) that the TF OD API never computes with: a restore reports it unused.
"""

import re

import keras

from kdet.checkpoints.restore import register_tf1_unread_scopes
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNetFeatureExtractor,
)
from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.mask_head import MaskHead
from kdet.models.faster_rcnn.mask_rcnn import MaskRCNN
from kdet.models.faster_rcnn.rpn_head import RPNHead

# Slim scopes of the TF OD API's `FasterRCNNMetaArch` (TF1).
FIRST_STAGE_EXTRACTOR_SCOPE = "FirstStageFeatureExtractor"
SECOND_STAGE_EXTRACTOR_SCOPE = "SecondStageFeatureExtractor"
RPN_CONV_SCOPE = "Conv"
FIRST_STAGE_PREDICTOR_SCOPE = "FirstStageBoxPredictor"
SECOND_STAGE_PREDICTOR_SCOPE = "SecondStageBoxPredictor"

_RESNET_SCOPES = (
    (re.compile(r"conv1_(?:conv|bn)"), lambda match: "conv1"),
    (
        re.compile(r"conv(\d)_block(\d+)_(\d)_(?:conv|bn)"),
        lambda match: (
            f"block{int(match[1]) - 1}/unit_{match[2]}/bottleneck_v1/"
            + ("shortcut" if match[3] == "0" else f"conv{match[3]}")
        ),
    ),
)


def resnet_v1_scope(layer_name):
    """The TF-Slim `resnet_v1` scope of a body layer name (`conv4_block6_0_bn` →
    `block3/unit_6/bottleneck_v1/shortcut`), or None."""
    for pattern, scope in _RESNET_SCOPES:
        match = pattern.fullmatch(layer_name)
        if match:
            return scope(match)
    return None


def resnet_v1_architecture(extractor):
    """The slim scope of the extractor's ResNet, `resnet_v1_{depth}`."""
    return f"resnet_v1_{extractor.depth}"


@register_tf1_mapping(FasterRCNN)
def _faster_rcnn(model, scope):
    return (
        tf1_layer_pairs(model.feature_extractor, scope)
        + tf1_layer_pairs(model.region_proposal_network.rpn_head, scope)
        + tf1_layer_pairs(
            model.roi_heads.box_predictor, slim_scope(scope, SECOND_STAGE_PREDICTOR_SCOPE)
        )
    )


@register_tf1_mapping(MaskRCNN)
def _mask_rcnn(model, scope):
    return _faster_rcnn(model, scope) + tf1_layer_pairs(
        model.mask_head, slim_scope(scope, SECOND_STAGE_PREDICTOR_SCOPE)
    )


@register_tf1_mapping(MaskHead)
def _mask_head(head, scope):
    # slim names unnamed convolutions `Conv`, `Conv_1`, ...; a batch norm takes its
    # convolution's scope.
    pairs = []
    convolutions = 0
    for layer in head.predictor_layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.Conv2D):
            conv_scope = "Conv" if not convolutions else f"Conv_{convolutions}"
            convolutions += 1
        pairs.append(SlimLayerPair(layer, slim_scope(scope, conv_scope), HEADS))
    return pairs


@register_tf1_mapping(FasterRCNNResNetFeatureExtractor)
def _faster_rcnn_resnet(extractor, scope):
    if not extractor.slim_layout:
        raise CheckpointError(
            f"{type(extractor).__name__} has the TF2 (Keras) ResNet layout; TF1 checkpoints "
            "fit the TF-Slim one: build the model from the TF1 config (feature_extractor type "
            f"without '_keras'), or pass slim_layout=True"
        )
    architecture = resnet_v1_architecture(extractor)
    return slim_pairs(
        weighted_layers(extractor.proposal_body),
        slim_scope(scope, FIRST_STAGE_EXTRACTOR_SCOPE, architecture),
        resnet_v1_scope,
        BACKBONE,
    ) + slim_pairs(
        weighted_layers(extractor.box_classifier_body),
        slim_scope(scope, SECOND_STAGE_EXTRACTOR_SCOPE, architecture),
        resnet_v1_scope,
        BACKBONE,
    )


@register_tf1_unread_scopes(FasterRCNN)
def _faster_rcnn_unread(model):
    extractor = model.feature_extractor
    if not isinstance(extractor, FasterRCNNResNetFeatureExtractor):
        return []
    return [
        slim_scope(FIRST_STAGE_EXTRACTOR_SCOPE, resnet_v1_architecture(extractor), "block4")
    ]


@register_tf1_mapping(RPNHead)
def _rpn_head(head, scope):
    first_conv = [head.rpn_conv] + ([head.rpn_batch_norm] if head.rpn_batch_norm else [])
    predictors = slim_scope(scope, FIRST_STAGE_PREDICTOR_SCOPE)
    return [
        SlimLayerPair(layer, slim_scope(scope, RPN_CONV_SCOPE), HEADS) for layer in first_conv
    ] + [
        SlimLayerPair(head.box_predictor, slim_scope(predictors, "BoxEncodingPredictor"), HEADS),
        SlimLayerPair(head.class_predictor, slim_scope(predictors, "ClassPredictor"), HEADS),
    ]


@register_tf1_mapping(BoxClassifierHead)
def _box_classifier_head(head, scope):
    box_layers = [head.box_predictor] + ([head.box_batch_norm] if head.box_batch_norm else [])
    class_layers = [head.class_predictor] + (
        [head.class_batch_norm] if head.class_batch_norm else []
    )
    return [
        SlimLayerPair(layer, slim_scope(scope, "BoxEncodingPredictor"), HEADS)
        for layer in box_layers
    ] + [SlimLayerPair(layer, slim_scope(scope, "ClassPredictor"), HEADS) for layer in class_layers]
