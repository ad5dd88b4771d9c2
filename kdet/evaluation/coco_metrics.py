"""COCO box metrics through pycocotools, under the TF Object Detection API metric names."""

import collections
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kdet.evaluation.per_image import detections_per_image
from kdet.evaluation.per_image import groundtruth_per_image

# The 12 numbers of `COCOeval.summarize()` (its `stats`, in order), named as the TF OD API's
# `CocoDetectionEvaluator` reports them.
COCO_METRIC_NAMES = tuple(
    "DetectionBoxes_" + name
    for name in (
        "Precision/mAP",
        "Precision/mAP@.50IOU",
        "Precision/mAP@.75IOU",
        "Precision/mAP (small)",
        "Precision/mAP (medium)",
        "Precision/mAP (large)",
        "Recall/AR@1",
        "Recall/AR@10",
        "Recall/AR@100",
        "Recall/AR@100 (small)",
        "Recall/AR@100 (medium)",
        "Recall/AR@100 (large)",
    )
)
_PER_CATEGORY_PREFIX = "DetectionBoxes_PerformanceByCategory/mAP/"
_SUPER_CATEGORY_PREFIX = "DetectionBoxes_PerformanceBySuperCategory/"
# With `all_metrics_per_category`, the 12 numbers per category under the TF OD API's names
# (`coco_tools.COCOEvalWrapper.ComputeMetrics`): `DetectionBoxes_<name> ByCategory/<category>`.
COCO_PER_CATEGORY_METRIC_NAMES = tuple(
    "DetectionBoxes_" + name
    for name in (
        "Precision mAP",
        "Precision mAP@.50IOU",
        "Precision mAP@.75IOU",
        "Precision mAP (small)",
        "Precision mAP (medium)",
        "Precision mAP (large)",
        "Recall AR@1",
        "Recall AR@10",
        "Recall AR@100",
        "Recall AR@100 (small)",
        "Recall AR@100 (medium)",
        "Recall AR@100 (large)",
    )
)
# How `COCOeval.summarize` computes its 12 `stats`: (precision or recall, IoU threshold or
# None for all, area range, max detections).
_SUMMARY = (
    ("precision", None, "all", 100),
    ("precision", 0.5, "all", 100),
    ("precision", 0.75, "all", 100),
    ("precision", None, "small", 100),
    ("precision", None, "medium", 100),
    ("precision", None, "large", 100),
    ("recall", None, "all", 1),
    ("recall", None, "all", 10),
    ("recall", None, "all", 100),
    ("recall", None, "small", 100),
    ("recall", None, "medium", 100),
    ("recall", None, "large", 100),
)


