"""TF1 (TF-Slim name) mappings of kdet's SSD MobileNetV1, MobileNetV2 (FPNLite) and ResNet V1
FPN extractors (`ssd_mobilenet_v1_fpn`, `ssd_mobilenet_v2_fpn`, `ssd_resnet{50,101,152}_v1_fpn`,
built with `slim_layout`) and of the weight-shared box predictor: what the TF1 RetinaNet-style
models of the TF1 zoo (`ssd_mobilenet_v1_fpn_shared_box_predictor_640x640_coco14_sync`,
`ssd_resnet50_v1_fpn_shared_box_predictor_640x640_coco14_sync`,
`ssd_mobilenet_v2_fpnlite_quantized_shared_box_predictor_256x256_depthmultiplier_75_coco14_sync`,
...) name each weight. Separable convolutions (`use_depthwise`: FPNLite's pyramid and
predictor) are `keras.layers.SeparableConv2D`s, slim `separable_conv2d`s of the same scope
(`depthwise_weights`, `pointwise_weights`).

The MobileNetV1 extractor lives under `FeatureExtractor/MobilenetV1/`:

- the body, `keras.applications.MobileNet`'s layer names: `conv1` / `conv1_bn` ← `Conv2d_0`,
  `conv_dw_3` / `conv_dw_3_bn` ← `Conv2d_3_depthwise`, `conv_pw_3(_bn)` ← `Conv2d_3_pointwise`;
- the pyramid under `fpn/` (slim `fpn_top_down_feature_maps` numbers its layers by position
  among the body maps it reads, from 1): the projection of level `l` ← `projection_<i>`, its
  smoothing ← `smoothing_<i>` (`i = l - fpn_min_level + 1`), the stride-2 level `l` above the
  body ← `bottom_up_Conv2d_<l - last body level + 13>` (numbered on from MobileNetV1's last
  convolution, `Conv2d_13`).

The MobileNetV2 extractor lives under `FeatureExtractor/MobilenetV2/`: the body named as in
the TF1 SSD MobileNetV2 (`kdet.checkpoints.mappings.tf1_ssd.mobilenet_v2_scope`), the pyramid
under `fpn/` as above, its stride-2 level `l` ← `bottom_up_Conv2d_<l - last body level + 19>`
(numbered on from MobileNetV2's `layer_19`).

The ResNet extractors live under `FeatureExtractor/resnet_v1_<depth>/`: the body named as in
the TF1 Faster R-CNN (`kdet.checkpoints.mappings.tf1_faster_rcnn.resnet_v1_scope`:
`conv4_block6_2_bn` ← `block3/unit_6/bottleneck_v1/conv2`), the pyramid under `fpn/` as
above, its stride-2 level `l` ← `bottom_up_block<l-1>`.

The predictor lives under `WeightSharedConvolutionalBoxPredictor/`: the tower convolution `j`
of the box / class / shared tower ← `BoxPredictionTower` / `ClassPredictionTower` /
`PredictionTower` `/conv2d_<j>`, its batch norm on feature map `k` ←
`.../conv2d_<j>/BatchNorm/feature_<k>/{gamma, beta, moving_mean, moving_variance}` (slim's
`batch_norm(scope=...)`: no further `BatchNorm/` inside), the predictor convolutions ←
`BoxPredictor` and `ClassPredictor`.
"""

import dataclasses
import re

from kdet.checkpoints.mappings.tf1_faster_rcnn import resnet_v1_architecture
from kdet.checkpoints.mappings.tf1_faster_rcnn import resnet_v1_scope
from kdet.checkpoints.mappings.tf1_ssd import MOBILENET_V2_SCOPE
from kdet.checkpoints.mappings.tf1_ssd import mobilenet_v2_scope
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import HEADS
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobilenet_v1_fpn_feature_extractor import (
    SSDMobileNetV1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v2_fpn_feature_extractor import (
    SSDMobileNetV2FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNetV1FPNFeatureExtractor,
)
from kdet.models.ssd.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor,
)

