"""Any Keras model with a feature pyramid as an SSD or Faster R-CNN feature extractor.

`from_keras_backbone(backbone, meta_architecture, preprocessing=...)` wraps a keras-hub
`Backbone` (its `pyramid_outputs`), a keras-cv backbone (its `pyramid_level_inputs`) or any
functional Keras model such as a `keras.applications` one (its maps named by layer) as

- `"ssd_fpn"`: `KerasBackboneSSDFPNFeatureExtractor`, an `SSDFPNFeatureExtractor`;
- `"faster_rcnn_fpn"`: `KerasBackboneFasterRCNNFPNFeatureExtractor`, a
  `FasterRCNNFPNFeatureExtractor`;
- `"faster_rcnn_c4"`: `KerasBackboneFasterRCNNC4FeatureExtractor`, a
  `FasterRCNNSplitBodyFeatureExtractor` cut at the backbone's map of stride
  `first_stage_features_stride`.

`register_keras_backbone(name, build_backbone, meta_architecture, preprocessing=...)` registers
one of them under `name`, so pipeline configs (`feature_extractor { type: 'name' ... }`) build
it: put the call in a module and pass it to every kdet command with `--import MODULE`.

The wrapped backbone's Keras config is part of the extractor's `get_config`, so a detector
saved as `.keras` loads back without the code that built the backbone (keras-hub and keras-cv
backbones need their package importable; an extractor registered by `register_keras_backbone`
needs its module imported, as every user-registered extractor).
"""

import difflib
import inspect
import math

import keras

