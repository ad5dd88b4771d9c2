"""Which variable of a TF OD API checkpoint (TF2 object-based or TF1 name-based) each weight of
a kdet model is.

TF2 object-based checkpoints name a variable by the attribute path of the object that owns it
(`model/_feature_extractor/feature_map_generator/convolutions/2/0/kernel/...`), and the layers
of a Keras functional body by position (`classification_backbone/layer_with_weights-17/...`),
not by layer name. So each kdet component maps *by structure*: a list of its layers with
weights, in order, beside the checkpoint's layer paths under one prefix, in natural order
(`layer_with_weights-2` before `-10`); the counts must agree, and every weight's shape is
checked before anything is assigned (`kdet.checkpoints.restore_tfod_checkpoint`).

TF1 name-based checkpoints (`model.ckpt`, as TF1 training and the TF1 zoo write them, and the
slim classification checkpoints such as `resnet_v1_50.ckpt`) name a variable by its TF-Slim scope
(`FeatureExtractor/MobilenetV2/expanded_conv_3/expand/weights`). kdet layers carry those scopes
in their names, so a TF1 mapping turns a layer name into its slim scope (`SlimLayerPair`); the
slim names of the weights inside a scope (`weights`, `depthwise_weights`, `biases`,
`BatchNorm/gamma`, ...) are `slim_weight_names` (a `keras.layers.SeparableConv2D` is one slim
`separable_conv2d`: `depthwise_weights` and `pointwise_weights` in one scope).

A component class registers its mappings with `register_tf2_mapping` / `register_tf1_mapping`;
kdet's own mappings are the modules of `kdet.checkpoints.mappings` (one per architecture family
and checkpoint version), which `kdet.checkpoints` imports.
"""

import dataclasses
import re

import keras

from kdet.checkpoints.tfod_checkpoint import VARIABLE_SUFFIX
from kdet.checkpoints.tfod_checkpoint import CheckpointError

# Parts of a detection model, for `fine_tune_checkpoint_type`: "classification" restores the
# backbone, "detection" the feature extractor (backbone and the layers on it: extra layers,
# FPN), "full" everything.
BACKBONE = "backbone"
EXTRACTOR = "extractor"
HEADS = "heads"

# TF attribute name of a Keras 3 weight, where the two differ.
_TF_WEIGHT_NAMES = {keras.layers.DepthwiseConv2D: {"kernel": "depthwise_kernel"}}

# TF-Slim name of each Keras weight after its layer's scope, by layer type: slim keeps a
# convolution's batch norm in the convolution's scope (`Conv/BatchNorm/gamma`).
_SLIM_WEIGHT_NAMES = (
    (
        keras.layers.BatchNormalization,
        {name: f"BatchNorm/{name}" for name in ("gamma", "beta", "moving_mean", "moving_variance")},
    ),
    (keras.layers.DepthwiseConv2D, {"kernel": "depthwise_weights", "bias": "biases"}),
    # slim's `separable_conv2d` (with `num_outputs`) keeps both kernels in one scope.
    (
        keras.layers.SeparableConv2D,
        {
            "depthwise_kernel": "depthwise_weights",
            "pointwise_kernel": "pointwise_weights",
            "bias": "biases",
        },
    ),
    (keras.layers.Conv2D, {"kernel": "weights", "bias": "biases"}),
    (keras.layers.Dense, {"kernel": "weights", "bias": "biases"}),
)
# Last component of every TF-Slim weight name (`weights`, `gamma`, ...): what tells a TF1
# model variable, e.g. among the constants of a frozen graph.
SLIM_VARIABLE_LEAVES = frozenset(
    name.rsplit("/", 1)[-1] for _, names in _SLIM_WEIGHT_NAMES for name in names.values()
)

_MAPPINGS = {}
_TF1_MAPPINGS = {}


@dataclasses.dataclass(frozen=True)
class LayerPair:
    """One kdet layer with weights and the checkpoint path of its TF OD API counterpart.

    Attributes:
        layer: a `keras.layers.Layer` owning weights (no sublayers with weights).
        path: its object path in the checkpoint, e.g.
            `model/_feature_extractor/classification_backbone/layer_with_weights-3`.
        part: `BACKBONE`, `EXTRACTOR` or `HEADS`.
    """

    layer: object
    path: str
    part: str

    def assignments(self):
        """`[(kdet variable, checkpoint key)]` for the layer's weights."""
        names = {}
        for cls, renamed in _TF_WEIGHT_NAMES.items():
            if isinstance(self.layer, cls):
                names = renamed
        leaves = [_leaf(variable) for variable in self.layer.weights]
        return [
            (variable, f"{self.path}/{names.get(leaf, leaf)}{VARIABLE_SUFFIX}")
            for variable, leaf in zip(self.layer.weights, leaves)
        ]


