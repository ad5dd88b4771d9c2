"""`write_zoo_entry`: a trained model as a zoo folder whose weights ship inside it.

The folder is what `kdet.zoo.ZooEntry` reads: `config.json`, `metadata.json`, the label map and
`model.weights.h5`, the weights stored as float16 by default (half the bytes of float32, for a
file that lives in the repository and the installed package; the model computes in its own
dtype). Its `metadata.json` `weights` field is `{"source": "file", "path", "sha256", "dtype"}`,
which `kdet.zoo.load` checks before loading.
"""

import json
import os
import pathlib
import shutil

import h5py
import keras
import numpy as np

from kdet.data.label_map import write_label_map
from kdet.utils.verified_files import file_sha256
from kdet.zoo.zoo_entry import CONFIG_FILE
from kdet.zoo.zoo_entry import METADATA_FILE
from kdet.zoo.zoo_entry import ZooEntry
from kdet.zoo.zoo_entry import nested_dicts

WEIGHTS_FILE = "model.weights.h5"
LABEL_MAP_FILE = "label_map.pbtxt"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def write_zoo_entry(model, directory, label_map, metadata, weights_dtype="float16"):
    """Writes `model` as a zoo entry folder with its weights in it.

    The folder appears complete or not at all: the files are written into a temporary folder
    next to it, which is renamed at the end. An existing `directory` is an error, never
    overwritten.

    Args:
        model: a built `kdet.SSD` / `kdet.FasterRCNN` (any built Keras model that
            `keras.saving.serialize_keras_object` can write).
        directory: str or path-like. The new folder; its name is the zoo name, e.g.
            `zoo/faster_rcnn_mobilenet_v2_deepforest`.
        label_map: dict `{id: name}` of the model's classes, ids from 1.
        metadata: dict. What the model is (`description`, `architecture`, `dataset`,
            `metrics`, `license`, training recipe, ...); `label_map`, `weights` and
            `num_params` are filled in.
        weights_dtype: `"float16"` (default) or `"float32"`: how the weights are stored. A
            float16 file is half the size; values beyond float16's range stay float32.

    Returns:
        `kdet.zoo.ZooEntry` of the new folder.

    Example:
    ```python
    entry = write_zoo_entry(model, "zoo/my_trees", {1: "Tree"}, {"dataset": "my tiles"})
    entry.build().load_weights(entry.directory / "model.weights.h5")
    ```
    """
    directory = pathlib.Path(directory)
    if weights_dtype not in ("float16", "float32"):
        raise ValueError(f"weights_dtype must be 'float16' or 'float32'; got {weights_dtype!r}")
    if directory.exists():
        raise FileExistsError(f"{directory} already exists; write the zoo entry to a new folder.")
    directory.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = directory.with_name(f".tmp-{os.getpid()}-{directory.name}")
    shutil.rmtree(temp_dir, ignore_errors=True)  # left by a killed run of this process id
    temp_dir.mkdir()
    try:
        with open(temp_dir / CONFIG_FILE, "w", encoding="utf-8") as file:
            json.dump(_architecture_config(model), file, indent=2)
        write_label_map(label_map, temp_dir / LABEL_MAP_FILE)
        full_weights = temp_dir / f"full.{WEIGHTS_FILE}"
        model.save_weights(full_weights)
        _copy_model_weights(full_weights, temp_dir / WEIGHTS_FILE, np.dtype(weights_dtype))
        full_weights.unlink()
        metadata = {
            **metadata,
            "label_map": LABEL_MAP_FILE,
            "num_params": int(model.count_params()),
            "weights": {
                "source": "file",
                "path": WEIGHTS_FILE,
                "sha256": file_sha256(temp_dir / WEIGHTS_FILE),
                "dtype": weights_dtype,
            },
        }
        with open(temp_dir / METADATA_FILE, "w", encoding="utf-8") as file:
            json.dump(metadata, file, indent=2)
            file.write("\n")
        os.replace(temp_dir, directory)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return ZooEntry(directory)


def _architecture_config(model):
    """The model's Keras config without how it (and each sublayer) was compiled and built.

    A zoo entry is an architecture: `ZooEntry.build` builds it for any image size, and the
    user compiles it for fine-tuning (a stored training optimizer would also make
    `load_weights` warn that the file has no optimizer state).
    """
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    for nested in nested_dicts(config):
        nested.pop("build_config", None)
    return config


def _copy_model_weights(source_path, target_path, dtype):
    """Copies a Keras `.weights.h5` file without its optimizer state, floats cast to `dtype`.

    Keras has no option to save the weights in another dtype or without the optimizer's
    variables (which `save_weights` adds once the model is compiled and trained), so the file
    is rewritten group by group; `load_weights` casts the values back to each variable's dtype.
    """
    with h5py.File(source_path, "r") as source, h5py.File(target_path, "w") as target:
        _copy_group(source, target, dtype, skip={"optimizer"})


def _copy_group(source, target, dtype, skip=()):
    for key, value in source.attrs.items():
        target.attrs[key] = value
    for name, item in source.items():
        if name in skip:
            continue
        if isinstance(item, h5py.Group):
            _copy_group(item, target.create_group(name), dtype)
            continue
        values = item[()]
        if np.issubdtype(values.dtype, np.floating) and _fits(values, dtype):
            values = values.astype(dtype)
        target.create_dataset(name, data=values)


def _fits(values, dtype):
    return dtype != np.float16 or np.abs(values).max(initial=0) <= _FLOAT16_MAX
