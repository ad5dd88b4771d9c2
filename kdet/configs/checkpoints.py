"""Checkpoints into a pipeline's model: the fine-tune checkpoint of `train_config`
(`restore_fine_tune_checkpoint`) and trained checkpoints (`restore_pipeline_checkpoint`,
`restored_pipeline`): kdet's own (`ckpt-<step>.weights.h5`) and the TF OD API's (`ckpt-N`,
`model.ckpt-N`; `is_tfod_checkpoint` tells them apart, `kdet.checkpoints` reads them)."""


import dataclasses
import pathlib
import re
import warnings

import keras

from kdet.configs.config_paths import ZOO_PREFIX
from kdet.configs.config_paths import ConfigPath
from kdet.configs.config_paths import check_config_paths
from kdet.configs.datasets import input_size
from kdet.configs.pipeline import compiled_pipeline
from kdet.training.model_dir import resolve_checkpoint
from kdet.training.trainer import latest_checkpoint
from kdet.training.trainer import restore_checkpoint


@dataclasses.dataclass
class FineTuneRestore:
    """What `restore_fine_tune_checkpoint` restored.

    `str()` is the one line `kdet train` prints, e.g. `initialized from zoo:ssd_mobilenet_v2_coco
    (detection): restored 262 weights; 4 kept their initial values (the shapes differ, e.g.
    with another num_classes): box_predictor/…/BoxPredictor_0_ClassPredictor/kernel, …`.

    Attributes:
        checkpoint: the checkpoint used: a `pathlib.Path`, or `"zoo:NAME"`.
        checkpoint_type: `"detection"` or `"classification"`.
        restored: names (`kdet.training.variable_names`) of the restored weights (of the
            restored layers for a `"classification"` restore from the zoo), or None when the
            restore does not tell them (a `.keras` classification model).
        shape_differs: names of the weights left as they were because the checkpoint's have
            another shape (e.g. the class heads with another `num_classes`).
        missing: names of the weights the checkpoint has no value for.
        outside_type: names of the weights the `fine_tune_checkpoint_type` does not restore
            (`"fine_tune"`: all but the feature extractor's).
        unit: what `restored` counts: `"weights"` or `"feature extractor layers"`.
        new_ranges: names of the quantization ranges of a quantization-aware model
            (`graph_rewriter`) that a float checkpoint has no value for: they keep their
            initial values, even in a `"full"` restore.
        checkpoint_keys: for a TF OD API checkpoint, `{name: checkpoint key}` of each restored
            weight (e.g. `feature_extractor/…/kernel` →
            `model/_feature_extractor/…/kernel/.ATTRIBUTES/VARIABLE_VALUE`); else empty.
    """

    checkpoint: object
    checkpoint_type: str
    restored: list = None
    shape_differs: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    unit: str = "weights"
    outside_type: list = dataclasses.field(default_factory=list)
    new_ranges: list = dataclasses.field(default_factory=list)
    checkpoint_keys: dict = dataclasses.field(default_factory=dict)

    def __str__(self):
        text = f"initialized from {self.checkpoint} ({self.checkpoint_type})"
        if self.restored is None:
            return text
        text += f": restored {len(self.restored)} {self.unit}"
        for names, why in (
            (self.shape_differs, "the shapes differ, e.g. with another num_classes"),
            (self.missing, "not in the checkpoint"),
            (self.outside_type, f"a {self.checkpoint_type!r} restore leaves them"),
            (self.new_ranges, "quantization ranges, which a float checkpoint has none of"),
        ):
            if names:
                shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
                text += f"; {len(names)} kept their initial values ({why}): {shown}"
        return text