@dataclasses.dataclass(frozen=True)
class SlimLayerPair:
    """One kdet layer with weights and the TF-Slim scope of its TF OD API TF1 counterpart.

    Attributes:
        layer: a `keras.layers.Layer` owning weights (a convolution, dense or batch norm).
        path: the slim scope of its variables in a TF1 checkpoint, e.g.
            `FeatureExtractor/MobilenetV2/expanded_conv_3/expand` (a batch norm shares the
            scope of its convolution).
        part: `BACKBONE`, `EXTRACTOR` or `HEADS`.
    """

    layer: object
    path: str
    part: str

    def assignments(self):
        """`[(kdet variable, checkpoint key)]` for the layer's weights, e.g.
        `(…/block_3_expand_BN/gamma, FeatureExtractor/MobilenetV2/expanded_conv_3/expand/
        BatchNorm/gamma)`."""
        names = slim_weight_names(self.layer)
        return [
            (variable, f"{self.path}/{names[_leaf(variable)]}") for variable in self.layer.weights
        ]

    def in_classification_checkpoint(self):
        """This pair as a slim classification checkpoint names it: the detection model's
        first scope dropped (`FeatureExtractor/MobilenetV2/Conv` → `MobilenetV2/Conv`,
        `FirstStageFeatureExtractor/resnet_v1_50/conv1` → `resnet_v1_50/conv1`), as the TF OD
        API's `restore_from_classification_checkpoint_fn` renames its variables."""
        return dataclasses.replace(self, path=self.path.split("/", 1)[-1])


def slim_weight_names(layer):
    """`{Keras weight name: TF-Slim name within the layer's scope}` for `layer`.

    Raises:
        CheckpointError: a layer type TF-Slim names no weights of.
    """
    for cls, names in _SLIM_WEIGHT_NAMES:
        if isinstance(layer, cls):
            return names
    raise CheckpointError(
        f"Keras layer {layer.name} ({type(layer).__name__}) has no TF-Slim weight names"
    )


def _leaf(variable):
    return variable.path.rsplit("/", 1)[-1]


def register_tf2_mapping(cls):
    """Decorator: `function(component, prefix, shapes)` → list of `LayerPair` for instances
    of `cls` (and subclasses without their own), `prefix` being the component's object path
    and `shapes` the checkpoint's `{key: shape}` (`TFODCheckpoint.shapes`)."""

    def register(function):
        _MAPPINGS[cls] = function
        return function

    return register


def tf2_layer_pairs(component, prefix, shapes):
    """The `LayerPair`s of `component` (a kdet model or one of its components) under the
    checkpoint object path `prefix` of a checkpoint with variables `shapes` ({key: shape}).

    Raises:
        CheckpointError: no mapping for the component's class.
    """
    for cls in type(component).__mro__:
        if cls in _MAPPINGS:
            return _MAPPINGS[cls](component, prefix, shapes)
    raise CheckpointError(
        f"kdet cannot map TF OD API TF2 checkpoints into a {type(component).__name__} yet"
    )


def register_tf1_mapping(cls):
    """Decorator: `function(component, scope)` → list of `SlimLayerPair` for instances of
    `cls` (and subclasses without their own), `scope` being the slim scope the component's
    variables live under in a TF1 detection checkpoint (`""` for a whole model)."""

    def register(function):
        _TF1_MAPPINGS[cls] = function
        return function

    return register


def tf1_layer_pairs(component, scope=""):
    """The `SlimLayerPair`s of `component` (a kdet model or one of its components) whose
    variables live under the slim scope `scope` of a TF1 checkpoint.

    Raises:
        CheckpointError: no TF1 mapping for the component's class.
    """
    for cls in type(component).__mro__:
        if cls in _TF1_MAPPINGS:
            return _TF1_MAPPINGS[cls](component, scope)
    raise CheckpointError(
        f"kdet cannot map TF OD API TF1 (name-based) checkpoints into a "
        f"{type(component).__name__} yet"
    )


def slim_scope(*parts):
    """`parts` joined by `/`, empty ones left out: `slim_scope("", "BoxPredictor_0")` is
    `BoxPredictor_0`."""
    return "/".join(part for part in parts if part)


