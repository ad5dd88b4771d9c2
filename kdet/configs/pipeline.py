"""A whole TF OD API `pipeline.config`: the model, its training and its input pipelines.

`load_pipeline(path)` reads a `TrainEvalPipelineConfig` text file and builds everything
`kdet train` and `kdet eval` need; `train_dataset(pipeline)` makes the training `tf.data`
pipeline from its `train_input_reader`, `eval_dataset(pipeline)` the evaluation one from its
`eval_input_reader`. Build inside `strategy.scope()` to train on several devices.

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

import keras

from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.model_builder import build_model
from kdet.configs.text_format import parse_file
from kdet.configs.train_builder import build_input_reader_arguments
from kdet.configs.train_builder import build_training
from kdet.configs.yaml_config import parse_yaml_file
from kdet.data.input_pipeline import read_tfrecords
from kdet.layers import FixedShapeResizer
from kdet.layers import KeepAspectRatioResizer
from kdet.training.trainer import latest_checkpoint
from kdet.training.variable_selection import VariableSelectionError
from kdet.training.variable_selection import select_trainable

# `pipeline.proto` (TrainEvalPipelineConfig).
_PIPELINE = {
    "model": SubMessage(required=True),
    "train_config": SubMessage(),
    "train_input_reader": SubMessage(),
    "eval_config": SubMessage(),
    "eval_input_reader": Repeated(SubMessage()),
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
    """

    source: str
    model: object
    optimizer: object
    train: object
    train_input: dict
    eval_inputs: list
    eval_config: object


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
    return Pipeline(str(path), model, optimizer, train, train_input, eval_inputs, eval_config)


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
    """`((height, width), pad)`: the image size `train_dataset` resizes to for `model`.

    A `fixed_shape_resizer`'s size, unpadded; a `keep_aspect_ratio_resizer` pads to
    `max_dimension` squares, keeping the aspect ratio.
    """
    resizer = model.image_resizer
    if isinstance(resizer, FixedShapeResizer):
        return (resizer.height, resizer.width), False
    if isinstance(resizer, KeepAspectRatioResizer):
        return (resizer.max_dimension, resizer.max_dimension), True
    raise ValueError(f"no training input size for {type(resizer).__name__}")


def restore_fine_tune_checkpoint(pipeline):
    """Starts the model from `train_config.fine_tune_checkpoint`, as its type says.

    - `"detection"`: a kdet checkpoint (`ckpt-<step>.weights.h5`, or a model directory, whose
      newest checkpoint is used) of a detector with the same architecture: every weight whose
      shape matches is restored (a different `num_classes` leaves the class heads new).
    - `"classification"`: a Keras classification model file (`.keras`) whose layers share the
      feature extractor's names (e.g. a `keras.applications` model), restored with the
      extractor's `restore_from_classification_checkpoint`.

    TF OD API checkpoints (`model.ckpt`, TF1 or TF2 object graphs) cannot be read; convert a
    frozen graph with `kdet.zoo` or start from a zoo model in Python instead.

    Args:
        pipeline: a `Pipeline` with `train_config`.

    Returns:
        The checkpoint path used, or None when `fine_tune_checkpoint` is empty.

    Raises:
        ValueError: naming the config and the checkpoint, for a missing or unreadable one.
    """
    path_text = pipeline.train.fine_tune_checkpoint if pipeline.train else ""
    if not path_text:
        return None
    path = pathlib.Path(path_text)
    where = f"{pipeline.source}: train_config.fine_tune_checkpoint {path_text!r}"
    if pipeline.train.fine_tune_checkpoint_type == "classification":
        if path.suffix != ".keras" or not path.is_file():
            raise ValueError(
                f"{where}: a classification checkpoint must be an existing Keras model file "
                "(.keras) whose layer names match the feature extractor's"
            )
        extractor = pipeline.model.feature_extractor
        restore = getattr(extractor, "restore_from_classification_checkpoint", None)
        if restore is None:
            raise ValueError(
                f"{where}: {type(extractor).__name__} has no "
                "restore_from_classification_checkpoint"
            )
        restore(keras.models.load_model(path))
        return path
    if path.is_dir():
        latest = latest_checkpoint(path)
        path = None if latest is None else latest[1]
    if path is None or not path.name.endswith(".weights.h5") or not path.is_file():
        raise ValueError(
            f"{where}: not a kdet checkpoint (a ckpt-<step>.weights.h5 file or a model "
            "directory holding one); TF OD API checkpoints (model.ckpt) cannot be read"
        )
    if not pipeline.model.built:
        (height, width), _ = input_size(pipeline.model)
        pipeline.model.build((None, height, width, 3))
    pipeline.model.load_weights(path, skip_mismatch=True)
    return path


def train_dataset(pipeline, seed=None):
    """The training `tf.data` pipeline of `train_input_reader` and `train_config`.

    Batches of `train_config.batch_size` (the global batch; `fit` splits it across replicas),
    augmented with `data_augmentation_options`, resized to the model's input size (a
    `keep_aspect_ratio_resizer` pads to `max_dimension` squares, keeping the aspect ratio), and
    repeated as `num_epochs` says (0: forever).

    Args:
        pipeline: a `Pipeline` with `train_config` and `train_input_reader`.
        seed: optional int for a reproducible pipeline.

    Returns:
        A `tf.data.Dataset` of `(images, {"boxes", "labels"})`.
    """
    if pipeline.train is None or pipeline.train_input is None:
        missing = "train_config" if pipeline.train is None else "train_input_reader"
        raise ValueError(f"{pipeline.source}: no {missing}; it is needed to train")
    size, pad = input_size(pipeline.model)
    return read_tfrecords(
        **pipeline.train_input,
        batch_size=pipeline.train.batch_size,
        image_size=size,
        pad_to_aspect_ratio=pad,
        augmentation=pipeline.train.augmentation or None,
        drop_remainder=True,
        seed=seed,
    )


def eval_dataset(pipeline, index=0):
    """The evaluation `tf.data` pipeline of an `eval_input_reader` and `eval_config`.

    One pass over the records in file order (no shuffle, `num_epochs` 1 whatever the reader
    says, as the TF OD API's evaluator forces), without augmentation, resized like
    `train_dataset` (a `keep_aspect_ratio_resizer` pads to `max_dimension` squares), in
    batches of `eval_config.batch_size`, the last one possibly smaller.

    Args:
        pipeline: a `Pipeline` with an `eval_input_reader`.
        index: int, which `eval_input_reader` of the config. Defaults to `0`.

    Returns:
        A finite `tf.data.Dataset` of `(images, {"boxes", "labels", "difficult"})`
        (`difficult`: the records' `image/object/difficult` flags, which the Pascal VOC
        metrics ignore; see `read_tfrecords`).

    Raises:
        ValueError: naming the config, when it has no `eval_input_reader` (at `index`).
    """
    if index >= len(pipeline.eval_inputs):
        raise ValueError(
            f"{pipeline.source}: no eval_input_reader"
            + (f" number {index + 1}" if pipeline.eval_inputs else "")
            + "; it is needed to evaluate"
        )
    size, pad = input_size(pipeline.model)
    return read_tfrecords(
        **{**pipeline.eval_inputs[index], "shuffle": False, "num_epochs": 1},
        batch_size=pipeline.eval_config.batch_size,
        image_size=size,
        pad_to_aspect_ratio=pad,
        include_difficult=True,
    )
