"""TF OD API `Hyperparams` messages (`conv_hyperparams`, `fc_hyperparams`)."""

import keras

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.field_reader import String
from kdet.configs.field_reader import show
from kdet.layers.conv_hyperparams import ConvHyperparams

# -- conv_hyperparams / fc_hyperparams → ConvHyperparams -------------------------------------

# `Hyperparams.activation` names → `ConvHyperparams.activation`.
_ACTIVATIONS = {"NONE": None, "RELU": "relu", "RELU_6": "relu6", "SWISH": "swish"}
_VARIANCE_SCALING_MODES = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "FAN_AVG": "fan_avg"}
_GROUP_NORM_REASON = (
    "the TF OD API's Keras models build no group norm from it (KerasLayerHyperparams reads "
    "only batch_norm and sync_batch_norm, so its TF2 models normalize nothing) while its TF1 "
    "slim models apply group norm; use batch_norm, or no normalizer"
)


def read_conv_hyperparams(node, dense=False):
    """Reads a TF OD API `Hyperparams` message (`conv_hyperparams`, `fc_hyperparams`).

    TF OD API semantics (`builders/hyperparams_builder.py`, `KerasLayerHyperparams`): absent
    sub-fields take the `hyperparams.proto` defaults (activation RELU, no batch norm, no
    regularizer); no `initializer` means the Keras default `glorot_uniform`;
    `l2_regularizer { weight: w }` is `keras.regularizers.L2(0.5 * w)` (slim's `w * sum(x²) / 2`),
    `l1_regularizer { weight: w }` is `L1(w)`; `truncated_normal_initializer` and
    `random_normal_initializer` are Keras `TruncatedNormal` / `RandomNormal(mean, stddev)`;
    `variance_scaling_initializer { factor uniform mode }` is
    `VarianceScaling(scale=factor, mode=mode.lower(), distribution="uniform" if uniform else
    "truncated_normal")`; `keras_initializer_by_name` is that Keras initializer;
    `batch_norm { decay epsilon center scale train }` (or `sync_batch_norm`, synchronized over
    replicas) is the batch norm after each convolution (`decay` is the Keras momentum,
    `train: false` freezes it); `force_use_bias` and `regularize_depthwise` as in
    `kdet.layers.ConvHyperparams`.

    Args:
        node: the `Node` of the message, or None when the config does not set it.
        dense: bool. The component's layers are dense layers (`fc_hyperparams`): `op` may be
            `FC` (or `CONV`, which the TF OD API's Keras builder ignores the same way);
            for convolutions `op: FC` is an error.

    Returns:
        A `kdet.layers.ConvHyperparams`, or None when `node` is None (the component then uses
        its documented default).

    Raises:
        ConfigError: at the field, for a value kdet cannot apply (a negative regularizer
            weight, an unknown Keras initializer name, `group_norm`, `op: FC` on
            convolutions).
    """
    if node is None:
        return None
    fields = read(
        node,
        {
            "op": Enum(("CONV", "FC"), default="CONV"),
            "regularizer": SubMessage(),
            "initializer": SubMessage(),
            "activation": Enum(tuple(_ACTIVATIONS), default="RELU"),
            "batch_norm": SubMessage(),
            "sync_batch_norm": SubMessage(),
            "group_norm": SubMessage(),
            "regularize_depthwise": Bool(default=False),
            "force_use_bias": Bool(default=False),
        },
    )
    if fields["op"] == "FC" and not dense:
        raise fields.error(
            "op",
            f"'{fields.path('op')}' is FC, but the layers these hyperparams configure are "
            "convolutions (op: CONV)",
        )
    if fields.has("group_norm"):
        raise fields.error(
            "group_norm", f"'{fields.path('group_norm')}' is set, but {_GROUP_NORM_REASON}"
        )
    normalizers = [name for name in ("batch_norm", "sync_batch_norm") if fields.has(name)]
    if len(normalizers) > 1:
        raise fields.error(
            "sync_batch_norm",
            f"'{node.path}' sets both 'batch_norm' and 'sync_batch_norm'; only one of them is "
            "allowed (they are a oneof)",
        )
    batch_norm = None
    if normalizers:
        batch_norm = _read_batch_norm_values(fields[normalizers[0]])
        batch_norm["synchronized"] = normalizers[0] == "sync_batch_norm"
    kernel_regularizer = None
    if fields.has("regularizer"):
        kernel_regularizer = _read_regularizer(fields["regularizer"])
    kernel_initializer = "glorot_uniform"
    if fields.has("initializer"):
        kernel_initializer = _read_kernel_initializer(fields["initializer"])
    return ConvHyperparams(
        kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer,
        regularize_depthwise=fields["regularize_depthwise"],
        activation=_ACTIVATIONS[str(fields["activation"])],
        batch_norm=batch_norm,
        force_use_bias=fields["force_use_bias"],
    )


