"""TF2 checkpoint mappings of kdet's SSD FPN extractors (`ssd_mobilenet_v1_fpn_keras`,
`ssd_mobilenet_v2_fpn_keras` / FPNLite, `ssd_resnet50_v1_fpn_keras`) and of the weight-shared
box predictor (`weight_shared_convolutional_box_predictor`).

The TF OD API's `KerasFpnTopDownFeatureMaps` lists its layers from the coarsest level down:
`top_layers/0` projects the body's last map, `residual_blocks/i` and `conv_layers/i` are the
projection and smoothing of the `i`-th level below it; `_coarse_feature_layers/i` are the
stride-2 levels above the body. The weight-shared predictor keeps each tower convolution once
(`_head_scope_conv_layers/<tower>/<j>`) and the batch norms per level in the layer lists it
runs (`_base_tower_layers_for_heads/<head>/<level>/<k>`: convolution, batch norm, activation,
…).
"""

from kdet.checkpoints.mappings.fpn import pyramid_pairs
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_fpn_feature_extractor import SSDFPNFeatureExtractor
from kdet.models.ssd.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor,
)

# kdet tower name → (TF OD API tower scope, TF OD API head whose layer lists hold its
# batch norms).
_TOWERS = {
    "prediction": ("PredictionTower", "box_encodings"),
    "box": ("BoxPredictionTower", "box_encodings"),
    "class": ("ClassPredictionTower", "class_predictions_with_background"),
}


register_tf2_classification_backbone(SSDFPNFeatureExtractor)(body_layers)


@register_tf2_mapping(SSDFPNFeatureExtractor)
def _ssd_fpn(extractor, prefix, shapes):
    pairs = paired(
        weighted_layers(extractor.body), shapes, f"{prefix}/classification_backbone", BACKBONE
    )
    return pairs + pyramid_pairs(
        extractor.feature_pyramid,
        shapes,
        f"{prefix}/_fpn_features_generator",
        f"{prefix}/_coarse_feature_layers",
    )


@register_tf2_mapping(WeightSharedConvolutionalBoxPredictor)
def _weight_shared_box_predictor(predictor, prefix, shapes):
    pairs = []
    for name, convs in predictor.tower_convs.items():
        scope, head = _TOWERS[name]
        pairs += paired(convs, shapes, f"{prefix}/_head_scope_conv_layers/{scope}", HEADS)
        for level, batch_norms in enumerate(predictor.tower_batch_norms.get(name, [])):
            pairs += paired(
                batch_norms,
                shapes,
                f"{prefix}/_base_tower_layers_for_heads/{head}/{level}",
                HEADS,
            )
    pairs += paired(
        [predictor.box_predictor_conv],
        shapes,
        f"{prefix}/_box_prediction_head/_box_encoder_layers",
        HEADS,
    )
    pairs += paired(
        [predictor.class_predictor_conv],
        shapes,
        f"{prefix}/_prediction_heads/class_predictions_with_background/_class_predictor_layers",
        HEADS,
    )
    return pairs
