"""L1 box-regression loss (TF OD API `l1_localization_loss`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedL1LocalizationLoss:
    """Per-anchor absolute error summed over the box code.

    Call args:
        predictions: float `[batch, num_anchors, code_size]` encoded boxes.
        targets: float `[batch, num_anchors, code_size]` encoded targets.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`, weighted, not normalized.

    Reference:
        TF OD API `core/losses.py` `L1LocalizationLoss`.
    """

    def __call__(self, predictions, targets, weights):
        error = tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
        return tf.reduce_sum(error, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
