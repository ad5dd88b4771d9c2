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

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import restore_tfod_checkpoint
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
