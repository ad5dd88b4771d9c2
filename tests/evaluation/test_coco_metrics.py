import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kdet.datasets import shapes
from kdet.datasets import shapes_label_map
from kdet.evaluation import COCO_METRIC_NAMES
from kdet.evaluation import compute_coco_metrics

MAP = "DetectionBoxes_Precision/mAP"
MAP50 = "DetectionBoxes_Precision/mAP@.50IOU"
MAP75 = "DetectionBoxes_Precision/mAP@.75IOU"


def _empty_detections():
    return {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "confidences": np.zeros(0)}


def _three_cats():
    """One image, three 10×10 (COCO "small") cats and four detections.

    0.9 exactly on gt1; 0.8 on nothing; 0.7 inside gt2 with IoU 72/100 = 0.72; 0.6 a duplicate
    of gt1, whose only overlap is already taken.
    """
    groundtruth = [
        {"boxes": [[0, 0, 10, 10], [0, 20, 10, 30], [0, 40, 10, 50]], "labels": [1, 1, 1]}
    ]
    detections = [
        {
            "boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [0, 20, 10, 27.2], [0, 0, 10, 10]],
            "labels": [1, 1, 1, 1],
            "confidences": [0.9, 0.8, 0.7, 0.6],
        }
    ]
    return groundtruth, detections


def test_hand_computed_101_point_average_precision():
    metrics = compute_coco_metrics(*_three_cats(), label_map={1: "cat"})
    # IoU thresholds 0.50..0.70 (5 of 10): TP, FP, TP, FP → precision 1, 1/2, 2/3, 1/2 at
    # recall 1/3, 1/3, 2/3, 2/3. pycocotools' envelope is 1 for recall points r <= 1/3
    # (r = 0, .01, …, .33: 34 points), 2/3 for 1/3 < r <= 2/3 (.34 … .66: 33 points) and 0
    # above, averaged over 101 points: (34 + 33 * 2/3) / 101 = 56/101.
    ap_low = 56 / 101
    # IoU thresholds 0.75..0.95: the 0.72 detection misses too → TP, FP, FP, FP:
    # 1 for the 34 points r <= 1/3, 0 above → 34/101.
    ap_high = 34 / 101
    assert metrics[MAP50] == pytest.approx(ap_low)
    assert metrics[MAP75] == pytest.approx(ap_high)
    assert metrics[MAP] == pytest.approx((ap_low + ap_high) / 2)
    assert metrics["DetectionBoxes_Precision/mAP (small)"] == pytest.approx(metrics[MAP])
    # No medium or large ground truth: pycocotools' -1 passes through.
    assert metrics["DetectionBoxes_Precision/mAP (medium)"] == -1.0
    assert metrics["DetectionBoxes_Recall/AR@100 (large)"] == -1.0
    # Recall: 2/3 for 5 thresholds and 1/3 for 5; the single best detection recalls 1/3.
    assert metrics["DetectionBoxes_Recall/AR@100"] == pytest.approx(0.5)
    assert metrics["DetectionBoxes_Recall/AR@1"] == pytest.approx(1 / 3)
    assert metrics["DetectionBoxes_PerformanceByCategory/mAP/cat"] == pytest.approx(
        metrics[MAP]
    )


def test_perfect_detections_score_one():
    images, y = shapes(6, 128, seed=4, num_classes=3)
    valid = y["labels"] > 0
    detections = {
        "boxes": y["boxes"],
        "labels": y["labels"],
        "confidences": np.where(valid, 0.9, -1.0),
        "num_detections": valid.sum(axis=1),
    }
    metrics = compute_coco_metrics(y, detections, label_map=shapes_label_map(3))
    assert list(metrics)[:12] == list(COCO_METRIC_NAMES)
    assert list(metrics)[12:] == [
        "DetectionBoxes_PerformanceByCategory/mAP/rectangle",
        "DetectionBoxes_PerformanceByCategory/mAP/ellipse",
        "DetectionBoxes_PerformanceByCategory/mAP/triangle",
    ]
    # AR@1 recalls one box per image, and these images have up to 8.
    assert metrics.pop("DetectionBoxes_Recall/AR@1") < 1.0
    for name, value in metrics.items():
        assert value == pytest.approx(1.0) or value == -1.0, name
    assert metrics[MAP] == pytest.approx(1.0)


def _noisy_detections(y, seed):
    """Jittered, partly mislabelled copies of the ground truth plus random false positives."""
    rng = np.random.default_rng(seed)
    detections = []
    for boxes, labels in zip(y["boxes"], y["labels"]):
        boxes, labels = boxes[labels > 0], labels[labels > 0]
        size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        jittered = boxes + rng.normal(0, 0.08, boxes.shape) * size
        flipped = np.where(rng.random(len(labels)) < 0.2, rng.integers(1, 3, len(labels)), labels)
        corner = rng.uniform(0, 100, (3, 2))
        spurious = np.concatenate([corner, corner + rng.uniform(5, 60, (3, 2))], axis=1)
        detections.append(
            {
                "boxes": np.concatenate([jittered, spurious]),
                "labels": np.concatenate([flipped, rng.integers(1, 3, 3)]),
                "confidences": rng.random(len(labels) + 3),
            }
        )
    return detections


