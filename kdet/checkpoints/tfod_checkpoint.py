"""Reading TF OD API checkpoints: TF2 object-based (`ckpt-N`, as `model_lib_v2` and the TF2
zoo write them) and TF1 name-based (`model.ckpt-N`, slim variable names).

TensorFlow's own checkpoint reader (`tf.train.load_checkpoint`) reads both formats; what kdet
adds is finding the checkpoint the way the TF OD API's tools accept it (a prefix, a folder with
a `checkpoint` file, a zoo archive folder), telling the formats apart, and listing the model's
variables without the optimizer's and the bookkeeping ones.
"""

import dataclasses
import functools
import pathlib
import re

import tensorflow as tf

# The key TF2 object-based checkpoints keep their object graph under.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Suffix of a TF2 variable's key: `<object path>/<attribute>/.ATTRIBUTES/VARIABLE_VALUE`.
VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# TF2 keys that are no model weight: optimizer state and slots, the save counter, the step.
_TF2_NOT_WEIGHTS = re.compile(r"(^|/)(\.OPTIMIZER_SLOT|optimizer)(/|$)|^save_counter/|^step/")
# TF1 names that are no model weight: the step, optimizer slots (Momentum, RMSProp, Adam, ...),
# exponential moving averages.
_TF1_NOT_WEIGHTS = re.compile(
    r"^global_step$|/(Momentum|RMSProp(_1)?|Adam(_1)?|ExponentialMovingAverage)$|^beta[12]_power"
)
# Suffix of the shadow variable `tf.train.ExponentialMovingAverage` keeps of a TF1 variable
# (TF OD API `use_moving_averages`).
MOVING_AVERAGE_SUFFIX = "/ExponentialMovingAverage"


class CheckpointError(ValueError):
    """A TF OD API checkpoint that cannot be read into a kdet model: the message names the
    checkpoint and what did not fit."""


@dataclasses.dataclass(frozen=True)
class TFODCheckpoint:
    """The model variables of a TF OD API checkpoint.

    Attributes:
        prefix: `pathlib.Path` of the checkpoint prefix (`.../ckpt-0`, `.../model.ckpt-200000`):
            the files are `<prefix>.index` and `<prefix>.data-*`.
        version: `"V2"` (TF2 object-based: keys like `model/_feature_extractor/.../kernel/
            .ATTRIBUTES/VARIABLE_VALUE`) or `"V1"` (TF1 name-based: keys like
            `FeatureExtractor/MobilenetV2/Conv/weights`), as the config's
            `fine_tune_checkpoint_version` names them.
        shapes: dict, key → shape (list of int) of every model variable (optimizer slots and
            bookkeeping left out).
        ignored: sorted tuple of the other keys: the step (`global_step`, `step`, …),
            optimizer state and slots (`…/Momentum`, `…/RMSProp`, `optimizer/…`), TF1
            moving averages (`…/ExponentialMovingAverage`, which `moving_average_key` reads
            instead of a weight on request) and TF2 bookkeeping.
    """

    prefix: pathlib.Path
    version: str
    shapes: dict
    ignored: tuple = ()

    @classmethod
    def open(cls, path):
        """Opens the checkpoint at `path`.

        Args:
            path: a checkpoint prefix (`ckpt-0`, `model.ckpt-200000`, with or without
                `.index`), a folder holding a `checkpoint` file (its newest checkpoint is read,
                as `tf.train.latest_checkpoint` does) or one `*.index` file, or an extracted
                zoo archive folder (its `checkpoint/` subfolder, or its `model.ckpt`).

        Returns:
            A `TFODCheckpoint`.

        Raises:
            CheckpointError: no checkpoint there, or one TensorFlow cannot read (the message
                names the path and TensorFlow's reason).
        """
        prefix = find_checkpoint_prefix(path)
        try:
            reader = tf.train.load_checkpoint(str(prefix))
        except (tf.errors.OpError, ValueError) as error:
            reason = str(error).strip().splitlines()[0]
            raise CheckpointError(
                f"cannot read the checkpoint {prefix}: {reason}"
            ) from error
        all_shapes = reader.get_variable_to_shape_map()
        version = "V2" if OBJECT_GRAPH_KEY in all_shapes else "V1"
        if version == "V2":
            shapes = {
                key: list(shape)
                for key, shape in all_shapes.items()
                if key.endswith(VARIABLE_SUFFIX) and not _TF2_NOT_WEIGHTS.search(key)
            }
        else:
            shapes = {
                key: list(shape)
                for key, shape in all_shapes.items()
                if not _TF1_NOT_WEIGHTS.search(key)
            }
        ignored = tuple(sorted(set(all_shapes) - set(shapes) - {OBJECT_GRAPH_KEY}))
        return cls(prefix, version, shapes, ignored)

    def moving_average_key(self, key):
        """The key of the exponential moving average of TF1 variable `key`
        (`<key>/ExponentialMovingAverage`), or None when the checkpoint has none (TF1 keeps
        averages of trainable variables only: not of batch-norm statistics)."""
        average = key + MOVING_AVERAGE_SUFFIX
        return average if average in self._ignored_keys else None

    @property
    def has_moving_averages(self):
        """Whether the checkpoint holds TF1 exponential moving averages."""
        return any(key.endswith(MOVING_AVERAGE_SUFFIX) for key in self.ignored)

    @functools.cached_property
    def _ignored_keys(self):
        return frozenset(self.ignored)

    def read_all(self, keys):
        """`{key: numpy array}` for `keys`, with one reader."""
        reader = tf.train.load_checkpoint(str(self.prefix))
        return {key: reader.get_tensor(key) for key in keys}


def find_checkpoint_prefix(path):
    """The checkpoint prefix `path` names (see `TFODCheckpoint.open`)."""
    path = pathlib.Path(path)
    if path.suffix == ".index" and path.is_file():
        return path.with_suffix("")
    if path.is_dir():
        for folder in (path, path / "checkpoint"):
            if (folder / "checkpoint").is_file():
                latest = tf.train.latest_checkpoint(str(folder))
                if latest:
                    return pathlib.Path(latest)
            indexes = sorted(folder.glob("*.index")) if folder.is_dir() else []
            if len(indexes) == 1:
                return indexes[0].with_suffix("")
        if (path / "model.ckpt.index").is_file():
            return path / "model.ckpt"
        raise CheckpointError(
            f"no TF OD API checkpoint in {path}: expected a `checkpoint` file naming one "
            "(ckpt-N.index / .data-*), a single *.index file, or a zoo archive folder with "
            "checkpoint/ or model.ckpt.index"
        )
    if pathlib.Path(f"{path}.index").is_file():
        return path
    raise CheckpointError(
        f"no TF OD API checkpoint at {path}: neither {path}.index nor a folder exists"
    )
