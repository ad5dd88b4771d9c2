"""SSD online hard-negative mining: keep the negatives the model gets most wrong."""

import keras
import tensorflow as tf

from kdet.targets.indicator_ops import indicator_from_indices
from kdet.targets.match import UNMATCHED

LOSS_TYPES = ("both", "cls", "loc")


@keras.saving.register_keras_serializable(package="kdet")
class HardExampleMiner:
    """Selects, per image, the anchors that take part in the SSD loss.

    Per image, every positive and negative anchor is scored by its loss (`loss_type`); greedy
    non-maximum suppression over the decoded predicted boxes, highest score first, keeps at most
    `num_hard_examples` of them, dropping any whose IoU with an already kept box exceeds
    `iou_threshold`. The kept negatives are then cut, in score order, to
    `max(min_negatives_per_image, floor(max_negatives_per_positive * num_positives))`.
    The result is a loss-weight mask: every positive anchor (unlike the TF OD API, positives are
    never dropped by the NMS or the `num_hard_examples` cap, which its SSD settings of 3000 and
    0.99 make rare anyway) plus the mined negatives; `IGNORED` anchors are never kept. The
    miner does not compute the losses it ranks, nor normalize them.

    Args:
        num_hard_examples: int or None. Most anchors kept by the NMS step per image, positives
            included; None keeps all. Defaults to `3000` (TF OD API SSD configs).
        iou_threshold: float. IoU above which a lower-loss box is suppressed; `1.0` turns the
            NMS off (the SSD paper), and a plain top-k by loss runs instead. Defaults to `0.99`.
        loss_type: str. Score to rank by: `"cls"`, `"loc"`, or `"both"` for
            `cls_loss_weight * cls_losses + loc_loss_weight * loc_losses`. Defaults to `"both"`.
        cls_loss_weight: float. Weight of the classification loss with `"both"`. Defaults to
            `0.05`.
        loc_loss_weight: float. Weight of the localization loss with `"both"`. Defaults to
            `0.06`.
        max_negatives_per_positive: float or None. Most negatives per positive anchor; None
            keeps every negative the NMS step keeps. Defaults to `3`.
        min_negatives_per_image: int. Fewest negatives per image (when it has that many), so
            images without positives still teach background. Defaults to `0`.

    Example:
    ```python
    miner = kdet.targets.HardExampleMiner(max_negatives_per_positive=1)
    cls_losses = [[0.1, 0.9, 0.5, 0.7]]
    loc_losses = tf.zeros([1, 4])
    boxes = [[[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5],
              [0.6, 0.6, 0.7, 0.7]]]
    match = [[0, -1, -1, -1]]  # one positive, three negatives
    miner(cls_losses, loc_losses, boxes, match)  # [[1.0, 1.0, 0.0, 0.0]]
    ```

    Reference:
        - [Liu et al., 2016](https://arxiv.org/abs/1512.02325), section 2.2 (hard negative
          mining).
        - [Shrivastava et al., 2016](https://arxiv.org/abs/1604.03540) (OHEM).
        - TF OD API `object_detection/core/losses.py` `HardExampleMiner`.
    """

    def __init__(
        self,
        num_hard_examples=3000,
        iou_threshold=0.99,
        loss_type="both",
        cls_loss_weight=0.05,
        loc_loss_weight=0.06,
        max_negatives_per_positive=3,
        min_negatives_per_image=0,
    ):
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}; got {loss_type!r}.")
        if num_hard_examples is not None and num_hard_examples < 1:
            raise ValueError(
                f"num_hard_examples must be None or a positive int; got {num_hard_examples}."
            )
        if max_negatives_per_positive is not None and max_negatives_per_positive < 0:
            raise ValueError(
                "max_negatives_per_positive must be None or >= 0; got "
                f"{max_negatives_per_positive}."
            )
        if min_negatives_per_image < 0:
            raise ValueError(
                f"min_negatives_per_image must be >= 0; got {min_negatives_per_image}."
            )
        self.num_hard_examples = num_hard_examples
        self.iou_threshold = iou_threshold
        self.loss_type = loss_type
        self.cls_loss_weight = cls_loss_weight
        self.loc_loss_weight = loc_loss_weight
        self.max_negatives_per_positive = max_negatives_per_positive
        self.min_negatives_per_image = min_negatives_per_image

    def __call__(self, cls_losses, loc_losses, decoded_boxes, match):
        """Returns the mask of anchors to keep in the loss.

        Args:
            cls_losses: float `[batch, num_anchors]`, per-anchor classification loss (summed
                over classes).
            loc_losses: float `[batch, num_anchors]`, per-anchor localization loss.
            decoded_boxes: float `[batch, num_anchors, 4]`, the predicted boxes, `rel_yxyx`.
            match: int32 `[batch, num_anchors]`, the matcher's output.

        Returns:
            float32 `[batch, num_anchors]`, 1 for the positives and the mined negatives.
        """
        match = tf.convert_to_tensor(match, tf.int32)
        positive = match >= 0
        negative = tf.equal(match, UNMATCHED)
        scores = tf.where(
            tf.logical_or(positive, negative),
            self._scores(cls_losses, loc_losses),
            float("-inf"),
        )
        indices, selected = self._hardest(scores, tf.convert_to_tensor(decoded_boxes, tf.float32))
        # Selected anchors come in decreasing score order, so a running count of negatives
        # ranks them.
        mined = tf.logical_and(tf.gather(negative, indices, batch_dims=1), selected)
        if self.max_negatives_per_positive is not None:
            num_positives = tf.reduce_sum(tf.cast(positive, tf.float32), axis=1, keepdims=True)
            max_negatives = tf.maximum(
                float(self.min_negatives_per_image),
                tf.floor(float(self.max_negatives_per_positive) * num_positives),
            )
            rank = tf.cumsum(tf.cast(mined, tf.float32), axis=1)
            mined = tf.logical_and(mined, rank <= max_negatives)
        mined_negatives = indicator_from_indices(indices, mined, tf.shape(match)[1])
        return tf.cast(tf.logical_or(positive, mined_negatives), tf.float32)

    def _scores(self, cls_losses, loc_losses):
        cls_losses = tf.convert_to_tensor(cls_losses, tf.float32)
        loc_losses = tf.convert_to_tensor(loc_losses, tf.float32)
        if self.loss_type == "cls":
            return cls_losses
        if self.loss_type == "loc":
            return loc_losses
        return self.cls_loss_weight * cls_losses + self.loc_loss_weight * loc_losses

    def _hardest(self, scores, boxes):
        """Returns `(indices, selected)`, both `[batch, k]`: the kept anchors, best first."""
        # A static k keeps the output shapes static; NMS and top_k need k <= num_anchors.
        num_anchors = scores.shape[1]
        if num_anchors is not None:
            k = min(self.num_hard_examples or num_anchors, num_anchors)
        elif self.num_hard_examples is None:
            k = tf.shape(scores)[1]
        else:
            k = tf.minimum(self.num_hard_examples, tf.shape(scores)[1])
        if self.iou_threshold >= 1.0:
            # No IoU exceeds 1, so NMS would suppress nothing: top-k by score is the same.
            top_scores, indices = tf.math.top_k(scores, k=k)
            return indices, top_scores > float("-inf")
        indices, num_selected = tf.image.non_max_suppression_padded(
            boxes,
            scores,
            k,
            iou_threshold=self.iou_threshold,
            # Excludes the -inf scores of ignored anchors.
            score_threshold=tf.float32.min,
            pad_to_max_output_size=True,
        )
        return indices, tf.range(k)[None, :] < num_selected[:, None]

    def get_config(self):
        return {
            "num_hard_examples": self.num_hard_examples,
            "iou_threshold": self.iou_threshold,
            "loss_type": self.loss_type,
            "cls_loss_weight": self.cls_loss_weight,
            "loc_loss_weight": self.loc_loss_weight,
            "max_negatives_per_positive": self.max_negatives_per_positive,
            "min_negatives_per_image": self.min_negatives_per_image,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
