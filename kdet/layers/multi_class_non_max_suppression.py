"""Batched non-max suppression (per class or class-agnostic, hard or soft) into kdet's padded
predictions dict."""

import itertools

import keras
import tensorflow as tf

SCORE_CONVERTERS = ("identity", "sigmoid", "softmax")


@keras.saving.register_keras_serializable(package="kdet")
class MultiClassNonMaxSuppression(keras.layers.Layer):
    """Non-max suppression over a batch, padded to a fixed number of detections: the TF OD
    API `post_processing` message (`batch_non_max_suppression`, `score_converter`,
    `logit_scale`) as one layer.

    Per-class NMS (the default): each class is suppressed on its own (boxes of different
    classes never suppress each other), then the survivors of all classes are ranked by score
    and the best `max_detections` are kept. Class-agnostic NMS (`use_class_agnostic_nms`):
    each box takes its best class and score, and boxes suppress each other whatever their
    class (TF OD API `class_agnostic_non_max_suppression`). With `soft_nms_sigma > 0`,
    a box overlapping a selected one has its score decayed by
    `exp(-0.5 * iou² / soft_nms_sigma)` (Gaussian soft-NMS, TF's
    `tf.image.non_max_suppression_with_scores`) and is dropped once its decayed score falls
    to `score_threshold` or below; a box whose IoU reaches `iou_threshold` is still removed
    outright, so pure soft-NMS sets `iou_threshold: 1.0`, as the TF OD API advises.

    `call` takes scores that are already probabilities, with any background column removed
    by the caller; `convert_scores` turns raw logits into them with `score_converter` and
    `logit_scale`, as the TF OD API's post-processing does before NMS. Hard per-class NMS
    runs as one `tf.image.combined_non_max_suppression` op; the other modes run TF's
    single-image NMS op under `tf.map_fn`: all modes work batched under `tf.function`.

    Args:
        score_threshold: float. Boxes scoring at or below this are dropped. Defaults to
            `0.0` (the TF OD API default).
        iou_threshold: float. A box is suppressed when its IoU with a higher-scoring box of the
            same class (any class with `use_class_agnostic_nms`) exceeds this. Defaults to
            `0.6`.
        max_detections_per_class: int. Detections kept per class and image (not used by
            class-agnostic NMS, as in the TF OD API). Defaults to `100`.
        max_detections: int. Detections kept per image, over all classes. Defaults to `100`.
        clip_boxes: bool. Clip the output boxes to `[0, 1]`; only meaningful for normalized
            boxes, keep `False` for pixel boxes. Defaults to `False`.
        use_class_agnostic_nms: bool. Class-agnostic NMS (see above). Defaults to `False`.
        max_classes_per_detection: int. Classes kept per box by class-agnostic NMS; only `1`
            (the TF OD API refuses more too). Defaults to `1`.
        soft_nms_sigma: float ≥ 0. Gaussian soft-NMS sigma; `0.0` is hard NMS. Defaults to
            `0.0`.
        score_converter: `"identity"`, `"sigmoid"` or `"softmax"`: what `convert_scores`
            applies to `logits / logit_scale`. Defaults to `"identity"`.
        logit_scale: float, non-zero. Defaults to `1.0`.
        calibration: None, or a dict: `{"sigmoid": {"a": a, "b": b}}` maps each score `s`
            to `1 / (1 + exp(a * s + b))` (Platt scaling), `{"function_approximation":
            {"x": [...], "y": [...]}}` to the piecewise-linear function through those points
            (x ascending, constant beyond the ends): TF OD API `calibration_config`
            (class-agnostic kinds), applied by `convert_scores` after the score converter.
            Defaults to `None`.

    Call arguments:
        boxes: float `[batch, num_boxes, 4]` shared by all classes, or
            `[batch, num_boxes, num_classes, 4]` per class; `yxyx` in any unit.
        scores: float `[batch, num_boxes, num_classes]`.
        max_detections: optional int replacing the layer's `max_detections` for this call
            (e.g. more candidates for `clip_and_prune`, as the TF OD API keeps them until it
            has clipped). Defaults to `None`.

    Returns:
        A dict, kdet's predictions contract (what `keras.visualization.draw_bounding_boxes`
        takes), sorted by decreasing confidence:
        - `"boxes"`: float32 `[batch, max_detections, 4]`, `yxyx` in the unit of the input,
          padded with -1.
        - `"labels"`: int32 `[batch, max_detections]`, the 0-based class column of `scores`,
          padded with -1.
        - `"confidences"`: float32 `[batch, max_detections]` (decayed scores with soft-NMS),
          padded with 0.
        - `"num_detections"`: int32 `[batch]`, the number of valid rows.

    Example:
    ```python
    nms = kdet.layers.MultiClassNonMaxSuppression(max_detections=10)
    boxes = tf.constant([[[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]]])
    scores = tf.constant([[[0.9, 0.1], [0.8, 0.7]]])
    detections = nms(boxes, scores)
    detections["labels"][0, :2]  # [0, 1]: the second box survives as class 1 only
    ```

    Reference:
        TF OD API `object_detection/core/post_processing.py`
        (`batch_multiclass_non_max_suppression`, `class_agnostic_non_max_suppression`);
        soft-NMS: [Bodla et al., 2017](https://arxiv.org/abs/1704.04503).
    """

    def __init__(
        self,
        score_threshold=0.0,
        iou_threshold=0.6,
        max_detections_per_class=100,
        max_detections=100,
        clip_boxes=False,
        use_class_agnostic_nms=False,
        max_classes_per_detection=1,
        soft_nms_sigma=0.0,
        score_converter="identity",
        logit_scale=1.0,
        calibration=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if max_classes_per_detection != 1:
            raise ValueError(
                "max_classes_per_detection must be 1: class-agnostic NMS keeps one class per "
                "box (the TF OD API refuses more as well); got "
                f"{max_classes_per_detection}"
            )
        if soft_nms_sigma < 0.0:
            raise ValueError(f"soft_nms_sigma must be >= 0; got {soft_nms_sigma}")
        if score_converter not in SCORE_CONVERTERS:
            raise ValueError(
                f"score_converter must be one of {SCORE_CONVERTERS}; got {score_converter!r}"
            )
        if logit_scale == 0.0:
            raise ValueError("logit_scale must not be 0: logits are divided by it")
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_detections_per_class = max_detections_per_class
        self.max_detections = max_detections
        self.clip_boxes = clip_boxes
        self.use_class_agnostic_nms = bool(use_class_agnostic_nms)
        self.max_classes_per_detection = max_classes_per_detection
        self.soft_nms_sigma = float(soft_nms_sigma)
        self.score_converter = score_converter
        self.logit_scale = float(logit_scale)
        self.calibration = _checked_calibration(calibration)

    def convert_scores(self, logits):
        """Raw class logits `[..., num_classes]` → scores: `score_converter` of
        `logits / logit_scale` (float32, same shape; softmax over the last axis), then the
        `calibration`, if any."""
        logits = tf.cast(logits, tf.float32) / self.logit_scale
        if self.score_converter == "sigmoid":
            scores = tf.sigmoid(logits)
        elif self.score_converter == "softmax":
            scores = tf.nn.softmax(logits)
        else:
            scores = logits
        if self.calibration is None:
            return scores
        if "sigmoid" in self.calibration:
            parameters = self.calibration["sigmoid"]
            return tf.sigmoid(-(parameters["a"] * scores + parameters["b"]))
        points = self.calibration["function_approximation"]
        return _interpolate(scores, points["x"], points["y"])

    def call(self, boxes, scores, max_detections=None):
        size = self.max_detections if max_detections is None else max_detections
        boxes = tf.cast(boxes, tf.float32)
        scores = tf.cast(scores, tf.float32)
        if boxes.shape.rank == 3:
            boxes = boxes[:, :, tf.newaxis, :]
        elif boxes.shape.rank != 4:
            raise ValueError(
                "boxes must be [batch, num_boxes, 4] or [batch, num_boxes, num_classes, 4]; got "
                f"shape {boxes.shape}."
            )
        if scores.shape.rank != 3:
            raise ValueError(
                f"scores must be [batch, num_boxes, num_classes]; got shape {scores.shape}."
            )
        if self.use_class_agnostic_nms:
            nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = self._class_agnostic(
                boxes, scores, size
            )
        elif self.soft_nms_sigma > 0.0:
            nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = self._soft_per_class(
                boxes, scores, size
            )
        else:
            nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = (
                tf.image.combined_non_max_suppression(
                    boxes,
                    scores,
                    max_output_size_per_class=self.max_detections_per_class,
                    max_total_size=size,
                    iou_threshold=self.iou_threshold,
                    score_threshold=self.score_threshold,
                    clip_boxes=self.clip_boxes,
                )
            )
        # The ops pad with zeros, which read as real boxes of class 0; kdet pads with -1.
        valid = tf.range(size)[tf.newaxis, :] < num_detections[:, tf.newaxis]
        return {
            "boxes": tf.where(valid[..., tf.newaxis], nmsed_boxes, -1.0),
            "labels": tf.where(valid, tf.cast(nmsed_classes, tf.int32), -1),
            "confidences": tf.where(valid, nmsed_scores, 0.0),
            "num_detections": tf.cast(num_detections, tf.int32),
        }

    def _select(self, boxes, scores, max_output_size):
        """Single-image NMS (soft with `soft_nms_sigma`) of `boxes [n, 4]`, `scores [n]`.

        Returns:
            `(indices [max_output_size] int32, scores [max_output_size], count)`, the
            selected ones first in decreasing (decayed) score, padded with 0.
        """
        indices, selected_scores = tf.image.non_max_suppression_with_scores(
            boxes,
            scores,
            max_output_size,
            iou_threshold=self.iou_threshold,
            score_threshold=self.score_threshold,
            soft_nms_sigma=self.soft_nms_sigma,
        )
        count = tf.shape(indices)[0]
        padding = [[0, max_output_size - count]]
        return tf.pad(indices, padding), tf.pad(selected_scores, padding), count

    def _finish(self, boxes):
        return tf.clip_by_value(boxes, 0.0, 1.0) if self.clip_boxes else boxes

    def _class_agnostic(self, boxes, scores, size):
        """Best class per box, then one NMS over all boxes of an image."""
        classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
        best_scores = tf.reduce_max(scores, axis=-1)
        if boxes.shape[2] != 1:
            # Per-class boxes: each box keeps the one of its best class.
            boxes = tf.gather(boxes, classes[..., tf.newaxis], axis=2, batch_dims=2)
        boxes = boxes[:, :, 0, :]

        def one_image(inputs):
            image_boxes, image_scores, image_classes = inputs
            indices, selected, count = self._select(image_boxes, image_scores, size)
            return (
                tf.gather(image_boxes, indices),
                selected,
                tf.gather(image_classes, indices),
                count,
            )

        return self._per_image(one_image, (boxes, best_scores, classes), size)

    def _soft_per_class(self, boxes, scores, size):
        """Soft-NMS of every class of every image, then the best `size` of each image over
        its classes."""
        per_class = self.max_detections_per_class
        num_classes = tf.shape(scores)[2]
        shared_boxes = boxes.shape[2] == 1

        def one_class(inputs):
            class_boxes, class_scores = inputs
            indices, selected, count = self._select(class_boxes, class_scores, per_class)
            valid = tf.range(per_class) < count
            return tf.gather(class_boxes, indices), tf.where(valid, selected, -1.0)

        def one_image(inputs):
            image_boxes, image_scores = inputs  # [n, q, 4], [n, c]
            class_scores = tf.transpose(image_scores)  # [c, n]
            if shared_boxes:
                class_boxes = tf.tile(
                    tf.transpose(image_boxes, [1, 0, 2]), [num_classes, 1, 1]
                )
            else:
                class_boxes = tf.transpose(image_boxes, [1, 0, 2])  # [c, n, 4]
            kept_boxes, kept_scores = tf.map_fn(
                one_class,
                (class_boxes, class_scores),
                fn_output_signature=(
                    tf.TensorSpec([per_class, 4], tf.float32),
                    tf.TensorSpec([per_class], tf.float32),
                ),
            )
            kept_classes = tf.repeat(tf.range(num_classes), per_class)
            kept_boxes = tf.reshape(kept_boxes, [-1, 4])
            kept_scores = tf.reshape(kept_scores, [-1])
            # Pad so that top_k always finds `size` candidates.
            kept_scores = tf.pad(kept_scores, [[0, size]], constant_values=-1.0)
            kept_boxes = tf.pad(kept_boxes, [[0, size], [0, 0]])
            kept_classes = tf.pad(kept_classes, [[0, size]])
            best, order = tf.math.top_k(kept_scores, k=size)
            count = tf.reduce_sum(tf.cast(best >= 0.0, tf.int32))
            return (
                tf.gather(kept_boxes, order),
                tf.maximum(best, 0.0),
                tf.gather(kept_classes, order),
                count,
            )

        return self._per_image(one_image, (boxes, scores), size)

    def _per_image(self, one_image, inputs, size):
        """Runs `one_image` on every image of `inputs` (tensors with a batch axis) → batched
        `(boxes [B, size, 4], scores [B, size], classes, counts [B])`."""
        nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = tf.map_fn(
            one_image,
            inputs,
            fn_output_signature=(
                tf.TensorSpec([size, 4], tf.float32),
                tf.TensorSpec([size], tf.float32),
                tf.TensorSpec([size], tf.int32),
                tf.TensorSpec([], tf.int32),
            ),
        )
        return self._finish(nmsed_boxes), nmsed_scores, nmsed_classes, num_detections

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold,
                "max_detections_per_class": self.max_detections_per_class,
                "max_detections": self.max_detections,
                "clip_boxes": self.clip_boxes,
                "use_class_agnostic_nms": self.use_class_agnostic_nms,
                "max_classes_per_detection": self.max_classes_per_detection,
                "soft_nms_sigma": self.soft_nms_sigma,
                "score_converter": self.score_converter,
                "logit_scale": self.logit_scale,
                "calibration": self.calibration,
            }
        )
        return config


