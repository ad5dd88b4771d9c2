"""A whole TF OD API `pipeline.config`: the model, its training and its input pipelines.

`load_pipeline(path)` reads a `TrainEvalPipelineConfig` text file and builds everything
`kdet train` and `kdet eval` need (`compiled_pipeline(path)`: the same, its model compiled with
the config's optimizer); `train_dataset(pipeline)` makes the training `tf.data` pipeline from
its `train_input_reader`, `eval_dataset(pipeline)` the evaluation one from its
`eval_input_reader`. `restore_pipeline_checkpoint(pipeline, checkpoint)` loads a `kdet train`
checkpoint into the pipeline's model, `restored_pipeline(path, checkpoint)` does both steps.
Build inside `strategy.scope()` to train on several devices.

Example:
```python
with tf.distribute.MirroredStrategy().scope():
    pipeline = kdet.configs.load_pipeline("faster_rcnn_resnet101_pets.config")
    pipeline.model.compile(optimizer=pipeline.optimizer)
kdet.training.train(pipeline.model, kdet.configs.train_dataset(pipeline), "runs/pets",
                    num_steps=pipeline.train.num_steps)
```
"""

import contextlib
import dataclasses
import pathlib
import re
import warnings

import keras

from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.graph_rewriter_builder import apply_graph_rewriter
from kdet.configs.model_builder import build_model
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse_file
from kdet.configs.train_builder import build_input_reader_arguments
from kdet.configs.train_builder import build_training
from kdet.configs.yaml_config import parse_yaml_file
from kdet.data.errors import DataError
from kdet.data.input_pipeline import check_has_records
from kdet.data.input_pipeline import list_input_files
from kdet.data.input_pipeline import read_tfrecords
from kdet.layers import FixedShapeResizer
from kdet.layers import KeepAspectRatioResizer
from kdet.training.model_dir import resolve_checkpoint
from kdet.training.trainer import latest_checkpoint
from kdet.training.trainer import restore_checkpoint
from kdet.training.variable_selection import VariableSelectionError
from kdet.training.variable_selection import select_trainable

# `pipeline.proto` (TrainEvalPipelineConfig).
_PIPELINE = {
    "model": SubMessage(required=True),
    "train_config": SubMessage(),
    "train_input_reader": SubMessage(),
    "eval_config": SubMessage(),
    "eval_input_reader": Repeated(SubMessage()),
    "graph_rewriter": SubMessage(),
}

@dataclasses.dataclass
class Pipeline:
    """What a pipeline.config builds.

    Attributes:
        source: the config file.
        model: the `kdet.SSD` or `kdet.FasterRCNN` of `model { … }`, not compiled; built,
            with only the variables `train_config.freeze_variables` /
            `update_trainable_variables` leave trainable, when the config sets them.
        optimizer: the Keras optimizer of `train_config`, or None without one.
        train: `kdet.configs.train_builder.TrainSettings`, or None without `train_config`.
        train_input: `read_tfrecords` arguments of `train_input_reader`, or None.
        eval_inputs: `read_tfrecords` arguments of each `eval_input_reader`.
        eval_config: `kdet.configs.eval_builder.EvalSettings` of `eval_config` (the TF OD API
            defaults when the config has none).
        config_paths: the `ConfigPath` of every file the config names (input paths, label
            maps, the fine-tune checkpoint), checked by `check_config_paths`.
    """

    source: str
    model: object
    optimizer: object
    train: object
    train_input: dict
    eval_inputs: list
    eval_config: object
    config_paths: list = dataclasses.field(default_factory=list)


