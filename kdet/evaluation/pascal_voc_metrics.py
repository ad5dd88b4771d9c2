"""Pascal VOC average precision, as the TF Object Detection API's Pascal evaluators compute it."""

import collections
import numbers

import numpy as np

from kdet.evaluation.per_image import paired_per_image


def compute_pascal_voc_metrics(
    groundtruth,
    detections,
    iou_threshold=0.5,
    use_07_metric=False,
    weighted=False,
    label_map=None,
    return_curves=False,
):
    """Computes Pascal VOC per-class average precision and its mean.

    Follows the TF OD API `PascalDetectionEvaluator` (`pascal_voc_detection_metrics`):
    - per image and class, detections are taken in decreasing confidence; each is matched to
      the ground-truth box it overlaps most (IoU without the VOC devkit's +1 pixel). It is a
      true positive if that IoU is >= `iou_threshold` and the box is not yet matched, a false
      positive otherwise (a duplicate is a false positive). Detections whose best box is
      `difficult` are ignored, and difficult boxes are not counted as ground truth;
    - detections with an empty box (`y_max <= y_min` or `x_max <= x_min`) are dropped;
    - per class, all images pooled, precision and recall follow the confidence order (equal
      confidences keep image order), and AP is the area under the precision/recall curve
      made monotone (precision at recall r = the best precision at any recall >= r), or with
      `use_07_metric` the mean of that envelope at the 11 recalls 0, 0.1, …, 1 (VOC2007);
    - a class without ground truth has AP NaN and is left out of the mean; a class with
      ground truth but no detections has AP 0.

    Args:
        groundtruth: one entry per image: a list of dicts `{"boxes": [N, 4] yxyx in pixels,
            "labels": [N] 1-based}` with optional `"difficult": [N]` bool, or a batched dict
            `{"boxes": [B, N, 4], "labels": [B, N]}` padded with -1 rows. See
            `groundtruth_per_image`.
        detections: one entry per image, in the same order: a list of dicts `{"boxes":
            [K, 4] yxyx in pixels, "labels": [K], "confidences": [K]}`, or the batched
            predictions dict. See `detections_per_image`.
        iou_threshold: float. IoU at which a detection matches a box. Defaults to `0.5`.
        use_07_metric: bool. Use the VOC2007 11-point AP. Defaults to `False`.
        weighted: bool. Report the TF OD API `weighted_pascal_voc_detection_metrics`: the
            mean AP is the AP of the detections of all classes with ground truth pooled into
            one ranking (so frequent classes weigh more), and keys start with
            `WeightedPascalBoxes`. Defaults to `False`.
        label_map: dict `{label id: name}`. The classes evaluated and their names. When None,
            the labels found in `groundtruth` and `detections`, named by their id. Detections
            of other labels are ignored.
        return_curves: bool. Also return the precision/recall curves. Defaults to `False`.

    Returns:
        An ordered dict of floats: `PascalBoxes_Precision/mAP@0.5IOU`, then
        `PascalBoxes_PerformanceByCategory/AP@0.5IOU/<name>` per class (the number is
        `iou_threshold`; the prefix is `WeightedPascalBoxes` when `weighted`). With
        `return_curves`, a tuple `(metrics, curves)` where `curves[label_id]` is a dict of
        float64 arrays `"precision"`, `"recall"` and `"confidences"` (one entry per counted
        detection, by decreasing confidence) and the int `"num_groundtruth"`.

    Example:
    >>> gt = [{"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    >>> dt = [{"boxes": [[0, 0, 10, 9], [20, 20, 30, 30]], "labels": [1, 1],
    ...        "confidences": [0.9, 0.8]}]
    >>> kdet.evaluation.compute_pascal_voc_metrics(gt, dt)["PascalBoxes_Precision/mAP@0.5IOU"]
    1.0

    Reference:
        Everingham et al., [The Pascal Visual Object Classes (VOC) Challenge](
        https://doi.org/10.1007/s11263-009-0275-4).
    """
    return evaluate_detections(
        groundtruth,
        detections,
        prefix="WeightedPascalBoxes" if weighted else "PascalBoxes",
        iou_threshold=iou_threshold,
        use_07_metric=use_07_metric,
        weighted=weighted,
        label_map=label_map,
        return_curves=return_curves,
    )