def restore_fine_tune_checkpoint(pipeline):
    """Starts the model from `train_config.fine_tune_checkpoint`, as its type says.

    - `"zoo:NAME"`: the weights of a zoo model (`kdet.zoo.load(NAME)`). Type `"detection"`
      restores every weight whose name and shape match
      (`kdet.training.variable_selection.copy_matching_weights`): the feature extractor and the
      box heads; with another `num_classes` the class heads keep their initial values; no
      match at all is an error (another architecture). Type `"classification"` (the TF OD API
      default without `fine_tune_checkpoint_type`) restores the feature extractor's layers by
      name, as from a classification model, so a zoo model's body can start another
      architecture (the COCO SSD's MobileNetV2 in a Faster R-CNN MobileNetV2).
    - `"detection"`: a kdet checkpoint (`ckpt-<step>.weights.h5`, or a model directory, whose
      newest checkpoint is used) of a detector with the same architecture: every weight whose
      shape matches is restored (a different `num_classes` leaves the class heads new).
    - `"classification"`: a Keras classification model file (`.keras`) whose layers share the
      feature extractor's names (e.g. a `keras.applications` model), restored with the
      extractor's `restore_from_classification_checkpoint`.

    - `"fine_tune"`: as `"detection"`, but only the feature extractor's weights (the TF OD
      API's type for a whole detection model's extractor); `"full"`: as `"detection"`, but
      every weight must be restored, else a `ConfigError`
      (`kdet.training.variable_selection.fine_tune_prefixes`).

    - A TF OD API checkpoint (`is_tfod_checkpoint`: a `ckpt-N` / `model.ckpt` prefix, a
      folder with a `checkpoint` file, an extracted zoo archive), TF2 or TF1 whatever
      `fine_tune_checkpoint_version` says (the files tell): restored as the TF OD API restores
      its type (`kdet.checkpoints.restore_tfod_checkpoint`: `"detection"` / `"fine_tune"` the
      feature extractor, `"classification"` the backbone, `"full"` everything); every
      checkpoint variable of those parts must fit the model, else a `ConfigError`.

    Args:
        pipeline: a `Pipeline` with `train_config`.

    Returns:
        A `FineTuneRestore` (print it for a one-line account), or None when
        `fine_tune_checkpoint` is empty.

    Raises:
        ConfigError: at the config's `fine_tune_checkpoint` line, for a path that does not
            exist, an unknown zoo model, a checkpoint kdet cannot read, or a zoo model none of
            whose weights fit.
    """
    path_text = pipeline.train.fine_tune_checkpoint if pipeline.train else ""
    if not path_text:
        return None
    check_config_paths(pipeline, "train_config")
    where = _checkpoint_path_entry(pipeline)
    checkpoint_type = pipeline.train.fine_tune_checkpoint_type
    if path_text.startswith(ZOO_PREFIX):
        return _restore_zoo_model(pipeline, path_text[len(ZOO_PREFIX):], where)
    path = pathlib.Path(path_text)
    if is_tfod_checkpoint(path):
        return _restore_tfod_fine_tune(pipeline, path, where)
    if checkpoint_type == "classification":
        if path.suffix != ".keras" or not path.is_file():
            raise where.error(
                "a classification checkpoint must be an existing Keras model file (.keras) "
                f"whose layer names match the feature extractor's, or a zoo model as "
                f"{ZOO_PREFIX}NAME"
            )
        extractor = pipeline.model.feature_extractor
        restore = getattr(extractor, "restore_from_classification_checkpoint", None)
        if restore is None:
            raise where.error(
                f"{type(extractor).__name__} has no restore_from_classification_checkpoint"
            )
        restore(keras.models.load_model(path))
        return FineTuneRestore(path, checkpoint_type)
    if path.is_dir():
        latest = latest_checkpoint(path)
        path = None if latest is None else latest[1]
    if path is None or not path.name.endswith(".weights.h5") or not path.is_file():
        raise where.error(
            "not a kdet checkpoint (a ckpt-<step>.weights.h5 file or a model directory holding "
            f"one), a TF OD API checkpoint (ckpt-N or model.ckpt with its .index, or a folder "
            f"with a `checkpoint` file) nor a zoo model ({ZOO_PREFIX}NAME)"
        )
    _build(pipeline.model)
    restore = _restore_weights_file(
        pipeline.model, path, checkpoint_type, _restore_prefixes(pipeline.train)
    )
    _check_full_restore(restore, where)
    return restore


