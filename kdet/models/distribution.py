"""Replica-aware helpers for losses under `tf.distribute`.

Keras sums gradients over replicas. A loss divided by a per-replica count (positives, local
batch) therefore scales the step with the number of replicas; dividing by a count summed over
all replicas makes one step identical on 1 and N replicas.
"""

import tensorflow as tf


def num_replicas():
    """Number of replicas in sync (1 outside a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def global_sum(value):
    """Sums `value` over all replicas when called inside a replica context, else returns it."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_normalizer(count):
    """`max(sum of count over replicas, 1)` as float32: a loss normalizer that is never zero."""
    return tf.maximum(global_sum(tf.cast(count, tf.float32)), 1.0)
