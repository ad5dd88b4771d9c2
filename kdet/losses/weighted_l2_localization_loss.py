"""Squared-error box-regression loss (TF OD API `weighted_l2`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedL2LocalizationLoss:
    """Per-anchor `0.5 * sum((prediction - target) ** 2)` over the box code.

    Call args:
        predictions: float `[batch, num_anchors, code_size]`.
        targets: float `[batch, num_anchors, code_size]`.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`, weighted, not normalized.

    Reference:
        TF OD API `core/losses.py` `WeightedL2LocalizationLoss`.
    """

    def __call__(self, predictions, targets, weights):
        difference = tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32)
        return 0.5 * tf.reduce_sum(difference**2, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