from kdet.feature_extractors.faster_rcnn_fpn_feature_extractor import (
    FasterRCNNFPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_fpn_feature_extractor import SSDFPNFeatureExtractor

# The `keras.applications.imagenet_utils.preprocess_input` modes `preprocessing` may name, and
# "raw" for backbones that take pixels 0..255 (they rescale inside, e.g. keras.applications
# MobileNetV3, EfficientNet, ConvNeXt).
PREPROCESSING_MODES = ("raw", "tf", "torch", "caffe")

# Side of the square image whose symbolic pass checks each level's stride, per level of the
# coarsest map: big enough that "valid" paddings do not blur the strides.
_PROBE_SIZE_PER_STRIDE = 8


class KerasBackbone:
    """What the three wrappers share: the wrapped backbone, its pyramid and its preprocessing.

    Args:
        backbone: a functional `keras.Model` from images `[batch, height, width, 3]` (a
            keras-hub `Backbone`, a keras-cv backbone, a `keras.applications` model built with
            `include_top=False`), or its Keras serialization (what `get_config` stores). Its
            layers become the extractor's: the weights it has (pretrained or not) are the
            extractor's initial weights.
        preprocessing: how raw pixels 0..255 become the backbone's input, the scaling its
            weights were trained with: `"raw"` (unchanged: backbones that rescale inside,
            e.g. `keras.applications` MobileNetV3, EfficientNet, ConvNeXt), `"tf"`
            (`x / 127.5 - 1`), `"torch"` (`x / 255` minus the ImageNet mean, over its
            standard deviation), `"caffe"` (RGB → BGR minus the ImageNet BGR mean) — the
            modes of `keras.applications.imagenet_utils.preprocess_input`, so each
            `keras.applications` model's `preprocess_input` has its mode —, a dict
            `{"scale": s, "offset": o}` (`x * s + o`, floats or 3 per-channel lists), or a
            keras-hub `ImageConverter` (its `scale` and `offset`, e.g.
            `keras_hub.layers.ResNetImageConverter.from_preset("resnet_50_imagenet")`; its
            resizing is not used: the detector's image resizer sizes the images).
        pyramid: the backbone's maps by level, level `l` at stride `2**l`: a dict
            `{level: layer name}` (keys may be ints, `"3"` or `"P3"`), or `None` for the
            backbone's own (keras-hub `pyramid_outputs`, keras-cv `pyramid_level_inputs`).
            Every level's stride is checked by a symbolic pass. Defaults to `None`.
    """

    def _set_backbone(self, backbone, preprocessing, pyramid):
        """Returns the backbone model; sets `backbone_config`, `pyramid`, `preprocessing`."""
        if isinstance(backbone, dict):
            self.backbone_config = backbone
            backbone = keras.saving.deserialize_keras_object(backbone)
        else:
            _check_functional(backbone)
            self.backbone_config = keras.saving.serialize_keras_object(backbone)
        self.preprocessing = preprocessing_spec(preprocessing)
        self.pyramid = backbone_pyramid(backbone, pyramid)
        return backbone

    def preprocess(self, images):
        """float32 `[batch, height, width, 3]` raw pixels 0..255 → the backbone's input
        (`preprocessing`), same shape."""
        return preprocess_images(images, self.preprocessing)

    def _backbone_config_entries(self):
        return {
            "backbone": self.backbone_config,
            "preprocessing": self.preprocessing,
            "pyramid": {str(level): name for level, name in self.pyramid.items()},
        }


@keras.saving.register_keras_serializable(package="kdet")
class KerasBackboneSSDFPNFeatureExtractor(KerasBackbone, SSDFPNFeatureExtractor):
    """A Keras backbone's pyramid levels under a `FeaturePyramid`: an SSD FPN extractor.

    The backbone maps of levels `fpn_min_level..min(fpn_max_level, its top level)` feed a
    `kdet.feature_extractors.FeaturePyramid` of depth `additional_layer_depth`, which adds
    stride-2 levels up to `fpn_max_level`: `fpn_max_level - fpn_min_level + 1` maps
    `[batch, h_l, w_l, additional_layer_depth]`, finest first, level `l` at stride `2**l`
    (RetinaNet, the TF OD API SSD FPN layout). The backbone's batch norms normalize with batch
    statistics in training, as any Keras model's.

    Args:
        backbone, preprocessing, pyramid: see `KerasBackbone` (`from_keras_backbone`).
        fpn_min_level: int. Finest pyramid level; must be a level of the backbone's pyramid.
            Defaults to `3`.
        fpn_max_level: int. Coarsest pyramid level. Defaults to `7`.
        additional_layer_depth: int. Channels of the pyramid maps. Defaults to `256`.
        use_depthwise: bool. Separable 3x3 convolutions in the pyramid (FPNLite). Defaults
            to `False`.
        use_explicit_padding: bool. See `FeaturePyramid`. Defaults to `False`.
        **kwargs: `conv_hyperparams` (of the pyramid), `pad_to_multiple`, and the other
            arguments of `SSDFPNFeatureExtractor`.

    Example:
    ```python
    backbone = keras_hub.models.ResNetBackbone.from_preset("resnet_18_imagenet")
    extractor = kdet.feature_extractors.from_keras_backbone(
        backbone, "ssd_fpn", preprocessing="torch", fpn_min_level=3, fpn_max_level=7
    )
    model = kdet.SSD(num_classes=3, feature_extractor=extractor, ...)
    ```
    """

    def __init__(
        self,
        backbone,
        preprocessing,
        pyramid=None,
        fpn_min_level=3,
        fpn_max_level=7,
        additional_layer_depth=256,
        use_depthwise=False,
        use_explicit_padding=False,
        **kwargs,
    ):
        _reject_base_options(kwargs)
        super().__init__(fpn_min_level, fpn_max_level, additional_layer_depth, **kwargs)
        backbone = self._set_backbone(backbone, preprocessing, pyramid)
        self.use_depthwise = bool(use_depthwise)
        self.use_explicit_padding = bool(use_explicit_padding)
        levels = fpn_levels(self.pyramid, fpn_min_level, fpn_max_level, backbone.name)
        body = keras.Model(
            backbone.inputs,
            [backbone.get_layer(name).output for name in levels.values()],
            name=backbone.name,
        )
        self.attach_body(
            body, use_depthwise=self.use_depthwise, use_explicit_padding=self.use_explicit_padding
        )

    def get_config(self):
        config = super().get_config()
        config.update(self._backbone_config_entries())
        config["use_depthwise"] = self.use_depthwise
        config["use_explicit_padding"] = self.use_explicit_padding
        return config


@keras.saving.register_keras_serializable(package="kdet")
class KerasBackboneFasterRCNNFPNFeatureExtractor(KerasBackbone, FasterRCNNFPNFeatureExtractor):
    """A Keras backbone's pyramid levels under a `FeaturePyramid`: a Faster R-CNN FPN extractor.

    Proposal features are the pyramid levels `fpn_min_level..fpn_max_level` built on the
    backbone's maps (levels above its top one are stride-2 convolutions); the box classifier
    is the two fully connected layers of `FasterRCNNFPNFeatureExtractor` (the TF OD API
    ResNet FPN layout). Batch norms of the backbone run in inference mode unless
    `batch_norm_trainable` (the TF OD API default, for pretrained backbones): a backbone
    trained from random weights needs `batch_norm_trainable=True`, or its batch norms keep
    their initial statistics. Pick levels whose anchors fit the objects: the RoIs of objects
    below 224 px are all cropped from level `fpn_min_level` (a map of stride 8 blurs those
    of a few dozen pixels; level 2, stride 4, is the FPN paper's finest).

    Args:
        backbone, preprocessing, pyramid: see `KerasBackbone` (`from_keras_backbone`).
        fpn_min_level: int. Finest pyramid level; must be a level of the backbone's pyramid.
            Defaults to `2`.
        fpn_max_level: int. Coarsest pyramid level. Defaults to `6`.
        additional_layer_depth: int. Channels of the pyramid maps. Defaults to `256`.
        use_depthwise: bool. Separable 3x3 convolutions in the pyramid. Defaults to `False`.
        **kwargs: `batch_norm_trainable`, `conv_hyperparams`, `box_classifier_units` and the
            other arguments of `FasterRCNNFPNFeatureExtractor`.
    """

    def __init__(
        self,
        backbone,
        preprocessing,
        pyramid=None,
        fpn_min_level=2,
        fpn_max_level=6,
        additional_layer_depth=256,
        use_depthwise=False,
        **kwargs,
    ):
        _reject_base_options(kwargs)
        super().__init__(fpn_min_level, fpn_max_level, additional_layer_depth, **kwargs)
        backbone = self._set_backbone(backbone, preprocessing, pyramid)
        self.use_depthwise = bool(use_depthwise)
        levels = fpn_levels(self.pyramid, fpn_min_level, fpn_max_level, backbone.name)
        self.attach_body(backbone, levels, use_depthwise=self.use_depthwise)

    def get_config(self):
        config = super().get_config()
        config.update(self._backbone_config_entries())
        config["use_depthwise"] = self.use_depthwise
        return config


@keras.saving.register_keras_serializable(package="kdet")
class KerasBackboneFasterRCNNC4FeatureExtractor(
    KerasBackbone, FasterRCNNSplitBodyFeatureExtractor
):
    """A Keras backbone cut at its map of stride `first_stage_features_stride`: a Faster R-CNN
    extractor of the TF OD API ResNet ("C4") layout.

    The layers up to the pyramid map of level `log2(first_stage_features_stride)` (the cut)
    compute the proposal features `[batch, h, w, channels]` the RPN and the RoI crops read;
    the layers after it, up to the backbone's output, run on each RoI crop
    `[num_rois, 7, 7, channels]` (e.g. ResNet stage 5). Only a level of the cut is needed in
    `pyramid` (`{4: "conv4_block6_out"}` for `keras.applications.ResNet50`). Batch norms run
    in inference mode unless `batch_norm_trainable`.

    Args:
        backbone, preprocessing, pyramid: see `KerasBackbone` (`from_keras_backbone`). The
            backbone must have one output, computed from the cut map.
        first_stage_features_stride: int. 16 or 8: the stride of the cut. Defaults to `16`.
        **kwargs: `batch_norm_trainable` and the other arguments of
            `FasterRCNNSplitBodyFeatureExtractor`.

    Example:
    ```python
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(None, None, 3), include_top=False, weights="imagenet"
    )
    extractor = kdet.feature_extractors.from_keras_backbone(
        backbone, "faster_rcnn_c4", preprocessing="raw", pyramid={4: "expanded_conv_7_add"}
    )
    ```
    """

    FEATURE_STRIDES = (8, 16)

    def __init__(self, backbone, preprocessing, pyramid=None, **kwargs):
        _reject_base_options(kwargs)
        super().__init__(**kwargs)
        backbone = self._set_backbone(backbone, preprocessing, pyramid)
        level = int(math.log2(self.first_stage_features_stride))
        cut = _pyramid_levels(self.pyramid, [level], backbone.name, "first_stage_features_stride")
        if len(backbone.outputs) != 1:
            raise ValueError(
                f"the backbone {backbone.name!r} has {len(backbone.outputs)} outputs; a Faster "
                "R-CNN C4 extractor runs the layers after the cut up to its one output"
            )
        if backbone.get_layer(cut[0]).output is backbone.output:
            raise ValueError(
                f"the cut layer {cut[0]!r} (level {level}) is the output of the backbone "
                f"{backbone.name!r}: no layers are left for the box classifier; use "
                "'faster_rcnn_fpn', or a backbone with layers after the stride-"
                f"{self.first_stage_features_stride} map"
            )
        self.split_body(backbone, cut[0])

    def get_config(self):
        config = super().get_config()
        config.update(self._backbone_config_entries())
        return config


# `meta_architecture` name → wrapper class.
WRAPPERS = {
    "ssd_fpn": KerasBackboneSSDFPNFeatureExtractor,
    "faster_rcnn_fpn": KerasBackboneFasterRCNNFPNFeatureExtractor,
    "faster_rcnn_c4": KerasBackboneFasterRCNNC4FeatureExtractor,
}


def from_keras_backbone(backbone, meta_architecture, preprocessing, pyramid=None, **kwargs):
    """Turns a Keras model with a feature pyramid into an SSD or Faster R-CNN feature extractor.

    Args:
        backbone: a functional `keras.Model` from images `[batch, height, width, 3]`: a
            keras-hub `Backbone` (`keras_hub.models.ResNetBackbone.from_preset(...)` or built
            from its config), a keras-cv backbone, a `keras.applications` model
            (`include_top=False`, `input_shape=(None, None, 3)`; `weights="imagenet"` for
            ImageNet weights, downloaded on first use). Its weights are the extractor's.
        meta_architecture: `"ssd_fpn"`, `"faster_rcnn_fpn"` or `"faster_rcnn_c4"`.
        preprocessing: the scaling the backbone expects of raw pixels 0..255: `"raw"`, `"tf"`,
            `"torch"`, `"caffe"`, `{"scale": s, "offset": o}` or a keras-hub `ImageConverter`
            (see `KerasBackbone`). A `keras.applications` model's module says which: its
            `preprocess_input` calls `imagenet_utils.preprocess_input(x, mode=...)`, or
            passes `x` through (`"raw"`).
        pyramid: dict `{level: layer name}` of the backbone's maps, level `l` at stride
            `2**l`, or `None` for the backbone's own (keras-hub `pyramid_outputs`, keras-cv
            `pyramid_level_inputs`). Defaults to `None`.
        **kwargs: the wrapper's other arguments (`fpn_min_level`, `fpn_max_level`,
            `additional_layer_depth`, `first_stage_features_stride`, `conv_hyperparams`, ...).

    Returns:
        A `KerasBackboneSSDFPNFeatureExtractor`, `KerasBackboneFasterRCNNFPNFeatureExtractor`
        or `KerasBackboneFasterRCNNC4FeatureExtractor`.

    Example:
    ```python
    backbone = keras_hub.models.ResNetBackbone.from_preset("resnet_50_imagenet")
    extractor = kdet.feature_extractors.from_keras_backbone(
        backbone, "faster_rcnn_fpn", preprocessing="torch", fpn_min_level=2, fpn_max_level=6
    )
    model = kdet.FasterRCNN(num_classes=3, feature_extractor=extractor)

    resnet = keras.applications.ResNet50(include_top=False, input_shape=(None, None, 3))
    extractor = kdet.feature_extractors.from_keras_backbone(
        resnet, "faster_rcnn_c4", preprocessing="caffe", pyramid={4: "conv4_block6_out"}
    )
    ```
    """
    return _wrapper_class(meta_architecture)(
        backbone=backbone, preprocessing=preprocessing, pyramid=pyramid, **kwargs
    )


def register_keras_backbone(name, build_backbone, meta_architecture, preprocessing,
                            pyramid=None):
    """Registers a Keras backbone wrapper under `name`, for pipeline configs and the zoo.

    A config's `feature_extractor { type: 'name' ... }` then builds
    `from_keras_backbone(build_backbone(), meta_architecture, preprocessing, pyramid, ...)`
    with the config's fields (`fpn { min_level max_level additional_layer_depth }`,
    `conv_hyperparams`, `first_stage_features_stride`, `batch_norm_trainable`, ...). Put the
    call in a module and import it first: `kdet train --import my_backbones ...` (every kdet
    command takes `--import`), or `import my_backbones` in Python. The registered class is
    returned; a model saved with it loads once the module is imported.

    Args:
        name: str. The feature extractor name configs use.
        build_backbone: function of no arguments returning a new backbone model each call
            (e.g. `lambda: keras_hub.models.ResNetBackbone.from_preset("resnet_50_imagenet")`).
            Not called when a saved model loads: the backbone comes from its saved config.
        meta_architecture, preprocessing, pyramid: see `from_keras_backbone`.

    Returns:
        The registered subclass of the wrapper of `meta_architecture`.

    Example:
    ```python
    # my_backbones.py
    import keras_hub
    import kdet

    kdet.feature_extractors.register_keras_backbone(
        "my_resnet_fpn",
        lambda: keras_hub.models.ResNetBackbone.from_preset("resnet_18_imagenet"),
        "ssd_fpn",
        preprocessing="torch",
    )
    ```
    """
    base = _wrapper_class(meta_architecture)
    if not callable(build_backbone) or isinstance(build_backbone, keras.layers.Layer):
        raise TypeError(
            f"register_keras_backbone({name!r}): build_backbone must be a function returning a "
            f"new backbone model each call (a config may build several), got {build_backbone!r}"
        )
    spec = preprocessing_spec(preprocessing)
    default_pyramid = pyramid

    def __init__(self, backbone=None, preprocessing=spec, pyramid=default_pyramid, **kwargs):
        base.__init__(
            self,
            backbone=build_backbone() if backbone is None else backbone,
            preprocessing=preprocessing,
            pyramid=pyramid,
            **kwargs,
        )

    class_name = "".join(part.capitalize() for part in _identifier(name).split("_")) + (
        "FeatureExtractor"
    )
    # Named after its caller's module, as `collections.namedtuple` does, so that running the
    # registration again (a notebook cell, a reloaded module) replaces the class.
    caller = inspect.currentframe().f_back.f_globals.get("__name__", __name__)
    cls = type(
        class_name,
        (base,),
        {
            "__init__": __init__,
            "__module__": caller,
            "__qualname__": class_name,
            "__doc__": (
                f"The Keras backbone of `{getattr(build_backbone, '__name__', build_backbone)}` "
                f"as a `{base.__name__}`, registered as {name!r} by `register_keras_backbone`."
            ),
        },
    )
    return register_feature_extractor(name)(cls)


def preprocessing_spec(preprocessing):
    """The JSON-able form of a `preprocessing` argument (see `KerasBackbone`).

    Returns:
        One of `PREPROCESSING_MODES`, or a dict `{"scale": ..., "offset": ...}` of floats or
        3-lists of floats.
    """
    if isinstance(preprocessing, str) and preprocessing in PREPROCESSING_MODES:
        return preprocessing
    if hasattr(preprocessing, "scale") and hasattr(preprocessing, "offset"):
        preprocessing = {"scale": preprocessing.scale, "offset": preprocessing.offset}
    if isinstance(preprocessing, dict) and set(preprocessing) <= {"scale", "offset"}:
        return {
            key: _scale_or_offset(preprocessing.get(key), default, key)
            for key, default in (("scale", 1.0), ("offset", 0.0))
        }
    raise ValueError(
        f"preprocessing must be one of {list(PREPROCESSING_MODES)} (the modes of "
        "keras.applications.imagenet_utils.preprocess_input, 'raw': pixels 0..255 unchanged), "
        "a dict {'scale': s, 'offset': o} (x * s + o) or a keras-hub ImageConverter; got "
        f"{preprocessing!r}"
    )


def preprocess_images(images, preprocessing):
    """Raw pixels → a backbone's input.

    Args:
        images: `[batch, height, width, 3]` raw pixels 0..255, RGB.
        preprocessing: a `preprocessing_spec`.

    Returns:
        float32 `[batch, height, width, 3]`.
    """
    images = keras.ops.cast(images, "float32")
    if preprocessing == "raw":
        return images
    if isinstance(preprocessing, str):
        return keras.applications.imagenet_utils.preprocess_input(
            images, data_format="channels_last", mode=preprocessing
        )
    scale = keras.ops.convert_to_tensor(preprocessing["scale"], "float32")
    offset = keras.ops.convert_to_tensor(preprocessing["offset"], "float32")
    return images * scale + offset


def backbone_pyramid(backbone, pyramid=None):
    """The `{level: layer name}` maps of `backbone`, each level's stride checked.

    Args:
        backbone: a functional `keras.Model` from images.
        pyramid: dict `{level: layer name}` (keys ints, `"3"` or `"P3"`), or `None` for the
            backbone's own: keras-hub `pyramid_outputs` (`{"P3": tensor}`, the layers that
            computed them) or keras-cv `pyramid_level_inputs` (`{"P3": layer name}`).

    Returns:
        dict `{int level: layer name}`, sorted by level.

    Raises:
        ValueError: the backbone has no pyramid of its own and none is given, a layer name
            is not in the backbone, or a map's stride is not `2**level`.
    """
    if pyramid is None:
        pyramid = _own_pyramid(backbone)
    levels = {}
    for key, layer_name in pyramid.items():
        level = _level(key)
        _check_layer_name(backbone, layer_name)
        levels[level] = layer_name
    levels = dict(sorted(levels.items()))
    _check_strides(backbone, levels)
    return levels


def fpn_levels(pyramid, min_level, max_level, backbone_name):
    """The `{level: layer name}` of `pyramid` a feature pyramid of `min_level..max_level` reads:
    levels `min_level..min(max_level, top level of pyramid)`, checked to be there."""
    if min_level > max_level:
        raise ValueError(
            f"fpn_min_level must not exceed fpn_max_level; got {min_level} > {max_level}"
        )
    top_level = max(min_level, min(max_level, max(pyramid)))
    levels = list(range(min_level, top_level + 1))
    names = _pyramid_levels(pyramid, levels, backbone_name, "fpn_min_level..fpn_max_level")
    return dict(zip(levels, names))


def _pyramid_levels(pyramid, levels, backbone_name, argument):
    """The layer names of `levels` in `pyramid`; a clear error for a level it lacks."""
    missing = [level for level in levels if level not in pyramid]
    if missing:
        raise ValueError(
            f"with {argument}, the extractor needs the backbone map of level(s) {missing} (stride "
            f"{', '.join(str(2**level) for level in missing)}), but the backbone "
            f"{backbone_name!r} has levels "
            f"{sorted(pyramid)} in its pyramid ({pyramid}); change {argument}, or pass "
            "pyramid={level: layer name} with those levels"
        )
    return [pyramid[level] for level in levels]


def _own_pyramid(backbone):
    """`{"P<level>": layer name}` from a keras-hub or keras-cv backbone's own pyramid."""
    outputs = getattr(backbone, "pyramid_outputs", None)
    if outputs:  # keras-hub `FeaturePyramidBackbone`
        names = {}
        for key, tensor in outputs.items():
            layer = tensor._keras_history.operation
            if backbone.get_layer(layer.name).output is not tensor:
                raise ValueError(
                    f"the keras-hub backbone {backbone.name!r}: its pyramid map {key!r} is not "
                    f"the only output of the layer {layer.name!r}; pass pyramid={{level: layer "
                    "name}} instead"
                )
            names[key] = layer.name
        return names
    level_inputs = getattr(backbone, "pyramid_level_inputs", None)
    if level_inputs:  # keras-cv `Backbone`
        return dict(level_inputs)
    raise ValueError(
        f"the backbone {backbone.name!r} ({type(backbone).__name__}) has no feature pyramid "
        "of its own (no keras-hub `pyramid_outputs`, no keras-cv `pyramid_level_inputs`): pass "
        "pyramid={level: layer name}, level l being the map of stride 2**l, e.g. "
        "{3: 'conv3_block4_out', 4: 'conv4_block6_out', 5: 'conv5_block3_out'} for "
        "keras.applications.ResNet50"
    )


def _level(key):
    """Level of a pyramid key: `3`, `"3"` or `"P3"` → 3."""
    text = str(key)
    digits = text[1:] if text[:1] in ("P", "p") else text
    if not digits.isdigit():
        raise ValueError(
            f"pyramid keys are levels: ints (3), '3' or 'P3' (level l at stride 2**l); got "
            f"{key!r}"
        )
    return int(digits)


def _check_layer_name(backbone, layer_name):
    names = [layer.name for layer in backbone.layers]
    if layer_name not in names:
        close = difflib.get_close_matches(str(layer_name), names, n=3)
        hint = f" Did you mean {', '.join(repr(n) for n in close)}?" if close else ""
        raise ValueError(
            f"the backbone {backbone.name!r} has no layer named {layer_name!r}.{hint} "
            "(`[layer.name for layer in backbone.layers]` lists them)"
        )


def _check_strides(backbone, levels):
    """Raises unless the map of each level has stride `2**level` (a symbolic pass)."""
    probe = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in levels.values()])
    input_shape = list(backbone.inputs[0].shape)
    size = 2 ** max(levels) * _PROBE_SIZE_PER_STRIDE
    height, width = (dim or size for dim in input_shape[1:3])
    channels = input_shape[3] or 3
    outputs = probe.compute_output_spec(keras.KerasTensor((1, height, width, channels)))
    for (level, name), output in zip(levels.items(), keras.tree.flatten(outputs)):
        if len(output.shape) != 4:
            raise ValueError(
                f"pyramid level {level} of the backbone {backbone.name!r} is layer {name!r}, "
                f"whose output has shape {output.shape}; expected a map [batch, h, w, channels]"
            )
        stride = height / output.shape[1]
        if round(math.log2(stride)) != level:
            raise ValueError(
                f"pyramid level {level} of the backbone {backbone.name!r} is layer {name!r}, "
                f"whose map has stride {stride:g} ({height} px → {output.shape[1]} px); level l "
                "must be the map of stride 2**l"
            )


