"""Static-shape helper shared by the sampler and the hard-example miner."""

import tensorflow as tf


def indicator_from_indices(indices, keep, depth):
    """Turns per-image lists of selected indices into a boolean indicator.

    Args:
        indices: int32 `[batch, k]`, distinct indices in `[0, depth)` within each row.
        keep: bool `[batch, k]`, which of `indices` are selected.
        depth: int or int32 scalar tensor. Length of the indicator.

    Returns:
        bool `[batch, depth]`, True at the kept indices.
    """
    batch_size, k = tf.shape(indices)[0], tf.shape(indices)[1]
    rows = tf.broadcast_to(tf.range(batch_size)[:, None], [batch_size, k])
    # scatter_nd sums the updates; indices are distinct per row, so each sum is 0 or 1.
    counts = tf.scatter_nd(
        tf.stack([rows, indices], axis=-1), tf.cast(keep, tf.int32), [batch_size, depth]
    )
    return counts > 0

