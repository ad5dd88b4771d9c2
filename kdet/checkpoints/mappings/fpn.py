"""The TF2 checkpoint layout of a feature pyramid, shared by the SSD and Faster R-CNN FPN
mappings (this module registers no mapping of its own)."""

from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import weighted_layers


def pyramid_pairs(pyramid, shapes, top_down, coarse):
    """A `kdet.feature_extractors.FeaturePyramid` beside the TF OD API's
    `KerasFpnTopDownFeatureMaps` under `top_down` and its stride-2 levels under `coarse`.

    The TF OD API lists the top-down layers from the coarsest level down: `top_layers/0`
    projects the body's last map, `residual_blocks/i` and `conv_layers/i` are the projection and
    smoothing of the `i`-th level below it; `<coarse>/i` are the levels above the body.
    """
    pairs = paired(
        weighted_layers(pyramid.lateral_convs[-1]), shapes, f"{top_down}/top_layers", EXTRACTOR
    )
    below_top = reversed(list(zip(pyramid.lateral_convs[:-1], pyramid.smoothing_blocks)))
    for index, (projection, smoothing) in enumerate(below_top):
        pairs += paired(
            weighted_layers(projection), shapes, f"{top_down}/residual_blocks/{index}", EXTRACTOR
        )
        pairs += paired(
            weighted_layers(smoothing), shapes, f"{top_down}/conv_layers/{index}", EXTRACTOR
        )
    for index, block in enumerate(pyramid.extra_blocks):
        pairs += paired(weighted_layers(block), shapes, f"{coarse}/{index}", EXTRACTOR)
    return pairs