def evaluate_detections(
    groundtruth,
    detections,
    prefix,
    iou_threshold=0.5,
    use_07_metric=False,
    weighted=False,
    label_map=None,
    return_curves=False,
    use_difficult=True,
    use_group_of=False,
    group_of_weight=0.0,
    use_image_labels=False,
    recall_lower_bound=0.0,
    recall_upper_bound=1.0,
):
    """The TF OD API `ObjectDetectionEvaluation`: Pascal-style AP per class, and its mean.

    The engine of `compute_pascal_voc_metrics` (difficult boxes) and
    `kdet.evaluation.compute_open_images_metrics` (group-of boxes, verified image-level
    labels); see those for the rules. Per image and class, detections in decreasing
    confidence are first matched to the plain (not group-of) boxes as the Pascal VOC metrics
    do; with `use_group_of`, a detection left a false positive whose area lies at least
    `iou_threshold` inside a group-of box of its class (intersection over the detection's
    area) is then not counted, and with `group_of_weight > 0` each group-of box that got such
    a detection counts once, as a true positive of weight `group_of_weight` at the highest
    confidence among them, and adds `group_of_weight` to the class's ground-truth count.

    Args:
        groundtruth: one entry per image (see `groundtruth_per_image`); read besides boxes and
            labels: `"difficult"` (with `use_difficult`), `"group_of"` (with `use_group_of`),
            `"image_labels"` (with `use_image_labels`).
        detections: one entry per image, in the same order (see `detections_per_image`).
        prefix: str, the metric names' prefix, e.g. `"PascalBoxes"`.
        iou_threshold: float in (0, 1]. Defaults to `0.5`.
        use_07_metric: bool. VOC2007 11-point AP. Defaults to `False`.
        weighted: bool. The mean AP pools the detections of all classes. Defaults to `False`.
        label_map: dict `{label id: name}` or None (the labels found).
        return_curves: bool. Also return the curves. Defaults to `False`.
        use_difficult: bool. Honour `"difficult"` flags. Defaults to `True`.
        use_group_of: bool. Honour `"group_of"` flags. Defaults to `False`.
        group_of_weight: float >= 0. Weight of a detected group-of box. Defaults to `0.0`.
        use_image_labels: bool. Count only detections of a class with a box or a verified
            image-level label (`"image_labels"`) in their image. Defaults to `False`.
        recall_lower_bound, recall_upper_bound: floats in [0, 1]. Each AP is the area under
            the points of its curve whose recall lies in the range (the TF OD API
            `precision_at_recall_detection_metrics`); the mean AP's name then ends in
            `@[<lower>,<upper>]Recall`. Defaults to `0.0` and `1.0` (the whole curve).

    Returns:
        As `compute_pascal_voc_metrics`, the keys starting with `prefix`.
    """
    if not 0.0 <= recall_lower_bound <= recall_upper_bound <= 1.0:
        raise ValueError(
            "the recall bounds must satisfy 0 <= recall_lower_bound <= recall_upper_bound <= 1; "
            f"got {recall_lower_bound} and {recall_upper_bound}."
        )
    recall_bounds = (recall_lower_bound, recall_upper_bound)
    if not isinstance(iou_threshold, numbers.Real):
        # A label map passed third, as `compute_coco_metrics` takes it, lands here.
        raise TypeError(
            "`iou_threshold` (the third argument) must be a number, got a "
            f"{type(iou_threshold).__name__}; pass a label map as `label_map=`."
        )
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}.")
    if group_of_weight < 0:
        raise ValueError(f"`group_of_weight` must be at least 0, got {group_of_weight}.")
    groundtruth, detections = paired_per_image(groundtruth, detections)
    if label_map is None:
        labels = np.concatenate(
            [image["labels"] for image in groundtruth + detections] + [np.zeros(0, int)]
        )
        label_map = {int(label): str(label) for label in np.unique(labels)}

    confidences = collections.defaultdict(list)
    is_true_positive = collections.defaultdict(list)
    num_groundtruth = collections.Counter()
    for gt, dt in zip(groundtruth, detections):
        no_flags = np.zeros(len(gt["labels"]), bool)
        difficult = gt.get("difficult", no_flags).astype(bool) if use_difficult else no_flags
        group_of = gt.get("group_of", no_flags).astype(bool) if use_group_of else no_flags
        if use_image_labels:
            # The TF OD API challenge metric: detections of a class neither verified on the
            # image (positive or negative image-level label) nor boxed in it are not counted.
            verified = np.union1d(gt.get("image_labels", np.zeros(0, int)), gt["labels"])
            dt = {key: value[np.isin(dt["labels"], verified)] for key, value in dt.items()}
        for label in np.intersect1d(np.union1d(gt["labels"], dt["labels"]), list(label_map)):
            in_gt, in_dt = gt["labels"] == label, dt["labels"] == label
            counted = ~difficult[in_gt]
            num_groundtruth[label] += int(np.sum(counted & ~group_of[in_gt]))
            num_groundtruth[label] += group_of_weight * int(np.sum(counted & group_of[in_gt]))
            kept_confidences, kept_true_positive = _match_single_class(
                dt["boxes"][in_dt],
                dt["confidences"][in_dt],
                gt["boxes"][in_gt],
                difficult[in_gt],
                group_of[in_gt],
                iou_threshold,
                group_of_weight,
            )
            confidences[label].append(kept_confidences)
            is_true_positive[label].append(kept_true_positive)

    curves = {
        label: _precision_recall(
            confidences[label], is_true_positive[label], num_groundtruth[label]
        )
        for label in sorted(label_map)
    }
    average_precisions = {
        label: _average_precision(curve, use_07_metric, recall_bounds)
        for label, curve in curves.items()
    }
    if weighted:
        # As in the TF OD API, classes without ground truth stay out of the pool.
        counted = [label for label in curves if num_groundtruth[label] > 0]
        pooled = _precision_recall(
            [c for label in counted for c in confidences[label]],
            [t for label in counted for t in is_true_positive[label]],
            sum(num_groundtruth[label] for label in counted),
        )
        mean_ap = _average_precision(pooled, use_07_metric, recall_bounds)
    else:
        defined = [ap for ap in average_precisions.values() if not np.isnan(ap)]
        mean_ap = float(np.mean(defined)) if defined else float("nan")

    metrics = collections.OrderedDict()
    bounded = "" if recall_bounds == (0.0, 1.0) else (
        f"@[{recall_lower_bound:.1f},{recall_upper_bound:.1f}]Recall"
    )
    metrics[f"{prefix}_Precision/mAP@{iou_threshold}IOU{bounded}"] = mean_ap
    for label, average_precision in average_precisions.items():
        name = f"{prefix}_PerformanceByCategory/AP@{iou_threshold}IOU/{label_map[label]}"
        metrics[name] = average_precision
    return (metrics, curves) if return_curves else metrics


