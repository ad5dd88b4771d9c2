"""Penalty-reduced pixel-wise logistic focal loss (TF OD API `penalty_reduced_logistic_focal_loss`,
CenterNet's heatmap loss)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class PenaltyReducedLogisticFocalLoss:
    """Per-pixel focal loss against Gaussian heatmap targets, summed over channels.

    With `p = clip(sigmoid(logit), c, 1 - c)` and target `t`, a pixel where `t == 1` (a peak)
    costs `-(1 - p) ** alpha * log(p)`, any other `-(1 - t) ** beta * p ** alpha * log(1 - p)`:
    negatives near a peak (t close to 1) are penalized less (Equation 1 of Objects as Points).

    Args:
        alpha: float. Focusing exponent. Defaults to `2.0`.
        beta: float. Penalty-reduction exponent of the negatives. Defaults to `4.0`.
        sigmoid_clip_value: float. The probabilities are clipped to `[c, 1 - c]`. Defaults
            to `1e-4` (the TF OD API's).

    Call args:
        logits: float `[batch, num_pixels, num_channels]`.
        targets: float `[batch, num_pixels, num_channels]` in `[0, 1]`, 1 at the peaks.
        weights: float `[batch, num_pixels]` or `[batch, num_pixels, num_channels]`.

    Returns:
        float32 `[batch, num_pixels]`, weighted, summed over channels, not normalized.

    Reference:
        [Zhou et al., 2019](https://arxiv.org/abs/1904.07850); TF OD API `core/losses.py`
        `PenaltyReducedLogisticFocalLoss`.
    """

    def __init__(self, alpha=2.0, beta=4.0, sigmoid_clip_value=1e-4):
        self.alpha = alpha
        self.beta = beta
        self.sigmoid_clip_value = sigmoid_clip_value

    def __call__(self, logits, targets, weights):
        targets = tf.cast(targets, tf.float32)
        weights = tf.cast(weights, tf.float32)
        if weights.shape.rank == 2:
            weights = weights[..., None]
        probabilities = tf.clip_by_value(
            tf.sigmoid(tf.cast(logits, tf.float32)),
            self.sigmoid_clip_value,
            1.0 - self.sigmoid_clip_value,
        )
        positive = tf.pow(1.0 - probabilities, self.alpha) * tf.math.log(probabilities)
        negative = (
            tf.pow(1.0 - targets, self.beta)
            * tf.pow(probabilities, self.alpha)
            * tf.math.log(1.0 - probabilities)
        )
        losses = -tf.where(tf.equal(targets, 1.0), positive, negative)
        return tf.reduce_sum(losses * weights, axis=-1)

    def get_config(self):
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "sigmoid_clip_value": self.sigmoid_clip_value,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
