"""Batched per-class non-max suppression into kdet's padded predictions dict."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class MultiClassNonMaxSuppression(keras.layers.Layer):
    """Per-class non-max suppression over a batch, padded to a fixed number of detections.

    Each class is suppressed on its own (boxes of different classes never suppress each other),
    then the survivors of all classes are ranked by score and the best `max_detections` are
    kept. Scores must already be probabilities (sigmoid or softmax) with any background column
    removed by the caller; the layer does no score conversion or box decoding. Runs as one
    `tf.image.combined_non_max_suppression` op, so it works batched under `tf.function`.

    Args:
        score_threshold: float. Boxes scoring at or below this are dropped before NMS.
            Defaults to `1e-8`.
        iou_threshold: float. A box is suppressed when its IoU with a higher-scoring box of the
            same class exceeds this. Defaults to `0.6`.
        max_detections_per_class: int. Detections kept per class and image. Defaults to `100`.
        max_detections: int. Detections kept per image, over all classes. Defaults to `100`.
        clip_boxes: bool. Clip the output boxes to `[0, 1]`; only meaningful for normalized
            boxes, keep `False` for pixel boxes. Defaults to `False`.

    Call arguments:
        boxes: float `[batch, num_boxes, 4]` shared by all classes, or
            `[batch, num_boxes, num_classes, 4]` per class; `yxyx` in any unit.
        scores: float `[batch, num_boxes, num_classes]`.

    Returns:
        A dict, kdet's predictions contract (what `keras.visualization.draw_bounding_boxes`
        takes), sorted by decreasing confidence:
        - `"boxes"`: float32 `[batch, max_detections, 4]`, `yxyx` in the unit of the input,
          padded with -1.
        - `"labels"`: int32 `[batch, max_detections]`, the 0-based class column of `scores`,
          padded with -1.
        - `"confidences"`: float32 `[batch, max_detections]`, padded with 0.
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
        (`batch_multiclass_non_max_suppression`).
    """

    def __init__(
        self,
        score_threshold=1e-8,
        iou_threshold=0.6,
        max_detections_per_class=100,
        max_detections=100,
        clip_boxes=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_detections_per_class = max_detections_per_class
        self.max_detections = max_detections
        self.clip_boxes = clip_boxes

    def call(self, boxes, scores):
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
        nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = (
            tf.image.combined_non_max_suppression(
                boxes,
                scores,
                max_output_size_per_class=self.max_detections_per_class,
                max_total_size=self.max_detections,
                iou_threshold=self.iou_threshold,
                score_threshold=self.score_threshold,
                clip_boxes=self.clip_boxes,
            )
        )
        # The op pads with zeros, which read as real boxes of class 0; kdet pads with -1.
        valid = tf.range(self.max_detections)[tf.newaxis, :] < num_detections[:, tf.newaxis]
        return {
            "boxes": tf.where(valid[..., tf.newaxis], nmsed_boxes, -1.0),
            "labels": tf.where(valid, tf.cast(nmsed_classes, tf.int32), -1),
            "confidences": tf.where(valid, nmsed_scores, 0.0),
            "num_detections": num_detections,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold,
                "max_detections_per_class": self.max_detections_per_class,
                "max_detections": self.max_detections,
                "clip_boxes": self.clip_boxes,
            }
        )
        return config
