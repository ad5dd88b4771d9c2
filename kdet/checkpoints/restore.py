"""TF OD API checkpoints into kdet models: `restore_tfod_checkpoint`, `load_tfod_model`."""

import dataclasses

from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_checkpoint import TFODCheckpoint
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs

# The parts of the model each `fine_tune_checkpoint_type` restores from a TF2 checkpoint, as
# the TF OD API's `restore_from_objects` does (SSD and Faster R-CNN alike): "classification"
# the classification backbone, "detection" the whole feature extractor (backbone, extra
# layers, FPN) but not the box predictor or heads, "full" everything.
PARTS_OF_TYPE = {
    "classification": {BACKBONE},
    "detection": {BACKBONE, EXTRACTOR},
    "fine_tune": {BACKBONE, EXTRACTOR},
    "full": {BACKBONE, EXTRACTOR, HEADS},
}
# Object path of the detection model in a `model_lib_v2` / TF2 zoo checkpoint.
TF2_MODEL_PREFIX = "model"


@dataclasses.dataclass
class TFODRestore:
    """What `restore_tfod_checkpoint` did.

    `str()` is one line, e.g. `restored 260 weights of ckpt-0 (TF2, detection); 28 left as
    they were (not restored by a 'detection' checkpoint type)`.

    Attributes:
        checkpoint: the `TFODCheckpoint` read.
        checkpoint_type: the `fine_tune_checkpoint_type` used.
        restored: `[(kdet weight path, checkpoint key)]` of the restored weights.
        not_restored: kdet weight paths the checkpoint type leaves as they were.
    """

    checkpoint: TFODCheckpoint
    checkpoint_type: str
    restored: list
    not_restored: list

    def __str__(self):
        text = (
            f"restored {len(self.restored)} weights of {self.checkpoint.prefix.name} "
            f"(TF{self.checkpoint.version[1]}, {self.checkpoint_type})"
        )
        if self.not_restored:
            text += (
                f"; {len(self.not_restored)} left as they were (not restored by a "
                f"{self.checkpoint_type!r} checkpoint type)"
            )
        return text


def restore_tfod_checkpoint(model, checkpoint, checkpoint_type="full"):
    """Loads a TF OD API checkpoint into a kdet model built from the same config.

    The model must be the one the checkpoint's `pipeline.config` describes (built with
    `kdet.configs.load_pipeline`); only `num_classes` may differ when the checkpoint type
    leaves the heads out. Weights pair up by structure (see `kdet.checkpoints.tfod_mapping`);
    every shape is checked and every checkpoint variable of the restored parts must be used
    before anything is assigned, so a failed restore leaves the model as it was.

    Args:
        model: a built or unbuilt kdet detector (`kdet.SSD`, ...); built here if needed.
        checkpoint: a path `TFODCheckpoint.open` accepts (a `ckpt-N` prefix, a folder with a
            `checkpoint` file, an extracted zoo archive), or a `TFODCheckpoint`.
        checkpoint_type: the TF OD API's `fine_tune_checkpoint_type`: `"full"` (every weight),
            `"detection"` / `"fine_tune"` (the feature extractor: backbone and the layers on
            it), `"classification"` (the backbone only). Defaults to `"full"`.

    Returns:
        A `TFODRestore` (print it for a one-line account).

    Raises:
        CheckpointError: the checkpoint cannot be read, is TF1 (name-based) for a model kdet
            maps only from TF2, or does not fit the model; the message lists the weights
            that are missing, mis-shaped or left over.
    """
    if checkpoint_type not in PARTS_OF_TYPE:
        raise ValueError(
            f"checkpoint_type must be one of {sorted(PARTS_OF_TYPE)}; got {checkpoint_type!r}"
        )
    if not isinstance(checkpoint, TFODCheckpoint):
        checkpoint = TFODCheckpoint.open(checkpoint)
    if checkpoint.version != "V2":
        raise CheckpointError(
            f"{checkpoint.prefix} is a TF1 name-based checkpoint; kdet reads TF2 object-based "
            "TF OD API checkpoints (ckpt-N) into this model"
        )
    if not model.built:
        model.build((None, None, None, 3))
    parts = PARTS_OF_TYPE[checkpoint_type]
    pairs = tf2_layer_pairs(model, TF2_MODEL_PREFIX, checkpoint.shapes)
    chosen = [pair for pair in pairs if pair.part in parts]
    assignments = [item for pair in chosen for item in pair.assignments()]
    _check(checkpoint, assignments, chosen)
    values = checkpoint.read_all([key for _, key in assignments])
    for variable, key in assignments:
        variable.assign(values[key].astype(variable.dtype))
    restored_ids = {id(variable) for variable, _ in assignments}
    return TFODRestore(
        checkpoint,
        checkpoint_type,
        [(variable.path, key) for variable, key in assignments],
        [variable.path for variable in model.weights if id(variable) not in restored_ids],
    )


def _check(checkpoint, assignments, pairs):
    """Raises a `CheckpointError` unless every assignment's key exists with the variable's
    shape and every checkpoint variable under the chosen layers' paths is used."""
    problems = []
    for variable, key in assignments:
        shape = checkpoint.shapes.get(key)
        if shape is None:
            problems.append(f"{variable.path}: no {key}")
        elif list(shape) != list(variable.shape):
            problems.append(
                f"{variable.path}: shape {list(variable.shape)}, checkpoint {key} {shape}"
            )
    used = {key for _, key in assignments}
    prefixes = tuple(pair.path + "/" for pair in pairs)
    left_over = sorted(
        key for key in checkpoint.shapes if key.startswith(prefixes) and key not in used
    )
    problems += [f"checkpoint variable {key} has no kdet weight" for key in left_over]
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(
            f"the checkpoint {checkpoint.prefix} does not fit the model "
            f"({len(problems)} problems):\n  {shown}{more}"
        )


def load_tfod_model(pipeline_config, checkpoint, checkpoint_type="full"):
    """A kdet detector from a TF OD API `pipeline.config` and one of its checkpoints.

    Args:
        pipeline_config: path of the `pipeline.config` (text format), as the TF OD API's
            `exporter_main_v2.py --pipeline_config_path` takes it.
        checkpoint: the checkpoint (`--trained_checkpoint_dir`): see `restore_tfod_checkpoint`.
        checkpoint_type: see `restore_tfod_checkpoint`. Defaults to `"full"`.

    Returns:
        `(model, restore)`: the detector and its `TFODRestore`.

    Example:
    ```python
    model, restore = kdet.checkpoints.load_tfod_model(
        "ssd_mobilenet_v2_320x320_coco17_tpu-8/pipeline.config",
        "ssd_mobilenet_v2_320x320_coco17_tpu-8/checkpoint")
    print(restore)  # restored 348 weights of ckpt-0 (TF2, full)
    ```
    """
    from kdet.configs import load_pipeline

    model = load_pipeline(pipeline_config).model
    return model, restore_tfod_checkpoint(model, checkpoint, checkpoint_type)
