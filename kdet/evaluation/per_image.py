"""Ground truth and detections as per-image numpy dicts, the form the metrics read."""

from collections.abc import Mapping

import numpy as np

_GROUNDTRUTH_EXTRAS = ("iscrowd", "area", "difficult", "group_of")
# Per-box keys with more axes: keypoints `[N, K, 2]` and per-keypoint values `[N, K]`.
_GROUNDTRUTH_KEYPOINTS = ("keypoints", "keypoint_visibilities")
_DETECTION_KEYPOINTS = ("keypoints", "keypoint_scores")
# Instance masks: `[N, H, W]` per image, or a list of N pycocotools RLEs.
_MASKS = "masks"
# Per image, not per box: the verified image-level labels (`image/class/label`).
_IMAGE_LABELS = "image_labels"
# Keys sliced per image out of a batched dict; anything else in it is left alone.
_BATCHED_KEYS = ("boxes", "labels", "classes", "confidences", "num_detections")
_BATCHED_KEYS += _GROUNDTRUTH_EXTRAS + (_IMAGE_LABELS,) + _GROUNDTRUTH_KEYPOINTS
_BATCHED_KEYS += _DETECTION_KEYPOINTS + (_MASKS,)


def groundtruth_per_image(groundtruth):
    """Splits ground truth into one numpy dict per image, without the padding rows.

    Args:
        groundtruth: either a list (one entry per image) of dicts `{"boxes": [N, 4] yxyx,
            "labels": [N]}`, or one batched dict `{"boxes": [B, N, 4], "labels": [B, N]}`
            padded with -1 rows (`"classes"` is accepted for `"labels"`). Optional per-box
            keys `"iscrowd"`, `"area"`, `"difficult"`, `"group_of"` (`[N]`, or `[B, N]` when
            batched) are kept, as are `"keypoints"` (`[N, K, 2]`, (y, x)) and
            `"keypoint_visibilities"` (`[N, K]`), `"masks"` (`[N, H, W]`, or a list of N
            pycocotools RLEs), and the per-image `"image_labels"` (`[L]`,
            or `[B, L]` padded with -1: the verified image-level labels). Numpy arrays,
            tensors or lists.

    Returns:
        A list of dicts `{"boxes": float64 [n, 4], "labels": int64 [n], ...}` with the rows
        whose label is -1 removed (`"image_labels"`: int64 `[l]` without its -1 padding;
        `"keypoints"` float64 `[n, K, 2]`, `"keypoint_visibilities"` `[n, K]` as given).

    Example:
    >>> y = {"boxes": [[[0, 0, 10, 10], [-1, -1, -1, -1]]], "labels": [[2, -1]]}
    >>> kdet.evaluation.groundtruth_per_image(y)[0]["labels"]
    array([2])
    """
    result = []
    for index, image in enumerate(_unbatch(groundtruth, "groundtruth")):
        boxes, labels = _boxes_and_labels(image, f"groundtruth[{index}]")
        keep = labels != -1
        entry = {"boxes": boxes[keep], "labels": labels[keep]}
        for key in _GROUNDTRUTH_EXTRAS:
            if key in image:
                entry[key] = np.asarray(image[key]).reshape(-1)[keep]
        entry.update(_keypoint_rows(image, _GROUNDTRUTH_KEYPOINTS, keep))
        entry.update(_mask_rows(image, keep, f"groundtruth[{index}]"))
        if _IMAGE_LABELS in image:
            image_labels = np.asarray(image[_IMAGE_LABELS]).reshape(-1).astype(np.int64)
            entry[_IMAGE_LABELS] = image_labels[image_labels != -1]
        result.append(entry)
    return result


