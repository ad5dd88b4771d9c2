"""Builds a `kdet.SSD` or `kdet.FasterRCNN` from the `model { ... }` block of a TF OD API
`pipeline.config`.

```python
model = kdet.configs.model_builder.build_model_from_text(open("pipeline.config").read(),
                                                         source="pipeline.config")
model.compile()
```

Every field of the block is either applied or rejected with a `ConfigError` at its
`source:line:column:`; nothing is silently ignored. An absent field means its TF OD API
default, as it does to the TF OD API (e.g. `convolutional_box_predictor { }` has
`use_dropout: true` and `kernel_size: 1`). Each message kind is read by one `_build_*` or
`_read_*` function against a schema (see `kdet.configs.field_reader`), and the docs tables
(`docs/ssd.md`, `docs/faster_rcnn.md`) say which kdet argument each field sets.

Fields kdet cannot change are accepted only with kdet's value (`box_code_size: 4`,
`iou_similarity {}`, `add_background_class: true`, batch norm decay, epsilon and
initializers equal to those of the kdet layer, `first_stage_nms_score_threshold: 0.0`, ...).
Implementation switches whose values compute the same thing
(`use_matmul_crop_and_resize`, `use_static_shapes`, `inplace_batchnorm_update`,
`use_matmul_gather`, the deprecated `anchorwise_output`) are accepted with either value.

Mappings to note:
- A hyperparams `regularizer` becomes the `kernel_regularizer` of the layers it configures:
  `l2_regularizer { weight: w }` → `keras.regularizers.L2(0.5 * w)` (the weight is TF1 slim's,
  `w * sum(x²) / 2`; the TF OD API's Keras builder halves it too), `l1_regularizer` → `L1(w)`,
  weight 0.0 → none. Feature extractor `conv_hyperparams` go to the SSD extractor's
  convolutions, backbone included (the TF OD API regularizes the backbone with its own weight,
  4e-5 for MobileNetV2, the sample configs' value), or to a Faster R-CNN FPN extractor's
  pyramid; box predictor `conv_hyperparams` to the SSD box predictor;
  `first_stage_box_predictor_conv_hyperparams` to the RPN head
  (`first_stage_box_predictor_kernel_regularizer`); `fc_hyperparams` to `BoxClassifierHead`.
  `regularize_depthwise: true` regularizes the depthwise kernels too (the field's documented
  meaning); layers without depthwise convolutions take either value.
- `resize_method: BILINEAR` (the default) is kdet's `"legacy_bilinear"`: the TF OD API resizes
  with TF1 `resize_images`; `AREA` is `"area"`; `NEAREST_NEIGHBOR` and `BICUBIC` are rejected,
  since kdet's versions sample at pixel centres and the TF OD API's do not.
- Feature extractor `type` names a registered extractor (yours too); a TF2 name with a
  `_keras` suffix (`ssd_mobilenet_v2_fpn_keras`) names the kdet extractor without it. Each of
  `depth_multiplier`, `min_depth`, `use_depthwise`, `use_explicit_padding`,
  `batch_norm_trainable`, `override_base_feature_extractor_hyperparams`,
  `first_stage_features_stride` and the `fpn` levels goes to the extractor when its
  constructor takes that argument, and is otherwise accepted only with its TF OD API default;
  without `fpn { }` an FPN extractor keeps its own levels, as in the TF OD API. With
  `override_base_feature_extractor_hyperparams: true` the `conv_hyperparams` set up the
  extractor's body too (its batch norm decay and initializer are then the ones checked).
- Faster R-CNN FPN extractors crop with multilevel RoIAlign straight at the pooled size
  `(initial_crop_size - maxpool_kernel_size) // maxpool_stride + 1` (`roi_align_crop_size`)
  instead of cropping at `initial_crop_size` and max-pooling.
- The TF OD API does not add the groundtruth boxes to the second-stage proposals, so models
  built here pass `add_groundtruth_to_proposals=False`.

Before any field is read, `check_architecture` refuses a config that needs what kdet does not
have yet (CenterNet, R-FCN, Context R-CNN, instance masks, a TF OD API feature extractor such as
EfficientDet's), naming it: that is the first error of such a config, not a field that only
follows from it.
"""

import dataclasses
import functools
import inspect

import keras

from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
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
from kdet.configs.field_reader import same_value
from kdet.configs.field_reader import show
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.configs.text_format import parse
from kdet.feature_extractors import FasterRCNNFeatureExtractor
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.feature_extractors import available_feature_extractors
from kdet.feature_extractors import get_feature_extractor_class
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.image_resizer import LEGACY_BILINEAR
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator
from kdet.losses import SigmoidFocalClassificationLoss
from kdet.losses import WeightedL2LocalizationLoss
from kdet.losses import WeightedSigmoidClassificationLoss
from kdet.losses import WeightedSmoothL1LocalizationLoss
from kdet.losses import WeightedSoftmaxClassificationLoss
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import FasterRCNN
from kdet.models.ssd import SSD
from kdet.models.ssd import ConvolutionalBoxPredictor
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor
from kdet.targets.argmax_matcher import ArgmaxMatcher
from kdet.targets.hard_example_miner import HardExampleMiner

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
class _BatchNorm:
    """The batch norm after a kdet layer's convolutions; `required=False`: the layer has it
    only when the config sets `batch_norm`."""

    decay: float
    epsilon: float
    required: bool = True


# A layer whose activation or batch norm is not applied (by kdet nor by the TF OD API): any
# value is accepted.
_UNUSED = "unused"


@dataclasses.dataclass(frozen=True)
class _Hyperparams:
    """What the convolutions (or dense layers) of one kdet layer use, in TF OD API
    `Hyperparams` terms.

    `activation` is an enum name or `_UNUSED`; `batch_norm` a `_BatchNorm`, `None` (the layer
    has none) or `_UNUSED`.
    """

    layer: str
    initializer: _Initializer
    activation: str = "RELU_6"
    batch_norm: object = None
    op: str = "CONV"


def _truncated_normal(stddev):
    return _Initializer("truncated_normal_initializer", {"mean": 0.0, "stddev": stddev})


def _random_normal(stddev):
    return _Initializer("random_normal_initializer", {"mean": 0.0, "stddev": stddev})


