"""Open Images detection metrics, as the TF Object Detection API's Open Images evaluators
compute them (`oid_V2_detection_metrics`, `oid_challenge_detection_metrics`)."""

from kdet.evaluation.pascal_voc_metrics import evaluate_detections

# The metric-name prefixes of the TF OD API `OpenImagesDetectionEvaluator` and
# `OpenImagesDetectionChallengeEvaluator`.
OPEN_IMAGES_V2_PREFIX = "OpenImagesV2"
OPEN_IMAGES_CHALLENGE_PREFIX = "OpenImagesDetectionChallenge"


def compute_open_images_metrics(
    groundtruth,
    detections,
    challenge=False,
    label_map=None,
    iou_threshold=0.5,
    group_of_weight=None,
    return_curves=False,
):
    """Computes the Open Images per-class average precision and its mean.

    Pascal VOC-style AP at IoU 0.5 (`compute_pascal_voc_metrics`), with the Open Images
    `group-of` boxes (`image/object/group_of` in TF OD API records: one box around several
    objects of a class, e.g. a crowd), as the TF OD API `OpenImagesDetectionEvaluator`
    computes it (its `open_images_V2_detection_metrics` / `oid_V2_detection_metrics`):

    - a detection is a true positive if it matches a box that is not group-of, as in Pascal
      VOC (its best-overlapping box of its class, IoU >= `iou_threshold`, not yet matched);
    - a detection that is not a true positive and lies inside a group-of box of its class
      (intersection over the *detection's* area >= `iou_threshold`) is ignored: neither a
      true nor a false positive;
    - any other detection is a false positive; the recall counts the boxes that are not
      group-of. `difficult` flags are not read (Open Images has none).

    With `challenge` (the TF OD API `OpenImagesDetectionChallengeEvaluator`,
    `oid_challenge_detection_metrics`), two rules change:

    - a group-of box weighs `group_of_weight` (1 by default): it counts as ground truth, and
      if detections fall inside it, it is one true positive at the highest of their
      confidences (the detections themselves are still not counted);
    - the verified image-level labels decide which classes are judged on an image: a
      detection counts only if its class has a box on the image or is among the image's
      `"image_labels"` (`image/class/label`: the classes verified present or absent, as the
      Open Images challenge lists them); detections of other classes are ignored, so an
      unverified class never makes a false positive.

    Per class all images are pooled; a class without ground truth has AP NaN and is left out
    of the mean, as in the TF OD API.

    Args:
        groundtruth: one entry per image: a list of dicts `{"boxes": [N, 4] yxyx in pixels,
            "labels": [N] 1-based}` with optional `"group_of": [N]` bool and (for the
            challenge) `"image_labels": [L]` int, or a batched dict (`[B, N, 4]`, `[B, N]`,
            `"image_labels": [B, L]`) padded with -1. See `groundtruth_per_image`.
        detections: one entry per image, in the same order. See `detections_per_image`.
        challenge: bool. The challenge metric. Defaults to `False` (Open Images V2).
        label_map: dict `{label id: name}`. The classes evaluated and their names; None for
            the labels found, named by their id.
        iou_threshold: float. Defaults to `0.5`.
        group_of_weight: float >= 0 or None. Weight of a detected group-of box; None for the
            TF OD API default (0 for V2, where group-of boxes only excuse detections; 1 for
            the challenge).
        return_curves: bool. Also return the precision/recall curves (see
            `compute_pascal_voc_metrics`). Defaults to `False`.

    Returns:
        An ordered dict of floats: `OpenImagesV2_Precision/mAP@0.5IOU`, then
        `OpenImagesV2_PerformanceByCategory/AP@0.5IOU/<name>` per class; the prefix is
        `OpenImagesDetectionChallenge` with `challenge`. With `return_curves`, `(metrics,
        curves)`.

    Example:
    >>> gt = [{"boxes": [[0, 0, 10, 10], [20, 0, 60, 100]], "labels": [1, 1],
    ...        "group_of": [False, True]}]
    >>> dt = [{"boxes": [[0, 0, 10, 9], [30, 10, 50, 30]], "labels": [1, 1],
    ...        "confidences": [0.6, 0.9]}]
    >>> kdet.evaluation.compute_open_images_metrics(gt, dt)["OpenImagesV2_Precision/mAP@0.5IOU"]
    1.0

    Reference:
        Kuznetsova et al., [The Open Images Dataset V4](https://arxiv.org/abs/1811.00982);
        the TF OD API's `evaluation_protocols.md`.
    """
    if group_of_weight is None:
        group_of_weight = 1.0 if challenge else 0.0
    return evaluate_detections(
        groundtruth,
        detections,
        prefix=OPEN_IMAGES_CHALLENGE_PREFIX if challenge else OPEN_IMAGES_V2_PREFIX,
        iou_threshold=iou_threshold,
        label_map=label_map,
        return_curves=return_curves,
        use_difficult=False,
        use_group_of=True,
        group_of_weight=group_of_weight,
        use_image_labels=challenge,
    )