# Slim scope of MobileNetV1 (`mobilenet_v1.mobilenet_v1_base`), under `FeatureExtractor/` in
# detection checkpoints.
MOBILENET_V1_SCOPE = "MobilenetV1"
# Slim scope of the pyramid in the TF1 SSD FPN extractors.
FPN_SCOPE = "fpn"
# Slim scope of the weight-shared box predictor.
WEIGHT_SHARED_PREDICTOR_SCOPE = "WeightSharedConvolutionalBoxPredictor"
# Number of the last MobileNetV1 convolution (`Conv2d_13_pointwise`): the TF1 extractor numbers
# its stride-2 levels on from it (`bottom_up_Conv2d_14`, ...).
_MOBILENET_V1_LAST_CONV = 13
# Number of MobileNetV2's last layer (`layer_19`, its `Conv_1`): the TF1 extractor numbers its
# stride-2 levels on from it (`bottom_up_Conv2d_20`, ...).
_MOBILENET_V2_LAST_LAYER = 19

# keras.applications.MobileNet layer name → TF-Slim MobileNetV1 scope.
_MOBILENET_V1_SCOPES = (
    (re.compile(r"conv1(?:_bn)?"), "Conv2d_0"),
    (re.compile(r"conv_dw_(\d+)(?:_bn)?"), r"Conv2d_\1_depthwise"),
    (re.compile(r"conv_pw_(\d+)(?:_bn)?"), r"Conv2d_\1_pointwise"),
)

# kdet tower name → slim tower scope of the weight-shared predictor.
_TOWER_SCOPES = {
    "prediction": "PredictionTower",
    "box": "BoxPredictionTower",
    "class": "ClassPredictionTower",
}


@dataclasses.dataclass(frozen=True)
class SlimBatchNormPair(SlimLayerPair):
    """A batch norm whose variables sit right under its scope (`path/gamma`), as slim's
    `batch_norm(scope=".../BatchNorm/feature_0")` names them, rather than under a
    `BatchNorm/` of a convolution's scope."""

    def assignments(self):
        """`[(kdet variable, checkpoint key)]`, e.g. `(…/box_tower_batchnorm_0_level_1/gamma,
        …/BoxPredictionTower/conv2d_0/BatchNorm/feature_1/gamma)`."""
        return [
            (variable, f"{self.path}/{variable.path.rsplit('/', 1)[-1]}")
            for variable in self.layer.weights
        ]


def _mobilenet_v1_extra_layer_scope(level, top_level):
    return f"bottom_up_Conv2d_{level - top_level + _MOBILENET_V1_LAST_CONV}"


def _mobilenet_v2_extra_layer_scope(level, top_level):
    return f"bottom_up_Conv2d_{level - top_level + _MOBILENET_V2_LAST_LAYER}"


def _resnet_extra_layer_scope(level, top_level):
    return f"bottom_up_block{level - 1}"


def mobilenet_v1_scope(layer_name):
    """The TF-Slim MobileNetV1 scope of a `keras.applications.MobileNet` layer name
    (`conv_pw_3_bn` → `Conv2d_3_pointwise`), or None."""
    for pattern, template in _MOBILENET_V1_SCOPES:
        match = pattern.fullmatch(layer_name)
        if match:
            return match.expand(template)
    return None


def slim_fpn_pairs(pyramid, scope, extra_layer_scope):
    """The `SlimLayerPair`s of a `FeaturePyramid` built as the TF1 SSD FPN extractors build
    theirs, under the slim scope `scope` (`.../fpn`), plain or separable (`use_depthwise`).

    Args:
        pyramid: a built `kdet.feature_extractors.FeaturePyramid`.
        scope: slim scope of the pyramid.
        extra_layer_scope: function `(level, top body level)` → slim scope of the stride-2
            layer making pyramid level `level` (`bottom_up_Conv2d_14`).
    """
    scoped = [
        (projection, f"projection_{index}")
        for index, projection in enumerate(pyramid.lateral_convs, start=1)
    ]
    scoped += [
        (layer, f"smoothing_{index}")
        for index, block in enumerate(pyramid.smoothing_blocks, start=1)
        for layer in weighted_layers(block)
    ]
    top_level = pyramid.min_level + len(pyramid.lateral_convs) - 1
    scoped += [
        (layer, extra_layer_scope(level, top_level))
        for level, block in enumerate(pyramid.extra_blocks, start=top_level + 1)
        for layer in weighted_layers(block)
    ]
    return [SlimLayerPair(layer, slim_scope(scope, name), EXTRACTOR) for layer, name in scoped]


