"""Sigmoid cross-entropy against bootstrapped targets (TF OD API `bootstrapped_sigmoid`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class BootstrappedSigmoidClassificationLoss:
    """Per-anchor sigmoid cross-entropy against a mix of the targets and the model's own
    predictions, for noisy labels.

    The target becomes `alpha * targets + (1 - alpha) * sigmoid(logits)` ("soft" bootstrap),
    or `alpha * targets + (1 - alpha) * (sigmoid(logits) > 0.5)` with `hard_bootstrap`; the
    mixed target is not a constant (gradients flow through it, as in the TF OD API).

    Args:
        alpha: float in [0, 1]. Weight of the given targets. Required (the TF OD API field has
            no default).
        hard_bootstrap: bool. Mix in thresholded predictions instead of probabilities.
            Defaults to `False`.

    Call args:
        logits: float `[batch, num_anchors, num_classes]`.
        targets: float `[batch, num_anchors, num_classes]`.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`: the weighted loss of each anchor, summed over classes,
        not normalized.

    Reference:
        [Reed et al., 2014](https://arxiv.org/abs/1412.6596); TF OD API `core/losses.py`
        `BootstrappedSigmoidClassificationLoss`.
    """

    def __init__(self, alpha, hard_bootstrap=False):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
        self.alpha = alpha
        self.hard_bootstrap = hard_bootstrap

    def __call__(self, logits, targets, weights):
        logits = tf.cast(logits, tf.float32)
        predicted = tf.sigmoid(logits)
        if self.hard_bootstrap:
            predicted = tf.cast(predicted > 0.5, tf.float32)
        mixed = self.alpha * tf.cast(targets, tf.float32) + (1.0 - self.alpha) * predicted
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=mixed, logits=logits)
        return tf.reduce_sum(losses, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"alpha": self.alpha, "hard_bootstrap": self.hard_bootstrap}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
