"""TF OD API `eval_config` → kdet's evaluation settings.

Reads the `eval_config { … }` block of a pipeline.config (`eval.proto`) with the schema checks
of `kdet.configs.field_reader`: a field kdet does not support is an error at its line, never
ignored. `kdet eval` and `kdet.evaluation.COCOEvaluator` apply the settings.
"""

import dataclasses

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import String
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.text_format import Message
from kdet.evaluation.evaluator import COCO_DETECTION_METRICS
from kdet.evaluation.evaluator import CocoKeypointMetrics
from kdet.evaluation.evaluator import check_metrics_sets

# `eval.proto` fields kdet supports and their TF OD API defaults. `num_examples` and
# `eval_interval_secs` have no default here: TF2's model_main_tf2 ignores them (it evaluates
# the whole eval input and polls by its own flag), so kdet applies them only when set.
_EVAL_CONFIG = {
    "metrics_set": Repeated(String()),
    "batch_size": Int(default=1, minimum=1),
    "num_examples": Int(minimum=1),
    "max_evals": Int(default=0, minimum=0),
    "eval_interval_secs": Int(minimum=1),
    "include_metrics_per_category": Bool(default=False),
    # A newer `eval.proto` field: with the one above, all 12 COCO numbers per category.
    "all_metrics_per_category": Bool(default=False),
    # A newer `eval.proto` map<string, string>: super-category → comma-separated categories.
    "super_categories": Repeated(SubMessage()),
    # COCO keypoint metrics per class (`coco_keypoint_metrics { class_label … }`) and the
    # keypoint edges drawn.
    "parameterized_metric": Repeated(SubMessage()),
    "keypoint_edge": Repeated(SubMessage()),
    # The TF OD API reads this nowhere (its mask metrics come from `metrics_set:
    # "coco_mask_metrics"`), so either value evaluates the same.
    "eval_instance_masks": Switch(default=False),
    # The recall range of `precision_at_recall_detection_metrics`.
    "recall_lower_bound": Float(default=0.0),
    "recall_upper_bound": Float(default=1.0),
    "num_visualizations": Int(default=10, minimum=0),
    "min_score_threshold": Float(default=0.5),
    "max_num_boxes_to_visualize": Int(default=20, minimum=0),
    # Evaluate the optimizer's moving averages of the weights (`COCOEvaluator`).
    "use_moving_averages": Bool(default=False),
    # kdet's evaluator computes no losses and draws the images it evaluates, so these compute
    # the same thing either way.
    "use_dummy_loss_in_eval": Switch(default=False),
    "retain_original_images": Switch(default=True),
}


@dataclasses.dataclass
class EvalSettings:
    """What `eval_config` sets.

    Attributes:
        metrics_sets: tuple of TF OD API `metrics_set` names (`kdet.evaluation.METRICS_SETS`);
            `("coco_detection_metrics",)` when the config names none, as in the TF OD API.
        batch_size: int, images per evaluation batch.
        num_examples: int, images evaluated per checkpoint, or None for the whole eval input.
        max_evals: int, evaluations before `kdet eval` stops; 0 for no limit.
        eval_interval_secs: int, seconds between checks for a new checkpoint, or None.
        include_metrics_per_category: bool, add the COCO per-category mAP.
        all_metrics_per_category: bool, with it, all 12 COCO numbers per category.
        use_moving_averages: bool, evaluate the moving averages of the weights that the
            optimizer keeps (`train_config.optimizer.use_moving_average`).
        super_categories: dict `{name: [category names]}` (the COCO mAP of each, with
            `include_metrics_per_category`), or None.
        num_visualizations: int, images drawn to TensorBoard per evaluation.
        min_score_threshold: float, the lowest score of a drawn detection.
        max_num_boxes_to_visualize: int, detections drawn per image at most.
        recall_lower_bound: float, the lowest recall of
            `precision_at_recall_detection_metrics`.
        recall_upper_bound: float, its highest recall.
        keypoint_metrics: tuple of `kdet.evaluation.CocoKeypointMetrics`, one per
            `parameterized_metric { coco_keypoint_metrics { … } }`.
        keypoint_edges: tuple of `(start, end)` keypoint ids joined in the drawings
            (`keypoint_edge { start end }`).
    """

    metrics_sets: tuple
    batch_size: int
    num_examples: int
    max_evals: int
    eval_interval_secs: int
    include_metrics_per_category: bool
    num_visualizations: int
    min_score_threshold: float
    max_num_boxes_to_visualize: int
    recall_lower_bound: float = 0.0
    recall_upper_bound: float = 1.0
    all_metrics_per_category: bool = False
    use_moving_averages: bool = False
    super_categories: dict = None
    keypoint_metrics: tuple = ()
    keypoint_edges: tuple = ()


