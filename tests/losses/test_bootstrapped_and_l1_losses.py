"""BootstrappedSigmoidClassificationLoss and WeightedL1LocalizationLoss: pinned values, the
config translation of `bootstrapped_sigmoid` / `l1_localization_loss`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet import losses
from kdet.configs.field_reader import Node
from kdet.configs.model_builder.losses import build_ssd_loss
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cross_entropy(logit, target):
    p = _sigmoid(logit)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


@pytest.mark.parametrize("hard", [False, True])
def test_bootstrapped_sigmoid_mixes_targets_and_predictions(hard):
    logits = np.array([[[0.4, -1.5], [2.0, 0.3]]], np.float32)
    targets = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
    weights = np.array([[1.0, 0.5]], np.float32)
    loss = losses.BootstrappedSigmoidClassificationLoss(alpha=0.8, hard_bootstrap=hard)
    result = loss(tf.constant(logits), tf.constant(targets), tf.constant(weights)).numpy()
    predicted = (_sigmoid(logits) > 0.5).astype(np.float32) if hard else _sigmoid(logits)
    mixed = 0.8 * targets + 0.2 * predicted
    expected = _cross_entropy(logits, mixed).sum(axis=-1) * weights
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    # alpha 1: plain sigmoid cross-entropy.
    plain = losses.BootstrappedSigmoidClassificationLoss(alpha=1.0)(logits, targets, weights)
    reference = losses.WeightedSigmoidClassificationLoss()(logits, targets, weights)
    np.testing.assert_allclose(plain, reference, rtol=1e-6)


def test_l1_sums_absolute_errors_and_applies_weights():
    predictions = tf.constant([[[0.5, -1.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]]])
    targets = tf.constant([[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 3.0]]])
    result = losses.WeightedL1LocalizationLoss()(predictions, targets, tf.constant([[1.0, 0.25]]))
    np.testing.assert_allclose(result, [[3.5, 0.5]])


def test_round_trip_and_bad_alpha():
    loss = losses.BootstrappedSigmoidClassificationLoss(alpha=0.3, hard_bootstrap=True)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert revived.get_config() == {"alpha": 0.3, "hard_bootstrap": True}
    l1 = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(losses.WeightedL1LocalizationLoss())
    )
    assert isinstance(l1, losses.WeightedL1LocalizationLoss)
    with pytest.raises(ValueError, match="alpha"):
        losses.BootstrappedSigmoidClassificationLoss(alpha=1.5)


def _loss(text):
    return build_ssd_loss(Node(parse(text), "model.ssd.loss"))


def test_config_builds_them():
    built = _loss(
        "classification_loss { bootstrapped_sigmoid { alpha: 0.9 hard_bootstrap: true } }\n"
        "localization_loss { l1_localization_loss { } }"
    )
    classification = built["classification_loss"]
    assert isinstance(classification, losses.BootstrappedSigmoidClassificationLoss)
    assert (classification.alpha, classification.hard_bootstrap) == (pytest.approx(0.9), True)
    assert isinstance(built["localization_loss"], losses.WeightedL1LocalizationLoss)
    with pytest.raises(ConfigError, match="missing the required field 'alpha'"):
        _loss(
            "classification_loss { bootstrapped_sigmoid { } }\n"
            "localization_loss { l1_localization_loss { } }"
        )
