"""Smooth L1 (Huber) box-regression loss (TF OD API `weighted_smooth_l1`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedSmoothL1LocalizationLoss:
    """Per-anchor Huber loss summed over the box code.

    `0.5 * x ** 2` for `|x| < delta`, else `delta * (|x| - 0.5 * delta)`; with `delta = 1`
    this is the smooth L1 of Fast R-CNN.

    Args:
        delta: float. Where the loss turns from quadratic to linear. Defaults to `1.0`.

    Call args:
        predictions: float `[batch, num_anchors, code_size]` encoded boxes.
        targets: float `[batch, num_anchors, code_size]` encoded targets.
        weights: float `[batch, num_anchors]`.

    Returns:
        float32 `[batch, num_anchors]`, weighted, not normalized.

    Reference:
        [Girshick, 2015](https://arxiv.org/abs/1504.08083); TF OD API `core/losses.py`.
    """

    def __init__(self, delta=1.0):
        self.delta = delta

    def __call__(self, predictions, targets, weights):
        error = tf.abs(tf.cast(predictions, tf.float32) - tf.cast(targets, tf.float32))
        quadratic = tf.minimum(error, self.delta)
        losses = 0.5 * quadratic**2 + self.delta * (error - quadratic)
        return tf.reduce_sum(losses, axis=-1) * tf.cast(weights, tf.float32)

    def get_config(self):
        return {"delta": self.delta}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
