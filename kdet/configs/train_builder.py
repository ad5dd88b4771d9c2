"""TF OD API `train_config` and input readers → Keras optimizer, kdet input pipeline, settings.

Reads the `train_config { … }`, `train_input_reader { … }` and `eval_input_reader { … }`
blocks of a pipeline.config (`train.proto`, `optimizer.proto`, `input_reader.proto`) with the
schema checks of `kdet.configs.field_reader`: a field kdet does not support is an error at its
line, never ignored.
"""

import dataclasses
import warnings

import keras

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import String
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.preprocessor_builder import read_augmentation_step
from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping
from kdet.training.optimizers import FusedAdam
from kdet.training.variable_selection import FINE_TUNE_CHECKPOINT_TYPES

# `train.proto` fields and their TF OD API defaults.
_TRAIN_CONFIG = {
    "batch_size": Int(default=32, minimum=1),
    "num_steps": Int(default=0, minimum=0),
    "optimizer": SubMessage(required=True),
    "gradient_clipping_by_norm": Float(default=0.0),
    "data_augmentation_options": Repeated(SubMessage()),
    "fine_tune_checkpoint": String(default=""),
    "fine_tune_checkpoint_type": String(default=""),
    # The TF OD API checkpoint format (V1: TF1 name-based, V2: TF2 object-based). kdet tells
    # the formats (and its own checkpoints) apart by their files, whatever this says.
    "fine_tune_checkpoint_version": Enum(("V1", "V2"), default="V1"),
    "from_detection_checkpoint": Bool(default=False),
    # TF1's `restore_map`: a "detection" restore takes every weight, not the extractor's only.
    "load_all_detection_checkpoint_vars": Bool(default=False),
    # Fine-tune restore options of the quantized SSDLite sample configs: restore the
    # checkpoint's optimizer slots, its moving averages, its step. kdet's fine-tune starts a new
    # optimizer (step 0, averages of the restored weights), so only false is honoured.
    "load_all_optimizer_checkpoint_vars": Bool(default=False),
    "load_all_moving_average_checkpoint_vars": Bool(default=False),
    "include_global_step": Bool(default=False),
    "freeze_variables": Repeated(String()),
    "update_trainable_variables": Repeated(String()),
    "use_bfloat16": Bool(default=False),
    "max_number_of_boxes": Int(default=100, minimum=1),
    "sync_replicas": Bool(default=False),
    "replicas_to_aggregate": Int(default=1),
    "startup_delay_steps": Float(default=15.0),
    "keep_checkpoint_every_n_hours": Float(default=10000.0),
    "unpad_groundtruth_tensors": Switch(default=True),
    "add_regularization_loss": Fixed(
        Bool(default=True), True, "kdet adds the layers' regularization losses to the total loss"
    ),
    "retain_original_images": Switch(),
}
# Fine-tune restore options kdet honours only as false, and what a true one would restore.
_FINE_TUNE_STARTS_NEW = {
    "load_all_optimizer_checkpoint_vars": "optimizer state",
    "load_all_moving_average_checkpoint_vars": "moving averages",
    "include_global_step": "step count",
}
# Fields of a distributed TF1 setup that kdet's `tf.distribute` training does not need.
_NOTICE_ONLY = ("sync_replicas", "replicas_to_aggregate", "startup_delay_steps")

# `optimizer.proto`: the learning rate fields of each optimizer and their defaults.
_OPTIMIZERS = {
    "rms_prop_optimizer": {
        "learning_rate": SubMessage(required=True),
        "momentum_optimizer_value": Float(default=0.9),
        "decay": Float(default=0.9),
        "epsilon": Float(default=1.0),
    },
    "momentum_optimizer": {
        "learning_rate": SubMessage(required=True),
        "momentum_optimizer_value": Float(default=0.9),
    },
    "adam_optimizer": {
        "learning_rate": SubMessage(required=True),
        "epsilon": Float(default=1e-8),
    },
}
_LEARNING_RATES = {
    "constant_learning_rate": {"learning_rate": Float(default=0.002)},
    "exponential_decay_learning_rate": {
        "initial_learning_rate": Float(default=0.002),
        "decay_steps": Int(default=4000000, minimum=1),
        "decay_factor": Float(default=0.95),
        "staircase": Bool(default=True),
        "burnin_learning_rate": Float(default=0.0),
        "burnin_steps": Int(default=0, minimum=0),
        "min_learning_rate": Float(default=0.0),
    },
    "manual_step_learning_rate": {
        "initial_learning_rate": Float(default=0.002),
        "schedule": Repeated(SubMessage()),
        "warmup": Bool(default=False),
    },
    "cosine_decay_learning_rate": {
        "learning_rate_base": Float(default=0.002),
        "total_steps": Int(default=4000000, minimum=1),
        "warmup_learning_rate": Float(default=0.0002),
        "warmup_steps": Int(default=10000, minimum=0),
        "hold_base_rate_steps": Int(default=0, minimum=0),
    },
}
# `step` has no default in `optimizer.proto`: an unset step is 0, a rate from step 0 on.
_MANUAL_STEP = {"step": Int(default=0, minimum=0), "learning_rate": Float(default=0.002)}

