"""TF OD API TF2 checkpoints of CenterNet feature extractors load into kdet's, which then
compute what the TF OD API's compute.

`tests/data/tfod_reference/center_net_hourglass_extractor/` (the Hourglass-104 layout: two
stacked hourglasses, reduced to 3 stages of 4..8 channels, the hourglass configs' BGR
statistics) and `center_net_mobilenet_v2_fpn_extractor/` (`mobilenet_v2_fpn` with
`use_separable_conv`, depth multiplier 0.1, the zoo config's statistics) are made by
`tools/tfod_reference/make_center_net_extractor_references.py` with the TF OD API's own
extractors: seeded random weights, calibrated batch norms, run on the top-left 64×96 of
`photo.png`. Their checkpoints hold the extractor under `model/`.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.tfod_checkpoint import VARIABLE_SUFFIX
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.feature_extractors import CenterNetHourglassFeatureExtractor
from kdet.feature_extractors import build_feature_extractor

HOURGLASS = "center_net_hourglass_extractor"
MOBILENET = "center_net_mobilenet_v2_fpn_extractor"
CROP = (64, 96)
PATCH = 16
EXTRACTORS = {
    HOURGLASS: lambda: CenterNetHourglassFeatureExtractor(
        4,
        [4, 4, 6, 8],
        [2, 2, 2, 2],
        num_hourglasses=2,
        channel_means=[104.01362025, 114.03422265, 119.9165958],
        channel_stds=[73.6027665, 69.89082075, 70.9150767],
        bgr_ordering=True,
    ),
    MOBILENET: lambda: build_feature_extractor(
        "mobilenet_v2_fpn_sep_conv",
        depth_multiplier=0.1,
        channel_means=[123.675, 116.28, 103.53],
        channel_stds=[58.395, 57.12, 57.375],
    ),
}
# Variables of each reference extractor (all in its checkpoint, each restored).
WEIGHTS = {HOURGLASS: 500, MOBILENET: 289}


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_checkpoint_restores_every_weight_and_features_match(name):
    extractor = EXTRACTORS[name]()
    expected = reference(name)
    images = tf.constant(photo()[None, : CROP[0], : CROP[1]], tf.float32)
    preprocessed = extractor.preprocess(images)
    np.testing.assert_allclose(
        preprocessed[:, :PATCH, :PATCH], expected["preprocessed_patch"], atol=1e-5
    )

    restore = restore_tfod_checkpoint(extractor, REFERENCES / name / "checkpoint")
    assert len(restore.restored) == len(extractor.weights) == WEIGHTS[name]
    assert not restore.not_restored
    assert not restore.unused
    assert restore.ignored == ["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]

    features = extractor(preprocessed, training=False)
    assert len(features) == extractor.num_feature_outputs
    for index, feature in enumerate(features):
        want = expected[f"features/{index}"]
        assert np.abs(want).max() > 0.1  # a calibrated network, not one that vanished
        np.testing.assert_allclose(feature, want, atol=RAW_TOLERANCE)


def test_a_checkpoint_of_another_layout_is_refused():
    # One hourglass instead of two: the checkpoint's second one has no kdet layers.
    extractor = CenterNetHourglassFeatureExtractor(4, [4, 4, 6, 8], [2, 2, 2, 2])
    with pytest.raises(CheckpointError, match="layers with weights under model/_network/ that the kdet hourglass has not"):
        restore_tfod_checkpoint(extractor, REFERENCES / HOURGLASS / "checkpoint")


# Listings (`variables.txt` only) of the TF OD API's full-size ResNet extractors → kdet's
# extractor of the same type and the number of checkpoint variables it leaves unread:
# keras.applications' ResNet-v2 ends in a batch norm (`post_bn`, 4 variables, the last layer of
# the TF OD API's `_base_model`) after the `conv5_block3_out` both read.
LISTED = {
    "center_net_resnet_v2_50_extractor": ("resnet_v2_50", 4),
    "center_net_resnet_v1_50_fpn_extractor": ("resnet_v1_50_fpn", 0),
}


def _listed_shapes(name):
    """`{key: shape}` of the model variables of a reference's `variables.txt`."""
    shapes = {}
    for line in (REFERENCES / name / "variables.txt").read_text().splitlines():
        key, _, shape = line.split("\t")
        if key.startswith("model/") and key.endswith(VARIABLE_SUFFIX):
            shapes[key] = json.loads(shape)
    return shapes


def _layer_index(key):
    """N of a key `…/_base_model/layer_with_weights-N/…`."""
    return int(key.split("/_base_model/layer_with_weights-")[1].split("/")[0])


@pytest.mark.parametrize("name", sorted(LISTED))
def test_resnet_mapping_pairs_every_tf_od_api_variable(name):
    extractor_type, num_unread = LISTED[name]
    extractor = build_feature_extractor(extractor_type)
    shapes = _listed_shapes(name)
    assignments = [
        item for pair in tf2_layer_pairs(extractor, "model", shapes) for item in pair.assignments()
    ]
    assert len(assignments) == len(extractor.weights)
    assert len({key for _, key in assignments}) == len(assignments)
    for variable, key in assignments:
        assert shapes[key] == list(variable.shape), (variable.path, key)
    unread = set(shapes) - {key for _, key in assignments}
    assert len(unread) == num_unread
    last_body_layer = max(_layer_index(key) for key in shapes if "/_base_model/" in key)
    assert all(_layer_index(key) == last_body_layer for key in unread)
