"""TF2 checkpoint mappings of kdet's CenterNet and its feature extractors.

A TF OD API CenterNet checkpoint (`tf.train.Checkpoint(model=<CenterNetMetaArch>)`, as the
TF2 zoo archives hold it) keeps the feature extractor under `model/_feature_extractor/` and
the heads under `model/_prediction_head_dict/<head>/<i>/layer_with_weights-N` (`<head>` the
TF OD API's output name with `/` escaped as `.S`: `object_center`, `box.Sscale`,
`box.Soffset`, `<task>.Skeypoint.Sheatmap`, `.Sregression`, `.Soffset`; `<i>` the feature
output; `N` the hidden convolutions, then the 1x1 output convolution). A head that does not
fit (another number of classes or keypoints, a keypoint task the kdet model has not, or the
other way round) is refused with what differs only when the heads are restored (`"full"`):
a `"detection"` restore reads the extractor alone, as the TF OD API's does.

The TF OD API's CenterNet extractors hold their variables under
- Hourglass: `<extractor>/_network/<attribute path>` (`downsample_input/conv_block/conv`,
  `hourglass_network/0/encoder_block2/1/skip/norm`, …), the attribute names kdet's
  `hourglass_network` layers have;
- ResNet / MobileNetV2: `<extractor>/_base_model/layer_with_weights-N` (the
  `keras.applications` body) and `<extractor>/_feature_extractor_model/layer_with_weights-N`
  (N ≥ 1: the upsampling layers, in the order kdet builds them).
"""

import dataclasses

import keras

from kdet.checkpoints.tfod_checkpoint import VARIABLE_SUFFIX
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import LayerPair
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import checkpoint_layer_paths
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
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
from kdet.models.center_net import center_net as center_net_model
from kdet.models.center_net.center_net import CenterNet


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


# kdet's head names → the TF OD API's (`center_net_meta_arch.BOX_SCALE`, …); keypoint heads
# are `<task>/<kdet name>` → `<task>/<TF OD API name>`.
_TF_HEAD_NAMES = {
    center_net_model.OBJECT_CENTER: "object_center",
    center_net_model.BOX_SCALE: "box/scale",
    center_net_model.BOX_OFFSET: "box/offset",
    center_net_model.KEYPOINT_HEATMAP: "keypoint/heatmap",
    center_net_model.KEYPOINT_REGRESSION: "keypoint/regression",
    center_net_model.KEYPOINT_OFFSET: "keypoint/offset",
}
# What the output channels of each kind of head count, for the refusal message.
_CHANNELS = {
    center_net_model.OBJECT_CENTER: "classes (num_classes)",
    center_net_model.KEYPOINT_HEATMAP: "keypoints",
    center_net_model.KEYPOINT_REGRESSION: "2 x keypoints",
    center_net_model.KEYPOINT_OFFSET: "2 x keypoints with per_keypoint_offset, else 2",
}


@dataclasses.dataclass(frozen=True)
class RefusedHeadPair:
    """A prediction head the checkpoint holds in another form than the kdet model (or holds
    and the model has not, or the other way round). Ignored unless the heads are restored;
    then its `assignments` raise a `CheckpointError` saying what differs, before anything is
    assigned.

    Attributes:
        path: the head's object path in the checkpoint.
        problem: what differs.
        part: `HEADS`.
    """

    path: str
    problem: str
    part: str = HEADS

    def assignments(self):
        raise CheckpointError(
            f"{self.problem}: the config does not describe the model that wrote the "
            "checkpoint (a 'detection' checkpoint type restores the feature extractor alone)"
        )


def tf_head_name(name):
    """kdet's output name → the TF OD API's: `box_scale` → `box/scale`,
    `human_pose/keypoint_heatmap` → `human_pose/keypoint/heatmap`."""
    task, _, head = name.rpartition("/")
    return "/".join(filter(None, [task, _TF_HEAD_NAMES[head]]))


def escape(name):
    """A name as TF's object-based checkpoints write a dictionary key: `.` → `..`,
    `/` → `.S` (`box/scale` → `box.Sscale`)."""
    return name.replace(".", "..").replace("/", ".S")


def _head_pairs(name, index, head, shapes, path):
    """The `LayerPair`s of one kdet `CenterNetPredictionHead` beside the checkpoint's head at
    `path`, or a `RefusedHeadPair` saying why it does not fit."""
    layers = [*head.hidden, head.output_conv]
    found = checkpoint_layer_paths(shapes, path)
    tf_name = tf_head_name(name)
    if not found:
        return [RefusedHeadPair(path, f"the checkpoint has no {tf_name!r} head {index} "
                                      f"({path}/) for the kdet model's {name!r}")]
    if len(found) != len(layers):
        return [RefusedHeadPair(
            path, f"the checkpoint's {tf_name!r} head {index} has {len(found) - 1} hidden "
                  f"convolutions, the kdet model's {len(layers) - 1} (the head's num_filters)")]
    kernel = shapes.get(f"{found[-1]}/kernel{VARIABLE_SUFFIX}")
    if kernel is not None and kernel[-1] != head.num_outputs:
        counted = _CHANNELS.get(name.rpartition("/")[2], "channels")
        return [RefusedHeadPair(
            path, f"the checkpoint's {tf_name!r} head {index} predicts {kernel[-1]} channels, "
                  f"the kdet model's {head.num_outputs} ({counted})")]
    return [LayerPair(layer, layer_path, HEADS) for layer, layer_path in zip(layers, found)]


@register_tf2_mapping(CenterNet)
def _center_net(model, prefix, shapes):
    pairs = tf2_layer_pairs(model.feature_extractor, f"{prefix}/_feature_extractor", shapes)
    heads = f"{prefix}/_prediction_head_dict"
    expected = set()
    for name, per_output in model.prediction_heads.items():
        for index, head in enumerate(per_output):
            path = f"{heads}/{escape(tf_head_name(name))}/{index}"
            expected.add(path)
            pairs += _head_pairs(name, index, head, shapes, path)
    # Checkpoint heads and other variables the kdet model has no counterpart of: a keypoint
    # task it has not, mask, DensePose or tracking heads, another number of feature outputs.
    owned = (f"{prefix}/_feature_extractor/", *(path + "/" for path in expected))
    extra = {}
    for key in shapes:
        if key.startswith(prefix + "/") and not key.startswith(owned):
            head = key[len(heads) + 1:].split("/")[:2] if key.startswith(heads + "/") else None
            group = f"{heads}/{'/'.join(head)}" if head else key.rsplit("/", 3)[0]
            extra.setdefault(group, key)
    pairs += [
        RefusedHeadPair(group, f"the checkpoint has {group}/ (e.g. {key}), which the kdet "
                               "model has no counterpart of")
        for group, key in sorted(extra.items())
    ]
    return pairs