def is_tfod_checkpoint(path):
    """Whether `path` names a TF OD API checkpoint rather than a kdet one.

    A TF OD API checkpoint is a prefix whose `.index` exists (`ckpt-0`, `model.ckpt-200000`),
    an `.index` file, or a folder without kdet checkpoints (`ckpt-<step>.weights.h5`) holding
    one (a `checkpoint` file, a `checkpoint/` folder, `model.ckpt.index`, as the TF OD API's
    training folders and zoo archives do).
    """
    from kdet.checkpoints.tfod_checkpoint import CheckpointError
    from kdet.checkpoints.tfod_checkpoint import find_checkpoint_prefix
    from kdet.training.trainer import list_checkpoints

    path = pathlib.Path(path)
    if path.is_dir():
        if list_checkpoints(path):
            return False
        try:
            find_checkpoint_prefix(path)
        except CheckpointError:
            return False
        return True
    return path.suffix == ".index" or pathlib.Path(f"{path}.index").is_file()


def _restore_tfod_fine_tune(pipeline, path, where):
    """Restores the TF OD API checkpoint `path` as `fine_tune_checkpoint_type` says; errors
    become `ConfigError`s at the config's `fine_tune_checkpoint` line."""
    from kdet.checkpoints import CheckpointError
    from kdet.checkpoints import restore_tfod_checkpoint
    from kdet.training.variable_selection import variable_names

    checkpoint_type = pipeline.train.fine_tune_checkpoint_type
    _build(pipeline.model)
    try:
        result = restore_tfod_checkpoint(pipeline.model, path, checkpoint_type)
    except CheckpointError as error:
        raise where.error(str(error)) from None
    weights = {weight.path: weight for weight in pipeline.model.weights}
    keys = {id(weights[path]): key for path, key in result.restored}
    names = variable_names(pipeline.model)
    return FineTuneRestore(
        result.checkpoint.prefix,
        checkpoint_type,
        restored=[name for name, weight in names.items() if id(weight) in keys],
        outside_type=[name for name, weight in names.items() if id(weight) not in keys],
        checkpoint_keys={name: keys[id(weight)] for name, weight in names.items()
                         if id(weight) in keys},
    )


def _restore_prefixes(train):
    """The `variable_names` prefixes a fine-tune restores. kdet's `"detection"` restores every
    weight of matching name and shape (the TF OD API's TF1 detection restore with
    `load_all_detection_checkpoint_vars`), the other types as `fine_tune_prefixes` says."""
    from kdet.training.variable_selection import fine_tune_prefixes

    if train.fine_tune_checkpoint_type == "detection":
        return ("",)
    return fine_tune_prefixes(
        train.fine_tune_checkpoint_type, train.load_all_detection_checkpoint_vars
    )


def _check_full_restore(restore, where):
    """A `"full"` restore that left weights as they were is a `ConfigError` at `where`."""
    unrestored = restore.shape_differs + restore.missing
    if restore.checkpoint_type == "full" and unrestored:
        raise where.error(
            f"fine_tune_checkpoint_type 'full' restores every weight, but {len(unrestored)} "
            f"have no value of their shape in the checkpoint: {', '.join(unrestored[:3])}"
            + (", …" if len(unrestored) > 3 else "")
            + "; use 'detection' to keep those initial values"
        )


