"""Sigmoid cross-entropy summed over classes (TF OD API `weighted_sigmoid`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedSigmoidClassificationLoss:
    """Per-anchor sigmoid cross-entropy, each class column an independent binary problem.

    Args:
        logit_scale: float. Logits are divided by it before the sigmoid. Defaults to `1.0`.

    Call args:
        logits: float `[batch, num_anchors, num_classes]` (background column included when the
            model predicts one).
        targets: float `[batch, num_anchors, num_classes]`, one-hot (or soft) targets.
        weights: float `[batch, num_anchors]` per-anchor weights.

    Returns:
        float32 `[batch, num_anchors]`: the weighted loss of each anchor, summed over classes,
        not normalized (the model divides by a global normalizer).

    Reference:
        TF OD API `core/losses.py` `WeightedSigmoidClassificationLoss`.
    """

    def __init__(self, logit_scale=1.0):
        self.logit_scale = logit_scale

    def __call__(self, logits, targets, weights):
        logits = tf.cast(logits, tf.float32) / self.logit_scale
        losses = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.float32), logits=logits
        )
        return tf.reduce_sum(losses, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"logit_scale": self.logit_scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
