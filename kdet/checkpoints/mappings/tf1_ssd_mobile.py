"""TF1 (TF-Slim name) mappings of the SSDLite mobile extractors: MobileNetV3 Large / Small,
MobileNet EdgeTPU (`FeatureExtractor/MobilenetV3/`, `FeatureExtractor/MobilenetEdgeTPU/`) and
MobileDet (`FeatureExtractor/MobileDetCPU/`, …).

kdet's body blocks are named by their slim scopes (`expanded_conv_3`, `IBN_2`, …, see
`kdet.feature_extractors.mobilenet_v3_body` and `mobiledet_body`); inside a block each unit's
role (`InvertedBottleneck.units`, `TuckerConv.units`) gives its slim sub-scope:

- MobileNetV3 / EdgeTPU (slim `conv_blocks.expanded_conv`): `expand`, `depthwise`,
  `squeeze_excite/Conv`, `squeeze_excite/Conv_1`, `project`;
- MobileDet (slim default names in creation order): the full convolutions `Conv`, `Conv_1`,
  `Conv_2`, the depthwise one `SeparableConv2d`, the squeeze-excite `SqueezeExcite/Conv` and
  `SqueezeExcite/Conv_1`.

Each convolution's batch norm shares its scope (`…/expand/BatchNorm/gamma`). The extra layers
are named as in `tf1_ssd` (`layer_17_2_Conv2d_2_3x3_s2_64_depthwise`, `C5_1_Conv2d_2_1x1_64`).
"""

from kdet.checkpoints.mappings.tf1_ssd import extra_layer_scope
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobile_feature_extractors import BODIES
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileFeatureExtractor
from kdet.layers.mobile_blocks import ConvBatchNorm
from kdet.layers.mobile_blocks import SqueezeExcite

# Slim sub-scope of each unit role in a MobileNetV3-style `expanded_conv`.
_MOBILENET_V3_SCOPES = {"expand": "expand", "depthwise": "depthwise", "project": "project",
                        "squeeze_excite": "squeeze_excite"}


def _conv_batch_norm_pairs(unit, scope):
    """The convolution and batch norm of a `ConvBatchNorm`, both under `scope`."""
    return [SlimLayerPair(layer, scope, BACKBONE) for layer in weighted_layers(unit.conv)
            + (weighted_layers(unit.batch_norm) if unit.batch_norm is not None else [])]


def _unit_pairs(unit, scope):
    if isinstance(unit, SqueezeExcite):
        return (_conv_batch_norm_pairs(unit.squeeze, f"{scope}/Conv")
                + _conv_batch_norm_pairs(unit.excite, f"{scope}/Conv_1"))
    return _conv_batch_norm_pairs(unit, scope)


def _mobilenet_v3_unit_scopes(units):
    return [_MOBILENET_V3_SCOPES[role] for role, _ in units]


def _mobiledet_unit_scopes(units):
    scopes = []
    convs = 0
    for role, _ in units:
        if role == "depthwise":
            scopes.append("SeparableConv2d")
        elif role == "squeeze_excite":
            scopes.append("SqueezeExcite")
        else:
            scopes.append("Conv" if convs == 0 else f"Conv_{convs}")
            convs += 1
    return scopes


def body_pairs(body, scope, unit_scopes):
    """The `SlimLayerPair`s of a mobile body (a `keras.Model` of blocks named by their slim
    scopes) under `scope`; `unit_scopes(units)` names the units of a block."""
    pairs = []
    for block in body.layers:
        if not block.weights:
            continue
        block_scope = slim_scope(scope, block.name)
        if isinstance(block, ConvBatchNorm):
            pairs += _conv_batch_norm_pairs(block, block_scope)
            continue
        for (_, unit), unit_scope in zip(block.units, unit_scopes(block.units)):
            pairs += _unit_pairs(unit, f"{block_scope}/{unit_scope}")
    return pairs


@register_tf1_mapping(SSDMobileFeatureExtractor)
def _ssd_mobile(extractor, scope):
    body = BODIES[extractor.BODY]
    scope = slim_scope(scope, body["scope"])
    unit_scopes = _mobiledet_unit_scopes if "variant" in body else _mobilenet_v3_unit_scopes
    extra_layers = [layer for block in extractor.extra_layers for layer in weighted_layers(block)]
    return body_pairs(extractor.body, scope, unit_scopes) + slim_pairs(
        extra_layers, scope, extra_layer_scope, EXTRACTOR
    )