def _require_slim_layout(extractor, type_name):
    """Raises a `CheckpointError` unless `extractor` has the TF1 (TF-Slim) layout its TF1
    checkpoint needs."""
    if not extractor.slim_layout:
        raise CheckpointError(
            f"a TF1 {type_name} checkpoint needs the extractor's TF1 layout (slim_layout=True, "
            f'which the config translator sets for type "{type_name}"); this one has the TF2 '
            f"{type_name}_keras layout"
        )


@register_tf1_mapping(SSDMobileNetV1FPNFeatureExtractor)
def _ssd_mobilenet_v1_fpn(extractor, scope):
    _require_slim_layout(extractor, "ssd_mobilenet_v1_fpn")
    scope = slim_scope(scope, MOBILENET_V1_SCOPE)
    return slim_pairs(
        weighted_layers(extractor.body), scope, mobilenet_v1_scope, BACKBONE
    ) + slim_fpn_pairs(
        extractor.feature_pyramid, slim_scope(scope, FPN_SCOPE), _mobilenet_v1_extra_layer_scope
    )


@register_tf1_mapping(SSDMobileNetV2FPNFeatureExtractor)
def _ssd_mobilenet_v2_fpn(extractor, scope):
    _require_slim_layout(extractor, "ssd_mobilenet_v2_fpn")
    scope = slim_scope(scope, MOBILENET_V2_SCOPE)
    return slim_pairs(
        weighted_layers(extractor.body), scope, mobilenet_v2_scope, BACKBONE
    ) + slim_fpn_pairs(
        extractor.feature_pyramid, slim_scope(scope, FPN_SCOPE), _mobilenet_v2_extra_layer_scope
    )


@register_tf1_mapping(SSDResNetV1FPNFeatureExtractor)
def _ssd_resnet_v1_fpn(extractor, scope):
    _require_slim_layout(extractor, f"ssd_resnet{extractor.depth}_v1_fpn")
    scope = slim_scope(scope, resnet_v1_architecture(extractor))
    return slim_pairs(
        weighted_layers(extractor.body), scope, resnet_v1_scope, BACKBONE
    ) + slim_fpn_pairs(
        extractor.feature_pyramid, slim_scope(scope, FPN_SCOPE), _resnet_extra_layer_scope
    )


@register_tf1_mapping(WeightSharedConvolutionalBoxPredictor)
def _weight_shared_box_predictor(predictor, scope):
    scope = slim_scope(scope, WEIGHT_SHARED_PREDICTOR_SCOPE)
    pairs = []
    for name, convs in predictor.tower_convs.items():
        tower = slim_scope(scope, _TOWER_SCOPES[name])
        pairs += [
            SlimLayerPair(conv, f"{tower}/conv2d_{index}", HEADS)
            for index, conv in enumerate(convs)
        ]
        for level, batch_norms in enumerate(predictor.tower_batch_norms.get(name, [])):
            pairs += [
                SlimBatchNormPair(batch_norm, f"{tower}/conv2d_{index}/BatchNorm/feature_{level}",
                                  HEADS)
                for index, batch_norm in enumerate(batch_norms)
            ]
    return pairs + [
        SlimLayerPair(predictor.box_predictor_conv, f"{scope}/BoxPredictor", HEADS),
        SlimLayerPair(predictor.class_predictor_conv, f"{scope}/ClassPredictor", HEADS),
    ]
