"""TF OD API `SsdFeatureExtractor` / `FasterRcnnFeatureExtractor` messages → registered kdet
feature extractors."""

import inspect

import keras

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import String
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import same_value
from kdet.configs.field_reader import show
from kdet.configs.model_builder.common import construct
from kdet.configs.model_builder.hyperparams import read_conv_hyperparams
from kdet.feature_extractors import FasterRCNNFeatureExtractor
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.feature_extractors import available_feature_extractors
from kdet.feature_extractors import get_feature_extractor_class

# -- feature extractors ---------------------------------------------------------------------

SSD_FEATURE_EXTRACTOR_SCHEMA = {
    "type": String(required=True),
    "depth_multiplier": Float(default=1.0),
    "min_depth": Int(default=16),
    "use_depthwise": Bool(default=False),
    # Field 6 of older ssd.proto versions (ssd_mobilenet_v2_coco.config sets it).
    "batch_norm_trainable": Bool(default=True),
    "fpn": SubMessage(),
    "conv_hyperparams": SubMessage(),
    "override_base_feature_extractor_hyperparams": Bool(default=False),
    "pad_to_multiple": Int(default=1, minimum=1),
    "use_explicit_padding": Bool(default=False),
    "bifpn": SubMessage(),
    # A TF OD API export switch (a placeholder instead of the preprocessing ops): the
    # extractor computes the same either way.
    "replace_preprocessor_with_placeholder": Switch(default=False),
    "num_layers": Int(default=6, minimum=1),
}
FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA = {
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
        "pad_to_multiple",
        "num_layers",
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
_BIFPN_SCHEMA = {
    "min_level": Int(default=3),
    "max_level": Int(default=7),
    # No proto default (the TF OD API would build a BiFPN of 0 passes or 0 filters).
    "num_iterations": Int(required=True, minimum=1),
    "num_filters": Int(required=True, minimum=1),
    "combine_method": String(default="fast_attention"),
    # tf.image's nearest-neighbour x2 resize or the TF OD API's own: the same numbers.
    "use_native_resize_op": Switch(default=False),
}
_BIFPN_ARGUMENTS = {
    "min_level": "bifpn_min_level",
    "max_level": "bifpn_max_level",
    "num_iterations": "bifpn_num_iterations",
    "num_filters": "bifpn_num_filters",
    "combine_method": "bifpn_combine_method",
}
KERAS_SUFFIX = "_keras"


# Why an argument the extractor does not take can only have its TF OD API default.
_NOT_TAKEN_REASONS = {
    "num_layers": (
        "kdet's SSD extractors have their fixed number of feature maps (6 for ssd_mobilenet_v2, "
        "the FPN levels for the FPN extractors)"
    ),
    "pad_to_multiple": (
        "it does not pad its preprocessed images (the TF OD API pads them bottom/right to a "
        "multiple inside the extractor; kdet's SSD extractors take pad_to_multiple)"
    ),
}


def build_feature_extractor(node, base_class, schema):
    """Reads a TF OD API `SsdFeatureExtractor` or `FasterRcnnFeatureExtractor` and builds the
    registered extractor its `type` names, a subclass of `base_class`.

    Each field becomes the constructor argument of the same name when the extractor takes it
    (kdet's, or yours): `conv_hyperparams` as a `kdet.layers.ConvHyperparams`
    (`read_conv_hyperparams`), `fpn` as `fpn_min_level`, `fpn_max_level`,
    `additional_layer_depth`, `bifpn` as `bifpn_min_level`, `bifpn_max_level`,
    `bifpn_num_iterations`, `bifpn_num_filters`, `bifpn_combine_method`, the scalars as they
    are. An extractor that does not take one accepts only its TF OD API default (an absent
    `conv_hyperparams`).
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
            reason = _NOT_TAKEN_REASONS.get(argument)
            raise fields.error(
                argument,
                f"'{fields.path(argument)}' is {show(value)}, but the '{name}' feature "
                f"extractor takes no {argument}; only {show(default)} (the TF OD API default) "
                "is accepted" + (f": {reason}" if reason else ""),
            )
    if "slim_layout" in accepted:
        # TF1 configs name the TF-Slim extractors (`ssd_mobilenet_v2`), TF2 configs the Keras
        # ones (`ssd_mobilenet_v2_keras`), whose layouts can differ.
        kwargs["slim_layout"] = not fields["type"].endswith(KERAS_SUFFIX)
    if fields.has("fpn"):
        kwargs.update(_read_fpn(fields["fpn"], name, accepted))
    if "bifpn" in schema and fields.has("bifpn"):
        kwargs.update(_read_bifpn(fields["bifpn"], name, accepted))
    hyperparams = read_conv_hyperparams(fields["conv_hyperparams"])
    if hyperparams is not None:
        if "conv_hyperparams" not in accepted:
            raise fields.error(
                "conv_hyperparams",
                f"'{fields.path('conv_hyperparams')}' is set, but the '{name}' feature "
                "extractor takes no conv_hyperparams (it adds no layers they would set up, as "
                "in the TF OD API); leave conv_hyperparams out",
            )
        kwargs["conv_hyperparams"] = hyperparams
    return construct(node, extractor_class, **kwargs)


def _feature_extractor_class(fields, base_class):
    """Returns `(name, class)` of the registered extractor the `type` field names."""
    name = fields["type"]
    registered = available_feature_extractors()
    stem = name.removesuffix(KERAS_SUFFIX)
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


def _read_bifpn(node, extractor_name, accepted):
    """Reads a TF OD API `BidirectionalFeaturePyramidNetworks` message → the extractor's BiFPN
    arguments (`bifpn_min_level`, ..., `bifpn_combine_method`)."""
    if not set(_BIFPN_ARGUMENTS.values()) <= accepted:
        raise node.error(
            f"'{node.path}' is set, but the '{extractor_name}' feature extractor has no "
            f"bidirectional feature pyramid (it takes no {', '.join(_BIFPN_ARGUMENTS.values())})"
        )
    fields = read(node, _BIFPN_SCHEMA)
    return {argument: fields[name] for name, argument in _BIFPN_ARGUMENTS.items()}