# `input_reader.proto` fields kdet reads; `read_tfrecords` takes the same semantics.
_INPUT_READER = {
    "tf_record_input_reader": SubMessage(required=True),
    "label_map_path": String(default=""),
    "shuffle": Bool(default=True),
    "shuffle_buffer_size": Int(default=2048, minimum=1),
    "filenames_shuffle_buffer_size": Int(default=100, minimum=1),
    "num_epochs": Int(default=0, minimum=0),
    "num_readers": Int(default=64, minimum=1),
    "read_block_length": Int(default=32, minimum=1),
    "sample_1_of_n_examples": Int(default=1, minimum=1),
    "num_prefetch_batches": Int(default=2),
    "num_parallel_batches": Int(default=8),
    "max_number_of_boxes": Int(default=100, minimum=1),
    "num_keypoints": Int(default=0, minimum=0),
    "load_instance_masks": Bool(default=False),
    # `input_reader.proto` InstanceMaskType (DEFAULT decodes as NUMERICAL_MASKS there too).
    "mask_type": Enum(
        {"DEFAULT": "numerical", "NUMERICAL_MASKS": "numerical", "PNG_MASKS": "png"},
        default="NUMERICAL_MASKS",
    ),
    "use_display_name": Bool(default=False),
    # Context R-CNN's context features (`read_tfrecords(load_context_features=True)`).
    "load_context_features": Bool(default=False),
    "load_context_image_ids": Fixed(
        Bool(default=False), False, "kdet reads no context image ids (they only name the "
        "context features, to show the attention)"
    ),
    "input_type": Enum(
        {"TF_EXAMPLE": "tf_example", "TF_SEQUENCE_EXAMPLE": "tf_sequence_example"},
        default="TF_EXAMPLE",
    ),
    # Deprecated TF1 queue settings, read and not used: the TF OD API's tf.data reader
    # ignores them too.
    "queue_capacity": Int(default=2000, minimum=0),
    "min_after_dequeue": Int(default=1000, minimum=0),
    "prefetch_size": Int(default=512, minimum=0),
    "num_parallel_map_calls": Int(default=64, minimum=0),
}


@dataclasses.dataclass
class TrainSettings:
    """What `train_config` sets besides the optimizer.

    Attributes:
        batch_size: int, the global batch size.
        num_steps: int, 0 for "no limit" (the TF OD API convention).
        augmentation: list of `(name, params)` steps for `kdet.data.augmentation`.
        fine_tune_checkpoint: str, "" for none.
        fine_tune_checkpoint_type: `"classification"`, `"detection"`, `"fine_tune"`,
            `"full"` or "" (the variables each restores:
            `kdet.training.variable_selection.fine_tune_prefixes`).
        freeze_variables: regexes of variables not to train.
        update_trainable_variables: regexes of the only variables to train ([] = all).
        use_bfloat16: bool, train under the `mixed_bfloat16` Keras policy.
        max_number_of_boxes: int, read and not used: the rows per image come from the input
            reader's `max_number_of_boxes`, as in the TF OD API's TF2 inputs.
        load_all_detection_checkpoint_vars: bool, the TF OD API TF1 flag for a `"detection"`
            restore of every weight; kdet's `"detection"` restore takes every matching weight
            whatever it says (`kdet.configs.restore_fine_tune_checkpoint`).
    """

    batch_size: int
    num_steps: int
    augmentation: list
    fine_tune_checkpoint: str
    fine_tune_checkpoint_type: str
    freeze_variables: list
    update_trainable_variables: list
    use_bfloat16: bool
    max_number_of_boxes: int
    load_all_detection_checkpoint_vars: bool = False


