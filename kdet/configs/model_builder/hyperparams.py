"""TF OD API `Hyperparams` messages (`conv_hyperparams`, `fc_hyperparams`)."""

import dataclasses

import keras

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.field_reader import show
from kdet.configs.text_format import Identifier

# -- conv_hyperparams / fc_hyperparams: what each kdet layer uses ---------------------------


@dataclasses.dataclass(frozen=True)
class _Initializer:
    """A kernel initializer as a TF OD API `Initializer`: its oneof field and values."""

    kind: str
    values: dict

    def describe(self):
        values = ", ".join(f"{name} {show(value)}" for name, value in self.values.items())
        return f"{self.kind} ({values})"


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    """The batch norm after a kdet layer's convolutions; `required=False`: the layer has it
    only when the config sets `batch_norm`."""

    decay: float
    epsilon: float
    required: bool = True


# A layer whose activation or batch norm is not applied (by kdet nor by the TF OD API): any
# value is accepted.
UNUSED = "unused"


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """What the convolutions (or dense layers) of one kdet layer use, in TF OD API
    `Hyperparams` terms.

    `activation` is an enum name or `UNUSED`; `batch_norm` a `BatchNorm`, `None` (the layer
    has none) or `UNUSED`.
    """

    layer: str
    initializer: _Initializer
    activation: str = "RELU_6"
    batch_norm: object = None
    op: str = "CONV"


def truncated_normal(stddev):
    return _Initializer("truncated_normal_initializer", {"mean": 0.0, "stddev": stddev})


def random_normal(stddev):
    return _Initializer("random_normal_initializer", {"mean": 0.0, "stddev": stddev})


_FPN_BATCH_NORM = BatchNorm(decay=0.997, epsilon=1e-3)
_FEATURE_PYRAMID_HYPERPARAMS = Hyperparams(
    "kdet's FeaturePyramid", truncated_normal(0.03), batch_norm=_FPN_BATCH_NORM
)
# Feature extractor type → the layers `conv_hyperparams` describes (the ones kdet adds to the
# backbone, and the backbone too for an extractor given
# `override_base_feature_extractor_hyperparams: true`; its regularizer also goes to the
# backbone of SSD extractors). Each of these extractors takes `kernel_regularizer`. Other
# extractors, yours included, take no `conv_hyperparams`.
EXTRACTOR_HYPERPARAMS = {
    "ssd_mobilenet_v2": Hyperparams(
        "kdet's ssd_mobilenet_v2 extra layers",
        truncated_normal(0.03),
        batch_norm=BatchNorm(decay=0.9997, epsilon=1e-3),
    ),
    "ssd_mobilenet_v2_fpn": Hyperparams(
        "kdet's FPNLite FeaturePyramid", random_normal(0.01), batch_norm=_FPN_BATCH_NORM
    ),
    "ssd_mobilenet_v1_fpn": Hyperparams(
        "kdet's ssd_mobilenet_v1_fpn FeaturePyramid (and body, with "
        "override_base_feature_extractor_hyperparams)",
        random_normal(0.01),
        batch_norm=_FPN_BATCH_NORM,
    ),
    "ssd_resnet50_v1_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
    "faster_rcnn_resnet50_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
    "faster_rcnn_mobilenet_v2_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
}
# The TF OD API ignores the activation of the RPN and box classifier hyperparams (its RPN
# convolution always uses ReLU6, its dense predictors none).
RPN_HYPERPARAMS = Hyperparams(
    "kdet's RPNHead", truncated_normal(0.01), activation=UNUSED, batch_norm=None
)
BOX_CLASSIFIER_HYPERPARAMS = Hyperparams(
    "kdet's BoxClassifierHead",
    _Initializer(
        "variance_scaling_initializer",
        {"factor": 1.0, "uniform": True, "mode": Identifier("FAN_AVG")},
    ),
    activation=UNUSED,
    batch_norm=None,
    op="FC",
)

_INITIALIZER_SCHEMAS = {
    "truncated_normal_initializer": {"mean": Float(default=0.0), "stddev": Float(default=1.0)},
    "random_normal_initializer": {"mean": Float(default=0.0), "stddev": Float(default=1.0)},
    "variance_scaling_initializer": {
        "factor": Float(default=2.0),
        "uniform": Bool(default=False),
        "mode": Enum(("FAN_IN", "FAN_OUT", "FAN_AVG"), default="FAN_IN"),
    },
}
_ACTIVATION = Enum(("NONE", "RELU", "RELU_6", "SWISH"), default="RELU")


