"""What kdet does not have yet: the first error of a config that needs it."""

import dataclasses

from kdet.configs.field_reader import Node
from kdet.configs.model_builder.feature_extractor import KERAS_SUFFIX
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Message
from kdet.feature_extractors import CenterNetFeatureExtractor
from kdet.feature_extractors import FasterRCNNFeatureExtractor
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.feature_extractors import available_feature_extractors
from kdet.feature_extractors import get_feature_extractor_class

_META_ARCHITECTURES = ("ssd", "faster_rcnn", "center_net")

# -- what kdet does not have yet --------------------------------------------------------------
# A config that needs a meta-architecture, a feature extractor or a model output kdet does not
# have yet fails with that fact first, at the field that asks for it, before any other field of
# the config is read (`check_architecture`): an SSD config with a mask head says "instance
# masks", not that a `mask_*` field is unknown, nor that its learning rate schedule is refused.

# The issues of the project that add them.
_EXTRACTORS_ISSUE = 17

# `model { … }` oneof fields of the TF OD API (`model.proto`, `center_net.proto`,
# `detr.proto`) that kdet does not build: field → (what it is, the issue that adds it or None).
_MISSING_META_ARCHITECTURES = {
    "detr": ("DETR", None),
    "experimental_model": ("an experimental meta-architecture of the TF OD API's own registry",
                           None),
}
# `center_net { … }` task fields → what they add to CenterNet and the issue that adds it.
# (kdet's CenterNet instance masks are DeepMAC's, `deepmac_mask_estimation`: no sample config
# uses the per-class segmentation of `mask_estimation_task`.)
_CENTER_NET_TASKS = {
    "mask_estimation_task": ("segmentation mask", None),
    "densepose_estimation_task": ("DensePose", None),
    "track_estimation_task": ("tracking", None),
    "temporal_offset_task": ("temporal offset", None),
}
# TF OD API feature extractor types (without the TF2 `_keras` suffix) that kdet has no
# extractor for yet → what they are.
_MISSING_FEATURE_EXTRACTORS = {
    "ssd_mobilenet_v1": "MobileNet v1",
    "embedded_ssd_mobilenet_v1": "MobileNet v1 for embedded devices",
    "ssd_mobilenet_v1_ppn": "MobileNet v1 with a pooling pyramid",
    "ssd_mobilenet_v3_large": "MobileNet v3 Large",
    "ssd_mobilenet_v3_small": "MobileNet v3 Small",
    "ssd_mobilenet_edgetpu": "MobileNet EdgeTPU",
    **{f"ssd_mobiledet_{kind}": f"MobileDet {kind.upper()}" for kind in ("cpu", "dsp", "gpu")},
    "ssd_mobiledet_edgetpu": "MobileDet EdgeTPU",
    "ssd_inception_v2": "Inception v2",
    "ssd_inception_v3": "Inception v3",
    "ssd_pnasnet": "PNASNet",
    **{f"ssd_resnet{depth}_v1_fpn": f"ResNet-{depth} v1 FPN" for depth in (101, 152)},
    **{f"ssd_resnet{depth}_v1_ppn": f"ResNet-{depth} v1 with a pooling pyramid"
       for depth in (50, 101, 152)},
    **{f"ssd_efficientnet-b{index}_bifpn": f"EfficientDet: EfficientNet-B{index} with BiFPN"
       for index in range(8)},
    "faster_rcnn_inception_v2": "Inception v2",
    "faster_rcnn_inception_resnet_v2": "Inception-ResNet v2",
    "faster_rcnn_pnas": "PNASNet",
}
# The kdet model class of each meta-architecture, for "kdet's SSD feature extractors: …".
_FEATURE_EXTRACTOR_BASES = {
    "ssd": SSDFeatureExtractor,
    "faster_rcnn": FasterRCNNFeatureExtractor,
    "center_net": CenterNetFeatureExtractor,
}
_META_ARCHITECTURE_NAMES = {
    SSDFeatureExtractor: "SSD",
    FasterRCNNFeatureExtractor: "Faster R-CNN",
    CenterNetFeatureExtractor: "CenterNet",
}


@dataclasses.dataclass(frozen=True)
class _Gap:
    """Something a config needs that kdet does not have yet.

    `rank` orders the gaps of one config for the error (0: meta-architecture, 1: a variant of
    it or a model output, 2: a feature extractor); `field` is where the config asks for it,
    `problem` the whole error text after `source:line:column:`, `short` how the error names it
    when another gap comes first.
    """

    rank: int
    source: str
    field: object
    problem: str
    short: str


def _issue(issue):
    return f"issue {issue}" if issue else "not planned"


def _not_in_kdet(issue):
    """`is not in kdet yet (issue N)`, or `is not in kdet (not planned)` without an issue."""
    return f"is not in kdet {'yet ' if issue else ''}({_issue(issue)})"


def _model_gaps(node):
    """The `_Gap`s of the `model { … }` message of `node`, in the order errors name them."""
    gaps = []
    for field in node.message.fields:
        path = f"{node.path}.{field.name}"
        if field.name in _MISSING_META_ARCHITECTURES:
            what, issue = _MISSING_META_ARCHITECTURES[field.name]
            gaps.append(_Gap(
                0, node.message.source, field,
                f"'{path}': {what} {_not_in_kdet(issue)}; kdet builds ssd, faster_rcnn and "
                "center_net models",
                f"{what} ({_issue(issue)})",
            ))
        elif field.name in _META_ARCHITECTURES and isinstance(field.value, Message):
            child = Node(field.value, path)
            if field.name == "center_net":
                gaps += _center_net_gaps(child)
            elif field.name != "faster_rcnn":
                gaps += _mask_gaps(child, "an SSD mask head")
            gaps += _feature_extractor_gaps(child, _FEATURE_EXTRACTOR_BASES[field.name])
    return sorted(gaps, key=lambda gap: (gap.rank, gap.field.line, gap.field.column))


