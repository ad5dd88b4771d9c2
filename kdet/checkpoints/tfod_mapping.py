"""Which variable of a TF OD API TF2 checkpoint each weight of a kdet model is.

TF2 object-based checkpoints name a variable by the attribute path of the object that owns it
(`model/_feature_extractor/feature_map_generator/convolutions/2/0/kernel/...`), and the layers
of a Keras functional body by position (`classification_backbone/layer_with_weights-17/...`),
not by layer name. So each kdet component maps *by structure*: a list of its layers with
weights, in order, beside the checkpoint's layer paths under one prefix, in natural order
(`layer_with_weights-2` before `-10`); the counts must agree, and every weight's shape is
checked before anything is assigned (`kdet.checkpoints.restore_tfod_checkpoint`).

A component class registers its mapping with `register_tf2_mapping`; kdet's own mappings are
the modules of `kdet.checkpoints.mappings` (one per architecture family), which
`kdet.checkpoints` imports.
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

_MAPPINGS = {}


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


def paired(layers, shapes, prefix, part):
    """`layers` beside the checkpoint's layer paths under `prefix`, one to one.

    Raises:
        CheckpointError: the numbers differ (the message gives both and the prefix).
    """
    paths = checkpoint_layer_paths(shapes, prefix)
    if len(paths) != len(layers):
        raise CheckpointError(
            f"the checkpoint has {len(paths)} layers with weights under {prefix}/, the kdet "
            f"model {len(layers)} ({', '.join(layer.name for layer in layers[:3])}, …): "
            "the config does not describe the model that wrote the checkpoint"
        )
    return [LayerPair(layer, path, part) for layer, path in zip(layers, paths)]