def suppress_then_clip(non_max_suppression, boxes, scores, window=None):
    """The TF OD API's post-processing order: non-max suppression on the boxes as decoded,
    then `clip_and_prune` (clip, drop what is left with no area, keep the best
    `max_detections`). NMS hands on as many candidates as the TF OD API's per-class NMS does
    (`max_detections_per_class` × classes, at least `max_detections`), so that the boxes
    dropped by the clipping leave room for the next ones.

    Args:
        non_max_suppression: a `MultiClassNonMaxSuppression` (its own `clip_boxes` unused:
            leave it False).
        boxes: float `[B, N, 4]` or `[B, N, num_classes, 4]` normalized `yxyx` boxes.
        scores: float `[B, N, num_classes]` (converted scores, no background column).
        window: see `clip_and_prune`.

    Returns:
        The `MultiClassNonMaxSuppression` output dict, `max_detections` rows.
    """
    nms = non_max_suppression
    candidates = nms.max_detections
    if not nms.use_class_agnostic_nms:
        candidates = max(candidates, nms.max_detections_per_class * scores.shape[-1])
    detections = nms(boxes, scores, max_detections=candidates)
    return clip_and_prune(detections, nms.max_detections, window)


def clip_and_prune(detections, max_detections, window=None):
    """Detections clipped to the image (`[0, 1]`, or `window`) after NMS, those left with no area dropped, the best
    `max_detections` kept: the TF OD API's post-processing after its per-class NMS
    (`post_processing._clip_window_prune_boxes`, then `max_total_size`), which suppresses on
    the boxes as decoded and clips only what NMS kept.

    Args:
        detections: a `MultiClassNonMaxSuppression` output dict with normalized boxes
            (`"boxes"` `[B, N, 4]`, `"labels"`, `"confidences"`, `"num_detections"`; padding
            rows labelled -1), sorted by decreasing confidence.
        max_detections: int ≤ N, detections kept per image.
        window: optional float32 `[B, 2]`: clip image `b` to `[0, window[b, 0]] x [0,
            window[b, 1]]` instead of `[0, 1]` (e.g. its content in a padded frame).

    Returns:
        A dict of the same keys, `max_detections` rows, sorted by decreasing confidence.
    """
    upper = 1.0 if window is None else tf.tile(tf.cast(window, tf.float32), [1, 2])[:, None]
    boxes = tf.clip_by_value(detections["boxes"], 0.0, upper)
    heights = boxes[..., 2] - boxes[..., 0]
    widths = boxes[..., 3] - boxes[..., 1]
    kept = (detections["labels"] >= 0) & (heights * widths > 0.0)
    # `top_k` keeps equal scores in their order: the NMS order, as the TF OD API's sort.
    scores, order = tf.math.top_k(
        tf.where(kept, detections["confidences"], -1.0), k=max_detections
    )
    valid = scores >= 0.0
    return {
        "boxes": tf.where(valid[..., None], tf.gather(boxes, order, batch_dims=1), -1.0),
        "labels": tf.where(valid, tf.gather(detections["labels"], order, batch_dims=1), -1),
        "confidences": tf.where(valid, scores, 0.0),
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
    }