def load_pipeline(path, dtype_policy=None):
    """Reads a pipeline config and builds its model, optimizer and settings.

    A TF OD API pipeline.config (protobuf text), or kdet's YAML form of it (`.yaml` / `.yml`,
    see `kdet.configs.yaml_config`); both are read the same way.

    The model's layers are created under `dtype_policy`, or under `"mixed_bfloat16"` when
    `train_config.use_bfloat16` is true (the TF OD API's bfloat16 training), else under
    Keras's global policy; the global policy is left as it was.

    `train_config.freeze_variables` / `update_trainable_variables` (regexes, TF OD API
    semantics) are applied to the model with `kdet.training.select_trainable`, so `kdet train`,
    `kdet lr_sweep` and Python users train the same variables.

    Args:
        path: str or path-like: a protobuf text file (`TrainEvalPipelineConfig`) or a YAML file.
        dtype_policy: optional Keras dtype policy name, e.g. `"mixed_float16"`.

    Returns:
        A `Pipeline`.

    Raises:
        kdet.configs.ConfigError: naming the file, line and column of a parse error, an unknown
            or unsupported field, or a bad value.
    """
    yaml_file = pathlib.Path(path).suffix.lower() in (".yaml", ".yml")
    root = parse_yaml_file(path) if yaml_file else parse_file(path)
    # A model kdet does not have yet is the first error, before any field complaint.
    check_architecture(root)
    fields = read(Node(root, "pipeline"), _PIPELINE)
    # Messages are re-rooted so that errors name `train_config.x`, not `pipeline.train_config.x`.
    optimizer, train = None, None
    if fields.has("train_config"):
        node = Node(fields["train_config"].message, "train_config")
        optimizer, train = build_training(node)
    if dtype_policy is None and train is not None and train.use_bfloat16:
        dtype_policy = "mixed_bfloat16"
    with _global_dtype_policy(dtype_policy):
        model = build_model(fields["model"].message)
        if fields.has("graph_rewriter"):  # quantization-aware training
            apply_graph_rewriter(Node(fields["graph_rewriter"].message, "graph_rewriter"),
                                 model, (None, *input_size(model)[0], 3))
        if train is not None:
            _select_trainable_variables(model, node, train)
    train_input = None
    if fields.has("train_input_reader"):
        train_input = build_input_reader_arguments(
            Node(fields["train_input_reader"].message, "train_input_reader")
        )
    eval_inputs = [
        build_input_reader_arguments(Node(message, "eval_input_reader"))
        for message in fields["eval_input_reader"]
    ]
    eval_config = build_eval_settings(
        Node(fields["eval_config"].message, "eval_config") if fields.has("eval_config") else None
    )
    return Pipeline(
        str(path), model, optimizer, train, train_input, eval_inputs, eval_config,
        config_paths=_config_paths(root),
    )


def compiled_pipeline(path, dtype_policy=None):
    """`load_pipeline(path, dtype_policy)`, its model compiled with the config's optimizer.

    What training needs, and what restoring a `kdet train` checkpoint needs: checkpoints hold
    the optimizer's state, which the config's optimizer takes. Call it inside
    `strategy.scope()` to train on several devices.

    Args:
        path: str or path-like, a pipeline.config or YAML config.
        dtype_policy: optional Keras dtype policy name (see `load_pipeline`).

    Returns:
        A `Pipeline` whose `model` is compiled.

    Raises:
        ValueError: naming the config, when it has no `train_config` (no optimizer).
        kdet.configs.ConfigError: as `load_pipeline`.

    Example:
    ```python
    pipeline = kdet.configs.compiled_pipeline("pets.config")
    kdet.training.train(pipeline.model, kdet.configs.train_dataset(pipeline), "runs/pets",
                        num_steps=pipeline.train.num_steps)
    ```
    """
    pipeline = load_pipeline(path, dtype_policy=dtype_policy)
    if pipeline.optimizer is None:
        raise ValueError(
            f"{path}: no train_config; kdet needs it to train, and to read the optimizer state "
            "that checkpoints hold"
        )
    pipeline.model.compile(optimizer=pipeline.optimizer)
    return pipeline


@dataclasses.dataclass(frozen=True)
class ConfigPath:
    """A file a pipeline config names, and where it names it.

    Attributes:
        section: `"train_config"`, `"train_input_reader"` or `"eval_input_reader"`.
        index: int, which `eval_input_reader` (0 otherwise).
        field: the dotted field, e.g. `"train_input_reader.tf_record_input_reader.input_path"`.
        value: the path (or glob pattern, or `zoo:NAME`) as written.
        kind: `"records"`, `"label_map"` or `"checkpoint"`.
        source, line, column: where the field is written.
    """

    section: str
    index: int
    field: str
    value: str
    kind: str
    source: str
    line: int
    column: int

    def error(self, problem):
        """A `ConfigError` at this field: `source:line:column: 'field' 'value': problem`."""
        return ConfigError.at(
            self.source, self.line, self.column, f"'{self.field}' {self.value!r}: {problem}"
        )


