"""Element-wise losses: pinned values, weights, and the focal-loss limits."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kdet import losses


def _sigmoid_ce(logit, target):
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_weighted_sigmoid_sums_classes_and_applies_weights():
    logits = tf.constant([[[0.0, 2.0], [1.0, -1.0]]])
    targets = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])
    weights = tf.constant([[1.0, 0.5]])
    result = losses.WeightedSigmoidClassificationLoss()(logits, targets, weights).numpy()
    expected = [
        _sigmoid_ce(0.0, 1) + _sigmoid_ce(2.0, 0),
        0.5 * (_sigmoid_ce(1.0, 0) + _sigmoid_ce(-1.0, 1)),
    ]
    np.testing.assert_allclose(result[0], expected, rtol=1e-6)


def test_softmax_logit_scale_divides_logits():
    logits = tf.constant([[[2.0, 0.0, 0.0]]])
    targets = tf.constant([[[1.0, 0.0, 0.0]]])
    weights = tf.ones([1, 1])
    scaled = losses.WeightedSoftmaxClassificationLoss(logit_scale=2.0)(logits, targets, weights)
    expected = -math.log(math.exp(1.0) / (math.exp(1.0) + 2.0))
    np.testing.assert_allclose(scaled.numpy(), [[expected]], rtol=1e-6)


def test_focal_loss_reduces_to_cross_entropy_and_down_weights_easy_examples():
    logits = tf.constant([[[3.0, -1.0]]])
    targets = tf.constant([[[1.0, 0.0]]])
    weights = tf.ones([1, 1])
    plain = losses.WeightedSigmoidClassificationLoss()(logits, targets, weights)
    no_focus = losses.SigmoidFocalClassificationLoss(gamma=0.0, alpha=None)(
        logits, targets, weights
    )
    np.testing.assert_allclose(no_focus.numpy(), plain.numpy(), rtol=1e-6)
    # gamma 2, alpha 0.25: the easy positive (p = sigmoid(3)) is weighted by 0.25 (1 - p)^2.
    p = 1 / (1 + math.exp(-3.0))
    q = 1 / (1 + math.exp(1.0))  # probability of the negative column
    expected = 0.25 * (1 - p) ** 2 * _sigmoid_ce(3.0, 1) + 0.75 * q**2 * _sigmoid_ce(-1.0, 0)
    focal = losses.SigmoidFocalClassificationLoss()(logits, targets, weights)
    np.testing.assert_allclose(focal.numpy(), [[expected]], rtol=1e-5)


def test_smooth_l1_quadratic_then_linear():
    predictions = tf.constant([[[0.5, 2.0, 0.0, -3.0]]])
    targets = tf.zeros([1, 1, 4])
    result = losses.WeightedSmoothL1LocalizationLoss()(predictions, targets, tf.ones([1, 1]))
    np.testing.assert_allclose(result.numpy(), [[0.125 + 1.5 + 0.0 + 2.5]], rtol=1e-6)
    zero_weight = losses.WeightedSmoothL1LocalizationLoss()(
        predictions, targets, tf.zeros([1, 1])
    )
    assert zero_weight.numpy()[0, 0] == 0.0


def test_l2_is_half_squared_error():
    predictions = tf.constant([[[1.0, 2.0, 0.0, 0.0]]])
    result = losses.WeightedL2LocalizationLoss()(predictions, tf.zeros([1, 1, 4]), tf.ones([1, 1]))
    np.testing.assert_allclose(result.numpy(), [[2.5]])


@pytest.mark.parametrize(
    "loss",
    [
        losses.WeightedSigmoidClassificationLoss(logit_scale=2.0),
        losses.WeightedSoftmaxClassificationLoss(logit_scale=0.5),
        losses.SigmoidFocalClassificationLoss(gamma=1.5, alpha=0.3),
        losses.WeightedSmoothL1LocalizationLoss(delta=0.1),
        losses.WeightedL2LocalizationLoss(),
    ],
)
def test_config_round_trip(loss):
    import keras

    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(revived) is type(loss) and revived.get_config() == loss.get_config()