def compute_coco_metrics(
    groundtruth,
    detections,
    label_map=None,
    verbose=False,
    all_metrics_per_category=False,
    super_categories=None,
):
    """Computes the COCO box metrics (pycocotools `COCOeval`) of detections.

    Builds in-memory COCO ground-truth and result objects (boxes converted from `yxyx` to
    COCO `xywh`; image ids are 1 + the image index) and runs the standard `COCOeval` with
    `iouType="bbox"`: AP averaged over IoU 0.50:0.95 and 101 recall points, at most 100
    detections per image.

    A number pycocotools cannot define is -1, as pycocotools and the TF OD API report it:
    e.g. `mAP (small)` when no ground-truth box is small, or a category's AP when it has no
    ground truth. Ground truth with no detections scores 0. Images with neither are fine.

    Args:
        groundtruth: one entry per image: a list of dicts `{"boxes": [N, 4] yxyx in pixels,
            "labels": [N] 1-based}` with optional `"iscrowd": [N]` and `"area": [N]` (the
            box area when absent), or a batched dict `{"boxes": [B, N, 4], "labels":
            [B, N]}` padded with -1 rows. See `groundtruth_per_image`.
        detections: one entry per image, in the same order: a list of dicts `{"boxes":
            [K, 4] yxyx in pixels, "labels": [K], "confidences": [K]}`, or the batched
            predictions dict `{"boxes", "labels", "confidences", "num_detections"}`. See
            `detections_per_image`. Detections of a label outside the categories are
            ignored.
        label_map: dict `{label id: name}`. The categories evaluated and their names. When
            None, the labels found in `groundtruth` and `detections`, named by their id.
        verbose: bool. Let pycocotools print its progress and summary table. Defaults to
            `False`.
        all_metrics_per_category: bool. Also give each category all 12 numbers (TF OD API
            `eval_config.all_metrics_per_category`): `DetectionBoxes_Precision mAP
            ByCategory/<name>`, … (`COCO_PER_CATEGORY_METRIC_NAMES`), computed as
            `COCOeval.summarize` computes its `stats` but from that category's slice of the
            precision and recall arrays. Defaults to `False`.
        super_categories: dict `{super-category name: [category names]}` or None (TF OD API
            `eval_config.super_categories`, each value split at commas). Adds
            `DetectionBoxes_PerformanceBySuperCategory/<super-category>`: the sum of the
            per-category mAPs of the listed categories found among the evaluated ones, over
            the number of names listed (the TF OD API's `ComputeMetrics`). Defaults to None.

    Returns:
        An ordered dict of floats: the 12 `COCO_METRIC_NAMES` (`DetectionBoxes_Precision/mAP`,
        …, `DetectionBoxes_Recall/AR@100 (large)`), then
        `DetectionBoxes_PerformanceByCategory/mAP/<name>` per category (then, with
        `all_metrics_per_category`, its 12 `… ByCategory/<name>` numbers), then
        `DetectionBoxes_PerformanceBySuperCategory/<name>` per super-category.

    Example:
    >>> gt = [{"boxes": [[10, 10, 50, 50]], "labels": [1]}]
    >>> dt = [{"boxes": [[10, 10, 50, 50]], "labels": [1], "confidences": [0.9]}]
    >>> metrics = kdet.evaluation.compute_coco_metrics(gt, dt, label_map={1: "cat"})
    >>> round(metrics["DetectionBoxes_PerformanceByCategory/mAP/cat"], 6)
    1.0

    Reference:
        Lin et al., [Microsoft COCO: Common Objects in Context](https://arxiv.org/abs/1405.0312).
    """
    groundtruth = groundtruth_per_image(groundtruth)
    detections = detections_per_image(detections)
    if len(groundtruth) != len(detections):
        raise ValueError(
            f"Got ground truth for {len(groundtruth)} images but detections for "
            f"{len(detections)}; expected one entry per image in both."
        )
    label_map = _category_names(groundtruth, detections, label_map)
    categories = [{"id": int(label), "name": name} for label, name in label_map.items()]
    gt_annotations = [
        {
            "image_id": index + 1,
            "category_id": int(label),
            "bbox": box,
            "area": float(area),
            "iscrowd": int(iscrowd),
        }
        for index, image in enumerate(groundtruth)
        for label, box, area, iscrowd in zip(
            image["labels"],
            _yxyx_to_xywh(image["boxes"]),
            image.get("area", _box_areas(image["boxes"])),
            image.get("iscrowd", np.zeros(len(image["labels"]))),
        )
    ]
    detection_annotations = [
        {
            "image_id": index + 1,
            "category_id": int(label),
            "bbox": box,
            "area": box[2] * box[3],
            "score": float(score),
        }
        for index, image in enumerate(detections)
        for label, box, score in zip(
            image["labels"], _yxyx_to_xywh(image["boxes"]), image["confidences"]
        )
    ]
    images = [{"id": index + 1} for index in range(len(groundtruth))]
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        # Built directly rather than with `COCO.loadRes`, which fails on an empty result list.
        evaluation = COCOeval(
            _coco(images, categories, gt_annotations),
            _coco(images, categories, detection_annotations),
            iouType="bbox",
        )
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    metrics = collections.OrderedDict(
        (name, float(value)) for name, value in zip(COCO_METRIC_NAMES, evaluation.stats)
    )
    # precision: [iou thresholds, recall points, categories, area ranges, max detections];
    # area range 0 is "all" and the last max-detections setting is 100, as in `stats[0]`.
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    for k, category_id in enumerate(evaluation.params.catIds):
        defined = precision[:, :, k][precision[:, :, k] > -1]
        metrics[_PER_CATEGORY_PREFIX + label_map[category_id]] = (
            float(np.mean(defined)) if defined.size else -1.0
        )
        if all_metrics_per_category:
            for name, value in zip(COCO_PER_CATEGORY_METRIC_NAMES,
                                   _category_summary(evaluation, k)):
                metrics[f"{name} ByCategory/{label_map[category_id]}"] = value
    for super_category, names in (super_categories or {}).items():
        total = sum(
            metrics[_PER_CATEGORY_PREFIX + label_map[category_id]]
            for category_id in evaluation.params.catIds
            if label_map[category_id] in names
        )
        metrics[_SUPER_CATEGORY_PREFIX + super_category] = total / len(names)
    return metrics


def _category_summary(evaluation, k):
    """The 12 `COCOeval.summarize` numbers of the `k`-th category alone (-1 where undefined).

    `eval["precision"]`: `[iou thresholds, recall points, categories, area ranges, max
    detections]`; `eval["recall"]`: the same without the recall points."""
    params = evaluation.params
    values = []
    for kind, iou, area, max_detections in _SUMMARY:
        array = evaluation.eval[kind]
        a = params.areaRngLbl.index(area)
        m = params.maxDets.index(max_detections)
        t = slice(None) if iou is None else np.flatnonzero(np.isclose(params.iouThrs, iou))
        if kind == "precision":
            chosen = array[t, :, k, a, m]
        else:
            chosen = array[t, k, a, m]
        defined = chosen[chosen > -1]
        values.append(float(np.mean(defined)) if defined.size else -1.0)
    return values


def _category_names(groundtruth, detections, label_map):
    """`{label id: name}` of the evaluated categories, sorted by id."""
    if label_map is None:
        labels = np.concatenate(
            [image["labels"] for image in groundtruth + detections] + [np.zeros(0, int)]
        )
        return {int(label): str(label) for label in np.unique(labels)}
    for index, image in enumerate(groundtruth):
        unknown = sorted(set(image["labels"].tolist()) - set(label_map))
        if unknown:
            raise ValueError(
                f"groundtruth[{index}] has label ids {unknown} that are not in the label "
                f"map (ids {sorted(label_map)})."
            )
    return {int(label): str(label_map[label]) for label in sorted(label_map)}


def _yxyx_to_xywh(boxes):
    """float64 `[N, 4]` yxyx → list of `[x, y, width, height]` lists (COCO `bbox`)."""
    y_min, x_min, y_max, x_max = np.asarray(boxes).T
    return np.stack([x_min, y_min, x_max - x_min, y_max - y_min], axis=1).tolist()


def _box_areas(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _coco(images, categories, annotations):
    """An in-memory pycocotools `COCO` object; annotation ids start at 1 as COCOeval needs."""
    coco = COCO()
    coco.dataset = {
        "images": images,
        "categories": categories,
        "annotations": [dict(a, id=i + 1) for i, a in enumerate(annotations)],
    }
    coco.createIndex()
    return coco
