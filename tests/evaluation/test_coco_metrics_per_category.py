"""COCO `all_metrics_per_category`: each category's 12 numbers equal pycocotools run on that
category alone."""

import numpy as np
import pytest
import tensorflow as tf

from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import parse
from kdet.evaluation import COCO_METRIC_NAMES
from kdet.evaluation import COCOEvaluator
from kdet.evaluation.coco_metrics import COCO_PER_CATEGORY_METRIC_NAMES
from kdet.evaluation.coco_metrics import compute_coco_metrics

LABEL_MAP = {1: "cat", 2: "dog"}


def _data(seed=0, num_images=6):
    """Boxes of small, medium and large sizes, their jittered detections and some misses."""
    rng = np.random.default_rng(seed)
    groundtruth, detections = [], []
    for _ in range(num_images):
        n = int(rng.integers(1, 5))
        corner = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(5, 150, (n, 2))], axis=1)
        labels = rng.integers(1, 3, n)
        groundtruth.append({"boxes": boxes, "labels": labels})
        misses = np.concatenate([corner[::-1], corner[::-1] + 30], axis=1)
        detections.append({
            "boxes": np.concatenate([boxes + rng.normal(0, 8, boxes.shape), misses]),
            "labels": np.concatenate([labels, rng.integers(1, 3, n)]),
            "confidences": rng.uniform(0, 1, 2 * n),
        })
    return groundtruth, detections


def _only(images, label):
    return [{key: value[image["labels"] == label] for key, value in image.items()}
            for image in images]


def test_each_categorys_numbers_equal_pycocotools_on_that_category_alone():
    groundtruth, detections = _data()
    metrics = compute_coco_metrics(groundtruth, detections, label_map=LABEL_MAP,
                                   all_metrics_per_category=True)
    for label, name in LABEL_MAP.items():
        alone = compute_coco_metrics(_only(groundtruth, label), _only(detections, label),
                                     label_map={label: name})
        for per_category, overall in zip(COCO_PER_CATEGORY_METRIC_NAMES, COCO_METRIC_NAMES):
            assert metrics[f"{per_category} ByCategory/{name}"] == pytest.approx(alone[overall])
        assert metrics[f"DetectionBoxes_PerformanceByCategory/mAP/{name}"] == pytest.approx(
            alone["DetectionBoxes_Precision/mAP"])
    assert "DetectionBoxes_Recall AR@100 (large) ByCategory/dog" in metrics
    assert not any(" ByCategory/" in key for key in compute_coco_metrics(
        groundtruth, detections, label_map=LABEL_MAP))


def test_config_to_evaluator():
    root = parse("eval_config { include_metrics_per_category: true "
                 "all_metrics_per_category: true }", "pipeline.config")
    settings = build_eval_settings(Node(root.first("eval_config"), "eval_config"))
    assert settings.include_metrics_per_category and settings.all_metrics_per_category
    groundtruth, detections = _data(seed=1, num_images=2)

    class Detections:
        """The detections of `_data` for the two images of the one batch."""

        def predict_on_batch(self, images):
            size = max(len(dt["labels"]) for dt in detections)
            pad = [size - len(dt["labels"]) for dt in detections]
            return {
                "boxes": np.stack([np.pad(dt["boxes"], ((0, p), (0, 0)), constant_values=-1)
                                   for dt, p in zip(detections, pad)]),
                "labels": np.stack([np.pad(dt["labels"], (0, p), constant_values=-1)
                                    for dt, p in zip(detections, pad)]),
                "confidences": np.stack([np.pad(dt["confidences"], (0, p))
                                         for dt, p in zip(detections, pad)]),
            }

    size = max(len(gt["labels"]) for gt in groundtruth)
    y = {"boxes": np.stack([np.pad(gt["boxes"], ((0, size - len(gt["labels"])), (0, 0)),
                                   constant_values=-1) for gt in groundtruth]),
         "labels": np.stack([np.pad(gt["labels"], (0, size - len(gt["labels"])),
                                    constant_values=-1) for gt in groundtruth])}
    dataset = tf.data.Dataset.from_tensors((np.zeros([2, 8, 8, 3], "float32"), y))
    metrics = COCOEvaluator(
        dataset, label_map=LABEL_MAP,
        include_metrics_per_category=settings.include_metrics_per_category,
        all_metrics_per_category=settings.all_metrics_per_category,
        super_categories={"pets": ["cat", "dog"]},
    ).evaluate(Detections())
    assert metrics == pytest.approx(compute_coco_metrics(
        groundtruth, detections, label_map=LABEL_MAP, all_metrics_per_category=True,
        super_categories={"pets": ["cat", "dog"]}), nan_ok=True)
    assert len(metrics) == 12 + 2 * 13 + 1


def test_super_categories_average_their_categories_map():
    groundtruth, detections = _data()
    metrics = compute_coco_metrics(groundtruth, detections, label_map=LABEL_MAP,
                                   super_categories={"pets": ["cat", "dog"], "cats": ["cat"],
                                                     "with_absent": ["cat", "bird"]})
    cat = metrics["DetectionBoxes_PerformanceByCategory/mAP/cat"]
    dog = metrics["DetectionBoxes_PerformanceByCategory/mAP/dog"]
    assert cat != dog
    assert metrics["DetectionBoxes_PerformanceBySuperCategory/pets"] == pytest.approx(
        (cat + dog) / 2)
    assert metrics["DetectionBoxes_PerformanceBySuperCategory/cats"] == pytest.approx(cat)
    # A listed name that is not a category counts in the denominator (the TF OD API's sum / n).
    assert metrics["DetectionBoxes_PerformanceBySuperCategory/with_absent"] == pytest.approx(
        cat / 2)


def test_super_categories_from_the_config():
    # As center_net_deepmac_1024x1024_coco_tpu-128.config writes them (adjacent strings).
    root = parse('eval_config {\n  include_metrics_per_category: true\n'
                 '  super_categories {\n    key: "pets"\n    value: "cat,"\n    "dog"\n  }\n'
                 '  super_categories {\n    key: "cats"\n    value: "cat"\n  }\n}',
                 "pipeline.config")
    settings = build_eval_settings(Node(root.first("eval_config"), "eval_config"))
    assert settings.super_categories == {"pets": ["cat", "dog"], "cats": ["cat"]}
    assert build_eval_settings(None).super_categories is None
