"""TF2 checkpoint mappings of kdet's CenterNet feature extractors.

The TF OD API's CenterNet extractors hold their variables under
- Hourglass: `<extractor>/_network/<attribute path>` (`downsample_input/conv_block/conv`,
  `hourglass_network/0/encoder_block2/1/skip/norm`, …), the attribute names kdet's
  `hourglass_network` layers have;
- ResNet / MobileNetV2: `<extractor>/_base_model/layer_with_weights-N` (the
  `keras.applications` body) and `<extractor>/_feature_extractor_model/layer_with_weights-N`
  (N ≥ 1: the upsampling layers, in the order kdet builds them).
"""

import keras

from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import LayerPair
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import checkpoint_layer_paths
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.center_net_body_feature_extractor import CenterNetBodyFeatureExtractor
from kdet.feature_extractors.center_net_hourglass_feature_extractor import (
    CenterNetHourglassFeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_feature_extractor import (
    CenterNetResNetV2FeatureExtractor,
)
from kdet.feature_extractors.center_net_resnet_v1_basic_fpn_feature_extractor import (
    CenterNetResNetV1BasicFPNFeatureExtractor,
)


def attribute_paths(layer, path=""):
    """`[(layer with weights, its attribute path under `layer`)]`: sublayers found through
    public attributes and lists of layers (`hourglass_network/0/inner_block/0/...`), as TF's
    object-based checkpoints name them."""
    if layer.weights and not any(
        isinstance(value, keras.layers.Layer) for value in vars(layer).values()
    ):
        return [(layer, path)]
    found = []
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        children = value if isinstance(value, list | tuple) else [value]
        for index, child in enumerate(children):
            if isinstance(child, keras.layers.Layer):
                child_path = f"{path}/{name}" + (f"/{index}" if child is not value else "")
                found += attribute_paths(child, child_path.lstrip("/"))
    return found


@register_tf2_mapping(CenterNetHourglassFeatureExtractor)
def _hourglass(extractor, prefix, shapes):
    network = f"{prefix}/_network"
    pairs = [
        LayerPair(layer, f"{network}/{path}", BACKBONE)
        for layer, path in attribute_paths(extractor.network)
    ]
    # Pairs go by path, so a checkpoint of a larger hourglass would fit the kdet layers it
    # has: its other layers must be refused here.
    extra = sorted(set(checkpoint_layer_paths(shapes, network)) - {pair.path for pair in pairs})
    if extra:
        raise CheckpointError(
            f"the checkpoint has {len(extra)} layers with weights under {network}/ that the "
            f"kdet hourglass has not (e.g. {extra[0]}): the config does not describe the "
            "model that wrote the checkpoint"
        )
    return pairs


# Layers with weights the TF OD API's body holds after kdet's last one: keras.applications'
# ResNet-v2 ends in a batch norm (`post_bn`) after the `conv5_block3_out` it reads, and so
# does the TF OD API's basic-block ResNet-18/34 after its last endpoint.
_UNREAD_BODY_LAYERS = {
    CenterNetResNetV2FeatureExtractor: 1,
    CenterNetResNetV1BasicFPNFeatureExtractor: 1,
}

register_tf2_classification_backbone(
    CenterNetBodyFeatureExtractor,
    checkpoint_layers=lambda extractor: len(body_layers(extractor)) + _unread(extractor),
)(body_layers)


def _unread(extractor):
    return next(
        (count for cls, count in _UNREAD_BODY_LAYERS.items() if isinstance(extractor, cls)), 0
    )


@register_tf2_mapping(CenterNetBodyFeatureExtractor)
def _body_extractor(extractor, prefix, shapes):
    body = body_layers(extractor)
    head = weighted_layers(extractor.feature_model)[len(body):]
    return paired(
        body,
        shapes,
        f"{prefix}/_base_model",
        BACKBONE,
        checkpoint_layers=len(body) + _unread(extractor),
    ) + paired(head, shapes, f"{prefix}/_feature_extractor_model", EXTRACTOR)