def _match_single_class(
    boxes, confidences, gt_boxes, gt_difficult, gt_group_of, iou_threshold, group_of_weight
):
    """Matching of one image's detections of one class, by decreasing confidence (the TF OD
    API `PerImageEvaluation`, boxes).

    Returns the confidences and true-positive weights (float: 1 or 0, `group_of_weight` for
    a detected group-of box) of what counts: the detections not matched to a difficult or a
    group-of box, then one entry per detected group-of box when `group_of_weight > 0`.
    """
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = np.argsort(-confidences[valid], kind="stable")
    boxes, confidences = boxes[valid][order], confidences[valid][order]
    is_true_positive = np.zeros(len(boxes), bool)
    on_difficult = np.zeros(len(boxes), bool)
    on_group_of = np.zeros(len(boxes), bool)
    group_confidences = np.zeros(0)
    plain_boxes, plain_difficult = gt_boxes[~gt_group_of], gt_difficult[~gt_group_of]
    if len(boxes) and len(plain_boxes):
        # 1. Plain boxes: the best-overlapping box of each detection, first come first served.
        iou = _pairwise_iou(boxes, plain_boxes)
        best = np.argmax(iou, axis=1)
        is_matched = np.zeros(len(plain_boxes), bool)
        for i, j in enumerate(best):
            if iou[i, j] < iou_threshold:
                continue
            if plain_difficult[j]:
                on_difficult[i] = True
            elif not is_matched[j]:
                is_true_positive[i] = is_matched[j] = True
    group_boxes = gt_boxes[gt_group_of]
    if len(boxes) and len(group_boxes):
        # 2. Group-of boxes take the other detections lying mostly inside them.
        ioa = _pairwise_ioa(boxes, group_boxes)
        best = np.argmax(ioa, axis=1)
        group_confidences = np.zeros(len(group_boxes))
        for i, j in enumerate(best):
            if is_true_positive[i] or on_difficult[i] or ioa[i, j] < iou_threshold:
                continue
            on_group_of[i] = True
            group_confidences[j] = max(group_confidences[j], confidences[i])
        # Detected group-of boxes count only with a weight (else their detections just go).
        group_confidences = group_confidences[(group_confidences > 0) & (group_of_weight > 0)]
    counts = ~on_difficult & ~on_group_of
    return (
        np.concatenate([confidences[counts], group_confidences]),
        np.concatenate([
            is_true_positive[counts].astype(np.float64),
            np.full(len(group_confidences), float(group_of_weight)),
        ]),
    )