def _checked_calibration(calibration):
    """Validates a `calibration` argument; returns it with plain float values."""
    if calibration is None:
        return None
    if not isinstance(calibration, dict) or len(calibration) != 1:
        raise ValueError(
            "calibration must be None, {'sigmoid': {'a', 'b'}} or "
            f"{{'function_approximation': {{'x', 'y'}}}}; got {calibration!r}"
        )
    if "sigmoid" in calibration:
        parameters = calibration["sigmoid"]
        return {"sigmoid": {"a": float(parameters["a"]), "b": float(parameters["b"])}}
    if "function_approximation" in calibration:
        points = calibration["function_approximation"]
        xs = [float(x) for x in points["x"]]
        ys = [float(y) for y in points["y"]]
        if not xs or len(xs) != len(ys) or any(b < a for a, b in itertools.pairwise(xs)):
            raise ValueError(
                "function_approximation needs as many x as y values (at least one), x "
                f"ascending; got x={xs}, y={ys}"
            )
        return {"function_approximation": {"x": xs, "y": ys}}
    raise ValueError(f"unknown calibration {sorted(calibration)}; expected sigmoid or "
                     "function_approximation")


def _interpolate(values, xs, ys):
    """The piecewise-linear function through `(xs, ys)` (xs ascending), constant beyond the
    ends, at every element of `values` (float32, any shape)."""
    x = tf.constant(xs, tf.float32)
    y = tf.constant(ys, tf.float32)
    if len(xs) == 1:
        return tf.fill(tf.shape(values), y[0])
    clipped = tf.clip_by_value(values, x[0], x[-1])
    flat = tf.reshape(clipped, [-1])
    upper = tf.clip_by_value(tf.searchsorted(x, flat, side="right"), 1, len(xs) - 1)
    x0, x1 = tf.gather(x, upper - 1), tf.gather(x, upper)
    y0, y1 = tf.gather(y, upper - 1), tf.gather(y, upper)
    fraction = tf.math.divide_no_nan(flat - x0, x1 - x0)
    return tf.reshape(y0 + fraction * (y1 - y0), tf.shape(values))


def with_model_arguments(non_max_suppression, default, argument_name, **arguments):
    """The post-processing of a model built with its older scalar arguments.

    `kdet.SSD` and `kdet.FasterRCNN` once took `score_threshold`, `iou_threshold`,
    `max_detections_per_class`, `max_detections` (SSD also `score_converter`, `logit_scale`)
    as model arguments; configs and `.keras` files saved then still carry them.

    Args:
        non_max_suppression: the model's `MultiClassNonMaxSuppression` argument, or None.
        default: the model's default `MultiClassNonMaxSuppression` (used when
            `non_max_suppression` is None).
        argument_name: str, the model's argument name, for the error.
        **arguments: the older arguments; None ones are absent.

    Returns:
        `non_max_suppression`, or `default` with the given older arguments applied.

    Raises:
        ValueError: when both `non_max_suppression` and older arguments are given.
    """
    given = {name: value for name, value in arguments.items() if value is not None}
    if non_max_suppression is not None:
        if given:
            raise ValueError(
                f"pass either {argument_name} or {sorted(given)}, not both: they are the same "
                "settings"
            )
        return non_max_suppression
    if not given:
        return default
    return MultiClassNonMaxSuppression.from_config({**default.get_config(), **given})
