"""COCO box, instance-mask and keypoint metrics through pycocotools, under the TF Object
Detection API metric names."""

import collections
import contextlib
import io

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kdet.evaluation.per_image import paired_per_image

# The 12 numbers of `COCOeval.summarize()` (its `stats`, in order), as the TF OD API's
# `coco_tools.COCOEvalWrapper.ComputeMetrics` names them.
_SUMMARY_NAMES = (
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
# The metric-name prefixes of the TF OD API's `CocoDetectionEvaluator` (boxes) and
# `CocoMaskEvaluator` (instance masks).
BOX_PREFIX = "DetectionBoxes"
MASK_PREFIX = "DetectionMasks"
# The 12 box numbers as `CocoDetectionEvaluator` reports them (`DetectionBoxes_Precision/mAP`, …).
COCO_METRIC_NAMES = tuple(f"{BOX_PREFIX}_{name}" for name in _SUMMARY_NAMES)
# The 12 mask numbers as `CocoMaskEvaluator` reports them (`DetectionMasks_Precision/mAP`, …).
COCO_MASK_METRIC_NAMES = tuple(f"{MASK_PREFIX}_{name}" for name in _SUMMARY_NAMES)
# With `all_metrics_per_category`, the 12 numbers per category under the TF OD API's names
# (`ComputeMetrics`): `DetectionBoxes_<name> ByCategory/<category>` (`DetectionMasks_…` for
# masks).
COCO_PER_CATEGORY_METRIC_NAMES = tuple(
    f"{BOX_PREFIX}_{name.replace('/', ' ')}" for name in _SUMMARY_NAMES
)
# Detection masks that are probabilities (floating point) count a pixel as the object's where
# it exceeds this, as the TF OD API's `eval_util` binarizes its float `detection_masks`.
MASK_THRESHOLD = 0.5
# The 10 numbers of `COCOeval.summarize()` for `iouType="keypoints"` (its `stats`, in order),
# named as the TF OD API's `CocoKeypointEvaluator` reports them:
# `Keypoints_<name> ByCategory/<class>`. pycocotools computes them with at most 20 detections
# per image and no "small" range. The TF OD API names the last five AR@1, AR@10, AR@100,
# AR@100 (medium) and AR@100 (large), but they are pycocotools' recall over OKS .50:.95, at
# OKS .50, at OKS .75, for medium and for large objects; kdet keeps the TF OD API's names so
# that the numbers compare one to one.
COCO_KEYPOINT_METRIC_NAMES = (
    "Precision/mAP",
    "Precision/mAP@.50IOU",
    "Precision/mAP@.75IOU",
    "Precision/mAP (medium)",
    "Precision/mAP (large)",
    "Recall/AR@1",
    "Recall/AR@10",
    "Recall/AR@100",
    "Recall/AR@100 (medium)",
    "Recall/AR@100 (large)",
)
# The OKS sigma of every keypoint when none are given, as in the TF OD API.
DEFAULT_KEYPOINT_SIGMA = 0.05
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
            box area when absent or not > 0, as in the TF OD API), or a batched dict `{"boxes": [B, N, 4], "labels":
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
    groundtruth, detections, label_map, categories = _paired_with_categories(
        groundtruth, detections, label_map
    )
    gt_annotations = [
        annotation
        for index, image in enumerate(groundtruth)
        for annotation in _groundtruth_annotations(index, image)
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
    evaluation = _evaluate(
        len(groundtruth), categories, gt_annotations, detection_annotations, "bbox", verbose
    )
    return _summary(evaluation, BOX_PREFIX, label_map, all_metrics_per_category,
                    super_categories)


def compute_coco_mask_metrics(
    groundtruth,
    detections,
    label_map=None,
    verbose=False,
    all_metrics_per_category=False,
    super_categories=None,
):
    """Computes the COCO instance-mask metrics (pycocotools `COCOeval`, `iouType="segm"`).

    What the TF OD API's `CocoMaskEvaluator` (`metrics_set: "coco_mask_metrics"`) computes:
    the masks are binarized (see `encode_masks`: detection probabilities above
    `MASK_THRESHOLD`, ground truth above 0), run-length encoded by pycocotools and compared by
    mask IoU; AP averaged over IoU 0.50:0.95 and 101 recall points, at most 100 detections
    per image. A crowd ground-truth mask (`"iscrowd"` 1) matches any number of detections by
    the part of each detection it covers and counts neither as found nor as missed.

    The small / medium / large range of a ground-truth object is that of its `"area"` when
    given and > 0, else of its box area, as the TF OD API exports it; that of a detection is
    its mask's pixel count. Detection boxes play no part. A number pycocotools cannot define
    is -1.

    Args:
        groundtruth: one entry per image (see `groundtruth_per_image`): dicts with `"boxes"`
            `[N, 4]` yxyx pixels, `"labels"` `[N]` and `"masks"`: uint8 `[N, H, W]` (nonzero =
            object, as `read_tfrecords(load_instance_masks=True)` gives `y["masks"]`) or the
            list of N pycocotools RLEs `encode_masks` makes; optional `"iscrowd"` and
            `"area"` `[N]`. Or the batched dict padded with -1 rows.
        detections: one entry per image, in the same order (see `detections_per_image`):
            dicts with `"boxes"`, `"labels"`, `"confidences"` and `"masks"`: float `[K, H, W]`
            probabilities in image pixels (the model's `"masks"`), 0/1 integers, or RLEs. Or
            the batched predictions dict. An image's detection and ground-truth masks must
            have the same `H, W`.
        label_map, verbose, all_metrics_per_category, super_categories: as in
            `compute_coco_metrics`.

    Returns:
        An ordered dict of floats, named as `compute_coco_metrics` names them with
        `DetectionMasks_` for `DetectionBoxes_`: the 12 `COCO_MASK_METRIC_NAMES`, then
        `DetectionMasks_PerformanceByCategory/mAP/<name>` per category (and, with
        `all_metrics_per_category`, `DetectionMasks_Precision mAP ByCategory/<name>`, …),
        then `DetectionMasks_PerformanceBySuperCategory/<name>` per super-category.

    Raises:
        KeyError: for an image without `"masks"`.
        ValueError: for masks of an image whose sizes differ, or not one mask per box.

    Example:
    >>> masks = np.zeros((1, 64, 64), np.uint8)
    >>> masks[0, 10:40, 20:50] = 1
    >>> gt = [{"boxes": [[10, 20, 40, 50]], "labels": [1], "masks": masks}]
    >>> dt = [dict(gt[0], confidences=[0.9], masks=masks * 0.8)]
    >>> metrics = kdet.evaluation.compute_coco_mask_metrics(gt, dt)
    >>> round(metrics["DetectionMasks_Precision/mAP"], 6)
    1.0

    Reference:
        Lin et al., [Microsoft COCO: Common Objects in Context](https://arxiv.org/abs/1405.0312).
    """
    groundtruth, detections, label_map, categories = _paired_with_categories(
        groundtruth, detections, label_map
    )
    gt_annotations, detection_annotations, images = [], [], []
    for index, (truth, detected) in enumerate(zip(groundtruth, detections)):
        truth_masks = _image_masks(truth, f"groundtruth[{index}]", threshold=0.0)
        detected_masks = _image_masks(detected, f"detections[{index}]", MASK_THRESHOLD)
        images.append(_image_size(index, truth_masks, detected_masks))
        gt_annotations += _groundtruth_annotations(index, truth, truth_masks)
        areas = mask_utils.area(detected_masks) if detected_masks else []
        boxes = mask_utils.toBbox(detected_masks).tolist() if detected_masks else []
        detection_annotations += [
            {
                "image_id": index + 1,
                "category_id": int(label),
                "segmentation": rle,
                "area": float(area),
                "bbox": box,
                "score": float(score),
            }
            for label, score, rle, area, box in zip(
                detected["labels"], detected["confidences"], detected_masks, areas, boxes
            )
        ]
    evaluation = _evaluate(
        len(groundtruth), categories, gt_annotations, detection_annotations, "segm", verbose,
        images=images,
    )
    return _summary(evaluation, MASK_PREFIX, label_map, all_metrics_per_category,
                    super_categories)


def _paired_with_categories(groundtruth, detections, label_map):
    """`(groundtruth, detections, label_map, categories)`: the per-image lists paired
    (`paired_per_image`), the category names and the pycocotools `categories` of them."""
    groundtruth, detections = paired_per_image(groundtruth, detections)
    label_map = _category_names(groundtruth, detections, label_map)
    categories = [{"id": int(label), "name": name} for label, name in label_map.items()]
    return groundtruth, detections, label_map, categories


def _groundtruth_annotations(index, image, segmentations=None):
    """The pycocotools annotations of image `index`'s ground truth (`bbox` xywh, `area`,
    `iscrowd`), each with its `segmentation` RLE when `segmentations` are given."""
    annotations = [
        {
            "image_id": index + 1,
            "category_id": int(label),
            "bbox": box,
            "area": float(area),
            "iscrowd": int(iscrowd),
        }
        for label, box, area, iscrowd in zip(
            image["labels"],
            _yxyx_to_xywh(image["boxes"]),
            _groundtruth_areas(image),
            image.get("iscrowd", np.zeros(len(image["labels"]))),
        )
    ]
    if segmentations is not None:
        annotations = [
            {**annotation, "segmentation": rle}
            for annotation, rle in zip(annotations, segmentations)
        ]
    return annotations


def encode_masks(masks, threshold=MASK_THRESHOLD):
    """Binarizes instance masks and run-length encodes them (pycocotools compressed RLE).

    Floating-point masks (probabilities) are the object where they exceed `threshold`; integer
    and bool masks where they are nonzero, as the TF OD API's `CocoMaskEvaluator` reads its
    uint8 masks. A list of RLEs is returned as given.

    Args:
        masks: `[N, H, W]` array (or tensor), or a list of N pycocotools RLE dicts (`{"size":
            [H, W], "counts": …}`).
        threshold: float, the probability above which a floating-point mask pixel is set.
            Defaults to `MASK_THRESHOLD` (0.5, as the TF OD API thresholds detection masks).

    Returns:
        A list of N RLE dicts.

    Raises:
        ValueError: for an array that is not `[N, H, W]`.
    """
    if isinstance(masks, (list, tuple)) and all(isinstance(rle, dict) for rle in masks):
        return list(masks)
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [num_masks, height, width]; got shape {masks.shape}")
    floating = np.issubdtype(masks.dtype, np.floating)
    binary = (masks > threshold) if floating else (masks != 0)
    return mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8)))


def decode_masks(rles, height, width):
    """uint8 `[N, height, width]` 0/1 masks of N pycocotools RLEs (the inverse of
    `encode_masks` for binary masks)."""
    if not len(rles):
        return np.zeros((0, height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(list(rles)).transpose(2, 0, 1))


def _image_masks(image, where, threshold):
    """The RLEs of `image["masks"]`, one per box."""
    if "masks" not in image:
        raise KeyError(f"{where} has no 'masks'; got keys {sorted(image)}.")
    rles = encode_masks(image["masks"], threshold)
    if len(rles) != len(image["labels"]):
        raise ValueError(
            f"{where} has {len(rles)} masks but {len(image['labels'])} boxes; expected one "
            "mask per box."
        )
    return rles


def _image_size(index, groundtruth_rles, detection_rles):
    """The COCO image entry of image `index`: its size, the size of its masks (0 × 0 without
    any; pycocotools reads it only for a mask), the same for all of them."""
    sizes = {tuple(rle["size"]) for rle in list(groundtruth_rles) + list(detection_rles)}
    if len(sizes) > 1:
        raise ValueError(
            f"image {index}: the ground-truth and detection masks have different sizes "
            f"{sorted(sizes)} (height, width); expected all in the pixels of the image."
        )
    height, width = sizes.pop() if sizes else (0, 0)
    return {"id": index + 1, "height": int(height), "width": int(width)}


def _summary(evaluation, prefix, label_map, all_metrics_per_category, super_categories):
    """The TF OD API's metrics (`COCOEvalWrapper.ComputeMetrics`) of a summarized `COCOeval`,
    their names starting with `prefix` (`BOX_PREFIX` or `MASK_PREFIX`)."""
    metrics = collections.OrderedDict(
        (f"{prefix}_{name}", float(value))
        for name, value in zip(_SUMMARY_NAMES, evaluation.stats)
    )
    # precision: [iou thresholds, recall points, categories, area ranges, max detections];
    # area range 0 is "all" and the last max-detections setting is 100, as in `stats[0]`.
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    per_category = f"{prefix}_PerformanceByCategory/mAP/"
    for k, category_id in enumerate(evaluation.params.catIds):
        defined = precision[:, :, k][precision[:, :, k] > -1]
        metrics[per_category + label_map[category_id]] = (
            float(np.mean(defined)) if defined.size else -1.0
        )
        if all_metrics_per_category:
            for name, value in zip(_SUMMARY_NAMES, _category_summary(evaluation, k)):
                name = name.replace("/", " ")
                metrics[f"{prefix}_{name} ByCategory/{label_map[category_id]}"] = value
    for super_category, names in (super_categories or {}).items():
        total = sum(
            metrics[per_category + label_map[category_id]]
            for category_id in evaluation.params.catIds
            if label_map[category_id] in names
        )
        metrics[f"{prefix}_PerformanceBySuperCategory/{super_category}"] = total / len(names)
    return metrics


def _groundtruth_areas(image):
    """float64 `[N]`: each object's `"area"` when given and > 0, else its box area (the TF OD
    API's `ExportSingleImageGroundtruthToCoco`)."""
    box_areas = _box_areas(image["boxes"])
    if "area" not in image:
        return box_areas
    areas = np.asarray(image["area"], np.float64)
    return np.where(areas > 0, areas, box_areas)


def compute_coco_keypoint_metrics(
    groundtruth,
    detections,
    category_id,
    keypoints,
    category_name=None,
    keypoint_sigmas=None,
    verbose=False,
):
    """Computes the COCO keypoint metrics (pycocotools OKS `COCOeval`) of one class.

    What the TF OD API's `CocoKeypointEvaluator` computes for one
    `parameterized_metric { coco_keypoint_metrics { class_label … } }`: the ground truth and
    the detections of `category_id` only, their keypoints restricted to the class's
    `keypoints` (in increasing id order), evaluated by pycocotools with `iouType="keypoints"`:
    object keypoint similarity (OKS) instead of IoU, AP averaged over OKS 0.50:0.95 and 101
    recall points, at most 20 detections per image.

    The OKS of a detection and a ground-truth object is the mean over the object's labelled
    keypoints (visibility > 0) of `exp(-d² / (2 · area · (2σ)²))`, `d` the distance of the
    keypoints in pixels, `area` the object's `"area"` when given and > 0, else its box area (as
    the TF OD API exports it), `σ` the keypoint's sigma. Objects with no labelled keypoint are
    ignored (neither matched nor missed), as in COCO. A detection's own keypoint scores play
    no part: pycocotools scores the object by its box confidence.

    Args:
        groundtruth: one entry per image (see `groundtruth_per_image`): dicts with `"boxes"`
            `[N, 4]` yxyx pixels, `"labels"` `[N]`, `"keypoints"` `[N, K, 2]` (y, x) pixels,
            optional `"keypoint_visibilities"` `[N, K]` (0 = not labelled, its coordinates are
            ignored; 1 and 2 = labelled, COCO's v; bools count as 0 / 1; when absent a keypoint
            is labelled unless a coordinate is NaN), optional `"area"` and `"iscrowd"` `[N]`;
            or the batched dict padded with -1 rows.
        detections: one entry per image, in the same order (see `detections_per_image`):
            dicts with `"boxes"`, `"labels"`, `"confidences"` and `"keypoints"` `[M, K, 2]`
            (y, x) pixels, or the batched predictions dict.
        category_id: int, the label id of the evaluated class.
        keypoints: dict `{keypoint label: keypoint id}`, the class's keypoints as its label
            map item lists them (`keypoints { id: 0 label: "nose" }`); an id is an index
            into the `K` axis of `"keypoints"`. A sequence of labels means ids 0, 1, ….
        category_name: str, the class name in the metric names. Defaults to
            `str(category_id)`.
        keypoint_sigmas: dict `{keypoint label: sigma}` (TF OD API
            `keypoint_label_to_sigmas`; COCO's person sigmas are 0.025 to 0.107) with an entry
            for every keypoint of the class, or None (or empty) for
            `DEFAULT_KEYPOINT_SIGMA` for all, as the TF OD API does.
        verbose: bool. Let pycocotools print its progress and summary table. Defaults to
            `False`.

    Returns:
        An ordered dict of the 10 floats `Keypoints_<name> ByCategory/<category_name>` for
        the names of `COCO_KEYPOINT_METRIC_NAMES`, -1 where pycocotools cannot define one
        (e.g. no medium objects).

    Raises:
        ValueError: for a keypoint id outside the `K` axis, a sigma missing for a keypoint,
            shapes that disagree, or ground truth and detections of different lengths.

    Example:
    >>> gt = [{"boxes": [[0, 0, 100, 50]], "labels": [1],
    ...        "keypoints": [[[10, 20], [60, 25]]]}]
    >>> dt = [dict(gt[0], confidences=[0.9])]
    >>> metrics = kdet.evaluation.compute_coco_keypoint_metrics(
    ...     gt, dt, category_id=1, keypoints=["head", "foot"], category_name="person")
    >>> round(metrics["Keypoints_Precision/mAP ByCategory/person"], 6)
    1.0

    Reference:
        Lin et al., [Microsoft COCO: Common Objects in Context](https://arxiv.org/abs/1405.0312);
        OKS: https://cocodataset.org/#keypoints-eval.
    """
    groundtruth, detections = paired_per_image(groundtruth, detections)
    if not isinstance(keypoints, dict):
        keypoints = {str(label): index for index, label in enumerate(keypoints)}
    labels = sorted(keypoints, key=keypoints.get)
    ids = np.array([keypoints[label] for label in labels], np.int64)
    sigmas = _keypoint_sigmas(labels, keypoint_sigmas)
    category_name = str(category_id) if category_name is None else str(category_name)
    gt_annotations = [
        annotation
        for index, image in enumerate(groundtruth)
        for annotation in _keypoint_groundtruth(image, index, category_id, ids)
    ]
    detection_annotations = [
        annotation
        for index, image in enumerate(detections)
        for annotation in _keypoint_detections(image, index, category_id, ids)
    ]
    evaluation = _evaluate(
        len(groundtruth),
        [{"id": int(category_id), "name": category_name}],
        gt_annotations,
        detection_annotations,
        "keypoints",
        verbose,
        keypoint_sigmas=sigmas,
    )
    return collections.OrderedDict(
        (f"Keypoints_{name} ByCategory/{category_name}", float(value))
        for name, value in zip(COCO_KEYPOINT_METRIC_NAMES, evaluation.stats)
    )


def _keypoint_sigmas(labels, keypoint_sigmas):
    """float64 `[len(labels)]`: the OKS sigma of each keypoint label."""
    if not keypoint_sigmas:
        return np.full(len(labels), DEFAULT_KEYPOINT_SIGMA)
    missing = [label for label in labels if label not in keypoint_sigmas]
    if missing:
        raise ValueError(
            f"keypoint_sigmas has no sigma for the keypoints {missing}; expected one for "
            f"each of {labels} (got {sorted(keypoint_sigmas)})."
        )
    return np.array([float(keypoint_sigmas[label]) for label in labels])


def _keypoints_of(image, key, where, ids):
    """float64 `[n, len(ids), 2]`: the `ids` columns of `image[key]` `[n, K, 2]`."""
    if key not in image:
        raise KeyError(f"{where} has no {key!r}; got keys {sorted(image)}.")
    points = np.asarray(image[key], np.float64).reshape(len(image["labels"]), -1, 2)
    if ids.size and (ids.min() < 0 or ids.max() >= points.shape[1]):
        raise ValueError(
            f"{where}: keypoint ids {ids.tolist()} do not all index its {key!r} "
            f"(shape {points.shape}, K = {points.shape[1]})."
        )
    return points[:, ids]


def _keypoint_groundtruth(image, index, category_id, ids):
    """The COCO ground-truth annotations (with `keypoints`) of one image and category."""
    if not len(image["labels"]):
        return []
    points = _keypoints_of(image, "keypoints", f"groundtruth[{index}]", ids)
    if "keypoint_visibilities" in image:
        visibilities = np.asarray(image["keypoint_visibilities"]).astype(np.int64)
        visibilities = visibilities.reshape(len(points), -1)[:, ids]
    else:
        visibilities = np.full(points.shape[:2], 2, np.int64)
    visibilities = np.where(np.isfinite(points).all(axis=-1), visibilities, 0)
    # Coordinates of unlabelled keypoints play no part; zeros keep NaNs out of pycocotools.
    points = np.where(visibilities[..., None] > 0, points, 0.0)
    areas = _groundtruth_areas(image)
    iscrowd = image.get("iscrowd", np.zeros(len(points)))
    return [
        {
            "image_id": index + 1,
            "category_id": int(category_id),
            "bbox": box,
            "area": float(areas[i]),
            "iscrowd": int(iscrowd[i]),
            "keypoints": _coco_keypoints(points[i], visibilities[i]),
            "num_keypoints": int(np.count_nonzero(visibilities[i] > 0)),
        }
        for i, box in enumerate(_yxyx_to_xywh(image["boxes"]))
        if image["labels"][i] == category_id
    ]


def _keypoint_detections(image, index, category_id, ids):
    """The COCO result annotations (with `keypoints`) of one image and category."""
    if not len(image["labels"]):
        return []
    points = _keypoints_of(image, "keypoints", f"detections[{index}]", ids)
    visible = np.full(points.shape[:2], 2, np.int64)
    return [
        {
            "image_id": index + 1,
            "category_id": int(category_id),
            "bbox": box,
            "area": box[2] * box[3],
            "score": float(image["confidences"][i]),
            "keypoints": _coco_keypoints(points[i], visible[i]),
            "num_keypoints": len(ids),
        }
        for i, box in enumerate(_yxyx_to_xywh(image["boxes"]))
        if image["labels"][i] == category_id
    ]


def _coco_keypoints(points, visibilities):
    """(y, x) `[K, 2]` and `[K]` visibilities → COCO's flat `[x1, y1, v1, x2, …]` list."""
    return np.stack([points[:, 1], points[:, 0], visibilities], axis=1).reshape(-1).tolist()


def _evaluate(
    num_images, categories, gt_annotations, detection_annotations, iou_type, verbose,
    keypoint_sigmas=None, images=None,
):
    """A pycocotools `COCOeval` of in-memory annotations after `evaluate`, `accumulate` and
    `summarize`; image ids are 1 … `num_images` (`images`: their COCO entries, with the
    `height` and `width` that masks need)."""
    if images is None:
        images = [{"id": index + 1} for index in range(num_images)]
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        # Built directly rather than with `COCO.loadRes`, which fails on an empty result list.
        evaluation = COCOeval(
            _coco(images, categories, gt_annotations),
            _coco(images, categories, detection_annotations),
            iouType=iou_type,
        )
        if keypoint_sigmas is not None:
            evaluation.params.kpt_oks_sigmas = np.asarray(keypoint_sigmas, np.float64)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


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