def test_equals_pycocotools_run_directly():
    # 256 px so that boxes fall in all three COCO area ranges and no number is -1.
    _, y = shapes(10, 256, seed=11, num_classes=2)
    detections = _noisy_detections(y, seed=0)
    metrics = compute_coco_metrics(y, detections, label_map={1: "rectangle", 2: "ellipse"})

    # The same data through the usual pycocotools route: xywh boxes, COCO.loadRes.
    annotations, results = [], []
    for image_id, (boxes, labels) in enumerate(zip(y["boxes"], y["labels"]), start=1):
        for (y0, x0, y1, x1), label in zip(boxes[labels > 0], labels[labels > 0]):
            bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    for image_id, d in enumerate(detections, start=1):
        for (y0, x0, y1, x1), label, score in zip(d["boxes"], d["labels"], d["confidences"]):
            bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
            results.append(
                {"image_id": image_id, "category_id": int(label), "bbox": bbox, "score": score}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i + 1} for i in range(len(y["boxes"]))],
            "categories": [{"id": 1, "name": "rectangle"}, {"id": 2, "name": "ellipse"}],
            "annotations": annotations,
        }
        coco_gt.createIndex()
        reference = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
        per_category = {}
        for category_id, name in [(1, "rectangle"), (2, "ellipse")]:
            single = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
            single.params.catIds = [category_id]
            single.evaluate()
            single.accumulate()
            single.summarize()
            per_category[name] = single.stats[0]

    np.testing.assert_allclose([metrics[k] for k in COCO_METRIC_NAMES], reference.stats)
    assert 0.2 < metrics[MAP] < 0.9 and min(metrics.values()) > 0  # a non-trivial case
    for name, value in per_category.items():
        assert metrics[f"DetectionBoxes_PerformanceByCategory/mAP/{name}"] == pytest.approx(value)


def test_batched_padded_input_and_empty_images_match_lists():
    _, y = shapes(6, 96, seed=2, num_classes=2)
    detections = _noisy_detections(y, seed=1)
    expected = compute_coco_metrics(y, detections)

    max_detections = max(len(d["labels"]) for d in detections) + 2
    batched = {
        "boxes": -np.ones((6, max_detections, 4)),
        "labels": -np.ones((6, max_detections), np.int32),
        "confidences": -np.ones((6, max_detections)),
        "num_detections": np.array([len(d["labels"]) for d in detections]),
    }
    for i, d in enumerate(detections):
        for key in ("boxes", "labels", "confidences"):
            batched[key][i, : len(d["labels"])] = d[key]
    assert compute_coco_metrics(y, batched) == pytest.approx(expected)

    # Images without ground truth or detections change nothing.
    groundtruth = [
        {"boxes": boxes[labels > 0], "labels": labels[labels > 0]}
        for boxes, labels in zip(y["boxes"], y["labels"])
    ]
    empty_gt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}
    with_empty = compute_coco_metrics(
        [empty_gt] + groundtruth + [empty_gt],
        [_empty_detections()] + detections + [_empty_detections()],
    )
    assert with_empty == pytest.approx(expected)


def test_no_detections_scores_zero_and_nothing_at_all_is_minus_one():
    groundtruth, _ = _three_cats()
    metrics = compute_coco_metrics(
        groundtruth, [_empty_detections()], label_map={1: "cat", 2: "dog"}
    )
    assert metrics[MAP] == 0.0 and metrics["DetectionBoxes_Recall/AR@100"] == 0.0
    assert metrics["DetectionBoxes_PerformanceByCategory/mAP/cat"] == 0.0
    assert metrics["DetectionBoxes_PerformanceByCategory/mAP/dog"] == -1.0  # no dog gt

    empty_gt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}
    nothing = compute_coco_metrics([empty_gt, empty_gt], [_empty_detections()] * 2)
    assert list(nothing) == list(COCO_METRIC_NAMES)
    assert all(value == -1.0 for value in nothing.values())


def test_crowd_groundtruth_and_area_override():
    groundtruth = [
        {
            "boxes": [[0, 0, 10, 10], [0, 20, 10, 30]],
            "labels": [1, 1],
            "iscrowd": [0, 1],
            "area": [5000.0, 100.0],
        }
    ]
    detections = [{"boxes": [[0, 0, 10, 10]], "labels": [1], "confidences": [0.9]}]
    metrics = compute_coco_metrics(groundtruth, detections)
    # The unmatched crowd box does not count as missed, so all real boxes are found.
    assert metrics[MAP] == pytest.approx(1.0)
    # The given area (5000 > 32²) makes the box "medium" although it is 10×10.
    assert metrics["DetectionBoxes_Precision/mAP (medium)"] == pytest.approx(1.0)
    assert metrics["DetectionBoxes_Precision/mAP (small)"] == -1.0
    # Without the crowd flag the second box is a miss: recall 1/2, AP = 51/101.
    del groundtruth[0]["iscrowd"]
    assert compute_coco_metrics(groundtruth, detections)[MAP] == pytest.approx(51 / 101)


def test_silent_unless_verbose(capsys):
    compute_coco_metrics(*_three_cats())
    assert capsys.readouterr().out == ""
    compute_coco_metrics(*_three_cats(), verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_errors():
    groundtruth, detections = _three_cats()
    with pytest.raises(ValueError, match="not in the label map"):
        compute_coco_metrics(groundtruth, detections, label_map={2: "dog"})
    with pytest.raises(ValueError, match="ground truth for 1 images but detections for 2"):
        compute_coco_metrics(groundtruth, detections * 2)
