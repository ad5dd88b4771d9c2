"""TF1 (TF-Slim name) mappings of kdet's plain SSD MobileNetV1 extractors (`ssd_mobilenet_v1`,
its SSDLite variant, `ssd_mobilenet_v1_ppn`, `embedded_ssd_mobilenet_v1`, built with
`slim_layout`): what the TF1 zoo's `ssd_mobilenet_v1_coco`, `ssdlite_mobilenet_v1_coco`,
`ssd_mobilenet_v1_ppn_shared_box_predictor_300x300_coco14_sync`, ... name each weight; and the
TF2 mapping of `ssd_mobilenet_v1_keras` (the only one of them the TF OD API builds in TF2).

The extractor lives under `FeatureExtractor/MobilenetV1/`:

- the body, `keras.applications.MobileNet`'s layer names: `conv1` / `conv1_bn` ←
  `Conv2d_0`, `conv_dw_3` / `conv_dw_3_bn` ← `Conv2d_3_depthwise`, `conv_pw_3(_bn)` ←
  `Conv2d_3_pointwise` (`kdet.checkpoints.mappings.tf1_ssd_fpn.mobilenet_v1_scope`);
- the extra layers, `X_conv` / `X_batchnorm` ← `X`
  (`Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_512`, `..._depthwise` for SSDLite), as in the TF1
  SSD MobileNetV2.

The PPN extractor reads `Conv2d_11_pointwise`, but slim builds MobileNetV1 up to
`Conv2d_13_pointwise`: the checkpoint's `Conv2d_12_*` and `Conv2d_13_*` variables are built and
never read (`register_tf1_unread_scopes`: a "full" restore reports them in
`TFODRestore.unused`).

In a TF2 checkpoint the `ssd_mobilenet_v1_keras` body is
`model/_feature_extractor/classification_backbone/layer_with_weights-N` (by position, as for the
other Keras bodies) and extra map `i` (2..5) `model/_feature_extractor/_feature_map_generator/
convolutions/i/<j>` (its layers with weights in order).
"""

from kdet.checkpoints.mappings.tf1_ssd import extra_layer_scope
from kdet.checkpoints.mappings.tf1_ssd_fpn import MOBILENET_V1_SCOPE
from kdet.checkpoints.mappings.tf1_ssd_fpn import mobilenet_v1_scope
from kdet.checkpoints.restore import register_tf1_unread_scopes
from kdet.checkpoints.tfod_checkpoint import CheckpointError
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import (
    SSDMobileNetV1FeatureExtractor,
)
from kdet.feature_extractors.ssd_mobilenet_v1_feature_extractor import (
    SSDMobileNetV1FeatureExtractorBase,
)
from kdet.feature_extractors.ssd_mobilenet_v1_ppn_feature_extractor import (
    SSDMobileNetV1PPNFeatureExtractor,
)

# Slim scope of the SSD feature extractor (TF OD API `SSDMetaArch._extract_features_scope`).
FEATURE_EXTRACTOR_SCOPE = "FeatureExtractor"
# The MobileNetV1 convolutions slim's PPN extractor builds after Conv2d_11 and never reads.
_PPN_UNREAD_CONVOLUTIONS = (
    "Conv2d_12_depthwise", "Conv2d_12_pointwise", "Conv2d_13_depthwise", "Conv2d_13_pointwise",
)


@register_tf1_mapping(SSDMobileNetV1FeatureExtractorBase)
def _ssd_mobilenet_v1(extractor, scope):
    if not extractor.slim_layout:
        name = extractor.registered_name
        raise CheckpointError(
            f"a TF1 {name} checkpoint needs the extractor's TF1 layout (slim_layout=True, "
            f'which the config translator sets for type "{name}"); this one has the TF2 '
            f"{name}_keras layout"
        )
    scope = slim_scope(scope, MOBILENET_V1_SCOPE)
    extra_layers = [layer for block in extractor.extra_layers for layer in weighted_layers(block)]
    return slim_pairs(
        weighted_layers(extractor.body), scope, mobilenet_v1_scope, BACKBONE
    ) + slim_pairs(extra_layers, scope, extra_layer_scope, EXTRACTOR)


@register_tf1_unread_scopes(SSDMobileNetV1PPNFeatureExtractor)
def _ppn_unread(model):
    scope = slim_scope(FEATURE_EXTRACTOR_SCOPE, MOBILENET_V1_SCOPE)
    return [slim_scope(scope, convolution) for convolution in _PPN_UNREAD_CONVOLUTIONS]


register_tf2_classification_backbone(SSDMobileNetV1FeatureExtractor)(body_layers)


@register_tf2_mapping(SSDMobileNetV1FeatureExtractor)
def _ssd_mobilenet_v1_keras(extractor, prefix, shapes):
    if extractor.slim_layout:
        raise CheckpointError(
            "a TF2 ssd_mobilenet_v1_keras checkpoint needs the extractor's TF2 layout "
            '(slim_layout=False, which the config translator sets for type '
            '"ssd_mobilenet_v1_keras"); this one has the TF1 ssd_mobilenet_v1 layout'
        )
    pairs = paired(
        weighted_layers(extractor.body), shapes, f"{prefix}/classification_backbone", BACKBONE
    )
    first_index = len(extractor.body.outputs)
    for index, extra_layer in enumerate(extractor.extra_layers, start=first_index):
        pairs += paired(
            weighted_layers(extra_layer),
            shapes,
            f"{prefix}/_feature_map_generator/convolutions/{index}",
            EXTRACTOR,
        )
    return pairs