def _read_batch_norm_values(node):
    """Reads a TF OD API `BatchNorm` message → `ConvHyperparams.batch_norm` dict."""
    fields = read(
        node,
        {
            "decay": Float(default=0.999),
            "epsilon": Float(default=0.001),
            "center": Bool(default=True),
            "scale": Bool(default=False),
            "train": Bool(default=True),
        },
    )
    for name in ("decay", "epsilon"):
        low, high = (0.0, 1.0) if name == "decay" else (0.0, None)
        value = fields[name]
        if value < low or (high is not None and value > high) or (name == "epsilon" and value == 0):
            expected = "in [0, 1]" if name == "decay" else "positive"
            raise fields.error(
                name, f"'{fields.path(name)}' is {show(value)}, but it must be {expected}"
            )
    return {
        "momentum": fields["decay"],
        "epsilon": fields["epsilon"],
        "center": fields["center"],
        "scale": fields["scale"],
        "train": fields["train"],
    }


def _read_kernel_initializer(node):
    """Reads a TF OD API `Initializer` → the Keras initializer the TF OD API Keras builder
    builds from it."""
    if any(field.name == "keras_initializer_by_name" for field in node.message.fields):
        return _keras_initializer_by_name(node)
    chosen = read_one_of(node, tuple(_INITIALIZER_SCHEMAS))
    values = read(chosen, _INITIALIZER_SCHEMAS[chosen.name])
    if chosen.name in ("truncated_normal_initializer", "random_normal_initializer"):
        if values["stddev"] < 0:
            raise values.error(
                "stddev",
                f"'{values.path('stddev')}' is {show(values['stddev'])}, but a standard "
                "deviation must not be negative",
            )
        kind = (
            keras.initializers.TruncatedNormal
            if chosen.name == "truncated_normal_initializer"
            else keras.initializers.RandomNormal
        )
        return kind(mean=values["mean"], stddev=values["stddev"])
    if values["factor"] <= 0:
        raise values.error(
            "factor",
            f"'{values.path('factor')}' is {show(values['factor'])}, but it must be positive",
        )
    return keras.initializers.VarianceScaling(
        scale=values["factor"],
        mode=_VARIANCE_SCALING_MODES[str(values["mode"])],
        distribution="uniform" if values["uniform"] else "truncated_normal",
    )


def _keras_initializer_by_name(node):
    """`initializer { keras_initializer_by_name: "he_normal" }` → that Keras initializer."""
    # The only string field of the `Initializer` oneof (read_one_of reads message fields).
    schema = {name: SubMessage() for name in _INITIALIZER_SCHEMAS}
    fields = read(node, {**schema, "keras_initializer_by_name": String()})
    others = [name for name in schema if fields.has(name)]
    if others:
        raise fields.error(
            others[0],
            f"'{node.path}' sets both 'keras_initializer_by_name' and '{others[0]}'; only one "
            "of them is allowed",
        )
    name = fields["keras_initializer_by_name"]
    try:
        return keras.initializers.get(name)
    except ValueError:
        raise fields.error(
            "keras_initializer_by_name",
            f"'{fields.path('keras_initializer_by_name')}' is {show(name)}, which is not a "
            "Keras initializer name (e.g. 'glorot_uniform', 'he_normal', 'zeros')",
        ) from None


_INITIALIZER_SCHEMAS = {
    "truncated_normal_initializer": {"mean": Float(default=0.0), "stddev": Float(default=1.0)},
    "random_normal_initializer": {"mean": Float(default=0.0), "stddev": Float(default=1.0)},
    "variance_scaling_initializer": {
        "factor": Float(default=2.0),
        "uniform": Bool(default=False),
        "mode": Enum(("FAN_IN", "FAN_OUT", "FAN_AVG"), default="FAN_IN"),
    },
}


def _read_regularizer(node):
    """Reads a TF OD API `Regularizer` → the Keras kernel regularizer it means.

    Returns:
        `keras.regularizers.L1(w)` for `l1_regularizer { weight: w }`,
        `keras.regularizers.L2(0.5 * w)` for `l2_regularizer { weight: w }`, or None for weight
        0.0 (it would add nothing).
    """
    chosen = read_one_of(node, ("l1_regularizer", "l2_regularizer"))
    fields = read(chosen, {"weight": Float(default=1.0)})
    weight = fields["weight"]
    if weight < 0.0:
        raise fields.error(
            "weight",
            f"'{fields.path('weight')}' is {show(weight)}, but a regularization weight must not "
            "be negative",
        )
    if weight == 0.0:
        return None
    if chosen.name == "l1_regularizer":
        return keras.regularizers.L1(weight)
    # The weight means TF1 slim's l2_regularizer(w): w * tf.nn.l2_loss(x) = w * sum(x²) / 2,
    # while Keras's L2(l) is l * sum(x²). The TF OD API's Keras hyperparams builder
    # (object_detection/builders/hyperparams_builder.py, _build_keras_regularizer) builds
    # tf.keras.regularizers.l2(weight * 0.5) for the same reason.
    return keras.regularizers.L2(0.5 * weight)
