"""Checkpoint mappings of kdet's Faster R-CNN Inception-ResNet-v2 extractor
(`faster_rcnn_inception_resnet_v2`, `..._keras`).

TF2: the extractor is a `FasterRCNNSplitBodyFeatureExtractor`, whose mapping
(`kdet.checkpoints.mappings.faster_rcnn`) pairs both halves by position with the TF OD API's
`_feature_extractor_for_proposal_features` / `_for_box_classifier_features`: kdet's body has
`keras.applications`' graph, so its layers with weights come in the same order.

TF1: the TF OD API's TF1 extractor keeps slim's `inception_resnet_v2_base` up to
`PreAuxLogits` under `FirstStageFeatureExtractor/InceptionResnetV2/` and the second stage it
writes out under `SecondStageFeatureExtractor/InceptionResnetV2/`. kdet's layer names are the
slim scopes in lower case (`mixed_6a_branch_1_conv2d_0b_3x3` ← `Mixed_6a/Branch_1/
Conv2d_0b_3x3`, its batch norm `..._bn` in the same scope), but for the repeated blocks: slim
keeps the block35s under `Repeat/`, the block17s under `Repeat_1/` and the second stage's
block8s under `Repeat/` again (a scope of their own there), the last block8 as `Block8`, and a
block's 1x1 "up" convolution (kdet `block35_3_conv`) as `Conv2d_1x1`. Slim's classification
checkpoint (`inception_resnet_v2_2016_08_30.ckpt`) has the whole net under one scope, its
block8s under `Repeat_2/`: the TF OD API's `restore_from_classification_checkpoint_fn`
renames them, and so does a kdet "classification" restore.
"""

import dataclasses
import re

from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.feature_extractors.faster_rcnn_inception_resnet_v2_feature_extractor import (
    FasterRCNNInceptionResNetV2FeatureExtractor,
)

FIRST_STAGE_SCOPE = "FirstStageFeatureExtractor/InceptionResnetV2"
SECOND_STAGE_SCOPE = "SecondStageFeatureExtractor/InceptionResnetV2"
# slim's scope of each block type's repeats (in the detection model).
_REPEAT_SCOPES = {"35": "Repeat", "17": "Repeat_1", "8": "Repeat"}
# What slim's classification network calls the block8 repeats.
_CLASSIFICATION_BLOCK8_SCOPE = "Repeat_2"

_LAYER_NAME = re.compile(
    r"(?:(?:(?P<mixed>mixed_\d[ab])|block(?P<type>35|17|8)_(?P<index>\d+))_)?"
    r"(?:branch_(?P<branch>\d)_)?(?P<conv>conv2d_\w+?|conv)(?:_bn)?"
)


def inception_resnet_v2_scope(layer_name, last_block8):
    """The slim scope within `InceptionResnetV2/` of a body layer with weights
    (`block17_20_branch_1_conv2d_0b_1x7` → `Repeat_1/block17_20/Branch_1/Conv2d_0b_1x7`), or
    None; `last_block8` is the index of the body's last block8 (slim's `Block8`)."""
    match = _LAYER_NAME.fullmatch(layer_name)
    if match is None:
        return None
    parts = []
    if match["mixed"]:
        parts.append(match["mixed"].capitalize())
    elif match["type"] == "8" and int(match["index"]) == last_block8:
        parts.append("Block8")
    elif match["type"]:
        block = f"block{match['type']}_{match['index']}"
        parts += [_REPEAT_SCOPES[match["type"]], block]
    if match["branch"]:
        parts.append(f"Branch_{match['branch']}")
    conv = match["conv"]
    parts.append("Conv2d_1x1" if conv == "conv" else conv.capitalize())
    return "/".join(parts)


@dataclasses.dataclass(frozen=True)
class _SecondStagePair(SlimLayerPair):
    """A second-stage pair: slim's classification checkpoint keeps the block8 repeats under
    `Repeat_2/` (the detection model under `Repeat/`)."""

    def in_classification_checkpoint(self):
        pair = super().in_classification_checkpoint()
        return dataclasses.replace(
            pair,
            path=pair.path.replace(
                "InceptionResnetV2/Repeat/", f"InceptionResnetV2/{_CLASSIFICATION_BLOCK8_SCOPE}/"
            ),
        )


@register_tf1_mapping(FasterRCNNInceptionResNetV2FeatureExtractor)
def _faster_rcnn_inception_resnet_v2(extractor, scope):
    if not extractor.slim_layout:
        raise CheckpointError(
            f"{type(extractor).__name__} has the TF2 (Keras) layout, whose second stage pads "
            "Mixed_7a 'same'; TF1 checkpoints fit the TF-Slim one: build the model from the TF1 "
            "config (feature_extractor type without '_keras'), or pass slim_layout=True"
        )
    last_block8 = extractor.block_repeats[2]

    def scope_of(name):
        return inception_resnet_v2_scope(name, last_block8)

    first = slim_pairs(
        extractor.proposal_body.layers,
        slim_scope(scope, FIRST_STAGE_SCOPE),
        scope_of,
        BACKBONE,
    )
    second = slim_pairs(
        extractor.box_classifier_body.layers,
        slim_scope(scope, SECOND_STAGE_SCOPE),
        scope_of,
        BACKBONE,
    )
    return first + [_SecondStagePair(pair.layer, pair.path, pair.part) for pair in second]