def slim_pairs(layers, scope, scope_of_layer, part):
    """A `SlimLayerPair` under `scope` for each layer of `layers` owning weights, its scope
    within `scope` given by `scope_of_layer(layer name)`.

    Raises:
        CheckpointError: `scope_of_layer` returns None for a layer (no slim counterpart).
    """
    pairs = []
    for layer in layers:
        if not layer.weights:
            continue
        layer_scope = scope_of_layer(layer.name)
        if layer_scope is None:
            raise CheckpointError(
                f"Keras layer {layer.name} has no TF-Slim scope under {scope or 'the root'}"
            )
        pairs.append(SlimLayerPair(layer, slim_scope(scope, layer_scope), part))
    return pairs


def weighted_layers(layer):
    """The layers owning weights in `layer` (itself, or its nested models' layers), in order."""
    sublayers = getattr(layer, "layers", None)
    if sublayers is None:
        return [layer] if layer.weights else []
    return [leaf for sublayer in sublayers for leaf in weighted_layers(sublayer)]


def checkpoint_layer_paths(shapes, prefix):
    """The distinct object paths under `prefix` that own variables, in natural order
    (`.../2/...` before `.../10/...`)."""
    start = prefix + "/"
    paths = {
        key[: -len(VARIABLE_SUFFIX)].rsplit("/", 1)[0]
        for key in shapes
        if key.startswith(start)
    }
    return sorted(paths, key=_natural_key)


def _natural_key(path):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"[/-]", path)]


def paired(layers, shapes, prefix, part, checkpoint_layers=None):
    """`layers` beside the checkpoint's layer paths under `prefix`: one to one, or, given
    `checkpoint_layers` (how many layers with weights the checkpoint must hold there), beside
    the first `len(layers)` of them, the others left unread.

    Raises:
        CheckpointError: the numbers differ (the message gives both and the prefix).
    """
    paths = checkpoint_layer_paths(shapes, prefix)
    expected = len(layers) if checkpoint_layers is None else checkpoint_layers
    if len(paths) != expected:
        read = "" if checkpoint_layers is None else f"; it reads the first {len(layers)}"
        raise CheckpointError(
            f"the checkpoint has {len(paths)} layers with weights under {prefix}/, the kdet "
            f"model {expected} ({', '.join(layer.name for layer in layers[:3])}, …{read}): "
            "the config does not describe the model that wrote the checkpoint"
        )
    return [LayerPair(layer, path, part) for layer, path in zip(layers, paths)]


# Object path of the backbone in a TF2 classification checkpoint: `model_lib_v2` restores
# `tf.train.Checkpoint(feature_extractor=<the Keras classification backbone>)` for
# `fine_tune_checkpoint_type: "classification"`.
TF2_CLASSIFICATION_PREFIX = "feature_extractor"

_CLASSIFICATION_BACKBONES = {}


def register_tf2_classification_backbone(cls, checkpoint_layers=None):
    """Decorator: `function(extractor)` → the layers with weights of `cls`'s backbone in the
    order of the TF OD API's Keras classification model (`layer_with_weights-N` of a TF2
    classification checkpoint), for instances of `cls` and subclasses without their own.

    `checkpoint_layers`: `None` when those layers are the whole classification model; else
    `function(extractor)` → the number of layers with weights of the whole classification
    model, whose first ones the backbone is (EfficientDet's EfficientNet stops at its last
    pyramid level, before the remaining blocks, top convolution and classifier that the TF OD
    API restores into its `classification_backbone` and never computes with): a checkpoint
    must hold that many, and kdet leaves the others unread (`TFODRestore.unused`)."""

    def register(function):
        _CLASSIFICATION_BACKBONES[cls] = (function, checkpoint_layers)
        return function

    return register


def body_layers(extractor):
    """The layers with weights of `extractor.body`: the classification backbone of the
    extractors whose body is one Keras model (register it with
    `register_tf2_classification_backbone`)."""
    return weighted_layers(extractor.body)


def tf2_classification_backbone_pairs(extractor, shapes):
    """The `LayerPair`s a TF2 classification checkpoint with variables `shapes` restores in
    `extractor` (under `TF2_CLASSIFICATION_PREFIX`).

    Raises:
        CheckpointError: no backbone registered for the extractor's class, or the checkpoint
            holds another number of layers than its classification model.
    """
    for cls in type(extractor).__mro__:
        if cls in _CLASSIFICATION_BACKBONES:
            layers_of, checkpoint_layers_of = _CLASSIFICATION_BACKBONES[cls]
            return paired(
                layers_of(extractor),
                shapes,
                TF2_CLASSIFICATION_PREFIX,
                BACKBONE,
                checkpoint_layers=checkpoint_layers_of and checkpoint_layers_of(extractor),
            )
    raise CheckpointError(
        f"kdet cannot map TF2 classification checkpoints into a {type(extractor).__name__} yet"
    )