@dataclasses.dataclass(frozen=True)
class _LayerHyperparams:
    """What a `Hyperparams` message sets for its kdet layer beyond the values `Hyperparams`
    fixes: whether it has `batch_norm`, and the layer's regularization arguments."""

    batch_norm: bool = False
    kernel_regularizer: object = None
    regularize_depthwise: bool = False

    def regularization(self, takes_regularize_depthwise=True):
        """`kernel_regularizer` (and `regularize_depthwise`) arguments of the layer.

        A layer without depthwise convolutions takes no `regularize_depthwise`: either value
        of the field then means the same, as in the TF OD API.
        """
        arguments = {"kernel_regularizer": self.kernel_regularizer}
        if takes_regularize_depthwise:
            arguments["regularize_depthwise"] = self.regularize_depthwise
        return arguments


def read_hyperparams(node, spec):
    """Reads a TF OD API `Hyperparams` message (`conv_hyperparams`, `fc_hyperparams`).

    Only the initializer, activation and batch norm values of the kdet layer described by
    `spec` are accepted; the regularizer and `regularize_depthwise` become its arguments.
    `node` None (the message is absent) reads as no batch norm and no regularizer.

    Returns:
        A `_LayerHyperparams`.
    """
    if node is None:
        return _LayerHyperparams()
    activation = _ACTIVATION if spec.activation == UNUSED else Fixed(_ACTIVATION, spec.activation)
    fields = read(
        node,
        {
            "op": Fixed(Enum(("CONV", "FC"), default="CONV"), spec.op),
            "regularizer": SubMessage(),
            "initializer": SubMessage(),
            "activation": activation,
            "batch_norm": SubMessage(),
            "regularize_depthwise": Bool(default=False),
            "force_use_bias": Fixed(Bool(default=False), False),
        },
    )
    kernel_regularizer = None
    if fields.has("regularizer"):
        kernel_regularizer = _read_regularizer(fields["regularizer"])
    if fields.has("initializer"):
        _read_initializer(fields["initializer"], spec)
    return _LayerHyperparams(
        batch_norm=_read_batch_norm(fields, spec),
        kernel_regularizer=kernel_regularizer,
        regularize_depthwise=fields["regularize_depthwise"],
    )


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


def _read_initializer(node, spec):
    """Reads a TF OD API `Initializer`: it must be the kernel initializer of `spec`'s layer."""
    chosen = read_one_of(node, tuple(_INITIALIZER_SCHEMAS))
    initializer = spec.initializer
    if chosen.name != initializer.kind:
        raise chosen.error(
            f"'{chosen.path}' is set, but the kernel initializer of {spec.layer} is "
            f"{initializer.describe()}"
        )
    schema = _INITIALIZER_SCHEMAS[chosen.name]
    read(chosen, {name: Fixed(schema[name], value) for name, value in initializer.values.items()})


def _read_batch_norm(fields, spec):
    """Reads the `batch_norm` of a `Hyperparams` message against `spec.batch_norm`.

    Returns:
        bool. Whether `batch_norm` is set.
    """
    node, expected = fields["batch_norm"], spec.batch_norm
    if node is None:
        if isinstance(expected, BatchNorm) and expected.required:
            raise fields.node.error(
                f"'{fields.node.path}' sets no batch_norm, but {spec.layer} applies batch norm "
                f"(decay {expected.decay}, epsilon {expected.epsilon}, scale true)"
            )
        return False
    if expected is None:
        raise fields.error("batch_norm", f"'{node.path}' is set, but {spec.layer} has none")
    schema = {
        "decay": Float(default=0.999),
        "epsilon": Float(default=0.001),
        "center": Bool(default=True),
        "scale": Bool(default=False),
        "train": Bool(default=True),
    }
    if isinstance(expected, BatchNorm):
        kdet_values = {
            "decay": expected.decay, "epsilon": expected.epsilon,
            "center": True, "scale": True, "train": True,
        }  # fmt: skip
        schema = {name: Fixed(schema[name], kdet_values[name]) for name in schema}
    read(node, schema)
    return True
