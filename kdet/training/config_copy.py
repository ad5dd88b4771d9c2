"""A copy of the pipeline config in the model directory it trains, as the TF OD API's
model_main keeps one, so that `kdet eval`, `kdet export` and `kdet predict --model MODEL_DIR`
find it.

Example:
```python
kdet.training.train(pipeline.model, dataset, "runs/pets", 2000,
                    callbacks=[kdet.training.config_copy_callback("pets.config", "runs/pets")])
```
"""

import os
import pathlib
import sys

import keras

from kdet.training.model_dir import CONFIG_NAMES
from kdet.training.model_dir import config_copy_name
from kdet.training.trainer import is_chief
from kdet.utils.verified_files import fsync_file
from kdet.utils.verified_files import fsync_folder


def save_pipeline_config(config, model_dir, warn=None):
    """Copies a pipeline config into a model directory, atomically (as the TF OD API's
    model_main does), so that the checkpoints there can be loaded without naming it.

    The copy is `kdet.training.model_dir.config_copy_name(config)`. A config already there
    with the same content is left as it is. A different one (and any other `pipeline.config` /
    `pipeline.yaml` / `pipeline.yml` there, which readers would pick first) is renamed
    `pipeline.previous-<n>.<suffix>` (first free n), with a warning: never lost, never read
    instead of the new one.

    Args:
        config: path of the pipeline.config / YAML config being trained.
        model_dir: the model directory (must exist).
        warn: callable taking one line; defaults to printing `WARNING: …` to stderr.

    Returns:
        `pathlib.Path` of the copy.
    """
    if warn is None:
        def warn(line):
            print(f"WARNING: {line}", file=sys.stderr, flush=True)

    config, model_dir = pathlib.Path(config), pathlib.Path(model_dir)
    target = model_dir / config_copy_name(config)
    content = config.read_bytes()
    up_to_date = False
    for name in CONFIG_NAMES:
        existing = model_dir / name
        if not os.path.lexists(existing):
            continue
        if existing.is_file() and not existing.is_symlink() and (
            os.path.samefile(existing, config) or existing.read_bytes() == content
        ):
            up_to_date = up_to_date or existing == target
            continue
        number = 1
        while os.path.lexists(model_dir / f"pipeline.previous-{number}{existing.suffix}"):
            number += 1
        aside = model_dir / f"pipeline.previous-{number}{existing.suffix}"
        os.replace(existing, aside)
        warn(
            f"{existing} was a different config from {config} (the one trained now): kept "
            f"as {aside}; {target} is now a copy of {config}"
        )
    if up_to_date:
        return target
    # The `.tmp-<pid>-` name is one that the next kdet train removes if this one is killed.
    temp = model_dir / f".tmp-{os.getpid()}-{target.name}"
    try:
        temp.write_bytes(content)
        fsync_file(temp)
        os.replace(temp, target)
        fsync_folder(model_dir)
    finally:
        temp.unlink(missing_ok=True)
    return target


class SavePipelineConfig(keras.callbacks.Callback):
    """Runs `save_pipeline_config(config, model_dir)` when training begins: inside
    `kdet.training.train`, so under the model directory's lock (a run the lock stops never
    replaces the running one's copy), and on the chief only.

    Args:
        config: path of the pipeline config being trained.
        model_dir: the model directory `train` writes to.
    """

    def __init__(self, config, model_dir):
        super().__init__()
        self.config = config
        self.model_dir = model_dir

    def on_train_begin(self, logs=None):
        if is_chief(self.model.distribute_strategy):
            save_pipeline_config(self.config, self.model_dir)


def config_copy_callback(config, model_dir):
    """A `SavePipelineConfig` callback for `kdet.training.train(callbacks=[...])`."""
    return SavePipelineConfig(config, model_dir)
