"""Dice loss of each instance's mask (TF OD API `weighted_dice_classification_loss`)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class WeightedDiceClassificationLoss:
    """Dice loss of each instance's mask (TF OD API `weighted_dice_classification_loss`).

    Args:
        squared_normalization: bool, square probabilities and targets in the areas. Defaults
            to `False`.
        is_prediction_probability: bool, the predictions are probabilities, not logits.
            Defaults to `False`.

    Call args:
        logits: float `[M, num_pixels, num_classes]`; targets: the same shape in [0, 1];
        weights: float `[M, num_pixels]`.

    Returns:
        float32 `[M]`: `1 - 2 * intersection / max(predicted area + target area, 1)`, summed
        over classes.
    """

    def __init__(self, squared_normalization=False, is_prediction_probability=False):
        self.squared_normalization = bool(squared_normalization)
        self.is_prediction_probability = bool(is_prediction_probability)

    def __call__(self, logits, targets, weights):
        logits = tf.cast(logits, tf.float32)
        probabilities = logits if self.is_prediction_probability else tf.sigmoid(logits)
        targets = tf.cast(targets, tf.float32)
        if self.squared_normalization:
            probabilities, targets = probabilities * probabilities, targets * targets
        weights = tf.cast(weights, tf.float32)[..., None]
        probabilities, targets = probabilities * weights, targets * weights
        intersection = tf.reduce_sum(probabilities * targets, axis=1)
        areas = tf.reduce_sum(probabilities, axis=1) + tf.reduce_sum(targets, axis=1)
        return tf.reduce_sum(1.0 - 2.0 * intersection / tf.maximum(areas, 1.0), axis=-1)

    def get_config(self):
        return {"squared_normalization": self.squared_normalization,
                "is_prediction_probability": self.is_prediction_probability}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
