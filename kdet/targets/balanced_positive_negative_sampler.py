"""Samples a fixed-size minibatch of anchors with a bounded share of positives."""

import keras
import tensorflow as tf

from kdet.targets.indicator_ops import indicator_from_indices


@keras.saving.register_keras_serializable(package="kdet")
class BalancedPositiveNegativeSampler:
    """Samples at most `sample_size` anchors per image, at most a fraction of them positive.

    Per image it draws up to `int(positive_fraction * sample_size)` positives at random, then
    fills the rest of `sample_size` with random negatives; when an image has too few of either,
    it returns fewer samples. Only entries marked in `indicator` are ever sampled (TF OD API's
    non-static semantics: its `is_static` path pads the sample with non-indicated entries,
    which would turn ignored anchors into negatives). The implementation is static-shape:
    random scores and `top_k`, no boolean gather, no loop over the batch, so it runs under
    `tf.function` and XLA. The sampler does not decide which anchors are positive; the matcher
    and `kdet.targets.TargetAssigner` do.

    Args:
        positive_fraction: float in [0, 1]. Largest share of positives in a full sample.
            Defaults to `0.5` (the Faster R-CNN RPN and box classifier value).

    Example:
    ```python
    sampler = kdet.targets.BalancedPositiveNegativeSampler(positive_fraction=0.25)
    indicator = tf.ones([2, 100], tf.bool)  # every anchor may be sampled
    labels = tf.range(100)[None, :] < [[10], [1]]  # 10 and 1 positives
    sampled = sampler.subsample(indicator, labels, sample_size=8)
    # image 0: 2 positives + 6 negatives; image 1: 1 positive + 7 negatives
    ```

    Reference:
        - [Ren et al., 2015](https://arxiv.org/abs/1506.01497), section 3.1.3.
        - TF OD API `object_detection/core/balanced_positive_negative_sampler.py`.
    """

    def __init__(self, positive_fraction=0.5):
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(
                f"positive_fraction must be in [0, 1]; got positive_fraction={positive_fraction}."
            )
        self.positive_fraction = positive_fraction

    def subsample(self, indicator, labels, sample_size):
        """Samples each image's anchors.

        Args:
            indicator: bool `[batch, num_anchors]`, True for anchors that may be sampled
                (positives and negatives; False for ignored ones).
            labels: bool `[batch, num_anchors]`, True for positives, False for negatives.
            sample_size: int. Largest number of sampled anchors per image.

        Returns:
            bool `[batch, num_anchors]`, True for the sampled anchors.
        """
        if not isinstance(sample_size, int) or sample_size < 1:
            raise ValueError(f"sample_size must be a positive int; got {sample_size!r}.")
        indicator = tf.convert_to_tensor(indicator, tf.bool)
        labels = tf.convert_to_tensor(labels, tf.bool)
        if indicator.shape.rank != 2 or labels.shape.rank != 2:
            raise ValueError(
                "subsample() expects `indicator` and `labels` of shape [batch, num_anchors]; "
                f"got {indicator.shape} and {labels.shape}."
            )
        positives = _random_subset(
            tf.logical_and(indicator, labels), int(self.positive_fraction * sample_size)
        )
        num_positives = tf.reduce_sum(tf.cast(positives, tf.int32), axis=1)
        negatives = _random_subset(
            tf.logical_and(indicator, tf.logical_not(labels)),
            sample_size,
            limit=sample_size - num_positives,
        )
        return tf.logical_or(positives, negatives)

    def get_config(self):
        return {"positive_fraction": self.positive_fraction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _random_subset(candidates, max_count, limit=None):
    """Picks up to `max_count` (and up to `limit[i]` in row i) True entries at random.

    Args:
        candidates: bool `[batch, n]`, the entries that may be picked.
        max_count: int. Static bound on the picks per row.
        limit: optional int32 `[batch]`, a tighter per-row bound.

    Returns:
        bool `[batch, n]`.
    """
    num_entries = tf.shape(candidates)[1]
    # top_k needs k <= n; a static k keeps the output shapes static.
    if candidates.shape[1] is not None:
        max_count = min(max_count, candidates.shape[1])
    else:
        max_count = tf.minimum(max_count, num_entries)
    scores = tf.where(candidates, tf.random.uniform(tf.shape(candidates)), -1.0)
    top_scores, top_indices = tf.math.top_k(scores, k=max_count)
    keep = top_scores >= 0.0
    if limit is not None:
        keep = tf.logical_and(keep, tf.range(max_count)[None, :] < limit[:, None])
    return indicator_from_indices(top_indices, keep, num_entries)
