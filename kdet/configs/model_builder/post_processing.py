"""TF OD API `PostProcessing` / `BatchNonMaxSuppression` messages → model NMS arguments."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read

# -- post-processing --------------------------------------------------------------------------

_BATCH_NON_MAX_SUPPRESSION_SCHEMA = {
    "score_threshold": Float(default=0.0),
    "iou_threshold": Float(default=0.6),
    "max_detections_per_class": Int(default=100, minimum=1),
    "max_total_detections": Int(default=100, minimum=1),
    "use_static_shapes": Switch(),
    "use_class_agnostic_nms": Fixed(Bool(default=False), False, "kdet runs per-class NMS"),
    "max_classes_per_detection": Fixed(Int(default=1), 1),
    "soft_nms_sigma": Fixed(Float(default=0.0), 0.0, "kdet runs hard NMS"),
}
# `batch_non_max_suppression` field → the kdet model argument it sets.
_NON_MAX_SUPPRESSION_ARGUMENTS = {
    "score_threshold": "score_threshold",
    "iou_threshold": "iou_threshold",
    "max_detections_per_class": "max_detections_per_class",
    "max_total_detections": "max_detections",
}
_SCORE_CONVERTER_NAMES = ("IDENTITY", "SIGMOID", "SOFTMAX")
_SSD_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Enum(
        {"SIGMOID": "sigmoid", "SOFTMAX": "softmax"},
        default="IDENTITY",
        unsupported={"IDENTITY": "kdet's SSD turns logits into scores with SIGMOID or SOFTMAX"},
    ),
    "logit_scale": Float(default=1.0),
}
_FASTER_RCNN_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Fixed(Enum(_SCORE_CONVERTER_NAMES, default="IDENTITY"), "SOFTMAX"),
    "logit_scale": Fixed(Float(default=1.0), 1.0),
}


def _read_batch_non_max_suppression(node):
    """Reads a TF OD API `BatchNonMaxSuppression` (None: all defaults) → model arguments."""
    if node is None:
        return {
            argument: _BATCH_NON_MAX_SUPPRESSION_SCHEMA[name].default
            for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()
        }
    fields = read(node, _BATCH_NON_MAX_SUPPRESSION_SCHEMA)
    return {argument: fields[name] for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()}


def read_ssd_post_processing(node):
    """Reads an SSD TF OD API `PostProcessing` → `kdet.SSD` arguments."""
    fields = read(node, _SSD_POST_PROCESSING_SCHEMA)
    return {
        **_read_batch_non_max_suppression(fields["batch_non_max_suppression"]),
        "score_converter": fields["score_converter"],
        "logit_scale": fields["logit_scale"],
    }


def read_faster_rcnn_post_processing(node):
    """Reads a `second_stage_post_processing` `PostProcessing` → `kdet.FasterRCNN` arguments
    (the score converter is always SOFTMAX)."""
    fields = read(node, _FASTER_RCNN_POST_PROCESSING_SCHEMA)
    return _read_batch_non_max_suppression(fields["batch_non_max_suppression"])