# The fields of each section that name files: (field path in the section, kind).
_PATH_FIELDS = {
    "train_config": (("fine_tune_checkpoint", "checkpoint"),),
    "train_input_reader": (
        ("tf_record_input_reader.input_path", "records"),
        ("label_map_path", "label_map"),
    ),
}
_PATH_FIELDS["eval_input_reader"] = _PATH_FIELDS["train_input_reader"]


def _config_paths(root):
    """The `ConfigPath` of every path field of the (already checked) config tree `root`."""
    paths, counts = [], {}
    for section in root.fields:
        if section.name not in _PATH_FIELDS:
            continue
        index = counts.get(section.name, 0)
        counts[section.name] = index + 1
        for dotted, kind in _PATH_FIELDS[section.name]:
            *parents, name = dotted.split(".")
            messages = [section.value]
            for parent in parents:
                messages = [f.value for m in messages for f in m.fields if f.name == parent]
            paths += [
                ConfigPath(section.name, index, f"{section.name}.{dotted}", field.value, kind,
                           message.source, field.line, field.column)
                for message in messages
                for field in message.fields
                if field.name == name and field.value
            ]
    return paths


def check_config_paths(pipeline, section, index=0):
    """Checks that the files a section of the config names exist, before anything is loaded.

    Input paths (globs) must match a file, and the files must hold a record (one is read);
    label maps must exist; the fine-tune checkpoint must be an existing file or folder (or a
    TF checkpoint prefix, which restoring refuses with its own message) or `zoo:NAME` of a zoo
    model.

    Args:
        pipeline: a `Pipeline`.
        section: `"train_config"`, `"train_input_reader"` or `"eval_input_reader"`.
        index: int, which `eval_input_reader`. Defaults to `0`.

    Raises:
        ConfigError: `config:line:column: 'field' 'value': problem` for the first path that
            names nothing (or records without a single example).
    """
    import tensorflow as tf

    records = []
    for entry in pipeline.config_paths:
        if (entry.section, entry.index) != (section, index):
            continue
        if entry.kind == "records":
            if not tf.io.gfile.glob(entry.value):
                raise entry.error(
                    "no file matches it; expected TFRecord files (kdet convert writes them)"
                )
            records.append(entry)
        if entry.kind == "label_map" and not tf.io.gfile.exists(entry.value):
            raise entry.error("no such file; expected a .pbtxt label map")
        if entry.kind == "checkpoint":
            _check_checkpoint_path(entry)
    if records:
        try:
            check_has_records(list_input_files([entry.value for entry in records]))
        except DataError as error:
            raise records[0].error(str(error)) from None


def _check_checkpoint_path(entry):
    if entry.value.startswith(_ZOO_PREFIX):
        from kdet import zoo

        try:
            zoo.get_entry(entry.value[len(_ZOO_PREFIX):])
        except ValueError as error:
            raise entry.error(str(error)) from None
        return
    path = pathlib.Path(entry.value)
    if not (path.exists() or path.with_name(path.name + ".index").exists()):
        raise entry.error(
            "no such file or folder; expected a kdet checkpoint (a ckpt-<step>.weights.h5 file "
            "or a model directory holding one), a Keras model file (.keras) for "
            f"fine_tune_checkpoint_type 'classification', or a zoo model as {_ZOO_PREFIX}NAME "
            "(kdet zoo lists them); TF OD API checkpoints (model.ckpt) cannot be read"
        )