_FPN_BATCH_NORM = _BatchNorm(decay=0.997, epsilon=1e-3)
_FEATURE_PYRAMID_HYPERPARAMS = _Hyperparams(
    "kdet's FeaturePyramid", _truncated_normal(0.03), batch_norm=_FPN_BATCH_NORM
)
# Feature extractor type → the layers `conv_hyperparams` describes (the ones kdet adds to the
# backbone, and the backbone too for an extractor given
# `override_base_feature_extractor_hyperparams: true`; its regularizer also goes to the
# backbone of SSD extractors). Each of these extractors takes `kernel_regularizer`. Other
# extractors, yours included, take no `conv_hyperparams`.
_EXTRACTOR_HYPERPARAMS = {
    "ssd_mobilenet_v2": _Hyperparams(
        "kdet's ssd_mobilenet_v2 extra layers",
        _truncated_normal(0.03),
        batch_norm=_BatchNorm(decay=0.9997, epsilon=1e-3),
    ),
    "ssd_mobilenet_v2_fpn": _Hyperparams(
        "kdet's FPNLite FeaturePyramid", _random_normal(0.01), batch_norm=_FPN_BATCH_NORM
    ),
    "ssd_mobilenet_v1_fpn": _Hyperparams(
        "kdet's ssd_mobilenet_v1_fpn FeaturePyramid (and body, with "
        "override_base_feature_extractor_hyperparams)",
        _random_normal(0.01),
        batch_norm=_FPN_BATCH_NORM,
    ),
    "ssd_resnet50_v1_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
    "faster_rcnn_resnet50_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
    "faster_rcnn_mobilenet_v2_fpn": _FEATURE_PYRAMID_HYPERPARAMS,
}
# The TF OD API ignores the activation of the RPN and box classifier hyperparams (its RPN
# convolution always uses ReLU6, its dense predictors none).
_RPN_HYPERPARAMS = _Hyperparams(
    "kdet's RPNHead", _truncated_normal(0.01), activation=_UNUSED, batch_norm=None
)
_BOX_CLASSIFIER_HYPERPARAMS = _Hyperparams(
    "kdet's BoxClassifierHead",
    _Initializer(
        "variance_scaling_initializer",
        {"factor": 1.0, "uniform": True, "mode": Identifier("FAN_AVG")},
    ),
    activation=_UNUSED,
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
    """What a `Hyperparams` message sets for its kdet layer beyond the values `_Hyperparams`
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


def _read_hyperparams(node, spec):
    """Reads a TF OD API `Hyperparams` message (`conv_hyperparams`, `fc_hyperparams`).

    Only the initializer, activation and batch norm values of the kdet layer described by
    `spec` are accepted; the regularizer and `regularize_depthwise` become its arguments.
    `node` None (the message is absent) reads as no batch norm and no regularizer.

    Returns:
        A `_LayerHyperparams`.
    """
    if node is None:
        return _LayerHyperparams()
    activation = _ACTIVATION if spec.activation == _UNUSED else Fixed(_ACTIVATION, spec.activation)
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
        if isinstance(expected, _BatchNorm) and expected.required:
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
    if isinstance(expected, _BatchNorm):
        kdet_values = {
            "decay": expected.decay, "epsilon": expected.epsilon,
            "center": True, "scale": True, "train": True,
        }  # fmt: skip
        schema = {name: Fixed(schema[name], kdet_values[name]) for name in schema}
    read(node, schema)
    return True


# -- image resizers -------------------------------------------------------------------------

_RESIZE_METHOD = Enum(
    {"BILINEAR": LEGACY_BILINEAR, "AREA": "area"},
    default="BILINEAR",
    unsupported=dict.fromkeys(
        ("NEAREST_NEIGHBOR", "BICUBIC"),
        "the TF OD API resizes with TF1 resize_images (no half-pixel centres), which kdet "
        "reproduces for BILINEAR and AREA only",
    ),
)
_GRAYSCALE = Fixed(Bool(default=False), False, "kdet models take RGB images")


def _build_fixed_shape_resizer(node):
    """Reads a TF OD API `FixedShapeResizer` → `kdet.layers.FixedShapeResizer`."""
    fields = read(
        node,
        {
            "height": Int(default=300, minimum=1),
            "width": Int(default=300, minimum=1),
            "resize_method": _RESIZE_METHOD,
            "convert_to_grayscale": _GRAYSCALE,
        },
    )
    return FixedShapeResizer(fields["height"], fields["width"], fields["resize_method"])


def _build_keep_aspect_ratio_resizer(node):
    """Reads a TF OD API `KeepAspectRatioResizer` → `kdet.layers.KeepAspectRatioResizer`."""
    fields = read(
        node,
        {
            "min_dimension": Int(default=600, minimum=1),
            "max_dimension": Int(default=1024, minimum=1),
            "resize_method": _RESIZE_METHOD,
            "pad_to_max_dimension": Bool(default=False),
            "convert_to_grayscale": _GRAYSCALE,
        },
    )
    return _construct(
        node,
        KeepAspectRatioResizer,
        min_dimension=fields["min_dimension"],
        max_dimension=fields["max_dimension"],
        pad_to_max_dimension=fields["pad_to_max_dimension"],
        resize_method=fields["resize_method"],
    )


_IMAGE_RESIZERS = {
    "fixed_shape_resizer": _build_fixed_shape_resizer,
    "keep_aspect_ratio_resizer": _build_keep_aspect_ratio_resizer,
}


def _build_image_resizer(node):
    """Reads a TF OD API `ImageResizer` (a oneof) → a kdet image resizer."""
    chosen = read_one_of(node, tuple(_IMAGE_RESIZERS))
    return _IMAGE_RESIZERS[chosen.name](chosen)


# -- feature extractors ---------------------------------------------------------------------

_SSD_FEATURE_EXTRACTOR_SCHEMA = {
    "type": String(required=True),
    "depth_multiplier": Float(default=1.0),
    "min_depth": Int(default=16),
    "use_depthwise": Bool(default=False),
    # Field 6 of older ssd.proto versions (ssd_mobilenet_v2_coco.config sets it).
    "batch_norm_trainable": Bool(default=True),
    "fpn": SubMessage(),
    "conv_hyperparams": SubMessage(),
    "override_base_feature_extractor_hyperparams": Bool(default=False),
    "pad_to_multiple": Fixed(Int(default=1), 1, "kdet does not pad the resized images"),
    "use_explicit_padding": Bool(default=False),
}
_FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA = {
    "type": String(required=True),
    "first_stage_features_stride": Int(default=16),
    "batch_norm_trainable": Bool(default=False),
    "fpn": SubMessage(),
    "conv_hyperparams": SubMessage(),
    "override_base_feature_extractor_hyperparams": Bool(default=False),
}
# Scalar fields of each feature extractor message that become constructor arguments of the
# same name.
_EXTRACTOR_ARGUMENTS = {
    SSDFeatureExtractor: (
        "depth_multiplier",
        "min_depth",
        "use_depthwise",
        "use_explicit_padding",
        "batch_norm_trainable",
        "override_base_feature_extractor_hyperparams",
    ),
    FasterRCNNFeatureExtractor: (
        "first_stage_features_stride",
        "batch_norm_trainable",
        "override_base_feature_extractor_hyperparams",
    ),
}
_FPN_SCHEMA = {
    "min_level": Int(default=3),
    "max_level": Int(default=7),
    "additional_layer_depth": Int(default=256, minimum=1),
}
_FPN_ARGUMENTS = {
    "min_level": "fpn_min_level",
    "max_level": "fpn_max_level",
    "additional_layer_depth": "additional_layer_depth",
}
_KERAS_SUFFIX = "_keras"


def _build_feature_extractor(node, base_class, schema):
    """Reads a TF OD API `SsdFeatureExtractor` or `FasterRcnnFeatureExtractor` and builds the
    registered extractor its `type` names, a subclass of `base_class`.
    """
    fields = read(node, schema)
    name, extractor_class = _feature_extractor_class(fields, base_class)
    accepted = _constructor_arguments(extractor_class)
    kwargs = {}
    for argument in _EXTRACTOR_ARGUMENTS[base_class]:
        value, default = fields[argument], schema[argument].default
        if argument in accepted:
            kwargs[argument] = value
        elif not same_value(value, default):
            raise fields.error(
                argument,
                f"'{fields.path(argument)}' is {show(value)}, but the '{name}' feature "
                f"extractor takes no {argument}; only {show(default)} (the TF OD API default) "
                "is accepted",
            )
    if fields.has("fpn"):
        kwargs.update(_read_fpn(fields["fpn"], name, accepted))
    if fields.has("conv_hyperparams"):
        if name not in _EXTRACTOR_HYPERPARAMS:
            raise fields.error(
                "conv_hyperparams",
                f"'{fields.path('conv_hyperparams')}' is set, but kdet does not know the layer "
                f"settings of the '{name}' feature extractor, so it cannot honour them; leave "
                "conv_hyperparams out",
            )
        hyperparams = _read_hyperparams(fields["conv_hyperparams"], _EXTRACTOR_HYPERPARAMS[name])
        kwargs.update(hyperparams.regularization("regularize_depthwise" in accepted))
    return _construct(node, extractor_class, **kwargs)


def _feature_extractor_class(fields, base_class):
    """Returns `(name, class)` of the registered extractor the `type` field names."""
    name = fields["type"]
    registered = available_feature_extractors()
    stem = name.removesuffix(_KERAS_SUFFIX)
    if name not in registered and stem in registered:
        name = stem
    try:
        extractor_class = get_feature_extractor_class(name)
    except ValueError as error:
        raise fields.error(
            "type",
            f"'{fields.path('type')}': {error}. A feature extractor of your own is registered "
            "when the module defining it is imported: kdet train --import MODULE (a module "
            "name or a .py file; every kdet command takes it), or import it in Python before "
            "loading the config",
        ) from None
    if not issubclass(extractor_class, base_class):
        family = [n for n in registered if issubclass(get_feature_extractor_class(n), base_class)]
        raise fields.error(
            "type",
            f"'{fields.path('type')}' is '{name}', which is not a subclass of "
            f"{base_class.__name__}; '{fields.node.path}' takes one of {family}",
        )
    return name, extractor_class


def _constructor_arguments(cls):
    """The keyword arguments `cls(...)` takes, following `**kwargs` up to the Keras layer."""
    names = set()
    for klass in cls.__mro__:
        if klass is keras.layers.Layer:
            break
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def _read_fpn(node, extractor_name, accepted):
    """Reads a TF OD API `FeaturePyramidNetworks` message → the extractor's FPN arguments."""
    fields = read(node, _FPN_SCHEMA)
    if not set(_FPN_ARGUMENTS.values()) <= accepted:
        raise node.error(
            f"'{node.path}' is set, but the '{extractor_name}' feature extractor has no feature "
            f"pyramid (it takes no {', '.join(_FPN_ARGUMENTS.values())})"
        )
    return {argument: fields[name] for name, argument in _FPN_ARGUMENTS.items()}


# -- anchor generators ----------------------------------------------------------------------


def _build_ssd_anchor_generator(node):
    """Reads a TF OD API `SsdAnchorGenerator` → `kdet.layers.SSDAnchorGenerator`."""
    fields = read(
        node,
        {
            "num_layers": Int(default=6, minimum=1),
            "min_scale": Float(default=0.2),
            "max_scale": Float(default=0.95),
            "scales": Repeated(Float()),
            "aspect_ratios": Repeated(Float()),
            "interpolated_scale_aspect_ratio": Float(default=1.0),
            "reduce_boxes_in_lowest_layer": Bool(default=True),
            "base_anchor_height": Float(default=1.0),
            "base_anchor_width": Float(default=1.0),
            "height_stride": Repeated(Int()),
            "width_stride": Repeated(Int()),
            "height_offset": Repeated(Int()),
            "width_offset": Repeated(Int()),
        },
    )
    return _construct(
        node,
        SSDAnchorGenerator,
        num_layers=fields["num_layers"],
        min_scale=fields["min_scale"],
        max_scale=fields["max_scale"],
        scales=fields["scales"] or None,
        aspect_ratios=fields["aspect_ratios"],
        interpolated_scale_aspect_ratio=fields["interpolated_scale_aspect_ratio"],
        base_anchor_size=(fields["base_anchor_height"], fields["base_anchor_width"]),
        anchor_strides=_per_layer_pairs(fields, "height_stride", "width_stride"),
        anchor_offsets=_per_layer_pairs(fields, "height_offset", "width_offset"),
        reduce_boxes_in_lowest_layer=fields["reduce_boxes_in_lowest_layer"],
    )


def _per_layer_pairs(fields, y_name, x_name):
    """Zips two repeated fields into `(y, x)` pairs, or None when both are empty."""
    ys, xs = fields[y_name], fields[x_name]
    if not ys and not xs:
        return None
    if len(ys) != len(xs):
        raise fields.error(
            x_name if len(xs) > len(ys) else y_name,
            f"'{fields.node.path}' has {len(ys)} {y_name} and {len(xs)} {x_name} values; "
            "they pair up per layer, so their numbers must be equal",
        )
    return list(zip(ys, xs))


def _build_multiscale_anchor_generator(node, normalize_coordinates, frame):
    """Reads a TF OD API `MultiscaleAnchorGenerator` → `MultiscaleGridAnchorGenerator`.

    `normalize_coordinates` is the only value the meta-architecture works with in the TF OD API
    (`frame` says why); kdet's anchor generators always return normalized anchors.
    """
    fields = read(
        node,
        {
            "min_level": Int(default=3),
            "max_level": Int(default=7),
            "anchor_scale": Float(default=4.0),
            "aspect_ratios": Repeated(Float(), required=True),
            "scales_per_octave": Int(default=2, minimum=1),
            "normalize_coordinates": Fixed(Bool(default=True), normalize_coordinates, frame),
        },
    )
    return _construct(
        node,
        MultiscaleGridAnchorGenerator,
        min_level=fields["min_level"],
        max_level=fields["max_level"],
        anchor_scale=fields["anchor_scale"],
        aspect_ratios=fields["aspect_ratios"],
        scales_per_octave=fields["scales_per_octave"],
    )


def _build_grid_anchor_generator(node):
    """Reads a TF OD API `GridAnchorGenerator` → `kdet.layers.GridAnchorGenerator`."""
    fields = read(
        node,
        {
            "height": Int(default=256),
            "width": Int(default=256),
            "height_stride": Int(default=16),
            "width_stride": Int(default=16),
            "height_offset": Int(default=0),
            "width_offset": Int(default=0),
            "scales": Repeated(Float(), required=True),
            "aspect_ratios": Repeated(Float(), required=True),
        },
    )
    return _construct(
        node,
        GridAnchorGenerator,
        scales=fields["scales"],
        aspect_ratios=fields["aspect_ratios"],
        base_anchor_size=(fields["height"], fields["width"]),
        anchor_stride=(fields["height_stride"], fields["width_stride"]),
        anchor_offset=(fields["height_offset"], fields["width_offset"]),
    )


_SSD_ANCHOR_GENERATORS = {
    "ssd_anchor_generator": _build_ssd_anchor_generator,
    "multiscale_anchor_generator": functools.partial(
        _build_multiscale_anchor_generator,
        normalize_coordinates=True,
        frame="the TF OD API SSD takes normalized anchors",
    ),
}
_FASTER_RCNN_ANCHOR_GENERATORS = {
    "grid_anchor_generator": _build_grid_anchor_generator,
    "multiscale_anchor_generator": functools.partial(
        _build_multiscale_anchor_generator,
        normalize_coordinates=False,
        frame="the TF OD API Faster R-CNN takes anchors in pixels (kdet normalizes them itself)",
    ),
}


def _build_anchor_generator(node, builders):
    """Reads a TF OD API `AnchorGenerator` (a oneof) with one of `builders`.

    Returns:
        `(name of the chosen generator, the kdet anchor generator)`.
    """
    chosen = read_one_of(node, tuple(builders))
    return chosen, builders[chosen.name](chosen)


# -- SSD components -------------------------------------------------------------------------


def _build_box_coder(node):
    """Reads a TF OD API `BoxCoder` (`faster_rcnn_box_coder` only) → `FasterRcnnBoxCoder`."""
    chosen = read_one_of(node, ("faster_rcnn_box_coder",))
    fields = read(
        chosen,
        {
            "y_scale": Float(default=10.0),
            "x_scale": Float(default=10.0),
            "height_scale": Float(default=5.0),
            "width_scale": Float(default=5.0),
        },
    )
    scales = tuple(fields[name] for name in ("y_scale", "x_scale", "height_scale", "width_scale"))
    return _construct(chosen, FasterRcnnBoxCoder, scale_factors=scales)


def _build_matcher(node):
    """Reads a TF OD API `Matcher` (`argmax_matcher` only) → `kdet.targets.ArgmaxMatcher`."""
    chosen = read_one_of(node, ("argmax_matcher",))
    fields = read(
        chosen,
        {
            "matched_threshold": Float(default=0.5),
            "unmatched_threshold": Float(default=0.5),
            "ignore_thresholds": Bool(default=False),
            "negatives_lower_than_unmatched": Bool(default=True),
            "force_match_for_each_row": Bool(default=False),
            "use_matmul_gather": Switch(),
        },
    )
    thresholds = (fields["matched_threshold"], fields["unmatched_threshold"])
    if fields["ignore_thresholds"]:
        thresholds = (None, None)
    return _construct(
        chosen,
        ArgmaxMatcher,
        matched_threshold=thresholds[0],
        unmatched_threshold=thresholds[1],
        negatives_lower_than_unmatched=fields["negatives_lower_than_unmatched"],
        force_match_for_each_row=fields["force_match_for_each_row"],
    )


def _read_similarity_calculator(node):
    """Reads a TF OD API `RegionSimilarityCalculator`: kdet matches by IoU only."""
    read(read_one_of(node, ("iou_similarity",)), {})


def _convolutional_box_predictor_hyperparams(uses_batch_norm):
    """`ConvolutionalBoxPredictor` layer settings: batch norm and ReLU6 exist only in its
    towers and depthwise heads."""
    if not uses_batch_norm:
        return _Hyperparams(
            "kdet's ConvolutionalBoxPredictor",
            _truncated_normal(0.03),
            activation=_UNUSED,
            batch_norm=_UNUSED,
        )
    return _Hyperparams(
        "kdet's ConvolutionalBoxPredictor",
        _truncated_normal(0.03),
        batch_norm=_BatchNorm(decay=0.9997, epsilon=1e-3),
    )


def _build_convolutional_box_predictor(node, num_classes, num_anchors_per_location):
    """Reads a TF OD API `ConvolutionalBoxPredictor` → `ConvolutionalBoxPredictor`.

    Its tower depth is TF OD API `max(min(channels, max_depth), min_depth)`, one fixed depth
    in kdet: `min_depth` and `max_depth` must be equal.
    """
    fields = read(
        node,
        {
            "conv_hyperparams": SubMessage(),
            "min_depth": Int(default=0, minimum=0),
            "max_depth": Int(default=0, minimum=0),
            "num_layers_before_predictor": Int(default=0, minimum=0),
            "use_dropout": Bool(default=True),
            "dropout_keep_probability": Float(default=0.8),
            "kernel_size": Int(default=1, minimum=1),
            "box_code_size": Fixed(Int(default=4), 4),
            "apply_sigmoid_to_scores": Fixed(
                Bool(default=False), False, "scores are converted in post_processing"
            ),
            "class_prediction_bias_init": Float(default=0.0),
            "use_depthwise": Bool(default=False),
        },
    )
    depth = fields["max_depth"]
    if fields["min_depth"] != depth:
        raise fields.error(
            "min_depth",
            f"'{fields.node.path}' has min_depth {fields['min_depth']} and max_depth {depth}, "
            "but kdet's tower has one fixed depth: set them equal",
        )
    num_layers = fields["num_layers_before_predictor"]
    uses_batch_norm = fields["use_depthwise"] or (depth > 0 and num_layers > 0)
    hyperparams = _read_hyperparams(
        fields["conv_hyperparams"], _convolutional_box_predictor_hyperparams(uses_batch_norm)
    )
    return _construct(
        node,
        ConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        kernel_size=fields["kernel_size"],
        num_layers_before_predictor=num_layers,
        depth=depth,
        use_depthwise=fields["use_depthwise"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        **hyperparams.regularization(),
    )


def _build_weight_shared_box_predictor(node, num_classes, num_anchors_per_location):
    """Reads a TF OD API `WeightSharedConvolutionalBoxPredictor` → kdet's.

    As in the TF OD API, the towers have batch norm exactly when `conv_hyperparams` sets
    `batch_norm`.
    """
    fields = read(
        node,
        {
            "conv_hyperparams": SubMessage(),
            "num_layers_before_predictor": Int(default=0, minimum=0),
            "depth": Int(default=0, minimum=0),
            "kernel_size": Int(default=3, minimum=1),
            "box_code_size": Fixed(Int(default=4), 4),
            "class_prediction_bias_init": Float(default=0.0),
            "use_dropout": Bool(default=False),
            "dropout_keep_probability": Float(default=0.8),
            "share_prediction_tower": Bool(default=False),
            "use_depthwise": Bool(default=False),
        },
    )
    num_layers = fields["num_layers_before_predictor"]
    has_tower = num_layers > 0
    spec = _Hyperparams(
        "kdet's WeightSharedConvolutionalBoxPredictor",
        _random_normal(0.01),
        activation="RELU_6" if has_tower else _UNUSED,
        batch_norm=_BatchNorm(0.997, 1e-3, required=False) if has_tower else _UNUSED,
    )
    hyperparams = _read_hyperparams(fields["conv_hyperparams"], spec)
    return _construct(
        node,
        WeightSharedConvolutionalBoxPredictor,
        num_classes=num_classes,
        num_anchors_per_location=num_anchors_per_location,
        depth=fields["depth"],
        num_layers_before_predictor=num_layers,
        kernel_size=fields["kernel_size"],
        use_depthwise=fields["use_depthwise"],
        apply_batch_norm=hyperparams.batch_norm,
        share_prediction_tower=fields["share_prediction_tower"],
        class_prediction_bias_init=fields["class_prediction_bias_init"],
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        **hyperparams.regularization(),
    )


_SSD_BOX_PREDICTORS = {
    "convolutional_box_predictor": _build_convolutional_box_predictor,
    "weight_shared_convolutional_box_predictor": _build_weight_shared_box_predictor,
}


def _build_ssd_box_predictor(node, num_classes, anchor_generator):
    """Reads a TF OD API `BoxPredictor` (a oneof) → an SSD box predictor."""
    chosen = read_one_of(node, tuple(_SSD_BOX_PREDICTORS))
    return _SSD_BOX_PREDICTORS[chosen.name](
        chosen, num_classes, anchor_generator.num_anchors_per_location()
    )


# -- losses -----------------------------------------------------------------------------------

# Deprecated in the TF OD API and without effect there.
_ANCHORWISE_OUTPUT = Switch()


def _build_weighted_sigmoid(node):
    """Reads a TF OD API `WeightedSigmoidClassificationLoss`."""
    read(node, {"anchorwise_output": _ANCHORWISE_OUTPUT})
    return WeightedSigmoidClassificationLoss()


def _build_weighted_softmax(node):
    """Reads a TF OD API `WeightedSoftmaxClassificationLoss` (`logit_scale`)."""
    fields = read(node, {"anchorwise_output": _ANCHORWISE_OUTPUT, "logit_scale": Float(1.0)})
    return WeightedSoftmaxClassificationLoss(logit_scale=fields["logit_scale"])


def _build_weighted_sigmoid_focal(node):
    """Reads a TF OD API `SigmoidFocalClassificationLoss` (`gamma`, `alpha`; no alpha: none)."""
    fields = read(
        node,
        {"anchorwise_output": _ANCHORWISE_OUTPUT, "gamma": Float(default=2.0), "alpha": Float()},
    )
    return SigmoidFocalClassificationLoss(gamma=fields["gamma"], alpha=fields["alpha"])


def _build_weighted_smooth_l1(node):
    """Reads a TF OD API `WeightedSmoothL1LocalizationLoss` (`delta`)."""
    fields = read(node, {"anchorwise_output": _ANCHORWISE_OUTPUT, "delta": Float(default=1.0)})
    return WeightedSmoothL1LocalizationLoss(delta=fields["delta"])


def _build_weighted_l2(node):
    """Reads a TF OD API `WeightedL2LocalizationLoss`."""
    read(node, {"anchorwise_output": _ANCHORWISE_OUTPUT})
    return WeightedL2LocalizationLoss()


_CLASSIFICATION_LOSSES = {
    "weighted_sigmoid": _build_weighted_sigmoid,
    "weighted_softmax": _build_weighted_softmax,
    "weighted_sigmoid_focal": _build_weighted_sigmoid_focal,
}
_LOCALIZATION_LOSSES = {
    "weighted_smooth_l1": _build_weighted_smooth_l1,
    "weighted_l2": _build_weighted_l2,
}
_HARD_EXAMPLE_LOSS_TYPES = {"BOTH": "both", "CLASSIFICATION": "cls", "LOCALIZATION": "loc"}


def _build_loss_choice(node, builders):
    """Reads a TF OD API `ClassificationLoss` / `LocalizationLoss` oneof with `builders`."""
    chosen = read_one_of(node, tuple(builders))
    return builders[chosen.name](chosen)


def _build_hard_example_miner(node, classification_weight, localization_weight):
    """Reads a TF OD API `HardExampleMiner` → `kdet.targets.HardExampleMiner`.

    As in the TF OD API, 0 hard examples or negatives per positive mean no limit, and
    `loss_type: BOTH` ranks by the loss weights of the enclosing `loss` message.
    """
    fields = read(
        node,
        {
            "num_hard_examples": Int(default=64, minimum=0),
            "iou_threshold": Float(default=0.7),
            "loss_type": Enum(_HARD_EXAMPLE_LOSS_TYPES, default="BOTH"),
            "max_negatives_per_positive": Int(default=0, minimum=0),
            "min_negatives_per_image": Int(default=0, minimum=0),
        },
    )
    loss_weights = {}
    if fields["loss_type"] == "both":
        loss_weights = {
            "cls_loss_weight": classification_weight,
            "loc_loss_weight": localization_weight,
        }
    return _construct(
        node,
        HardExampleMiner,
        num_hard_examples=fields["num_hard_examples"] or None,
        iou_threshold=fields["iou_threshold"],
        loss_type=fields["loss_type"],
        max_negatives_per_positive=fields["max_negatives_per_positive"] or None,
        min_negatives_per_image=fields["min_negatives_per_image"],
        **loss_weights,
    )


def _build_ssd_loss(node):
    """Reads a TF OD API `Loss` message → the loss arguments of `kdet.SSD`."""
    fields = read(
        node,
        {
            "classification_loss": SubMessage(required=True),
            "localization_loss": SubMessage(required=True),
            "hard_example_miner": SubMessage(),
            "classification_weight": Float(default=1.0),
            "localization_weight": Float(default=1.0),
        },
    )
    weights = (fields["classification_weight"], fields["localization_weight"])
    miner = fields["hard_example_miner"]
    return {
        "classification_loss": _build_loss_choice(
            fields["classification_loss"], _CLASSIFICATION_LOSSES
        ),
        "localization_loss": _build_loss_choice(fields["localization_loss"], _LOCALIZATION_LOSSES),
        "hard_example_miner": (
            None if miner is None else _build_hard_example_miner(miner, *weights)
        ),
        "classification_weight": weights[0],
        "localization_weight": weights[1],
    }


# -- post-processing --------------------------------------------------------------------------

_BATCH_NON_MAX_SUPPRESSION_SCHEMA = {
    "score_threshold": Float(default=0.0),
    "iou_threshold": Float(default=0.6),
    "max_detections_per_class": Int(default=100, minimum=1),
    "max_total_detections": Int(default=100, minimum=1),
    "use_static_shapes": Switch(),
    "use_class_agnostic_nms": Fixed(Bool(default=False), False, "kdet runs per-class NMS"),
    "max_classes_per_detection": Fixed(Int(default=1), 1),
    "soft_nms_sigma": Fixed(Float(default=0.0), 0.0, "kdet runs hard NMS"),
}
# `batch_non_max_suppression` field → the kdet model argument it sets.
_NON_MAX_SUPPRESSION_ARGUMENTS = {
    "score_threshold": "score_threshold",
    "iou_threshold": "iou_threshold",
    "max_detections_per_class": "max_detections_per_class",
    "max_total_detections": "max_detections",
}
_SCORE_CONVERTER_NAMES = ("IDENTITY", "SIGMOID", "SOFTMAX")
_SSD_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Enum(
        {"SIGMOID": "sigmoid", "SOFTMAX": "softmax"},
        default="IDENTITY",
        unsupported={"IDENTITY": "kdet's SSD turns logits into scores with SIGMOID or SOFTMAX"},
    ),
    "logit_scale": Float(default=1.0),
}
_FASTER_RCNN_POST_PROCESSING_SCHEMA = {
    "batch_non_max_suppression": SubMessage(),
    "score_converter": Fixed(Enum(_SCORE_CONVERTER_NAMES, default="IDENTITY"), "SOFTMAX"),
    "logit_scale": Fixed(Float(default=1.0), 1.0),
}


def _read_batch_non_max_suppression(node):
    """Reads a TF OD API `BatchNonMaxSuppression` (None: all defaults) → model arguments."""
    if node is None:
        return {
            argument: _BATCH_NON_MAX_SUPPRESSION_SCHEMA[name].default
            for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()
        }
    fields = read(node, _BATCH_NON_MAX_SUPPRESSION_SCHEMA)
    return {argument: fields[name] for name, argument in _NON_MAX_SUPPRESSION_ARGUMENTS.items()}


def _read_ssd_post_processing(node):
    """Reads an SSD TF OD API `PostProcessing` → `kdet.SSD` arguments."""
    fields = read(node, _SSD_POST_PROCESSING_SCHEMA)
    return {
        **_read_batch_non_max_suppression(fields["batch_non_max_suppression"]),
        "score_converter": fields["score_converter"],
        "logit_scale": fields["logit_scale"],
    }


def _read_faster_rcnn_post_processing(node):
    """Reads a `second_stage_post_processing` `PostProcessing` → `kdet.FasterRCNN` arguments
    (the score converter is always SOFTMAX)."""
    fields = read(node, _FASTER_RCNN_POST_PROCESSING_SCHEMA)
    return _read_batch_non_max_suppression(fields["batch_non_max_suppression"])


# -- the meta-architectures -------------------------------------------------------------------

_SSD_SCHEMA = {
    "num_classes": Int(required=True, minimum=1),
    "image_resizer": SubMessage(required=True),
    "feature_extractor": SubMessage(required=True),
    "box_coder": SubMessage(required=True),
    "matcher": SubMessage(required=True),
    "similarity_calculator": SubMessage(required=True),
    "anchor_generator": SubMessage(required=True),
    "box_predictor": SubMessage(required=True),
    "loss": SubMessage(required=True),
    "post_processing": SubMessage(required=True),
    "normalize_loss_by_num_matches": Bool(default=True),
    "normalize_loc_loss_by_codesize": Bool(default=False),
    "encode_background_as_zeros": Bool(default=False),
    "add_background_class": Fixed(
        Bool(default=True), True, "kdet's SSD predicts a background column"
    ),
    "negative_class_weight": Fixed(Float(default=1.0), 1.0),
    "freeze_batchnorm": Bool(default=False),
    "inplace_batchnorm_update": Switch(),
}


def _build_ssd(node):
    """Reads a TF OD API `Ssd` message → `kdet.SSD`."""
    fields = read(node, _SSD_SCHEMA)
    num_classes = fields["num_classes"]
    _read_similarity_calculator(fields["similarity_calculator"])
    _, anchor_generator = _build_anchor_generator(
        fields["anchor_generator"], _SSD_ANCHOR_GENERATORS
    )
    components = {
        "image_resizer": _build_image_resizer(fields["image_resizer"]),
        "box_predictor": _build_ssd_box_predictor(
            fields["box_predictor"], num_classes, anchor_generator
        ),
        "box_coder": _build_box_coder(fields["box_coder"]),
        "matcher": _build_matcher(fields["matcher"]),
        **_build_ssd_loss(fields["loss"]),
        **_read_ssd_post_processing(fields["post_processing"]),
    }
    # The extractor last: it is the slow part to build.
    extractor = _build_feature_extractor(
        fields["feature_extractor"], SSDFeatureExtractor, _SSD_FEATURE_EXTRACTOR_SCHEMA
    )
    return _construct(
        node,
        SSD,
        num_classes=num_classes,
        feature_extractor=extractor,
        anchor_generator=anchor_generator,
        normalize_loss_by_num_matches=fields["normalize_loss_by_num_matches"],
        normalize_loc_loss_by_codesize=fields["normalize_loc_loss_by_codesize"],
        encode_background_as_zeros=fields["encode_background_as_zeros"],
        freeze_batchnorm=fields["freeze_batchnorm"],
        **components,
    )


_FASTER_RCNN_SCHEMA = {
    "num_classes": Int(required=True, minimum=1),
    "number_of_stages": Fixed(Int(default=2), 2, "kdet builds the full two-stage model"),
    "image_resizer": SubMessage(required=True),
    "feature_extractor": SubMessage(required=True),
    "first_stage_anchor_generator": SubMessage(required=True),
    "first_stage_atrous_rate": Fixed(Int(default=1), 1),
    "first_stage_box_predictor_conv_hyperparams": SubMessage(),
    "first_stage_box_predictor_kernel_size": Int(default=3, minimum=1),
    "first_stage_box_predictor_depth": Int(default=512, minimum=1),
    "first_stage_minibatch_size": Int(default=256, minimum=1),
    "first_stage_positive_balance_fraction": Float(default=0.5),
    "first_stage_nms_score_threshold": Fixed(Float(default=0.0), 0.0),
    "first_stage_nms_iou_threshold": Float(default=0.7),
    "first_stage_max_proposals": Int(default=300, minimum=1),
    "first_stage_localization_loss_weight": Float(default=1.0),
    "first_stage_objectness_loss_weight": Float(default=1.0),
    "initial_crop_size": Int(required=True, minimum=1),
    "maxpool_kernel_size": Int(required=True, minimum=1),
    "maxpool_stride": Int(required=True, minimum=1),
    "second_stage_box_predictor": SubMessage(required=True),
    "second_stage_batch_size": Int(default=64, minimum=1),
    "second_stage_balance_fraction": Float(default=0.25),
    "second_stage_post_processing": SubMessage(required=True),
    "second_stage_localization_loss_weight": Float(default=1.0),
    "second_stage_classification_loss_weight": Float(default=1.0),
    "second_stage_classification_loss": SubMessage(),
    "inplace_batchnorm_update": Switch(),
    "use_matmul_crop_and_resize": Switch(),
    "use_static_shapes": Switch(),
}


def _build_first_stage_anchor_generator(node, extractor):
    """Reads `first_stage_anchor_generator`: a grid for single-map extractors, multiscale over
    the pyramid levels for FPN extractors."""
    chosen, generator = _build_anchor_generator(node, _FASTER_RCNN_ANCHOR_GENERATORS)
    if not extractor.is_fpn:
        if chosen.name != "grid_anchor_generator":
            raise chosen.error(
                f"'{chosen.path}' is set, but the feature extractor has one feature map: use "
                "grid_anchor_generator"
            )
        return generator
    levels = (extractor.fpn_min_level, extractor.fpn_max_level)
    if chosen.name != "multiscale_anchor_generator" or levels != (
        generator.min_level,
        generator.max_level,
    ):
        raise chosen.error(
            f"'{chosen.path}' does not match the FPN feature extractor: use "
            f"multiscale_anchor_generator with min_level {levels[0]} and max_level {levels[1]}"
        )
    return generator


def _read_second_stage_classification_loss(node):
    """Reads `second_stage_classification_loss`: kdet's Faster R-CNN uses `weighted_softmax`."""
    chosen = read_one_of(node, tuple(_CLASSIFICATION_LOSSES))
    if chosen.name != "weighted_softmax":
        raise chosen.error(
            f"'{chosen.path}' is set, but kdet's Faster R-CNN always uses weighted_softmax"
        )
    read(chosen, {"anchorwise_output": _ANCHORWISE_OUTPUT, "logit_scale": Fixed(Float(1.0), 1.0)})


def _build_mask_rcnn_box_predictor(node, num_classes):
    """Reads a TF OD API `MaskRCNNBoxPredictor` (boxes only) → `BoxClassifierHead`."""
    fields = read(
        node,
        {
            "fc_hyperparams": SubMessage(),
            "use_dropout": Bool(default=False),
            "dropout_keep_probability": Float(default=0.5),
            "box_code_size": Fixed(Int(default=4), 4),
            "predict_instance_masks": Fixed(
                Bool(default=False), False, "kdet's Faster R-CNN predicts no masks"
            ),
            "share_box_across_classes": Fixed(
                Bool(default=False), False, "kdet predicts one box per class"
            ),
        },
    )
    hyperparams = _read_hyperparams(fields["fc_hyperparams"], _BOX_CLASSIFIER_HYPERPARAMS)
    return _construct(
        node,
        BoxClassifierHead,
        num_classes=num_classes,
        use_dropout=fields["use_dropout"],
        dropout_keep_probability=fields["dropout_keep_probability"],
        # Dense layers: no depthwise kernels for regularize_depthwise to change.
        **hyperparams.regularization(takes_regularize_depthwise=False),
    )


def _build_second_stage_box_predictor(node, num_classes):
    """Reads `second_stage_box_predictor` (`mask_rcnn_box_predictor` only)."""
    chosen = read_one_of(node, ("mask_rcnn_box_predictor",))
    return _build_mask_rcnn_box_predictor(chosen, num_classes)


def _crop_arguments(fields, extractor):
    """`initial_crop_size`, `maxpool_kernel_size`, `maxpool_stride` → `kdet.FasterRCNN`
    arguments; FPN extractors RoIAlign straight at the pooled size."""
    crop_size, kernel_size, stride = (
        fields[name] for name in ("initial_crop_size", "maxpool_kernel_size", "maxpool_stride")
    )
    if kernel_size > crop_size:
        raise fields.error(
            "maxpool_kernel_size",
            f"'{fields.path('maxpool_kernel_size')}' is {kernel_size}, larger than "
            f"initial_crop_size {crop_size}",
        )
    crop = {
        "initial_crop_size": crop_size,
        "maxpool_kernel_size": kernel_size,
        "maxpool_stride": stride,
    }
    if extractor.is_fpn:
        crop["roi_align_crop_size"] = (crop_size - kernel_size) // stride + 1
    return crop


def _build_faster_rcnn(node):
    """Reads a TF OD API `FasterRcnn` message → `kdet.FasterRCNN`."""
    fields = read(node, _FASTER_RCNN_SCHEMA)
    num_classes = fields["num_classes"]
    extractor = _build_feature_extractor(
        fields["feature_extractor"],
        FasterRCNNFeatureExtractor,
        _FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA,
    )
    rpn_hyperparams = _read_hyperparams(
        fields["first_stage_box_predictor_conv_hyperparams"], _RPN_HYPERPARAMS
    )
    if fields.has("second_stage_classification_loss"):
        _read_second_stage_classification_loss(fields["second_stage_classification_loss"])
    scalars = {
        name: fields[name]
        for name in (
            "first_stage_box_predictor_depth",
            "first_stage_box_predictor_kernel_size",
            "first_stage_nms_iou_threshold",
            "first_stage_max_proposals",
            "first_stage_minibatch_size",
            "first_stage_positive_balance_fraction",
            "first_stage_localization_loss_weight",
            "first_stage_objectness_loss_weight",
            "second_stage_batch_size",
            "second_stage_balance_fraction",
            "second_stage_localization_loss_weight",
            "second_stage_classification_loss_weight",
        )
    }
    return _construct(
        node,
        FasterRCNN,
        num_classes=num_classes,
        feature_extractor=extractor,
        image_resizer=_build_image_resizer(fields["image_resizer"]),
        first_stage_anchor_generator=_build_first_stage_anchor_generator(
            fields["first_stage_anchor_generator"], extractor
        ),
        # The RPN head has no depthwise kernels for regularize_depthwise to change.
        first_stage_box_predictor_kernel_regularizer=rpn_hyperparams.kernel_regularizer,
        second_stage_box_predictor=_build_second_stage_box_predictor(
            fields["second_stage_box_predictor"], num_classes
        ),
        add_groundtruth_to_proposals=False,
        **scalars,
        **_crop_arguments(fields, extractor),
        **_read_faster_rcnn_post_processing(fields["second_stage_post_processing"]),
    )


def _construct(node, factory, **kwargs):
    """Calls `factory(**kwargs)`; a `ValueError` it raises becomes a `ConfigError` at `node`."""
    try:
        return factory(**kwargs)
    except ValueError as error:
        raise node.error(f"'{node.path}': {error}") from None


_MODEL_BUILDERS = {"ssd": _build_ssd, "faster_rcnn": _build_faster_rcnn}


# -- what kdet does not have yet --------------------------------------------------------------
# A config that needs a meta-architecture, a feature extractor or a model output kdet does not
# have yet fails with that fact first, at the field that asks for it, before any other field of
# the config is read (`check_architecture`): a Mask R-CNN config says "instance masks", not that
# `number_of_stages: 3` differs from kdet's value, nor that its learning rate schedule is refused.

# The issues of the project that add them.
_EXTRACTORS_ISSUE = 17
_CENTER_NET_ISSUE = 18
_TWO_STAGE_VARIANTS_ISSUE = 19

# `model { … }` oneof fields of the TF OD API (`model.proto`, `center_net.proto`,
# `detr.proto`) that kdet does not build: field → (what it is, the issue that adds it or None).
_MISSING_META_ARCHITECTURES = {
    "center_net": ("CenterNet", _CENTER_NET_ISSUE),
    "detr": ("DETR", None),
    "experimental_model": ("an experimental meta-architecture of the TF OD API's own registry",
                           None),
}
# `center_net { … }` task fields → what they add to CenterNet and the issue that adds it.
_CENTER_NET_TASKS = {
    "keypoint_estimation_task": ("keypoints", _CENTER_NET_ISSUE),
    "mask_estimation_task": ("instance masks", _TWO_STAGE_VARIANTS_ISSUE),
    "deepmac_mask_estimation": ("DeepMAC instance masks", _TWO_STAGE_VARIANTS_ISSUE),
    "densepose_estimation_task": ("DensePose", None),
    "track_estimation_task": ("tracking", None),
    "temporal_offset_task": ("temporal offsets", None),
}
# TF OD API feature extractor types (without the TF2 `_keras` suffix) that kdet has no
# extractor for yet → what they are.
_MISSING_FEATURE_EXTRACTORS = {
    "ssd_mobilenet_v1": "MobileNet v1",
    "embedded_ssd_mobilenet_v1": "MobileNet v1 for embedded devices",
    "ssd_mobilenet_v1_ppn": "MobileNet v1 with a pooling pyramid",
    "ssd_mobilenet_v2_mnasfpn": "MobileNet v2 with MnasFPN",
    "ssd_mobilenet_v3_large": "MobileNet v3 Large",
    "ssd_mobilenet_v3_small": "MobileNet v3 Small",
    "ssd_mobilenet_edgetpu": "MobileNet EdgeTPU",
    **{f"ssd_mobiledet_{kind}": f"MobileDet {kind.upper()}" for kind in ("cpu", "dsp", "gpu")},
    "ssd_mobiledet_edgetpu": "MobileDet EdgeTPU",
    "ssd_inception_v2": "Inception v2",
    "ssd_inception_v3": "Inception v3",
    "ssd_pnasnet": "PNASNet",
    **{f"ssd_resnet{depth}_v1_fpn": f"ResNet-{depth} v1 FPN" for depth in (101, 152)},
    **{f"ssd_resnet{depth}_v1_ppn": f"ResNet-{depth} v1 with a pooling pyramid"
       for depth in (50, 101, 152)},
    **{f"ssd_efficientnet-b{index}_bifpn": f"EfficientDet: EfficientNet-B{index} with BiFPN"
       for index in range(8)},
    "faster_rcnn_inception_v2": "Inception v2",
    "faster_rcnn_inception_resnet_v2": "Inception-ResNet v2",
    "faster_rcnn_nas": "NASNet-A",
    "faster_rcnn_pnas": "PNASNet",
    "faster_rcnn_resnet152": "ResNet-152 v1",
    **{f"faster_rcnn_resnet{depth}_fpn": f"ResNet-{depth} v1 FPN" for depth in (101, 152)},
}
# The kdet model class of each meta-architecture, for "kdet's SSD feature extractors: …".
_FEATURE_EXTRACTOR_BASES = {"ssd": SSDFeatureExtractor, "faster_rcnn": FasterRCNNFeatureExtractor}


@dataclasses.dataclass(frozen=True)
class _Gap:
    """Something a config needs that kdet does not have yet.

    `rank` orders the gaps of one config for the error (0: meta-architecture, 1: a variant of
    it or a model output, 2: a feature extractor); `field` is where the config asks for it,
    `problem` the whole error text after `source:line:column:`, `short` how the error names it
    when another gap comes first.
    """

    rank: int
    source: str
    field: object
    problem: str
    short: str


def _issue(issue):
    return f"issue {issue}" if issue else "not planned"


def _not_in_kdet(issue, verb="is"):
    """`is not in kdet yet (issue N)`, or `is not in kdet (not planned)` without an issue."""
    return f"{verb} not in kdet {'yet ' if issue else ''}({_issue(issue)})"


def _model_gaps(node):
    """The `_Gap`s of the `model { … }` message of `node`, in the order errors name them."""
    gaps = []
    for field in node.message.fields:
        path = f"{node.path}.{field.name}"
        if field.name in _MISSING_META_ARCHITECTURES:
            what, issue = _MISSING_META_ARCHITECTURES[field.name]
            gaps.append(_Gap(
                0, node.message.source, field,
                f"'{path}': {what} {_not_in_kdet(issue)}; kdet builds ssd and faster_rcnn "
                "models",
                f"{what} ({_issue(issue)})",
            ))
            if field.name == "center_net" and isinstance(field.value, Message):
                gaps += _center_net_gaps(Node(field.value, path))
        elif field.name in _MODEL_BUILDERS and isinstance(field.value, Message):
            child = Node(field.value, path)
            gaps += _two_stage_variant_gaps(child) if field.name == "faster_rcnn" else []
            gaps += _mask_gaps(child, "Mask R-CNN" if field.name == "faster_rcnn" else
                               "an SSD mask head")
            gaps += _feature_extractor_gaps(child, _FEATURE_EXTRACTOR_BASES[field.name])
    return sorted(gaps, key=lambda gap: (gap.rank, gap.field.line, gap.field.column))


def _center_net_gaps(node):
    """The tasks of a `center_net { … }` message beyond boxes (keypoints, masks, …)."""
    gaps = []
    for field in node.message.fields:
        if field.name in _CENTER_NET_TASKS:
            what, issue = _CENTER_NET_TASKS[field.name]
            gaps.append(_Gap(
                1, node.message.source, field,
                f"'{node.path}.{field.name}': CenterNet {what} {_not_in_kdet(issue, 'are')}",
                f"{what} ({field.name}, {_issue(issue)})",
            ))
    return gaps


def _two_stage_variant_gaps(node):
    """R-FCN and Context R-CNN in a `faster_rcnn { … }` message."""
    gaps = []
    for field in node.message.fields:
        path = f"{node.path}.{field.name}"
        if field.name == "context_config":
            gaps.append(_Gap(
                1, node.message.source, field,
                f"'{path}': Context R-CNN (attention over context features) is not in kdet yet "
                f"(issue {_TWO_STAGE_VARIANTS_ISSUE})",
                f"Context R-CNN (issue {_TWO_STAGE_VARIANTS_ISSUE})",
            ))
        if field.name == "second_stage_box_predictor" and isinstance(field.value, Message):
            gaps += [
                _Gap(
                    1, node.message.source, predictor,
                    f"'{path}.{predictor.name}': R-FCN is not in kdet yet (issue "
                    f"{_TWO_STAGE_VARIANTS_ISSUE}); kdet's Faster R-CNN takes "
                    "mask_rcnn_box_predictor (boxes only)",
                    f"R-FCN (issue {_TWO_STAGE_VARIANTS_ISSUE})",
                )
                for predictor in field.value.fields
                if predictor.name == "rfcn_box_predictor"
            ]
    return gaps


def _mask_fields(node):
    """`(path, field)` of every field of `node` and its messages that asks for instance
    masks: `number_of_stages: 3`, `predict_instance_masks: true`, and the `*mask*` fields
    that configure them (`mask_height`, `second_stage_mask_prediction_loss_weight`,
    `mask_head_config`, …)."""
    for field in node.message.fields:
        path = f"{node.path}.{field.name}"
        if field.name == "number_of_stages":
            if field.value == 3:
                yield path, field
        elif field.name == "predict_instance_masks":
            if field.value is not False and field.value != 0:
                yield path, field
        elif "mask" in field.name and field.name != "mask_rcnn_box_predictor":
            # `mask_rcnn_box_predictor` is also the box-only second stage of Faster R-CNN.
            yield path, field
        elif isinstance(field.value, Message):
            yield from _mask_fields(Node(field.value, path))


def _mask_gaps(node, what):
    """The first field (in file order) of `node` that asks for instance masks, as a gap."""
    found = min(_mask_fields(node), key=lambda item: (item[1].line, item[1].column), default=None)
    if found is None:
        return []
    path, field = found
    issue = _TWO_STAGE_VARIANTS_ISSUE
    if field.name == "number_of_stages":
        problem = (f"'{path}' is 3: a third stage that predicts instance masks ({what}); instance "
                   f"masks are not in kdet yet (issue {issue})")
    elif field.name == "predict_instance_masks":
        problem = f"'{path}' is true: instance masks ({what}) are not in kdet yet (issue {issue})"
    else:
        problem = (f"'{path}' configures instance masks ({what}), which are not in kdet yet "
                   f"(issue {issue})")
    return [_Gap(1, node.message.source, field, problem,
                 f"instance masks ({what}, issue {issue})")]


def _feature_extractor_gaps(node, base_class):
    """The feature extractor `type` of `node`, when it is a TF OD API extractor kdet has not."""
    extractors = [f.value for f in node.message.fields if f.name == "feature_extractor"]
    if len(extractors) != 1 or not isinstance(extractors[0], Message):
        return []
    types = [f for f in extractors[0].fields if f.name == "type" and isinstance(f.value, str)]
    if len(types) != 1:
        return []
    field = types[0]
    name = str(field.value)
    stem = name.removesuffix(_KERAS_SUFFIX)
    registered = available_feature_extractors()
    if name in registered or stem in registered or stem not in _MISSING_FEATURE_EXTRACTORS:
        return []
    family = [
        n for n in registered if issubclass(get_feature_extractor_class(n), base_class)
    ]
    meta_architecture = "SSD" if base_class is SSDFeatureExtractor else "Faster R-CNN"
    what = f"feature extractor '{name}' ({_MISSING_FEATURE_EXTRACTORS[stem]})"
    return [_Gap(
        2, extractors[0].source, field,
        f"'{node.path}.feature_extractor.type': {what} is not in kdet yet (issue "
        f"{_EXTRACTORS_ISSUE}); kdet's {meta_architecture} feature extractors: "
        f"{', '.join(family)} (and yours, once registered: kdet train --import MODULE)",
        f"{what}, issue {_EXTRACTORS_ISSUE}",
    )]


def check_architecture(config):
    """Raises a `ConfigError` if the config needs what kdet does not have yet.

    That is a meta-architecture other than SSD and Faster R-CNN (`center_net`: CenterNet,
    `detr`, `experimental_model`), a variant of one (R-FCN's `rfcn_box_predictor`, Context
    R-CNN's `context_config`, instance masks: `number_of_stages: 3`, `predict_instance_masks:
    true` and the `mask_*` fields), or a TF OD API feature extractor kdet has no
    counterpart for (e.g. `ssd_efficientnet-b0_bifpn_keras`, EfficientDet; an extractor of
    your own, once registered, is found). Nothing else is checked, so run this before reading
    the rest of the config: the error then names the real cause, not a field that only
    follows from it. `load_pipeline` and `build_model` do.

    Args:
        config: the root `Message` of a pipeline config (every `model` field is checked), or
            the `Message` (or `Node`) of a `model { … }` block.

    Raises:
        ConfigError: `source:line:column: 'field': … is not in kdet yet (issue N)` at the
            field that asks for it (the meta-architecture before its variants and outputs,
            before the feature extractor); when the config needs several of them, the error
            names the others too.
    """
    if isinstance(config, Node):
        models = [config]
    elif any(field.name in _MODEL_BUILDERS or field.name in _MISSING_META_ARCHITECTURES
             for field in config.fields):
        models = [Node(config, "model")]
    else:
        models = [Node(field.value, "model") for field in config.fields
                  if field.name == "model" and isinstance(field.value, Message)]
    for node in models:
        gaps = _model_gaps(node)
        if not gaps:
            continue
        first = gaps[0]
        problem = first.problem
        if len(gaps) > 1:
            problem += "; the config also needs " + ", ".join(gap.short for gap in gaps[1:])
        raise ConfigError.at(first.source, first.field.line, first.field.column, problem)


def build_model(model_message):
    """Builds the detector a TF OD API `model { ... }` block describes.

    Args:
        model_message: the `kdet.configs.text_format.Message` of the `model` block (or a
            `kdet.configs.field_reader.Node` of it); it holds exactly one of `ssd { ... }` and
            `faster_rcnn { ... }`.

    Returns:
        A `kdet.SSD` or `kdet.FasterRCNN`, not built yet (its weights are created on the first
        call or by `model.build((None, None, None, 3))`), randomly initialized.

    Raises:
        ConfigError: `source:line:column: problem` for any field kdet does not support, a value
            of the wrong type or one kdet cannot take, or a missing required field.

    Example:
    ```python
    root = kdet.configs.text_format.parse_file("pipeline.config")
    model = build_model(root.first("model"))
    ```
    """
    node = model_message
    if not isinstance(node, Node):
        node = Node(model_message, "model")
    check_architecture(node)
    kind = read_one_of(node, tuple(_MODEL_BUILDERS))
    return _MODEL_BUILDERS[kind.name](kind)


def build_model_from_text(text, source="<string>"):
    """Parses a whole `pipeline.config` text and builds the detector of its `model` field.

    The other top-level fields (`train_config`, input readers, ...) are not read here.

    Args:
        text: str. The pipeline config in protobuf text format.
        source: str. The name error messages give the text, usually its file path.

    Returns:
        A `kdet.SSD` or `kdet.FasterRCNN`, see `build_model`.

    Raises:
        ConfigError: for a syntax error, a missing or repeated `model` field, or any problem
            `build_model` reports.
    """
    models = parse(text, source).get("model")
    if not models:
        raise ConfigError.at(
            source, 1, 1, "the config has no 'model' field: expected model { ssd { ... } } or "
            "model { faster_rcnn { ... } }"
        )
    if len(models) > 1:
        first = models[0]
        raise ConfigError.at(
            source, models[1].line, models[1].column,
            f"'model' is set twice (first at {first.line}:{first.column}); a config describes "
            "one model",
        )
    model = models[0]
    if not isinstance(model.value, Message):
        raise ConfigError.at(
            source, model.line, model.column, "'model' expects a message: model { ... }"
        )
    return build_model(model.value)