def _restore_weights_file(model, path, checkpoint_type, prefixes=("",)):
    """`model.load_weights(path, skip_mismatch=True)`, told as a `FineTuneRestore`; weights
    outside `prefixes` keep their values.

    Keras warns about what a fine-tune expects: the checkpoint's optimizer state is not
    loaded (the fine-tune starts a new optimizer) and layers whose weights have other shapes
    (the class heads, with another `num_classes`) are skipped. Those two warnings become the
    `FineTuneRestore`'s account; any other warning is passed on.
    """
    from kdet.training.quantization import QuantizationRangesNotLoaded
    from kdet.training.variable_selection import variable_names
    from kdet.training.variable_selection import weights_kept

    new_range_ids = set()
    with warnings.catch_warnings(record=True) as caught, weights_kept(model, prefixes) as kept:
        warnings.simplefilter("always")
        model.load_weights(path, skip_mismatch=True)
    skipped_layers = []
    for warning in caught:
        text = str(warning.message)
        if text.startswith("Skipping variable loading for optimizer"):
            continue
        if isinstance(warning.message, QuantizationRangesNotLoaded):
            new_range_ids.update(id(weight) for weight in warning.message.state.weights)
            continue
        listed = _SKIPPED_LAYERS.search(text)
        if listed:
            skipped_layers += re.findall(r"name=([^,>\s]+)", listed.group(1))
            continue
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    skipped_ids = {
        id(weight)
        for layer in model._flatten_layers(include_self=False)
        if layer.name in skipped_layers
        for weight in layer.weights
    }
    outside = set(kept)
    names = {name: weight for name, weight in variable_names(model).items()
             if name not in outside}
    return FineTuneRestore(
        path,
        checkpoint_type,
        restored=[name for name, weight in names.items()
                  if id(weight) not in skipped_ids | new_range_ids],
        shape_differs=[name for name, weight in names.items() if id(weight) in skipped_ids],
        outside_type=kept,
        new_ranges=[name for name, weight in names.items() if id(weight) in new_range_ids],
    )


# Keras's `load_weights(skip_mismatch=True)` warning: "A total of N objects could not be
# loaded. … List of objects that could not be loaded:\n[<Conv2D name=…, built=True>, …]".
_SKIPPED_LAYERS = re.compile(r"could not be loaded.*List of objects that could not be loaded:"
                             r"\s*\[(.*)\]", re.DOTALL)


def _checkpoint_path_entry(pipeline):
    """The `ConfigPath` of `train_config.fine_tune_checkpoint`."""
    for entry in pipeline.config_paths:
        if entry.kind == "checkpoint":
            return entry
    # A `Pipeline` made by hand has no field positions.
    value = pipeline.train.fine_tune_checkpoint
    field = "train_config.fine_tune_checkpoint"
    return ConfigPath("train_config", 0, field, value, "checkpoint", pipeline.source, 1, 1)


def _build(model):
    """Builds `model` for its training input size, if it is not built yet."""
    if not model.built:
        model.build(_input_shape(model))


def _input_shape(model):
    """`(None, height, width, 3)`: the image batch shape `model` is built with."""
    (height, width), _ = input_size(model)
    return (None, height, width, 3)


def restore_pipeline_checkpoint(pipeline, checkpoint):
    """Loads a trained checkpoint into the pipeline's model.

    A `kdet train` checkpoint brings the model and optimizer state: the model is built for its
    input size first (`input_size`), if it is not built yet, and compiled with the config's
    optimizer if it is not compiled. A TF OD API checkpoint (`is_tfod_checkpoint`) brings
    every model weight (`kdet.checkpoints.restore_tfod_checkpoint`, type `"full"`; of a TF1
    checkpoint, their moving averages when `eval_config.use_moving_averages` is true, as the
    TF OD API's TF1 exporter reads them); its optimizer state is not read. Restoring again (another checkpoint of the same training)
    replaces the weights.

    Args:
        pipeline: a `Pipeline` with `train_config`, e.g. from `compiled_pipeline`.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory: its newest intact
            checkpoint (`kdet.training.latest_checkpoint`); or a TF OD API checkpoint prefix
            or folder (`resolve_trained_checkpoint`).

    Returns:
        `(step, path)`: the checkpoint's step (from its name, None for another name; a TF OD
        API checkpoint's `tfod_checkpoint_step`) and file (a TF OD API checkpoint's prefix).

    Raises:
        FileNotFoundError: a model directory without an intact checkpoint, or no such file.
        ValueError: a pipeline without `train_config` (no optimizer to take the state).
        kdet.checkpoints.CheckpointError: a TF OD API checkpoint that does not fit the model.
    """
    model = pipeline.model
    if is_tfod_checkpoint(checkpoint):
        from kdet.checkpoints import TFODCheckpoint
        from kdet.checkpoints import restore_tfod_checkpoint

        step, prefix = resolve_trained_checkpoint(checkpoint)
        found = TFODCheckpoint.open(prefix)
        # The TF1 exporter and evaluator read the moving averages `eval_config` asks for;
        # TF2's keep them in optimizer slots, which its exporter does not read.
        averages = found.version == "V1" and pipeline.eval_config.use_moving_averages
        _build(model)
        restore_tfod_checkpoint(model, found, "full", use_moving_averages=averages)
        return step, prefix
    step, path = resolve_checkpoint(checkpoint)
    if getattr(model, "optimizer", None) is None:
        if pipeline.optimizer is None:
            raise ValueError(
                f"{pipeline.source}: no train_config; kdet needs it to read the optimizer state "
                "that checkpoints hold"
            )
        model.compile(optimizer=pipeline.optimizer)
    restore_checkpoint(model, path, _input_shape(model))
    return step, path


