"""TF2 checkpoint mappings of kdet's SSD, its convolutional box predictor and the SSD
MobileNetV2 feature extractor (`ssd_mobilenet_v2_keras`)."""

from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import (
    SSDMobileNetV2FeatureExtractor,
)
from kdet.models.ssd.convolutional_box_predictor import ConvolutionalBoxPredictor
from kdet.models.ssd.ssd import SSD


@register_tf2_mapping(SSD)
def _ssd(model, prefix, shapes):
    return tf2_layer_pairs(model.feature_extractor, f"{prefix}/_feature_extractor", shapes) + (
        tf2_layer_pairs(model.box_predictor, f"{prefix}/_box_predictor", shapes)
    )


register_tf2_classification_backbone(SSDMobileNetV2FeatureExtractor)(body_layers)


@register_tf2_mapping(SSDMobileNetV2FeatureExtractor)
def _ssd_mobilenet_v2(extractor, prefix, shapes):
    pairs = paired(
        weighted_layers(extractor.body), shapes, f"{prefix}/classification_backbone", BACKBONE
    )
    for index, extra_layer in enumerate(extractor.extra_layers, start=2):
        pairs += paired(
            weighted_layers(extra_layer),
            shapes,
            f"{prefix}/feature_map_generator/convolutions/{index}",
            EXTRACTOR,
        )
    return pairs


@register_tf2_mapping(ConvolutionalBoxPredictor)
def _convolutional_box_predictor(predictor, prefix, shapes):
    pairs = []
    for index, tower in enumerate(predictor.towers):
        pairs += paired(weighted_layers(tower), shapes, f"{prefix}/_shared_nets/{index}", HEADS)
    heads = f"{prefix}/_prediction_heads"
    for index, (box_head, class_head) in enumerate(
        zip(predictor.box_heads, predictor.class_heads)
    ):
        pairs += paired(
            weighted_layers(box_head),
            shapes,
            f"{heads}/box_encodings/{index}/_box_encoder_layers",
            HEADS,
        )
        pairs += paired(
            weighted_layers(class_head),
            shapes,
            f"{heads}/class_predictions_with_background/{index}/_class_predictor_layers",
            HEADS,
        )
    return pairs
