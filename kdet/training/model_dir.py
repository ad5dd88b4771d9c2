"""The layout of a model directory: the one place its file and folder names are spelled.

A model directory is what `kdet train` (`kdet.training.train`) writes and `kdet eval`,
`kdet plot`, `kdet export` and `kdet predict` read:

| name | written by | what |
| --- | --- | --- |
| `ckpt-<step>.weights.h5` (+ `.sha256`) | `train` | model and optimizer state at a step |
| `pipeline.config` / `pipeline.yaml` | `kdet train` | a copy of the config trained |
| `train/` | `train` | TensorBoard logs: losses, learning rate, training images |
| `eval/` | `evaluate_checkpoint` | metrics (TensorBoard, `metrics.json`), curves, PNGs |
| `plots/` | `kdet plot` | TensorBoard images of the plots |
| `diverged-ckpt-<step>.weights.h5` | `train` | a checkpoint set aside after a NaN loss |
| `.kdet-train.lock` | `train` | held while a process trains into the folder |

Example:
```python
from kdet.training import model_dir
model_dir.checkpoint_path("runs/pets", 2000)      # runs/pets/ckpt-2000.weights.h5
model_dir.metrics_path(model_dir.eval_dir("runs/pets"))  # runs/pets/eval/metrics.json
```
"""

import pathlib
import re

# `ckpt-<step>.weights.h5`, the checkpoint files; group 1 is the step.
CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.weights\.h5$")
# The names a config's copy may have, in the order readers look for them.
CONFIG_NAMES = ("pipeline.config", "pipeline.yaml", "pipeline.yml")
# A checkpoint set aside after a non-finite loss: this prefix + its name (never resumed from).
DIVERGED_PREFIX = "diverged-"
# The lock a training holds on its model directory.
LOCK_FILE = ".kdet-train.lock"
# The training's TensorBoard logs.
TRAIN_DIR = "train"
# The evaluation's TensorBoard logs, JSON results and PNGs.
EVAL_DIR = "eval"
# `kdet plot`'s TensorBoard images.
PLOTS_DIR = "plots"
# In the eval folder: `{step: {metric: value}}` of every checkpoint evaluated.
METRICS_FILE = "metrics.json"
# In the eval folder: the per-class precision/recall curves of the last checkpoint evaluated.
PRECISION_RECALL_FILE = "precision_recall.json"


def checkpoint_name(step):
    """`ckpt-<step>.weights.h5`."""
    return f"ckpt-{step}.weights.h5"


def checkpoint_path(model_dir, step):
    """`<model_dir>/ckpt-<step>.weights.h5`, a `pathlib.Path`."""
    return pathlib.Path(model_dir) / checkpoint_name(step)


def checkpoint_step(path):
    """The step of a `ckpt-<step>.weights.h5` path (int), or None for another name."""
    match = CHECKPOINT_PATTERN.match(pathlib.Path(path).name)
    return int(match.group(1)) if match else None


def train_dir(model_dir):
    """`<model_dir>/train`: the training's TensorBoard logs."""
    return pathlib.Path(model_dir) / TRAIN_DIR


def eval_dir(model_dir):
    """`<model_dir>/eval`: the evaluation's TensorBoard logs, JSON results and PNGs."""
    return pathlib.Path(model_dir) / EVAL_DIR


def plots_dir(model_dir):
    """`<model_dir>/plots`: TensorBoard images of `kdet plot`'s figures."""
    return pathlib.Path(model_dir) / PLOTS_DIR


def metrics_path(eval_folder):
    """`<eval_folder>/metrics.json`: `{step: {metric: value}}` of every checkpoint evaluated."""
    return pathlib.Path(eval_folder) / METRICS_FILE


def precision_recall_path(eval_folder):
    """`<eval_folder>/precision_recall.json`: the per-class curves of the last evaluation."""
    return pathlib.Path(eval_folder) / PRECISION_RECALL_FILE


def config_copy_name(config):
    """The name of a config's copy in a model directory: `pipeline.yaml` for a YAML config,
    else `pipeline.config` (what `kdet export` writes; `kdet predict` looks for both)."""
    yaml_config = pathlib.Path(config).suffix.lower() in (".yaml", ".yml")
    return "pipeline.yaml" if yaml_config else "pipeline.config"


def config_beside(*folders):
    """The first config copy (`CONFIG_NAMES`) found in `folders`, in order, or None."""
    for folder in folders:
        for name in CONFIG_NAMES:
            path = pathlib.Path(folder) / name
            if path.is_file():
                return path
    return None


def resolve_checkpoint(checkpoint):
    """`(step, path)` of a checkpoint file, or of a model directory's newest intact checkpoint.

    Args:
        checkpoint: str or path: a `ckpt-<step>.weights.h5` file (step None for another name),
            or a model directory (`kdet.training.latest_checkpoint`).

    Raises:
        FileNotFoundError: a model directory without an intact checkpoint, or no such file.
    """
    from kdet.training.trainer import latest_checkpoint

    path = pathlib.Path(checkpoint)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(
                f"{path}: no intact checkpoint in it (ckpt-<step>.weights.h5 with its .sha256, "
                "as 'kdet train' writes)"
            )
        return latest
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; expected a kdet checkpoint (ckpt-<step>.weights.h5) or a "
            "model directory holding one"
        )
    return checkpoint_step(path), path