def _pairwise_iou(boxes1, boxes2):
    """IoU of float64 `[N, 4]` and `[M, 4]` yxyx boxes → `[N, M]`.

    Host-side numpy twin of the box IoU, for metrics over whole datasets outside TF.
    """
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area1[:, None] + area2[None, :] - intersection
    return intersection / np.maximum(union, np.finfo(np.float64).tiny)


def _pairwise_ioa(boxes, regions):
    """Intersection over the area of each of `boxes`, float64 `[N, 4]` × `[M, 4]` yxyx →
    `[N, M]`: how much of a detection lies inside a (group-of) box."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    top_left = np.maximum(boxes[:, None, :2], regions[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    return intersection / np.maximum(area[:, None], np.finfo(np.float64).tiny)


def _precision_recall(confidences, is_true_positive, num_groundtruth):
    """Precision/recall curve of pooled per-image results (lists of arrays), by confidence.

    `is_true_positive` holds weights: an entry above 0 adds that much to the true positives,
    one at 0 is a false positive (the TF OD API `compute_precision_recall`)."""
    confidences = np.concatenate(confidences + [np.zeros(0)])
    weights = np.concatenate(
        [np.asarray(t, np.float64) for t in is_true_positive] + [np.zeros(0)]
    )
    order = np.argsort(-confidences, kind="stable")
    true_positives = np.cumsum(weights[order])
    false_positives = np.cumsum(weights[order] <= 0)
    precision = true_positives / np.maximum(true_positives + false_positives,
                                            np.finfo(np.float64).tiny)
    # The count may be fractional (weighted group-of boxes); 0 leaves the curve undefined.
    recall = true_positives / (num_groundtruth if num_groundtruth > 0 else 1)
    return {
        "precision": precision,
        "recall": recall,
        "confidences": confidences[order],
        "num_groundtruth": num_groundtruth,
    }


def _average_precision(curve, use_07_metric, recall_bounds=(0.0, 1.0)):
    """Area under the monotone precision envelope; NaN when there is no ground truth.

    Only the curve's points with a recall within `recall_bounds` count (the TF OD API keeps
    those before computing the area)."""
    if curve["num_groundtruth"] == 0:
        return float("nan")
    precision, recall = curve["precision"], curve["recall"]
    within = (recall >= recall_bounds[0]) & (recall <= recall_bounds[1])
    precision, recall = precision[within], recall[within]
    if use_07_metric:
        return float(
            np.mean([np.max(precision[recall >= t], initial=0.0) for t in np.linspace(0, 1, 11)])
        )
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * envelope[steps]))
