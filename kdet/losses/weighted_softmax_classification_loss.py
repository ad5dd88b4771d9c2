"""Softmax cross-entropy over classes (TF OD API `weighted_softmax`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedSoftmaxClassificationLoss:
    """Per-anchor softmax cross-entropy over all class columns (background included).

    Args:
        logit_scale: float. Logits are divided by it before the softmax. Defaults to `1.0`.

    Call args:
        logits: float `[batch, num_anchors, num_classes]`.
        targets: float `[batch, num_anchors, num_classes]`, one-hot targets.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`, weighted, not normalized.

    Reference:
        TF OD API `core/losses.py` `WeightedSoftmaxClassificationLoss`.
    """

    def __init__(self, logit_scale=1.0):
        self.logit_scale = logit_scale

    def __call__(self, logits, targets, weights):
        logits = tf.cast(logits, tf.float32) / self.logit_scale
        losses = tf.nn.softmax_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.float32), logits=logits
        )
        return losses * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"logit_scale": self.logit_scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
