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


# Keras 3's TF trainer fails under MultiWorkerMirroredStrategy (keras-team/keras#20585, seen on
# Keras 3.15 / TF 2.21): it reduces the first distributed batch eagerly with `strategy.reduce`,
# which the collective strategy cannot do, and reduces scalar logs along an axis 0 they lack.
# `ObjectDetector` works around both with the two helpers below; drop them once Keras is fixed.


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` over more than one process."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in cluster.values()) > 1


def first_local_values(structure, strategy):
    """A distributed batch → this worker's first replica's values (same structure)."""
    return tf.nest.map_structure(
        lambda value: strategy.experimental_local_results(value)[0]
        if isinstance(value, tf.distribute.DistributedValues)
        else value,
        structure,
    )