def build_optimizer(node):
    """A Keras optimizer from an `optimizer { … }` message (`optimizer.proto`).

    `rms_prop_optimizer` → `keras.optimizers.RMSprop(rho=decay, momentum=…, epsilon=…)` (both
    add epsilon under the square root, as TF1 did); `momentum_optimizer` → `SGD(momentum=…)`;
    `adam_optimizer` → `Adam(epsilon=…)`. `use_moving_average` / `moving_average_decay` map to
    the optimizer's `use_ema` / `ema_momentum` (TF OD API default: on, 0.9999).

    Args:
        node: the `Node` of the `optimizer` message.

    Returns:
        A `keras.optimizers.Optimizer` (without gradient clipping; see `build_training`).
    """
    fields = read(
        node,
        {
            **{name: SubMessage() for name in _OPTIMIZERS},
            "use_moving_average": Bool(default=True),
            "moving_average_decay": Float(default=0.9999),
        },
    )
    chosen = [name for name in _OPTIMIZERS if fields.has(name)]
    if len(chosen) != 1:
        raise node.error(
            f"'{node.path}' needs exactly one of {', '.join(_OPTIMIZERS)}; got "
            f"{', '.join(chosen) or 'none'}"
        )
    kind = fields[chosen[0]]
    settings = read(kind, _OPTIMIZERS[kind.name])
    learning_rate = build_learning_rate(settings["learning_rate"])
    ema = {"use_ema": fields["use_moving_average"], "ema_momentum": fields["moving_average_decay"]}
    if kind.name == "rms_prop_optimizer":
        return keras.optimizers.RMSprop(
            learning_rate,
            rho=settings["decay"],
            momentum=settings["momentum_optimizer_value"],
            epsilon=settings["epsilon"],
            **ema,
        )
    if kind.name == "momentum_optimizer":
        return keras.optimizers.SGD(
            learning_rate, momentum=settings["momentum_optimizer_value"], **ema
        )
    # The TF OD API's Adam (Keras 2's) ran this fused kernel; Keras 3's Adam traces ~41 ops per
    # variable (first step 1.4-3.1x slower, benchmarks/README.md).
    return FusedAdam(learning_rate, epsilon=settings["epsilon"], **ema)


def build_learning_rate(node):
    """A float or Keras schedule from a `learning_rate { … }` message (`optimizer.proto`).

    Args:
        node: the `Node` of the `learning_rate` message.

    Returns:
        A float (`constant_learning_rate`) or a `keras.optimizers.schedules.LearningRateSchedule`
        from `kdet.training`.
    """
    kind = read_one_of(node, tuple(_LEARNING_RATES))
    fields = read(kind, _LEARNING_RATES[kind.name])
    if kind.name == "constant_learning_rate":
        return fields["learning_rate"]
    if kind.name == "exponential_decay_learning_rate":
        return ExponentialDecayWithBurnin(
            fields["initial_learning_rate"],
            fields["decay_steps"],
            fields["decay_factor"],
            staircase=fields["staircase"],
            burnin_learning_rate=fields["burnin_learning_rate"],
            burnin_steps=fields["burnin_steps"],
            min_learning_rate=fields["min_learning_rate"],
        )
    if kind.name == "manual_step_learning_rate":
        steps = [
            read(Node(message, fields.path("schedule")), _MANUAL_STEP)
            for message in fields["schedule"]
        ]
        return _checked(
            kind,
            ManualStepping,
            [step["step"] for step in steps],
            [fields["initial_learning_rate"], *(step["learning_rate"] for step in steps)],
            warmup=fields["warmup"],
        )
    return _checked(
        kind,
        CosineDecayWithWarmup,
        fields["learning_rate_base"],
        fields["total_steps"],
        warmup_learning_rate=fields["warmup_learning_rate"],
        warmup_steps=fields["warmup_steps"],
        hold_base_rate_steps=fields["hold_base_rate_steps"],
    )


def _checked(node, schedule_class, *args, **kwargs):
    """Builds a schedule, turning its `ValueError` into a `ConfigError` at `node`."""
    try:
        return schedule_class(*args, **kwargs)
    except ValueError as error:
        raise node.error(f"'{node.path}': {error}") from None


