"""TF OD API `PostProcessing` / `BatchNonMaxSuppression` messages → `MultiClassNonMaxSuppression`
arguments (one `post_processing` message → one `non_max_suppression` component)."""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
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
_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Enum(_SCORE_CONVERTERS, default="IDENTITY"),
    "logit_scale": Float(default=1.0),
    "calibration_config": SubMessage(),
}
_PER_CLASS_CALIBRATION_REASON = (
    "per-class calibration (by label-map names) is not in kdet yet; the class-agnostic "
    "function_approximation and sigmoid_calibration are"
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


def _read_calibration(node):
    """Reads a TF OD API `CalibrationConfig` (None: absent) → the `calibration` argument of
    `MultiClassNonMaxSuppression`."""
    if node is None:
        return None
    chosen = read_one_of(
        node,
        (
            "function_approximation",
            "sigmoid_calibration",
            "label_function_approximations",
            "label_sigmoid_calibrations",
        ),
    )
    if chosen.name.startswith("label_"):
        raise chosen.error(f"'{chosen.path}' is set, but {_PER_CLASS_CALIBRATION_REASON}")
    if chosen.name == "sigmoid_calibration":
        parameters = read(chosen, {"sigmoid_parameters": SubMessage()})["sigmoid_parameters"]
        values = {"a": -1.0, "b": 0.0}
        if parameters is not None:
            fields = read(parameters, {"a": Float(default=-1.0), "b": Float(default=0.0)})
            values = {"a": fields["a"], "b": fields["b"]}
        return {"sigmoid": values}
    pairs_node = read(chosen, {"x_y_pairs": SubMessage(required=True)})["x_y_pairs"]
    pairs = read(pairs_node, {"x_y_pair": Repeated(SubMessage(), required=True)})
    points = []
    for index, message in enumerate(pairs["x_y_pair"]):
        pair = read(
            Node(message, f"{pairs_node.path}.x_y_pair[{index}]"),
            {"x": Float(required=True), "y": Float(required=True)},
        )
        points.append((pair["x"], pair["y"]))
    # The TF OD API sorts the pairs by x before interpolating.
    points.sort()
    return {
        "function_approximation": {"x": [x for x, _ in points], "y": [y for _, y in points]}
    }


def build_non_max_suppression(node):
    """Reads a TF OD API `PostProcessing` (SSD's `post_processing`, Faster R-CNN's
    `second_stage_post_processing`) → the model's `MultiClassNonMaxSuppression`.

    `score_converter` (IDENTITY, SIGMOID, SOFTMAX) and `logit_scale` are applied to the
    class logits, background column included, as the TF OD API does, then the
    class-agnostic `calibration_config`; the `batch_non_max_suppression` fields become the
    NMS settings.
    """
    fields = read(node, _POST_PROCESSING_SCHEMA)
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
        calibration=_read_calibration(fields["calibration_config"]),
    )
