"""TF OD API `precision_at_recall_detection_metrics`: AP over a recall range (hand-computed)."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.evaluation import COCOEvaluator
from kdet.evaluation.pascal_voc_metrics import evaluate_detections

# Two cats; detections by confidence: 0.9 on the first (TP), 0.8 nowhere (FP), 0.7 on the
# second (TP): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
GROUNDTRUTH = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [1, 1]}]
DETECTIONS = [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]],
               "labels": [1, 1, 1], "confidences": [0.9, 0.8, 0.7]}]


@pytest.mark.parametrize(
    "bounds, name, expected",
    [
        # The whole curve: 1/2 · 1 + 1/2 · 2/3.
        ((0.0, 1.0), "PrecisionAtRecallBoxes_Precision/mAP@0.5IOU", 0.5 + 1 / 3),
        # Only the point at recall 1 (precision 2/3) is kept: 1 · 2/3.
        ((0.6, 1.0), "PrecisionAtRecallBoxes_Precision/mAP@0.5IOU@[0.6,1.0]Recall", 2 / 3),
        # Only the points at recall 1/2 (precision 1 and 1/2): 1/2 · 1.
        ((0.0, 0.5), "PrecisionAtRecallBoxes_Precision/mAP@0.5IOU@[0.0,0.5]Recall", 0.5),
    ],
)
def test_ap_over_the_recall_range(bounds, name, expected):
    metrics = evaluate_detections(GROUNDTRUTH, DETECTIONS, prefix="PrecisionAtRecallBoxes",
                                  label_map={1: "cat"}, recall_lower_bound=bounds[0],
                                  recall_upper_bound=bounds[1])
    assert list(metrics) == [name, "PrecisionAtRecallBoxes_PerformanceByCategory/AP@0.5IOU/cat"]
    assert metrics[name] == pytest.approx(expected)


class _Detections:
    """The detections above for a batch of one image (what a detector's predict returns)."""

    def predict_on_batch(self, images):
        dt = DETECTIONS[0]
        return {"boxes": np.array([dt["boxes"]], float), "labels": np.array([dt["labels"]]),
                "confidences": np.array([dt["confidences"]]), "num_detections": np.array([3])}


def test_the_evaluator_takes_the_config_bounds():
    root = parse('eval_config {\n  metrics_set: "precision_at_recall_detection_metrics"\n'
                 "  recall_lower_bound: 0.6\n}", "pipeline.config")
    settings = build_eval_settings(Node(root.first("eval_config"), "eval_config"))
    assert (settings.recall_lower_bound, settings.recall_upper_bound) == (0.6, 1.0)
    dataset = tf.data.Dataset.from_tensors(
        (tf.zeros([1, 64, 64, 3]), {"boxes": tf.constant([GROUNDTRUTH[0]["boxes"]], tf.float32),
                                    "labels": tf.constant([[1, 1]])}))
    evaluator = COCOEvaluator(dataset, label_map={1: "cat"}, metrics_sets=settings.metrics_sets,
                              recall_lower_bound=settings.recall_lower_bound,
                              recall_upper_bound=settings.recall_upper_bound)
    metrics = evaluator.evaluate(_Detections())
    assert metrics["PrecisionAtRecallBoxes_Precision/mAP@0.5IOU@[0.6,1.0]Recall"] == (
        pytest.approx(2 / 3))


def test_bounds_out_of_order_are_an_error_at_the_line():
    root = parse("eval_config {\n  recall_lower_bound: 0.8\n  recall_upper_bound: 0.5\n}",
                 "pipeline.config")
    with pytest.raises(ConfigError, match=r"pipeline.config:2:3: .*recall_lower_bound' \(0.8\) "
                                          r"and 'recall_upper_bound' \(0.5\) must satisfy"):
        build_eval_settings(Node(root.first("eval_config"), "eval_config"))
    with pytest.raises(ValueError, match="recall bounds must satisfy"):
        COCOEvaluator(tf.data.Dataset.range(1), recall_lower_bound=0.8, recall_upper_bound=0.5)
