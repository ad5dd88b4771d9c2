"""The `tf.distribute` strategies `kdet train --strategy` names, for Python users too.

Example:
```python
strategy = kdet.training.distribution_strategy("mirrored")   # all local GPUs, or the CPU
with strategy.scope():
    pipeline = kdet.configs.compiled_pipeline("pipeline.config")
```
"""

import os

import tensorflow as tf

# The names `distribution_strategy` takes (`kdet train --strategy`).
STRATEGIES = ("default", "mirrored", "multi_worker")


def distribution_strategy(name="default", num_gpus=None):
    """The `tf.distribute` strategy of a name (`kdet train --strategy`).

    Args:
        name: `"default"` (the current strategy: one device), `"mirrored"` (a
            `MirroredStrategy` over `mirrored_devices(num_gpus)`) or `"multi_worker"` (a
            `MultiWorkerMirroredStrategy` of the cluster in the `TF_CONFIG` environment
            variable).
        num_gpus: optional int, with `"mirrored"`: use the first `num_gpus` GPUs.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: an unknown name; `"multi_worker"` without `TF_CONFIG` (the strategy would
            quietly train this process alone); more GPUs asked for than there are. The
            messages name the `kdet train` flags (`--strategy`, `--num_gpus`).
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy {name}: unknown; expected one of {', '.join(STRATEGIES)}")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(mirrored_devices(num_gpus))
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            # MultiWorkerMirroredStrategy would quietly train this process alone.
            raise ValueError(
                "--strategy multi_worker needs TF_CONFIG (the cluster and this worker's task) "
                "set on every worker; see docs/training.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def mirrored_devices(num_gpus=None):
    """The devices of `distribution_strategy("mirrored")`: the first `num_gpus` GPUs, or all
    GPUs, or else every logical CPU device (one unless the process split the CPU into several,
    as tests do).

    `MirroredStrategy()` alone would take one CPU even where several logical CPUs exist.

    Args:
        num_gpus: optional int, how many GPUs (at most those TensorFlow sees).

    Returns:
        list of device names, e.g. `["/device:GPU:0", "/device:GPU:1"]`.

    Raises:
        ValueError: `num_gpus` is not between 1 and the number of GPUs.
    """
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if num_gpus is not None:
        if not 0 < num_gpus <= len(gpus):
            raise ValueError(
                f"--num_gpus {num_gpus}: this machine has {len(gpus)} GPU(s) visible to "
                "TensorFlow; pass at most that many, or leave --num_gpus out"
            )
        return gpus[:num_gpus]
    return gpus or [device.name for device in tf.config.list_logical_devices("CPU")]
