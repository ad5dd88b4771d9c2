"""A whole TF OD API `pipeline.config`: the model, its training and its input pipelines.

`load_pipeline(path)` (this module) reads a `TrainEvalPipelineConfig` text file and builds everything
`kdet train` and `kdet eval` need (`compiled_pipeline(path)`: the same, its model compiled with
the config's optimizer); `train_dataset(pipeline)` makes the training `tf.data` pipeline from
its `train_input_reader`, `eval_dataset(pipeline)` the evaluation one from its
`eval_input_reader`. `restore_pipeline_checkpoint(pipeline, checkpoint)` loads a `kdet train`
checkpoint into the pipeline's model, `restored_pipeline(path, checkpoint)` does both steps.
The datasets live in `kdet.configs.datasets`, the checkpoint restores in
`kdet.configs.checkpoints`, the files a config names in `kdet.configs.config_paths`; all are
exported from `kdet.configs`. Build inside `strategy.scope()` to train on several devices.

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

from kdet.configs.config_paths import config_paths
from kdet.configs.datasets import input_size
from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.graph_rewriter_builder import apply_graph_rewriter
from kdet.configs.model_builder import build_model
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import parse_file
from kdet.configs.train_builder import build_input_reader_arguments
from kdet.configs.train_builder import build_training
from kdet.configs.yaml_config import parse_yaml_file
from kdet.training.variable_selection import VariableSelectionError
from kdet.training.variable_selection import select_trainable

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
        config_paths=config_paths(root),
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