def restored_pipeline(path, checkpoint, step=None, progress=None, dtype_policy=None):
    """The pipeline of a config, its model holding a trained checkpoint's weights.

    `compiled_pipeline(path)`, then `restore_pipeline_checkpoint(pipeline, checkpoint)` for a
    `kdet train` checkpoint, or `kdet.checkpoints.restore_tfod_checkpoint(model, checkpoint,
    "full")` for a TF OD API one (`is_tfod_checkpoint`; its optimizer state is not read):
    what `kdet eval`, `kdet export`, `kdet predict` and `kdet.inference.load_detector` load a
    checkpoint with.

    Args:
        path: the pipeline.config / YAML config the checkpoint was trained with.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory (its newest intact
            checkpoint); or a TF OD API checkpoint: a `ckpt-N` / `model.ckpt-N` prefix, or a
            folder with a `checkpoint` file (its newest), such as a TF OD API training folder
            or an extracted zoo archive.
        step: optional int, the step named in the progress line (default: from the file name).
        progress: optional callable taking one line, called before the model is built
            (`"building the model of CONFIG"`) and before the weights are restored
            (`"restoring step STEP: CHECKPOINT"`).
        dtype_policy: optional Keras dtype policy name (see `load_pipeline`). For a TF OD API
            checkpoint it defaults to `"float32"`, whatever `use_bfloat16` says (a TPU
            training switch: the TF OD API's exporter builds float32).

    Returns:
        A `Pipeline` whose model is compiled, built and restored.

    Raises:
        FileNotFoundError / ValueError / ConfigError: see `compiled_pipeline` and
            `restore_pipeline_checkpoint`.
        kdet.checkpoints.CheckpointError: a TF OD API checkpoint that does not fit the model.

    Example:
    ```python
    pipeline = kdet.configs.restored_pipeline("pets.config", "runs/pets")  # newest checkpoint
    detections = pipeline.model.predict(images)
    ```
    """
    found_step, file = resolve_trained_checkpoint(checkpoint)  # before the slow build
    progress = progress or (lambda line: None)
    if dtype_policy is None and is_tfod_checkpoint(file):
        # The TF OD API's `use_bfloat16` is a TPU training switch: its exporter builds float32.
        dtype_policy = "float32"
    progress(f"building the model of {path}")
    pipeline = compiled_pipeline(path, dtype_policy=dtype_policy)
    step = found_step if step is None else step
    progress(f"restoring {'' if step is None else f'step {step}: '}{file}")
    restore_pipeline_checkpoint(pipeline, file)
    return pipeline


def resolve_trained_checkpoint(checkpoint):
    """`(step, path)` of a trained checkpoint, kdet's or the TF OD API's.

    kdet's: see `kdet.training.model_dir.resolve_checkpoint`. A TF OD API checkpoint
    (`is_tfod_checkpoint`): `path` is its prefix (`.../ckpt-3`, `.../model.ckpt-20000`; a
    folder's newest, as its `checkpoint` file names it) and `step` its training step
    (`tfod_checkpoint_step`).

    Raises:
        FileNotFoundError: neither a kdet checkpoint nor a TF OD API one.
    """
    if not is_tfod_checkpoint(checkpoint):
        return resolve_checkpoint(checkpoint)
    from kdet.checkpoints import TFODCheckpoint

    prefix = TFODCheckpoint.open(checkpoint).prefix
    return tfod_checkpoint_step(prefix), prefix


