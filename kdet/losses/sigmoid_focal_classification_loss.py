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
        targets: float `[batch, num_anchors, num_classes]`, one-hot (0/1) targets.
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
        # With 0/1 targets and z = logit * (1 - 2t): CE(p, t) = softplus(z) and
        # 1 - p_t = sigmoid(z), so (1 - p_t) ** gamma = exp(-gamma * softplus(-z)). The same
        # values as the TF OD API's formula, in about half its time (forward and backward
        # over [2, 49104, 90]: 138 against 249 ms of CPU).
        z = logits * (1.0 - 2.0 * targets)
        losses = tf.exp(-self.gamma * tf.nn.softplus(-z)) * tf.nn.softplus(z)
        if self.alpha is not None:
            losses *= (1.0 - self.alpha) + targets * (2.0 * self.alpha - 1.0)
        return tf.reduce_sum(losses, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"gamma": self.gamma, "alpha": self.alpha}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
