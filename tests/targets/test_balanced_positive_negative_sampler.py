import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.targets import BalancedPositiveNegativeSampler

NUM_ANCHORS = 50


def _masks(num_positives, num_negatives):
    """Indicator and labels: positives first, then negatives, then non-sampleable anchors."""
    index = np.arange(NUM_ANCHORS)
    labels = index < num_positives
    indicator = index < num_positives + num_negatives
    # Positive labels outside the indicator must never be sampled.
    labels = labels | (index >= NUM_ANCHORS - 3)
    return indicator, labels


@pytest.mark.parametrize(
    "num_positives, num_negatives, expected_positives, expected_negatives",
    [
        (20, 25, 4, 4),  # both plentiful: capped at 0.5 * 8 each
        (1, 25, 1, 7),  # few positives: negatives fill the rest
        (20, 2, 4, 2),  # few negatives: fewer samples in total
        (0, 0, 0, 0),  # nothing to sample
    ],
)
def test_counts_per_image(num_positives, num_negatives, expected_positives, expected_negatives):
    indicator, labels = _masks(num_positives, num_negatives)
    other_indicator, other_labels = _masks(3, 40)
    sampler = BalancedPositiveNegativeSampler(positive_fraction=0.5)
    sampled = sampler.subsample(
        np.stack([indicator, other_indicator]), np.stack([labels, other_labels]), sample_size=8
    ).numpy()
    assert not (sampled[0] & ~indicator).any()
    assert (sampled[0] & labels).sum() == expected_positives
    assert (sampled[0] & ~labels).sum() == expected_negatives
    assert (sampled[1] & other_labels).sum() == 3
    assert (sampled[1] & ~other_labels).sum() == 5


def test_positive_fraction_rounds_down_and_extremes():
    indicator, labels = _masks(20, 25)
    for fraction, expected_positives in [(0.3, 3), (0.0, 0), (1.0, 10)]:
        sampled = BalancedPositiveNegativeSampler(fraction).subsample(
            indicator[None], labels[None], sample_size=10
        ).numpy()[0]
        assert (sampled & labels).sum() == expected_positives
        assert sampled.sum() == 10


def test_samples_are_random():
    indicator, labels = _masks(20, 25)
    sampler = BalancedPositiveNegativeSampler()
    draws = {
        tuple(np.flatnonzero(sampler.subsample(indicator[None], labels[None], 8).numpy()[0]))
        for _ in range(5)
    }
    assert len(draws) > 1


def test_sample_size_larger_than_anchor_count():
    indicator, labels = _masks(20, 25)
    sampled = BalancedPositiveNegativeSampler().subsample(
        indicator[None], labels[None], sample_size=500
    ).numpy()[0]
    np.testing.assert_array_equal(sampled, indicator)


def test_static_output_shape_under_tf_function():
    sampler = BalancedPositiveNegativeSampler()
    subsample = tf.function(lambda indicator, labels: sampler.subsample(indicator, labels, 16))
    spec = tf.TensorSpec([3, NUM_ANCHORS], tf.bool)
    concrete = subsample.get_concrete_function(spec, spec)
    assert concrete.structured_outputs.shape == (3, NUM_ANCHORS)
    indicator, labels = _masks(20, 25)
    sampled = subsample(tf.stack([indicator] * 3), tf.stack([labels] * 3)).numpy()
    np.testing.assert_array_equal(sampled.sum(axis=1), [16, 16, 16])


def test_config_round_trip():
    sampler = BalancedPositiveNegativeSampler(positive_fraction=0.25)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sampler))
    assert isinstance(restored, BalancedPositiveNegativeSampler)
    assert restored.get_config() == {"positive_fraction": 0.25}


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive_fraction must be in"):
        BalancedPositiveNegativeSampler(positive_fraction=1.5)
    with pytest.raises(ValueError, match="sample_size must be a positive int"):
        BalancedPositiveNegativeSampler().subsample([[True]], [[True]], sample_size=0)
    with pytest.raises(ValueError, match=r"\[batch, num_anchors\]"):
        BalancedPositiveNegativeSampler().subsample([True], [True], sample_size=1)
