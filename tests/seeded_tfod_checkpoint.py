"""Checkpoint values drawn from a seed and the variable's name: a reference model too large to
commit (Inception-ResNet-v2: 55M values, 220 MB) is committed as its variable list, and its
checkpoint is written again in the test.

`tools/tfod_reference/make_inception_resnet_v2_references.py` loads `seeded_value(name,
shape)` into every variable of the TF OD API's model before computing the reference outputs;
the parity test writes the same values under the same names (`write_tf1_checkpoint`), restores
that checkpoint into kdet's model with `kdet.checkpoints.restore_tfod_checkpoint` and compares.
NumPy and TensorFlow only (the generator also runs in the TF OD API's venv); the values come
from `numpy.random.RandomState`, whose streams NumPy keeps fixed across versions.
"""

import zlib

import numpy as np

# The last part of a TF1 (slim) or TF2 variable name → how its values are drawn.
_KERNELS = ("weights", "kernel")
_OFFSETS = ("biases", "bias", "beta", "moving_mean")


def seeded_value(name, shape, seed=0):
    """The float32 value of checkpoint variable `name` of `shape` for `seed`.

    Kernels (`.../weights`, `.../kernel`) are N(0, 2 / fan_in) (He: activations keep their
    scale through convolutions, batch norms and ReLUs, so a deep random model's outputs are
    neither zero nor huge), biases, betas and moving means N(0, 0.1²), gammas 1 + N(0, 0.1²),
    moving variances U(0.5, 1.5).

    Args:
        name: str, the checkpoint key, e.g.
            `FirstStageFeatureExtractor/InceptionResnetV2/Conv2d_1a_3x3/weights`.
        shape: the variable's shape (sequence of int).
        seed: int. Defaults to `0`.

    Returns:
        A float32 `numpy.ndarray` of `shape`.

    Raises:
        ValueError: a variable kind the generator does not know (e.g. `global_step`).
    """
    shape = tuple(int(size) for size in shape)
    rng = np.random.RandomState((zlib.crc32(name.encode()) + seed) % 2**32)
    leaf = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE").rsplit("/", 1)[-1]
    if leaf in _KERNELS:
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif leaf in _OFFSETS:
        value = 0.1 * rng.standard_normal(shape)
    elif leaf == "gamma":
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif leaf == "moving_variance":
        value = rng.uniform(0.5, 1.5, shape)
    else:
        raise ValueError(f"no seeded values for checkpoint variable {name!r}")
    return value.astype(np.float32)


def read_variable_list(path):
    """`[(name, shape)]` of a `variables.txt` (`name<TAB>dtype<TAB>[shape]` a line)."""
    entries = []
    for line in path.read_text().splitlines():
        name, _, shape = line.split("\t")
        entries.append((name, [int(size) for size in shape.strip("[]").split(",") if size]))
    return entries


def write_tf1_checkpoint(prefix, variables, seed=0, rename=None):
    """Writes a TF1 name-based checkpoint (`<prefix>.index`, `<prefix>.data-*`, the bundle
    `tf.compat.v1.train.Saver` writes) of `seeded_value` for each `(name, shape)`, under
    `rename(name)` if given (the value stays the one of `name`)."""
    import tensorflow as tf

    names = [rename(name) if rename else name for name, _ in variables]
    tensors = [tf.constant(seeded_value(name, shape, seed)) for name, shape in variables]
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=tensors,
    )