@contextlib.contextmanager
def _global_dtype_policy(name):
    """Keras's global dtype policy set to `name` (if given) while layers are created."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _select_trainable_variables(model, node, train):
    """Applies `freeze_variables` / `update_trainable_variables`, building the model for it."""
    if not (train.freeze_variables or train.update_trainable_variables):
        return
    model.build((None, None, None, 3))
    try:
        select_trainable(model, train.freeze_variables, train.update_trainable_variables)
    except VariableSelectionError as error:
        fields = node.message.get(error.argument)
        field = next((field for field in fields if field.value == error.regex), fields[0])
        raise node.error(f"'{node.path}.{error.argument}': {error.problem}", field) from None


def input_size(model):
    """`((height, width), pad)`: the size of `model`'s network input, e.g. to build it.

    A `fixed_shape_resizer`'s size, unpadded; a `keep_aspect_ratio_resizer`'s largest,
    `max_dimension` squares (padded). `train_dataset` / `eval_dataset` resize to a
    `fixed_shape_resizer`'s size; a `keep_aspect_ratio_resizer` resizes each image itself
    (see `resized_input_arguments`).
    """
    resizer = model.image_resizer
    if isinstance(resizer, FixedShapeResizer):
        return (resizer.height, resizer.width), False
    if isinstance(resizer, KeepAspectRatioResizer):
        return (resizer.max_dimension, resizer.max_dimension), True
    raise ValueError(f"no training input size for {type(resizer).__name__}")


def resized_input_arguments(model):
    """The `read_tfrecords` arguments that resize images for `model` as its resizer does.

    A `fixed_shape_resizer`: `image_size` (every image stretched to it; the model's own
    resize of that size changes nothing). A `keep_aspect_ratio_resizer`: `image_resizer`, the
    model's resizer itself, run on each image in `tf.data` (TF OD API `resize_to_range`, the
    scale `predict` and export use), the images going to the model with their
    `true_image_shape` so it does not resize them again and knows where the content lies.
    """
    resizer = model.image_resizer
    if isinstance(resizer, FixedShapeResizer):
        return {"image_size": (resizer.height, resizer.width)}
    return {"image_resizer": resizer}


_ZOO_PREFIX = "zoo:"


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
    """

    checkpoint: object
    checkpoint_type: str
    restored: list = None
    shape_differs: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    unit: str = "weights"
    outside_type: list = dataclasses.field(default_factory=list)

    def __str__(self):
        text = f"initialized from {self.checkpoint} ({self.checkpoint_type})"
        if self.restored is None:
            return text
        text += f": restored {len(self.restored)} {self.unit}"
        for names, why in (
            (self.shape_differs, "the shapes differ, e.g. with another num_classes"),
            (self.missing, "not in the checkpoint"),
            (self.outside_type, f"a {self.checkpoint_type!r} restore leaves them"),
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

    TF OD API checkpoints (`model.ckpt`, TF1 or TF2 object graphs) cannot be read; start from
    a zoo model (`zoo:NAME`) instead.

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
    if path_text.startswith(_ZOO_PREFIX):
        return _restore_zoo_model(pipeline, path_text[len(_ZOO_PREFIX):], where)
    path = pathlib.Path(path_text)
    if checkpoint_type == "classification":
        if path.suffix != ".keras" or not path.is_file():
            raise where.error(
                "a classification checkpoint must be an existing Keras model file (.keras) "
                f"whose layer names match the feature extractor's, or a zoo model as "
                f"{_ZOO_PREFIX}NAME"
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
            f"one) nor a zoo model ({_ZOO_PREFIX}NAME); TF OD API checkpoints (model.ckpt) "
            "cannot be read"
        )
    _build(pipeline.model)
    restore = _restore_weights_file(
        pipeline.model, path, checkpoint_type, _restore_prefixes(pipeline.train)
    )
    _check_full_restore(restore, where)
    return restore


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
    from kdet.training.variable_selection import variable_names
    from kdet.training.variable_selection import weights_kept

    with warnings.catch_warnings(record=True) as caught, weights_kept(model, prefixes) as kept:
        warnings.simplefilter("always")
        model.load_weights(path, skip_mismatch=True)
    skipped_layers = []
    for warning in caught:
        text = str(warning.message)
        if text.startswith("Skipping variable loading for optimizer"):
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
        restored=[name for name, weight in names.items() if id(weight) not in skipped_ids],
        shape_differs=[name for name, weight in names.items() if id(weight) in skipped_ids],
        outside_type=kept,
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
    """Loads a `kdet train` checkpoint (model and optimizer state) into the pipeline's model.

    The model is built for its input size first (`input_size`), if it is not built yet, and
    compiled with the config's optimizer if it is not compiled. Restoring again (another
    checkpoint of the same training) replaces the weights.

    Args:
        pipeline: a `Pipeline` with `train_config`, e.g. from `compiled_pipeline`.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory: its newest intact
            checkpoint (`kdet.training.latest_checkpoint`).

    Returns:
        `(step, path)`: the checkpoint's step (from its name; None for another name) and file.

    Raises:
        FileNotFoundError: a model directory without an intact checkpoint, or no such file.
        ValueError: a pipeline without `train_config` (no optimizer to take the state).
    """
    step, path = resolve_checkpoint(checkpoint)
    model = pipeline.model
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
    """The pipeline of a config, its model holding a `kdet train` checkpoint's weights.

    `compiled_pipeline(path)`, then `restore_pipeline_checkpoint(pipeline, checkpoint)`: what
    `kdet eval`, `kdet export`, `kdet predict` and `kdet.inference.load_detector` load a
    checkpoint with.

    Args:
        path: the pipeline.config / YAML config the checkpoint was trained with.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory (its newest intact
            checkpoint).
        step: optional int, the step named in the progress line (default: from the file name).
        progress: optional callable taking one line, called before the model is built
            (`"building the model of CONFIG"`) and before the weights are restored
            (`"restoring step STEP: CHECKPOINT"`).
        dtype_policy: optional Keras dtype policy name (see `load_pipeline`).

    Returns:
        A `Pipeline` whose model is compiled, built and restored.

    Raises:
        FileNotFoundError / ValueError / ConfigError: see `compiled_pipeline` and
            `restore_pipeline_checkpoint`.

    Example:
    ```python
    pipeline = kdet.configs.restored_pipeline("pets.config", "runs/pets")  # newest checkpoint
    detections = pipeline.model.predict(images)
    ```
    """
    found_step, file = resolve_checkpoint(checkpoint)  # a missing one before the slow build
    progress = progress or (lambda line: None)
    progress(f"building the model of {path}")
    pipeline = compiled_pipeline(path, dtype_policy=dtype_policy)
    step = found_step if step is None else step
    progress(f"restoring {'' if step is None else f'step {step}: '}{file}")
    restore_pipeline_checkpoint(pipeline, file)
    return pipeline


def _restore_zoo_model(pipeline, name, where):
    """Copies the weights of zoo model `name` into the pipeline's model (see
    `restore_fine_tune_checkpoint`)."""
    from kdet import zoo
    from kdet.feature_extractors.faster_rcnn_feature_extractor import restore_layers_by_name
    from kdet.training.variable_selection import copy_matching_weights

    checkpoint_type = pipeline.train.fine_tune_checkpoint_type
    model = pipeline.model
    _build(model)
    source = zoo.load(name)
    checkpoint = f"{_ZOO_PREFIX}{name}"
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
    result["missing"] = [name for name in result["missing"] if name.startswith(prefixes)]
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


def train_dataset(pipeline, seed=None):
    """The training `tf.data` pipeline of `train_input_reader` and `train_config`.

    Batches of `train_config.batch_size` (the global batch; `fit` splits it across replicas),
    augmented with `data_augmentation_options`, resized for the model (see
    `resized_input_arguments`: a `keep_aspect_ratio_resizer` model gets each image resized by
    its own resizer, as in `predict`, with its `true_image_shape`), and repeated as
    `num_epochs` says (0: forever).

    Args:
        pipeline: a `Pipeline` with `train_config` and `train_input_reader`.
        seed: optional int for a reproducible pipeline.

    Returns:
        A `tf.data.Dataset` of `(images, {"boxes", "labels"})`; for a
        `keep_aspect_ratio_resizer`, images is `{"resized_images", "true_image_shape"}` (see
        `kdet.data.read_tfrecords`'s `image_resizer`).

    Raises:
        ConfigError: at the config line of an `input_path` that matches no file or whose files
            hold no record, or of a missing `label_map_path` (see `check_config_paths`).
    """
    if pipeline.train is None or pipeline.train_input is None:
        missing = "train_config" if pipeline.train is None else "train_input_reader"
        raise ValueError(f"{pipeline.source}: no {missing}; it is needed to train")
    check_config_paths(pipeline, "train_input_reader")
    return read_tfrecords(
        **pipeline.train_input,
        **resized_input_arguments(pipeline.model),
        batch_size=pipeline.train.batch_size,
        augmentation=pipeline.train.augmentation or None,
        drop_remainder=True,
        seed=seed,
    )


def check_train_dataset(pipeline, dataset):
    """Raises a `DataError` if a finite training dataset has no batch at all.

    Only a training input with `num_epochs` > 0 can: too few records for one full batch
    (`train_dataset` drops a smaller last batch). Reads the first batch, so it costs what
    starting the training costs anyway; an input that repeats forever is not read.

    Args:
        pipeline: a `Pipeline` with `train_input_reader`.
        dataset: its `train_dataset`.
    """
    if pipeline.train_input["num_epochs"] and next(iter(dataset.take(1)), None) is None:
        raise DataError(
            f"{pipeline.source}: train_input_reader gives no batch: {_train_input_text(pipeline)}"
            "; set num_epochs: 0 to repeat the records (the TF OD API default), or lower "
            "train_config.batch_size"
        )


def train_input_ran_out(pipeline, step, num_steps, checkpoint=None):
    """The `DataError` for a training input that ran out at `step`, before `num_steps`
    (`checkpoint`: where the steps done were saved, if they were)."""
    saved = f" (the model at step {step} is saved: {checkpoint})" if checkpoint else ""
    return DataError(
        f"{pipeline.source}: train_input_reader ran out of data at step {step} of {num_steps}"
        f"{saved}: {_train_input_text(pipeline)}; set num_epochs: 0 to repeat the records (the "
        "TF OD API default), or train fewer steps (--num_train_steps)"
    )


def _train_input_text(pipeline):
    files = list_input_files(pipeline.train_input["input_paths"])
    shown = ", ".join(files[:3]) + (f" … ({len(files)} files)" if len(files) > 3 else "")
    return (
        f"num_epochs: {pipeline.train_input['num_epochs']} over {shown} in batches of "
        f"{pipeline.train.batch_size} (a last, smaller batch is dropped)"
    )


def eval_dataset(pipeline, index=0):
    """The evaluation `tf.data` pipeline of an `eval_input_reader` and `eval_config`.

    One pass over the records in file order (no shuffle, `num_epochs` 1 whatever the reader
    says, as the TF OD API's evaluator forces), without augmentation, resized like
    `train_dataset` (a `keep_aspect_ratio_resizer` model gets each image resized by its own
    resizer, with its `true_image_shape`), in batches of `eval_config.batch_size`, the last
    one possibly smaller.

    Args:
        pipeline: a `Pipeline` with an `eval_input_reader`.
        index: int, which `eval_input_reader` of the config. Defaults to `0`.

    Returns:
        A finite `tf.data.Dataset` of `(images, {"boxes", "labels", "difficult"})`
        (`difficult`: the records' `image/object/difficult` flags, which the Pascal VOC
        metrics ignore; see `read_tfrecords`).

    Raises:
        ValueError: naming the config, when it has no `eval_input_reader` (at `index`).
        ConfigError: at the config line of a path that names nothing, or of records without a
            single example (see `check_config_paths`).
    """
    if index >= len(pipeline.eval_inputs):
        raise ValueError(
            f"{pipeline.source}: no eval_input_reader"
            + (f" number {index + 1}" if pipeline.eval_inputs else "")
            + "; it is needed to evaluate"
        )
    check_config_paths(pipeline, "eval_input_reader", index)
    return read_tfrecords(
        **{**pipeline.eval_inputs[index], "shuffle": False, "num_epochs": 1},
        **resized_input_arguments(pipeline.model),
        batch_size=pipeline.eval_config.batch_size,
        include_difficult=True,
    )