def build_eval_settings(node=None):
    """`EvalSettings` from an `eval_config { … }` message (`eval.proto`).

    Args:
        node: the `Node` of the `eval_config` message, or None for a config without one (the
            TF OD API defaults).

    Returns:
        An `EvalSettings`.

    Raises:
        ConfigError: for an unknown field (with a "did you mean" hint), a bad value, an
            unknown `metrics_set`, recall bounds out of order, or a `parameterized_metric`
            other than `coco_keypoint_metrics`.
    """
    node = node or Node(Message(), "eval_config")
    fields = read(node, _EVAL_CONFIG)
    for field in node.message.get("metrics_set"):
        try:
            check_metrics_sets(field.value)
        except ValueError as error:
            raise node.error(f"'{node.path}.metrics_set': {error}", field) from None
    lower, upper = fields["recall_lower_bound"], fields["recall_upper_bound"]
    if not 0.0 <= lower <= upper <= 1.0:
        name = "recall_lower_bound" if fields.has("recall_lower_bound") else "recall_upper_bound"
        raise fields.error(
            name,
            f"'{node.path}.recall_lower_bound' ({lower}) and 'recall_upper_bound' ({upper}) "
            "must satisfy 0 <= recall_lower_bound <= recall_upper_bound <= 1",
        )
    return EvalSettings(
        metrics_sets=check_metrics_sets(fields["metrics_set"] or COCO_DETECTION_METRICS),
        batch_size=fields["batch_size"],
        num_examples=fields["num_examples"],
        max_evals=fields["max_evals"],
        eval_interval_secs=fields["eval_interval_secs"],
        include_metrics_per_category=fields["include_metrics_per_category"],
        num_visualizations=fields["num_visualizations"],
        min_score_threshold=fields["min_score_threshold"],
        max_num_boxes_to_visualize=fields["max_num_boxes_to_visualize"],
        recall_lower_bound=lower,
        recall_upper_bound=upper,
        all_metrics_per_category=fields["all_metrics_per_category"],
        use_moving_averages=fields["use_moving_averages"],
        super_categories=_super_categories(fields) or None,
        keypoint_metrics=_keypoint_metrics(fields),
        keypoint_edges=_keypoint_edges(fields),
    )


def _keypoint_metrics(fields):
    """`CocoKeypointMetrics` of the `parameterized_metric { coco_keypoint_metrics { … } }`."""
    result = []
    for message in fields["parameterized_metric"]:
        metric = read_one_of(
            Node(message, fields.path("parameterized_metric")), ("coco_keypoint_metrics",)
        )
        entry = read(metric, {
            "class_label": String(required=True),
            "keypoint_label_to_sigmas": Repeated(SubMessage()),
        })
        sigmas = {}
        for sigma in entry["keypoint_label_to_sigmas"]:
            pair = read(Node(sigma, entry.path("keypoint_label_to_sigmas")),
                        {"key": String(required=True), "value": Float(required=True)})
            sigmas[pair["key"]] = pair["value"]
        result.append(CocoKeypointMetrics(entry["class_label"], sigmas or None))
    return tuple(result)


def _keypoint_edges(fields):
    """`(start, end)` pairs of the `keypoint_edge { start end }` entries."""
    edges = []
    for message in fields["keypoint_edge"]:
        edge = read(Node(message, fields.path("keypoint_edge")),
                    {"start": Int(required=True, minimum=0), "end": Int(required=True, minimum=0)})
        edges.append((edge["start"], edge["end"]))
    return tuple(edges)


def _super_categories(fields):
    """`{name: [category names]}` from the `super_categories { key value }` entries."""
    result = {}
    for message in fields["super_categories"]:
        entry = read(Node(message, fields.path("super_categories")),
                     {"key": String(required=True), "value": String(required=True)})
        # Split at commas as the TF OD API's eval_util does (no trimming).
        result[entry["key"]] = entry["value"].split(",")
    return result