def _check_functional(backbone):
    inputs = getattr(backbone, "inputs", None) if isinstance(backbone, keras.Model) else None
    if not inputs:
        raise ValueError(
            "backbone must be a functional keras.Model (a keras-hub Backbone, a keras-cv "
            "backbone, a keras.applications model) or its Keras serialization; got "
            f"{type(backbone).__name__}"
        )
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ValueError(
            f"the backbone {backbone.name!r} must take one image input [batch, height, width, "
            f"channels]; it takes {[tuple(x.shape) for x in inputs]}"
        )


def _reject_base_options(kwargs):
    """Errors for the arguments of kdet's own bodies that mean nothing for a given backbone."""
    if kwargs.get("backbone_weights") is not None:
        raise ValueError(
            f"backbone_weights={kwargs['backbone_weights']!r}: a wrapped backbone has the "
            "weights it was built with; build it with them (keras.applications.X("
            "weights='imagenet'), keras_hub.models.XBackbone.from_preset(...))"
        )
    if kwargs.get("override_base_feature_extractor_hyperparams"):
        raise ValueError(
            "override_base_feature_extractor_hyperparams is true, but a wrapped Keras backbone "
            "keeps its own layers' settings; conv_hyperparams set up the pyramid only"
        )


def _scale_or_offset(value, default, key):
    """A float or a list of 3 floats (per channel) from `value` (None → `default`)."""
    if value is None:
        return default
    values = keras.ops.convert_to_numpy(value).astype("float64").reshape(-1).tolist()
    if len(values) == 1:
        return values[0]
    if len(values) != 3:
        raise ValueError(
            f"preprocessing {key} must be a float or 3 per-channel floats; got {value!r}"
        )
    return values


def _identifier(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def _wrapper_class(meta_architecture):
    if meta_architecture not in WRAPPERS:
        raise ValueError(
            f"meta_architecture must be one of {list(WRAPPERS)}; got {meta_architecture!r}"
        )
    return WRAPPERS[meta_architecture]