def tfod_checkpoint_step(prefix):
    """The training step of the TF OD API checkpoint `prefix`: the `step` a TF2 checkpoint of
    `model_lib_v2` holds, a TF1 checkpoint's `global_step`, else the number ending its name
    (`ckpt-3` → 3), else 0."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    for key in _TFOD_STEP_KEYS:
        if reader.has_tensor(key):
            return int(reader.get_tensor(key))
    number = re.search(r"-(\d+)$", pathlib.Path(prefix).name)
    return int(number.group(1)) if number else 0


def list_tfod_checkpoints(folder):
    """`[(step, prefix)]` of the TF OD API checkpoints in `folder` (each `*.index` file: TF
    writes it last, so a listed checkpoint is complete), oldest step first."""
    folder = pathlib.Path(folder)
    prefixes = [path.with_suffix("") for path in folder.glob("*.index")]
    return sorted((tfod_checkpoint_step(prefix), prefix) for prefix in prefixes)


# Where TF OD API checkpoints keep the training step: `model_lib_v2`'s `tf.train.Checkpoint(
# step=…)`, TF1's `global_step`.
_TFOD_STEP_KEYS = ("step/.ATTRIBUTES/VARIABLE_VALUE", "global_step")


def tfod_checkpoint_files(prefix):
    """The files of the TF OD API checkpoint `prefix`: its `.index` and `.data-*` shards."""
    prefix = pathlib.Path(prefix)
    return sorted(
        path for path in prefix.parent.iterdir()
        if path.name == f"{prefix.name}.index" or path.name.startswith(f"{prefix.name}.data-")
    )


def _restore_zoo_model(pipeline, name, where):
    """Copies the weights of zoo model `name` into the pipeline's model (see
    `restore_fine_tune_checkpoint`)."""
    from kdet import zoo
    from kdet.feature_extractors.faster_rcnn_feature_extractor import (
        restore_layers_by_name,
    )
    from kdet.training.quantization import range_variables
    from kdet.training.variable_selection import copy_matching_weights
    from kdet.training.variable_selection import variable_names

    checkpoint_type = pipeline.train.fine_tune_checkpoint_type
    model = pipeline.model
    _build(model)
    source = zoo.load(name)
    checkpoint = f"{ZOO_PREFIX}{name}"
    if checkpoint_type == "classification":
        # By layer name, as from a classification model: the zoo model's body may sit in
        # another architecture (the COCO SSD's MobileNetV2 in a Faster R-CNN).
        extractor = model.feature_extractor
        restore = getattr(extractor, "restore_from_classification_checkpoint", None)
        try:
            if restore is None:
                layers = restore_layers_by_name(extractor, source.feature_extractor)
            else:
                layers = restore(source.feature_extractor)
        except ValueError as error:
            raise where.error(
                f"zoo model {name}'s feature extractor does not fit: {error}"
            ) from None
        return FineTuneRestore(checkpoint, checkpoint_type, layers, unit="feature extractor layers")
    prefixes = _restore_prefixes(pipeline.train)
    result = copy_matching_weights(source, model, prefixes)
    outside = [name for name in result["missing"] if not name.startswith(prefixes)]
    ranges = {id(weight) for weight in range_variables(model)}
    weights = variable_names(model)
    result["new_ranges"] = [name for name in result["missing"]
                            if name.startswith(prefixes) and id(weights[name]) in ranges]
    result["missing"] = [name for name in result["missing"] if name.startswith(prefixes)
                         and name not in result["new_ranges"]]
    if not result["restored"]:
        raise where.error(
            f"none of the weights of zoo model {name} ({type(source).__name__}, feature "
            f"extractor {type(source.feature_extractor).__name__}) fits the config's "
            f"{type(model).__name__} (feature extractor {type(model.feature_extractor).__name__})"
            f"; use fine_tune_checkpoint_type 'classification' to start from its feature "
            "extractor's layers, or a zoo model of the same architecture"
        )
    restore = FineTuneRestore(checkpoint, checkpoint_type, outside_type=outside, **result)
    _check_full_restore(restore, where)
    return restore
