"""The TF OD API's CenterNet `resnet_v1_18_fpn` / `resnet_v1_34_fpn` checkpoints map onto kdet's
extractors of those types, layer by layer.

The TF OD API's full-size checkpoints (~45 / 85 MB; it has no smaller variant) are listed in
`tests/data/tfod_reference/center_net_resnet_v1_{18,34}_fpn_extractor/` (`variables.txt`,
`base_model_layers.txt`) by `tools/tfod_reference/make_center_net_resnet_small_references.py`.
With `--parity_dir DIR` that script also writes a full-size ResNet-18 FPN reference (seeded
random weights, calibrated batch norms, features of the 64×96 photo crop), compared here when
`KDET_RESNET_SMALL_PARITY_DIR=DIR` is set.
"""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import photo

from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.tfod_checkpoint import VARIABLE_SUFFIX
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors import build_feature_extractor

# Reference folder → kdet extractor type.
LISTED = {
    "center_net_resnet_v1_18_fpn_extractor": "resnet_v1_18_fpn",
    "center_net_resnet_v1_34_fpn_extractor": "resnet_v1_34_fpn",
}
BASE_MODEL = "model/_base_model/layer_with_weights-"
PARITY_NAME = "center_net_resnet_v1_18_fpn_extractor"
# The ResNet FPN zoo configs' statistics (BGR), as the parity reference was made with.
STATISTICS = {
    "channel_means": [104.01362025, 114.03422265, 119.9165958],
    "channel_stds": [73.6027665, 69.89082075, 70.9150767],
    "bgr_ordering": True,
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
    """N of a key `model/_base_model/layer_with_weights-N/…`, or None for other keys."""
    if not key.startswith(BASE_MODEL):
        return None
    return int(key[len(BASE_MODEL):].split("/")[0])


@pytest.mark.parametrize("name", sorted(LISTED))
def test_every_tf_od_api_variable_maps_to_the_kdet_layer_of_its_name(name):
    extractor = build_feature_extractor(LISTED[name])
    shapes = _listed_shapes(name)
    tf_layer_names = (REFERENCES / name / "base_model_layers.txt").read_text().split()
    body = weighted_layers(extractor.body)
    # The TF OD API's body ends in `post_bn`, which its FPN (and kdet's) never reads.
    assert [layer.name for layer in body] + ["post_bn"] == tf_layer_names

    assignments = [
        (pair.layer, variable, key)
        for pair in tf2_layer_pairs(extractor, "model", shapes)
        for variable, key in pair.assignments()
    ]
    assert len(assignments) == len(extractor.weights)
    assert len({key for _, _, key in assignments}) == len(assignments)
    for layer, variable, key in assignments:
        assert shapes[key] == list(variable.shape), (variable.path, key)
        index = _layer_index(key)
        if index is not None:
            assert tf_layer_names[index] == layer.name, key
    unread = set(shapes) - {key for _, _, key in assignments}
    assert {_layer_index(key) for key in unread} == {len(tf_layer_names) - 1}
    assert len(unread) == 4  # post_bn's gamma, beta, moving mean and variance


PARITY_DIR = os.environ.get("KDET_RESNET_SMALL_PARITY_DIR")


@pytest.mark.skipif(
    not PARITY_DIR,
    reason="full-size reference not committed: set KDET_RESNET_SMALL_PARITY_DIR (see docstring)",
)
def test_full_size_resnet_18_fpn_checkpoint_restores_and_features_match():
    folder = pathlib.Path(PARITY_DIR) / PARITY_NAME
    expected = dict(np.load(folder / "outputs.npz"))
    extractor = build_feature_extractor("resnet_v1_18_fpn", **STATISTICS)
    images = tf.constant(photo()[None, :64, :96], tf.float32)
    preprocessed = extractor.preprocess(images)
    np.testing.assert_allclose(
        preprocessed[:, :16, :16], expected["preprocessed_patch"], atol=1e-5
    )
    restore = restore_tfod_checkpoint(extractor, folder / "checkpoint")
    assert len(restore.restored) == len(extractor.weights)
    assert not restore.not_restored
    assert len(restore.unused) == 4
    features = extractor(preprocessed, training=False)
    want = expected["features/0"]
    assert np.abs(want).max() > 0.1
    print(f"max |kdet - TF OD API| = {np.abs(features[0] - want).max():.2e}")
    np.testing.assert_allclose(features[0], want, atol=RAW_TOLERANCE)