def _center_net_gaps(node):
    """The tasks of a `center_net { … }` message beyond boxes (keypoints, masks, …)."""
    gaps = []
    for field in node.message.fields:
        if field.name in _CENTER_NET_TASKS:
            what, issue = _CENTER_NET_TASKS[field.name]
            gaps.append(_Gap(
                1, node.message.source, field,
                f"'{node.path}.{field.name}': CenterNet's {what} task {_not_in_kdet(issue)}",
                f"{what} ({field.name}, {_issue(issue)})",
            ))
    return gaps


def _mask_fields(node):
    """`(path, field)` of every field of `node` (an `ssd { … }` message; Mask R-CNN is
    `kdet.models.faster_rcnn.MaskRCNN`) and its messages that asks for instance masks:
    `predict_instance_masks: true` and the `*mask*` fields that configure them
    (`mask_height`, `mask_head_config`, …)."""
    for field in node.message.fields:
        path = f"{node.path}.{field.name}"
        if field.name == "predict_instance_masks":
            if field.value is not False and field.value != 0:
                yield path, field
        elif "mask" in field.name:
            yield path, field
        elif isinstance(field.value, Message):
            yield from _mask_fields(Node(field.value, path))


def _mask_gaps(node, what):
    """The first field (in file order) of `node` that asks for instance masks, as a gap."""
    found = min(_mask_fields(node), key=lambda item: (item[1].line, item[1].column), default=None)
    if found is None:
        return []
    path, field = found
    # kdet's instance masks are Mask R-CNN's and DeepMAC's; no sample config has an SSD mask head.
    where = "kdet's masks are Mask R-CNN's and DeepMAC's"
    if field.name == "predict_instance_masks":
        problem = f"'{path}' is true: instance masks ({what}) are not in kdet; {where}"
    else:
        problem = f"'{path}' configures instance masks ({what}), which are not in kdet; {where}"
    return [_Gap(1, node.message.source, field, problem, f"instance masks ({what})")]


def _feature_extractor_gaps(node, base_class):
    """The feature extractor `type` of `node`, when it is a TF OD API extractor kdet has not."""
    extractors = [f.value for f in node.message.fields if f.name == "feature_extractor"]
    if len(extractors) != 1 or not isinstance(extractors[0], Message):
        return []
    types = [f for f in extractors[0].fields if f.name == "type" and isinstance(f.value, str)]
    if len(types) != 1:
        return []
    field = types[0]
    name = str(field.value)
    stem = name.removesuffix(KERAS_SUFFIX)
    registered = available_feature_extractors()
    if name in registered or stem in registered or stem not in _MISSING_FEATURE_EXTRACTORS:
        return []
    family = [
        n for n in registered if issubclass(get_feature_extractor_class(n), base_class)
    ]
    meta_architecture = _META_ARCHITECTURE_NAMES[base_class]
    what = f"feature extractor '{name}' ({_MISSING_FEATURE_EXTRACTORS[stem]})"
    return [_Gap(
        2, extractors[0].source, field,
        f"'{node.path}.feature_extractor.type': {what} is not in kdet yet (issue "
        f"{_EXTRACTORS_ISSUE}); kdet's {meta_architecture} feature extractors: "
        f"{', '.join(family)} (and yours, once registered: kdet train --import MODULE)",
        f"{what}, issue {_EXTRACTORS_ISSUE}",
    )]


def check_architecture(config):
    """Raises a `ConfigError` if the config needs what kdet does not have yet.

    That is a meta-architecture other than SSD, Faster R-CNN and CenterNet (`detr`,
    `experimental_model`), a variant of one (SSD
    instance masks: `predict_instance_masks: true` and the `mask_*` fields; CenterNet's mask, DeepMAC, DensePose, tracking and temporal offset tasks), or a TF OD API feature extractor kdet has no
    counterpart for (e.g. `ssd_efficientnet-b0_bifpn_keras`, EfficientDet; an extractor of
    your own, once registered, is found). Nothing else is checked, so run this before reading
    the rest of the config: the error then names the real cause, not a field that only
    follows from it. `load_pipeline` and `build_model` do.

    Args:
        config: the root `Message` of a pipeline config (every `model` field is checked), or
            the `Message` (or `Node`) of a `model { … }` block.

    Raises:
        ConfigError: `source:line:column: 'field': … is not in kdet yet (issue N)` at the
            field that asks for it (the meta-architecture before its variants and outputs,
            before the feature extractor); when the config needs several of them, the error
            names the others too.
    """
    if isinstance(config, Node):
        models = [config]
    elif any(field.name in _META_ARCHITECTURES or field.name in _MISSING_META_ARCHITECTURES
             for field in config.fields):
        models = [Node(config, "model")]
    else:
        models = [Node(field.value, "model") for field in config.fields
                  if field.name == "model" and isinstance(field.value, Message)]
    for node in models:
        gaps = _model_gaps(node)
        if not gaps:
            continue
        first = gaps[0]
        problem = first.problem
        if len(gaps) > 1:
            problem += "; the config also needs " + ", ".join(gap.short for gap in gaps[1:])
        raise ConfigError.at(first.source, first.field.line, first.field.column, problem)