def detections_per_image(detections):
    """Splits detections into one numpy dict per image, without the padding rows.

    Args:
        detections: either a list (one entry per image) of dicts `{"boxes": [K, 4] yxyx,
            "labels": [K], "confidences": [K]}`, or one batched predictions dict
            `{"boxes": [B, K, 4], "labels": [B, K], "confidences": [B, K],
            "num_detections": [B]}` as kdet detectors return it (`"num_detections"` is
            optional; rows with label -1 are padding either way), with optional
            `"keypoints"` (`[K, num_keypoints, 2]`, batched `[B, K, num_keypoints, 2]`) and
            `"keypoint_scores"` (`[K, num_keypoints]`) and `"masks"` (`[K, H, W]`, batched
            `[B, K, H, W]`, or a list of K RLEs). Numpy arrays, tensors or lists.

    Returns:
        A list of dicts `{"boxes": float64 [k, 4], "labels": int64 [k],
        "confidences": float64 [k]}`, with `"keypoints"` float64 `[k, num_keypoints, 2]` and
        `"keypoint_scores"` float64 `[k, num_keypoints]` and `"masks"` (its rows, dtype kept)
        when given.

    Example:
    >>> predictions = {"boxes": [[[0, 0, 10, 10], [0, 0, 5, 5]]], "labels": [[1, 3]],
    ...                "confidences": [[0.9, 0.2]], "num_detections": [1]}
    >>> kdet.evaluation.detections_per_image(predictions)[0]["confidences"]
    array([0.9])
    """
    result = []
    for index, image in enumerate(_unbatch(detections, "detections")):
        where = f"detections[{index}]"
        boxes, labels = _boxes_and_labels(image, where)
        if "confidences" not in image:
            raise KeyError(f"{where} has no 'confidences'; got keys {sorted(image)}.")
        confidences = np.asarray(image["confidences"], np.float64).reshape(-1)
        if confidences.shape != labels.shape:
            raise ValueError(
                f"{where}: 'confidences' has {confidences.size} entries but 'labels' has "
                f"{labels.size}; expected one per box."
            )
        keep = labels != -1
        if "num_detections" in image:
            keep &= np.arange(labels.size) < int(image["num_detections"])
        entry = {"boxes": boxes[keep], "labels": labels[keep], "confidences": confidences[keep]}
        entry.update(_keypoint_rows(image, _DETECTION_KEYPOINTS, keep))
        entry.update(_mask_rows(image, keep, where))
        result.append(entry)
    return result


def _keypoint_rows(image, keys, keep):
    """The `keep` rows of the keypoint arrays among `keys` of `image`: `"keypoints"` as
    float64 `[n, K, 2]`, the others (per keypoint) `[n, K]` with their dtype."""
    rows = {}
    for key in keys:
        if key in image:
            value = np.asarray(image[key])
            shape = (len(keep), -1, 2) if key == "keypoints" else (len(keep), -1)
            if value.size == 0:  # no boxes, so no keypoints either: K is unknown
                shape = tuple(0 if size == -1 else size for size in shape)
            value = value.reshape(shape)
            rows[key] = value.astype(np.float64)[keep] if key == "keypoints" else value[keep]
    return rows


def _mask_rows(image, keep, where):
    """`{"masks": …}` with the `keep` rows of `image["masks"]` (an `[N, H, W]` array, as given,
    or a list of N RLEs), or `{}` without masks."""
    if _MASKS not in image:
        return {}
    masks = image[_MASKS]
    if isinstance(masks, (list, tuple)) and all(isinstance(rle, dict) for rle in masks):
        if len(masks) == len(keep):
            return {_MASKS: [rle for rle, kept in zip(masks, keep) if kept]}
    else:
        masks = np.asarray(masks)
        if masks.ndim == 3 and len(masks) == len(keep):
            return {_MASKS: masks[keep]}
    raise ValueError(
        f"{where}: 'masks' must hold one [height, width] mask per box ({len(keep)} boxes); "
        f"got {len(masks) if isinstance(masks, (list, tuple)) else masks.shape}."
    )


def _unbatch(data, what):
    if not isinstance(data, Mapping):
        return list(data)
    boxes = np.asarray(data["boxes"]) if "boxes" in data else None
    if boxes is None or boxes.ndim != 3:
        raise ValueError(
            f"A dict of {what} must be batched, with 'boxes' of shape [batch, num_boxes, 4]; "
            f"got {None if boxes is None else boxes.shape}. Pass a list of per-image dicts "
            "for unbatched data."
        )
    arrays = {key: np.asarray(value) for key, value in data.items() if key in _BATCHED_KEYS}
    return [{key: value[b] for key, value in arrays.items()} for b in range(len(boxes))]


def _boxes_and_labels(image, where):
    labels = image.get("labels", image.get("classes"))
    if labels is None or "boxes" not in image:
        raise KeyError(
            f"{where} needs 'boxes' and 'labels' (or 'classes'); got keys {sorted(image)}."
        )
    boxes = np.asarray(image["boxes"], np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(boxes) != len(labels):
        raise ValueError(
            f"{where} has {len(boxes)} boxes but {len(labels)} labels; expected one per box."
        )
    invalid = labels[(labels < 1) & (labels != -1)]
    if invalid.size:
        raise ValueError(
            f"{where} has label ids {sorted(set(invalid.tolist()))}; expected 1-based ids "
            "(0 is the background) or -1 for padding."
        )
    return boxes, labels


def paired_per_image(groundtruth, detections):
    """`(groundtruth_per_image(groundtruth), detections_per_image(detections))`, checked to
    hold one entry per image each.

    Raises:
        ValueError: when they have different numbers of images.
    """
    groundtruth = groundtruth_per_image(groundtruth)
    detections = detections_per_image(detections)
    if len(groundtruth) != len(detections):
        raise ValueError(
            f"Got ground truth for {len(groundtruth)} images but detections for "
            f"{len(detections)}; expected one entry per image in both."
        )
    return groundtruth, detections
