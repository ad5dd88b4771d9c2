"""TF1 (TF-Slim name) and TF2 (object-based) mappings of kdet's R-FCN box predictor
(`rfcn_box_predictor`, the TF OD API's `rfcn_resnet101_*` configs).

The rest of an R-FCN is a Faster R-CNN's (the extractor's two stages and the RPN: the
`FasterRCNN` mappings of `tf1_faster_rcnn` and `faster_rcnn`); only the box predictor differs.

- TF1: slim's `RfcnBoxPredictor` builds its three 1x1 convolutions under
  `SecondStageBoxPredictor/` as `reduce_depth`, `refined_locations` and `class_predictions`
  (a batch norm, when the config's `conv_hyperparams` have one, in the scope of its
  convolution).
- TF2: `RFCNMetaArch` keeps its `RfcnKerasBoxPredictor` as `_rfcn_box_predictor` (not
  `_mask_rcnn_box_predictor`), with the convolution (and batch norm) of each branch in
  `_shared_conv_layers`, `_box_encoder_layers` and `_class_predictor_layers`.
"""

from kdet.checkpoints.mappings.faster_rcnn import feature_and_rpn_pairs
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.models.faster_rcnn.rfcn import RFCN
from kdet.models.faster_rcnn.rfcn_box_predictor import RFCNBoxPredictor


def _branches(predictor):
    """`[(slim scope, TF2 attribute, [convolution, batch norm or nothing])]` of the
    predictor's three 1x1 convolutions, in the TF OD API's order."""
    return [
        (
            scope,
            attribute,
            [layer for layer in (conv, norm) if layer is not None],
        )
        for scope, attribute, conv, norm in (
            (
                "reduce_depth",
                "_shared_conv_layers",
                predictor.reduce_depth_conv,
                predictor.reduce_depth_batchnorm,
            ),
            (
                "refined_locations",
                "_box_encoder_layers",
                predictor.refined_locations_conv,
                predictor.refined_locations_batchnorm,
            ),
            (
                "class_predictions",
                "_class_predictor_layers",
                predictor.class_predictions_conv,
                predictor.class_predictions_batchnorm,
            ),
        )
    ]


@register_tf1_mapping(RFCNBoxPredictor)
def _rfcn_box_predictor_tf1(predictor, scope):
    return [
        SlimLayerPair(layer, slim_scope(scope, branch), HEADS)
        for branch, _, layers in _branches(predictor)
        for layer in layers
    ]


@register_tf2_mapping(RFCN)
def _rfcn_tf2(model, prefix, shapes):
    return feature_and_rpn_pairs(model, prefix, shapes) + tf2_layer_pairs(
        model.roi_heads.box_predictor, f"{prefix}/_rfcn_box_predictor", shapes
    )


@register_tf2_mapping(RFCNBoxPredictor)
def _rfcn_box_predictor_tf2(predictor, prefix, shapes):
    return [
        pair
        for _, attribute, layers in _branches(predictor)
        for pair in paired(layers, shapes, f"{prefix}/{attribute}", HEADS)
    ]