def build_training(node):
    """Optimizer and settings from a `train_config { … }` message (`train.proto`).

    `gradient_clipping_by_norm` becomes the optimizer's `global_clipnorm`. `sync_replicas`,
    `replicas_to_aggregate` and `startup_delay_steps` belong to TF1's parameter-server training
    and are ignored with a notice (kdet's `tf.distribute` training is synchronous).
    `fine_tune_checkpoint_version` (`V1` or `V2`) names the format of a TF OD API checkpoint;
    `kdet.configs.restore_fine_tune_checkpoint` reads the format from the files instead, and
    recognises kdet's own checkpoints by theirs.

    Args:
        node: the `Node` of the `train_config` message.

    Returns:
        `(optimizer, TrainSettings)`.
    """
    fields = read(node, _TRAIN_CONFIG)
    optimizer = build_optimizer(fields["optimizer"])
    if fields["gradient_clipping_by_norm"] > 0:
        optimizer.global_clipnorm = fields["gradient_clipping_by_norm"]
    for name in _NOTICE_ONLY:
        if fields.has(name):
            warnings.warn(
                f"{node.path}.{name} is ignored: kdet trains synchronously with tf.distribute.",
                stacklevel=2,
            )
    checkpoint_type = fields["fine_tune_checkpoint_type"]
    if not checkpoint_type and fields["fine_tune_checkpoint"]:
        checkpoint_type = "detection" if fields["from_detection_checkpoint"] else "classification"
    if checkpoint_type and checkpoint_type not in FINE_TUNE_CHECKPOINT_TYPES:
        raise fields.error(
            "fine_tune_checkpoint_type",
            f"'{fields.path('fine_tune_checkpoint_type')}' is {checkpoint_type!r}; kdet "
            f"supports {', '.join(map(repr, FINE_TUNE_CHECKPOINT_TYPES))}",
        )
    for name, what in _FINE_TUNE_STARTS_NEW.items():
        if fields[name]:
            raise fields.error(
                name,
                f"'{fields.path(name)}' is true, but kdet's fine-tune restore loads no {what}: "
                "training starts a new optimizer (set it to false or remove it)",
            )
    settings = TrainSettings(
        batch_size=fields["batch_size"],
        num_steps=fields["num_steps"],
        augmentation=[
            read_augmentation_step(Node(message, fields.path("data_augmentation_options")))
            for message in fields["data_augmentation_options"]
        ],
        fine_tune_checkpoint=fields["fine_tune_checkpoint"],
        fine_tune_checkpoint_type=checkpoint_type,
        load_all_detection_checkpoint_vars=fields["load_all_detection_checkpoint_vars"],
        freeze_variables=fields["freeze_variables"],
        update_trainable_variables=fields["update_trainable_variables"],
        use_bfloat16=fields["use_bfloat16"],
        max_number_of_boxes=fields["max_number_of_boxes"],
    )
    return optimizer, settings


def build_input_reader_arguments(node):
    """`kdet.data.read_tfrecords` keyword arguments from an `input_reader { … }` message.

    Args:
        node: the `Node` of a `train_input_reader` or `eval_input_reader` message.

    Returns:
        A dict with `input_paths`, `label_map` (None without `label_map_path`), `shuffle`,
        `shuffle_buffer_size`, `filenames_shuffle_buffer_size`, `num_epochs`, `num_readers`,
        `read_block_length`, `sample_1_of_n_examples`, `num_parallel_calls`
        (`num_parallel_batches`), `num_prefetch_batches`, `max_num_boxes`, `num_keypoints`
        (0, the TF OD API default: boxes only), `load_instance_masks` and `mask_type`
        (`"numerical"`, the TF OD API default `NUMERICAL_MASKS`, or `"png"` for `PNG_MASKS`),
        `load_context_features` and `input_type` (`"tf_example"` or `"tf_sequence_example"`).
    """
    fields = read(node, _INPUT_READER)
    if fields["use_display_name"]:
        raise fields.error(
            "use_display_name",
            f"'{fields.path('use_display_name')}' is true, but kdet label maps match class "
            "texts to `name`",
        )
    records = read(fields["tf_record_input_reader"], {"input_path": Repeated(String(), True)})
    return {
        "input_paths": records["input_path"],
        "label_map": fields["label_map_path"] or None,
        "shuffle": fields["shuffle"],
        "shuffle_buffer_size": fields["shuffle_buffer_size"],
        "filenames_shuffle_buffer_size": fields["filenames_shuffle_buffer_size"],
        "num_epochs": fields["num_epochs"],
        "num_readers": fields["num_readers"],
        "read_block_length": fields["read_block_length"],
        "sample_1_of_n_examples": fields["sample_1_of_n_examples"],
        "num_parallel_calls": fields["num_parallel_batches"],
        "num_prefetch_batches": fields["num_prefetch_batches"],
        "max_num_boxes": fields["max_number_of_boxes"],
        "num_keypoints": fields["num_keypoints"],
        "load_instance_masks": fields["load_instance_masks"],
        "mask_type": fields["mask_type"],
        "load_context_features": fields["load_context_features"],
        "input_type": fields["input_type"],
    }
