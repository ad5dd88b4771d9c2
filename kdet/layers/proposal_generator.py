"""Faster R-CNN first-stage post-processing: RPN outputs → a fixed number of proposals."""

import keras
import tensorflow as tf

from kdet.boxes.box_ops import area
from kdet.boxes.box_ops import clip_boxes
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multi_class_non_max_suppression import clip_and_prune


@keras.saving.register_keras_serializable(package="kdet")
class ProposalGenerator(keras.layers.Layer):
    """Decodes RPN predictions and keeps the best non-overlapping boxes as proposals.

    For every image: decode the box encodings against the anchors, clip the boxes to the
    window (the part of the padded input the image fills), drop boxes left with zero area,
    optionally keep only the `pre_nms_top_k` highest-scoring boxes, then class-agnostic
    non-max suppression on the softmax object probability, padded to `max_proposals`. The
    whole batch goes through one `tf.image.combined_non_max_suppression` op (no loop over
    images), and the proposals carry no gradient: the TF OD API stops it there too. This is
    the TF OD API `FasterRCNNMetaArch._postprocess_rpn` at inference (the training-time
    proposal sampling is the model's job). As there, NMS runs on the decoded boxes and the
    proposals it keeps are clipped after, those left with no area dropped
    (`clip_after_non_max_suppression`); generators saved before 2026-12 clip first, so that
    zero-area boxes never take a slot.

    Args:
        max_proposals: int. Proposals kept per image (TF OD API `first_stage_max_proposals`).
            Defaults to `300`.
        nms_iou_threshold: float. A box is suppressed when its IoU with a higher-scoring box
            exceeds this (`first_stage_nms_iou_threshold`). Defaults to `0.7`.
        pre_nms_top_k: int or None. Boxes kept by score before NMS, which bounds the NMS cost
            on large anchor sets; None keeps every box. Defaults to `None`.
        score_threshold: float. Boxes whose object probability is at or below this are
            dropped (`first_stage_nms_score_threshold`). Defaults to `0.0`.
        box_coder: the coder of the RPN box encodings. Defaults to
            `kdet.boxes.FasterRcnnBoxCoder((10, 10, 5, 5))`.
        clip_after_non_max_suppression: bool. Suppress on the boxes as decoded, then clip
            the kept ones to the window and drop those left with no area (the TF OD API);
            `False`: clip, drop zero-area boxes, then suppress. Defaults to `True`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        box_encodings: float `[batch, num_anchors, 4]`, RPN box encodings.
        objectness_logits: float `[batch, num_anchors, 2]`, background and object logits.
        anchors: float `[num_anchors, 4]`, `rel_yxyx` of the padded input.
        window: optional float `[2]`, or per image `[batch, 2]`, the `(height, width)`
            fraction of the padded input the image content fills (from the true image
            shapes, `ObjectDetector.resize_inputs`); proposals are clipped to
            `[0, 0, height, width]`. Defaults to `(1, 1)`, the whole input. Pass Python
            floats as a keyword (Keras layers take only tensors positionally).

    Returns:
        A dict, proposals sorted by decreasing score:
        - `"proposals"`: float32 `[batch, max_proposals, 4]`, `rel_yxyx` of the padded input,
          padded with -1 rows.
        - `"scores"`: float32 `[batch, max_proposals]`, object probability, padded with 0.
        - `"num_proposals"`: int32 `[batch]`, the number of valid rows.

    Example:
    ```python
    generator = kdet.layers.ProposalGenerator(max_proposals=100)
    anchors = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    out = generator(tf.zeros([1, 2, 4]), tf.constant([[[0.0, 2.0], [0.0, -2.0]]]), anchors)
    out["num_proposals"]  # [2]; out["proposals"][0, :2] are the two anchors, best first
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `object_detection/meta_architectures/faster_rcnn_meta_arch.py` (`_postprocess_rpn`).
    """

    def __init__(
        self,
        max_proposals=300,
        nms_iou_threshold=0.7,
        pre_nms_top_k=None,
        score_threshold=0.0,
        box_coder=None,
        clip_after_non_max_suppression=True,
        **kwargs,
    ):
        # No autocast: under a mixed-precision policy boxes must stay float32.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if pre_nms_top_k is not None and pre_nms_top_k < max_proposals:
            raise ValueError(
                f"pre_nms_top_k must be None or at least max_proposals={max_proposals}; got "
                f"pre_nms_top_k={pre_nms_top_k}."
            )
        self.max_proposals = max_proposals
        self.nms_iou_threshold = nms_iou_threshold
        self.pre_nms_top_k = pre_nms_top_k
        self.score_threshold = score_threshold
        self.box_coder = box_coder or FasterRcnnBoxCoder()
        self.clip_after_non_max_suppression = bool(clip_after_non_max_suppression)
        self._nms = MultiClassNonMaxSuppression(
            score_threshold=score_threshold,
            iou_threshold=nms_iou_threshold,
            max_detections_per_class=max_proposals,
            max_detections=max_proposals,
            autocast=False,
        )

    def call(self, box_encodings, objectness_logits, anchors, window=None):
        box_encodings = tf.stop_gradient(tf.cast(box_encodings, tf.float32))
        objectness_logits = tf.stop_gradient(tf.cast(objectness_logits, tf.float32))
        boxes = self.box_coder.decode(box_encodings, tf.cast(anchors, tf.float32))
        scores = tf.nn.softmax(objectness_logits)[..., 1]
        if window is not None:
            window = tf.cast(window, tf.float32)
        if self.clip_after_non_max_suppression:
            if window is not None and window.shape.rank == 1:
                window = tf.tile(window[None], [tf.shape(boxes)[0], 1])
            detections = clip_and_prune(
                self._nms(*self._top_k(boxes, scores)), self.max_proposals, window
            )
            return {
                "proposals": detections["boxes"],
                "scores": detections["confidences"],
                "num_proposals": detections["num_detections"],
            }
        if window is not None and window.shape.rank == 2:
            # One window per image (the TF OD API's true_image_shapes): clip to [0, h] x [0, w].
            boxes = tf.clip_by_value(boxes, 0.0, tf.tile(window, [1, 2])[:, None, :])
        elif window is not None:
            # clip_boxes' pixel mode clips to [0, height] x [0, width], any unit.
            boxes = clip_boxes(boxes, height=window[0], width=window[1])
        else:
            boxes = clip_boxes(boxes)
        # -1 is at or below any score threshold, so NMS never selects these boxes.
        scores = tf.where(area(boxes) > 0.0, scores, -1.0)
        detections = self._nms(*self._top_k(boxes, scores))
        return {
            "proposals": detections["boxes"],
            "scores": detections["confidences"],
            "num_proposals": detections["num_detections"],
        }

    def _top_k(self, boxes, scores):
        """`(boxes [B, K, 4], scores [B, K, 1])`: the `pre_nms_top_k` best (all without)."""
        if self.pre_nms_top_k is not None:
            num_boxes = scores.shape[1]
            # A static k keeps the number of boxes static through NMS.
            k = (
                min(self.pre_nms_top_k, num_boxes)
                if num_boxes is not None
                else tf.minimum(self.pre_nms_top_k, tf.shape(scores)[1])
            )
            scores, indices = tf.math.top_k(scores, k=k)
            boxes = tf.gather(boxes, indices, batch_dims=1)
        return boxes, scores[..., tf.newaxis]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "clip_after_non_max_suppression": self.clip_after_non_max_suppression,
                "max_proposals": self.max_proposals,
                "nms_iou_threshold": self.nms_iou_threshold,
                "pre_nms_top_k": self.pre_nms_top_k,
                "score_threshold": self.score_threshold,
                "box_coder": keras.saving.serialize_keras_object(self.box_coder),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Generators saved before 2026-12 clipped the boxes before NMS.
        config = {"clip_after_non_max_suppression": False, **config}
        config["box_coder"] = keras.saving.deserialize_keras_object(config["box_coder"])
        return cls(**config)
