"""Sigmoid focal loss (TF OD API `weighted_sigmoid_focal`, RetinaNet)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class SigmoidFocalClassificationLoss:
    """Per-anchor sigmoid focal loss, summed over classes.

    `FL = alpha_t * (1 - p_t) ** gamma * CE(p, t)`, with `alpha_t = alpha` for positive
    columns and `1 - alpha` for negative ones (no alpha weighting when `alpha` is None).

    Args:
        gamma: float. Focusing exponent. Defaults to `2.0`.
        alpha: float or None. Positive-column weight. Defaults to `0.25`.

    Call args:
        logits: float `[batch, num_anchors, num_classes]`.
        targets: float `[batch, num_anchors, num_classes]`, one-hot targets.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`, weighted, not normalized.

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1708.02002); TF OD API `core/losses.py`
        `SigmoidFocalClassificationLoss`.
    """

    def __init__(self, gamma=2.0, alpha=0.25):
        self.gamma = gamma
        self.alpha = alpha

    def __call__(self, logits, targets, weights):
        logits = tf.cast(logits, tf.float32)
        targets = tf.cast(targets, tf.float32)
        cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        probabilities = tf.sigmoid(logits)
        p_t = targets * probabilities + (1.0 - targets) * (1.0 - probabilities)
        losses = tf.pow(1.0 - p_t, self.gamma) * cross_entropy
        if self.alpha is not None:
            losses *= targets * self.alpha + (1.0 - targets) * (1.0 - self.alpha)
        return tf.reduce_sum(losses, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"gamma": self.gamma, "alpha": self.alpha}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
