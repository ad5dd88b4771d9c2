"""TF OD API `PostProcessing` / `BatchNonMaxSuppression` messages → `MultiClassNonMaxSuppression`
arguments (one `post_processing` message → one `non_max_suppression` component)."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.model_builder.common import construct
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression

# -- post-processing --------------------------------------------------------------------------

_BATCH_NON_MAX_SUPPRESSION_SCHEMA = {
    "score_threshold": Float(default=0.0),
    "iou_threshold": Float(default=0.6),
    "max_detections_per_class": Int(default=100, minimum=1),
    "max_total_detections": Int(default=100, minimum=1),
    "use_static_shapes": Switch(),
    "use_class_agnostic_nms": Bool(default=False),
    "max_classes_per_detection": Fixed(
        Int(default=1),
        1,
        "class-agnostic NMS keeps one class per box (the TF OD API refuses more as well: "
        "'Max classes per detection box >1 not supported')",
    ),
    # Fields of newer TF OD API versions of post_processing.proto.
    "soft_nms_sigma": Float(default=0.0),
    "use_partitioned_nms": Switch(),
    "use_combined_nms": Switch(),
    "change_coordinate_frame": Fixed(
        Bool(default=True),
        True,
        "kdet's detections are always relative to the image without its padding",
    ),
}
# `batch_non_max_suppression` field → the `MultiClassNonMaxSuppression` argument it sets.
_NON_MAX_SUPPRESSION_ARGUMENTS = {
    "score_threshold": "score_threshold",
    "iou_threshold": "iou_threshold",
    "max_detections_per_class": "max_detections_per_class",
    "max_total_detections": "max_detections",
    "use_class_agnostic_nms": "use_class_agnostic_nms",
    "soft_nms_sigma": "soft_nms_sigma",
}
_SCORE_CONVERTERS = {"IDENTITY": "identity", "SIGMOID": "sigmoid", "SOFTMAX": "softmax"}
_SSD_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Enum(_SCORE_CONVERTERS, default="IDENTITY"),
    "logit_scale": Float(default=1.0),
    "calibration_config": SubMessage(),
}
_FASTER_RCNN_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Fixed(Enum(tuple(_SCORE_CONVERTERS), default="IDENTITY"), "SOFTMAX"),
    "logit_scale": Fixed(Float(default=1.0), 1.0),
    "calibration_config": SubMessage(),
}
_CALIBRATION_REASON = (
    "score calibration (calibration.proto) is not in kdet yet: it would change the scores "
    "between the score converter and NMS"
)


def _read_batch_non_max_suppression(node):
    """Reads a TF OD API `BatchNonMaxSuppression` (None: all defaults) →
    `MultiClassNonMaxSuppression` arguments."""
    if node is None:
        return {
            argument: _BATCH_NON_MAX_SUPPRESSION_SCHEMA[name].default
            for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()
        }
    fields = read(node, _BATCH_NON_MAX_SUPPRESSION_SCHEMA)
    if fields["soft_nms_sigma"] < 0.0:
        raise fields.error(
            "soft_nms_sigma",
            f"'{fields.path('soft_nms_sigma')}' is {fields['soft_nms_sigma']}, but a soft-NMS "
            "sigma must be >= 0 (0 is hard NMS)",
        )
    return {argument: fields[name] for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()}


def _refuse_calibration(fields):
    if fields.has("calibration_config"):
        raise fields.error(
            "calibration_config",
            f"'{fields.path('calibration_config')}' is set, but {_CALIBRATION_REASON}",
        )


def build_ssd_non_max_suppression(node):
    """Reads an SSD TF OD API `PostProcessing` → the `non_max_suppression` of `kdet.SSD`.

    `score_converter` (IDENTITY, SIGMOID, SOFTMAX) and `logit_scale` are applied to the
    class logits, background column included, as the TF OD API does; the
    `batch_non_max_suppression` fields become the NMS settings.
    """
    fields = read(node, _SSD_POST_PROCESSING_SCHEMA)
    _refuse_calibration(fields)
    if fields["logit_scale"] == 0.0:
        raise fields.error(
            "logit_scale",
            f"'{fields.path('logit_scale')}' is 0, but logits are divided by it",
        )
    return construct(
        node,
        MultiClassNonMaxSuppression,
        **_read_batch_non_max_suppression(fields["batch_non_max_suppression"]),
        score_converter=fields["score_converter"],
        logit_scale=fields["logit_scale"],
    )


def read_faster_rcnn_post_processing(node):
    """Reads a `second_stage_post_processing` `PostProcessing` → `MultiClassNonMaxSuppression`
    arguments but the score converter (always SOFTMAX for `kdet.FasterRCNN`)."""
    fields = read(node, _FASTER_RCNN_POST_PROCESSING_SCHEMA)
    _refuse_calibration(fields)
    return _read_batch_non_max_suppression(fields["batch_non_max_suppression"])
