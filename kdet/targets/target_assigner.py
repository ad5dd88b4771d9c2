"""Turns groundtruth boxes into per-anchor classification and regression targets."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import PADDING_VALUE
from kdet.boxes.box_ops import is_padding
from kdet.boxes.box_ops import pairwise_iou
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.match import IGNORED


@keras.saving.register_keras_serializable(package="kdet")
class TargetAssigner:
    """Assigns each anchor a class, a box-regression target and loss weights.

    Computes the IoU of every groundtruth box with every anchor, matches anchors with the
    `matcher`, and encodes the matched boxes with the `box_coder`:
    - positives (match >= 0): `cls_targets` is the matched label, `reg_targets` the encoded
      box, both weights 1;
    - `UNMATCHED` anchors: background (`cls_targets` 0), `cls_weights` 1, `reg_weights` 0;
    - `IGNORED` anchors, and anchors that are themselves padding rows (e.g. padded proposals in
      the Faster R-CNN second stage): both weights 0, targets 0.

    Groundtruth rows that are padding (box all -1) or carry a label <= 0 (Keras box-aware
    augmentation marks boxes pushed out of the image with label -1) are never matched. An image
    without valid groundtruth gets all-background targets, without NaN.

    For class-agnostic targets, such as the Faster R-CNN RPN objectness, read
    `cls_targets > 0`: it is True exactly for the positives, whatever their labels.

    The assigner does not sample anchors or normalize losses: pair it with
    `kdet.targets.BalancedPositiveNegativeSampler` (Faster R-CNN) or
    `kdet.targets.HardExampleMiner` (SSD).

    Args:
        matcher: matcher with a `match(similarity, valid_rows)` method, e.g.
            `kdet.targets.ArgmaxMatcher`. Defaults to `None`, meaning
            `ArgmaxMatcher(matched_threshold=0.5)` (the TF OD API SSD setting).
        box_coder: box coder with `encode(boxes, anchors)`, e.g.
            `kdet.boxes.FasterRcnnBoxCoder`. Defaults to `None`, meaning
            `FasterRcnnBoxCoder(scale_factors=(10.0, 10.0, 5.0, 5.0))`.

    Example:
    ```python
    assigner = kdet.targets.TargetAssigner()
    anchors = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]
    gt_boxes = [[[0.0, 0.0, 0.4, 0.5], [-1.0, -1.0, -1.0, -1.0]]]
    gt_labels = [[3, -1]]
    targets = assigner.assign(anchors, gt_boxes, gt_labels)
    targets["cls_targets"]  # [[3, 0]]
    ```

    Reference:
        TF OD API `object_detection/core/target_assigner.py`.
    """

    def __init__(self, matcher=None, box_coder=None):
        self.matcher = ArgmaxMatcher(matched_threshold=0.5) if matcher is None else matcher
        self.box_coder = FasterRcnnBoxCoder() if box_coder is None else box_coder

    def assign(self, anchors, gt_boxes, gt_labels):
        """Computes the training targets of a batch.

        Args:
            anchors: float `[num_anchors, 4]` shared by the batch, or
                `[batch, num_anchors, 4]` (e.g. proposals), `rel_yxyx`, padded with rows of -1.
            gt_boxes: float `[batch, num_gt, 4]`, `rel_yxyx`, padded with rows of -1.
            gt_labels: int `[batch, num_gt]`, 1-based class ids, padded with -1.

        Returns:
            A dict of tensors:
            - `"cls_targets"`: int32 `[batch, num_anchors]`, 0 for background, else the label;
            - `"cls_weights"`: float32 `[batch, num_anchors]`;
            - `"reg_targets"`: float32 `[batch, num_anchors, code_size]`, zero where not
              positive;
            - `"reg_weights"`: float32 `[batch, num_anchors]`, 1 for positives;
            - `"match"`: int32 `[batch, num_anchors]`, the matcher's output (see
              `kdet.targets.match`).
        """
        anchors = tf.convert_to_tensor(anchors, tf.float32)
        gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
        gt_labels = tf.cast(gt_labels, tf.int32)
        # One extra padding row keeps the gathers below in range when num_gt is 0.
        gt_boxes = tf.pad(gt_boxes, [[0, 0], [0, 1], [0, 0]], constant_values=PADDING_VALUE)
        gt_labels = tf.pad(gt_labels, [[0, 0], [0, 1]], constant_values=-1)
        valid_rows = tf.logical_and(tf.logical_not(is_padding(gt_boxes)), gt_labels > 0)

        match = self.matcher.match(pairwise_iou(gt_boxes, anchors), valid_rows=valid_rows)
        match = tf.where(is_padding(anchors), IGNORED, match)
        positive = match >= 0
        matched_row = tf.maximum(match, 0)
        matched_boxes = tf.gather(gt_boxes, matched_row, batch_dims=1)
        matched_labels = tf.gather(gt_labels, matched_row, batch_dims=1)
        reg_targets = self.box_coder.encode(matched_boxes, anchors)
        return {
            "cls_targets": tf.where(positive, matched_labels, 0),
            "cls_weights": tf.cast(match != IGNORED, tf.float32),
            "reg_targets": tf.where(positive[..., None], reg_targets, 0.0),
            "reg_weights": tf.cast(positive, tf.float32),
            "match": match,
        }

    def get_config(self):
        return {
            "matcher": keras.saving.serialize_keras_object(self.matcher),
            "box_coder": keras.saving.serialize_keras_object(self.box_coder),
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            matcher=keras.saving.deserialize_keras_object(config["matcher"]),
            box_coder=keras.saving.deserialize_keras_object(config["box_coder"]),
        )
