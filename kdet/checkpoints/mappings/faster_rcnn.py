"""TF2 checkpoint mappings of kdet's Faster R-CNN: the split-body ResNet extractors
(`faster_rcnn_resnet{50,101,152}_keras`), the RPN head and the box classifier head
(`mask_rcnn_box_predictor`).

The TF OD API's `FasterRCNNMetaArch` keeps the two halves of its extractor's body as
`_feature_extractor_for_proposal_features` and `_feature_extractor_for_box_classifier_features`
(functional models: weights by position), the RPN convolution as
`_first_stage_box_predictor_first_conv` (a `Sequential`: convolution, then batch norm if its
hyperparams have one), the RPN's two 1x1 predictors in `_first_stage_box_predictor` and the
box classifier's dense layers (and batch norms) in `_mask_rcnn_box_predictor`'s heads, after a
`Flatten` (and a `Dropout`) that own no weights. A `"detection"` restore takes both body halves
(the TF OD API's `restore_from_objects`), a `"classification"` one too (they are its
classification backbone).

The FPN extractors (`faster_rcnn_resnet50_fpn_keras`) keep the whole pyramid in
`_feature_extractor_for_proposal_features` (`classification_backbone`, then
`fpn_features_generator` and `coarse_feature_layers`, without the leading underscore of the SSD
FPNs) and the box classifier's dense layers, with the batch norm between them, in
`_feature_extractor_for_box_classifier_features` (a `Sequential`). The first stage has one pair
of 1x1 predictors per pyramid level (`_prediction_heads/box_encodings/<level>`).

Mask R-CNN (`number_of_stages: 3`) adds the mask head to `_mask_rcnn_box_predictor`, as
`_third_stage_heads/mask_predictions/_mask_predictor_layers/<i>`: the convolutions and batch
norms in kdet's `MaskHead` order, numbered with the activations (that own no weights).
"""

from kdet.checkpoints.mappings.fpn import pyramid_pairs
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.faster_rcnn_fpn_feature_extractor import FasterRCNNFPNFeatureExtractor
from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.mask_head import MaskHead
from kdet.models.faster_rcnn.mask_rcnn import MaskRCNN
from kdet.models.faster_rcnn.rpn_head import RPNHead


def feature_and_rpn_pairs(model, prefix, shapes):
    """The `LayerPair`s of a Faster R-CNN's feature extractor and RPN head (what R-FCN
    shares with it)."""
    return tf2_layer_pairs(model.feature_extractor, prefix, shapes) + tf2_layer_pairs(
        model.region_proposal_network.rpn_head, prefix, shapes
    )


@register_tf2_mapping(FasterRCNN)
def _faster_rcnn(model, prefix, shapes):
    return feature_and_rpn_pairs(model, prefix, shapes) + tf2_layer_pairs(
        model.roi_heads.box_predictor, f"{prefix}/_mask_rcnn_box_predictor", shapes
    )


@register_tf2_mapping(MaskRCNN)
def _mask_rcnn(model, prefix, shapes):
    return _faster_rcnn(model, prefix, shapes) + tf2_layer_pairs(
        model.mask_head,
        f"{prefix}/_mask_rcnn_box_predictor/_third_stage_heads/mask_predictions",
        shapes,
    )


@register_tf2_mapping(MaskHead)
def _mask_head(head, prefix, shapes):
    layers = [layer for layer in head.predictor_layers if layer.weights]
    return paired(layers, shapes, f"{prefix}/_mask_predictor_layers", HEADS)


@register_tf2_mapping(FasterRCNNSplitBodyFeatureExtractor)
def _split_body(extractor, prefix, shapes):
    # Both halves sit on the meta-architecture itself, not under a `_feature_extractor`.
    return paired(
        weighted_layers(extractor.proposal_body),
        shapes,
        f"{prefix}/_feature_extractor_for_proposal_features",
        BACKBONE,
    ) + paired(
        weighted_layers(extractor.box_classifier_body),
        shapes,
        f"{prefix}/_feature_extractor_for_box_classifier_features",
        BACKBONE,
    )


@register_tf2_classification_backbone(FasterRCNNSplitBodyFeatureExtractor)
def _split_body_backbone(extractor):
    # The TF OD API's classification backbone is the whole body, kdet's two halves in order.
    return weighted_layers(extractor.proposal_body) + weighted_layers(extractor.box_classifier_body)


register_tf2_classification_backbone(FasterRCNNFPNFeatureExtractor)(body_layers)


@register_tf2_mapping(FasterRCNNFPNFeatureExtractor)
def _fpn(extractor, prefix, shapes):
    proposal = f"{prefix}/_feature_extractor_for_proposal_features"
    return (
        paired(
            weighted_layers(extractor.body),
            shapes,
            f"{proposal}/classification_backbone",
            BACKBONE,
        )
        + pyramid_pairs(
            extractor.feature_pyramid,
            shapes,
            f"{proposal}/fpn_features_generator",
            f"{proposal}/coarse_feature_layers",
        )
        + paired(
            weighted_layers(extractor.box_classifier),
            shapes,
            f"{prefix}/_feature_extractor_for_box_classifier_features",
            EXTRACTOR,
        )
    )


@register_tf2_mapping(RPNHead)
def _rpn_head(head, prefix, shapes):
    first_conv = [head.rpn_conv] + ([head.rpn_batch_norm] if head.rpn_batch_norm else [])
    heads = f"{prefix}/_first_stage_box_predictor/_prediction_heads"
    pairs = paired(first_conv, shapes, f"{prefix}/_first_stage_box_predictor_first_conv", HEADS)
    # One pair of predictors per feature map (a head sharing one pair reads level 0's).
    for level, (box, objectness) in enumerate(zip(head.box_predictors, head.class_predictors)):
        pairs += paired(
            [box], shapes, f"{heads}/box_encodings/{level}/_box_encoder_layers", HEADS
        ) + paired(
            [objectness],
            shapes,
            f"{heads}/class_predictions_with_background/{level}/_class_predictor_layers",
            HEADS,
        )
    return pairs


@register_tf2_mapping(BoxClassifierHead)
def _box_classifier_head(head, prefix, shapes):
    box_layers = [head.box_predictor] + ([head.box_batch_norm] if head.box_batch_norm else [])
    class_layers = [head.class_predictor] + (
        [head.class_batch_norm] if head.class_batch_norm else []
    )
    return paired(
        box_layers, shapes, f"{prefix}/_box_prediction_head/_box_encoder_layers", HEADS
    ) + paired(
        class_layers, shapes, f"{prefix}/_class_prediction_head/_class_predictor_layers", HEADS
    )
