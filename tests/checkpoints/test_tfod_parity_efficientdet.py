"""A TF OD API EfficientDet TF2 checkpoint loads into kdet, which then computes what the TF OD
API computes.

`tests/data/tfod_reference/ssd_efficientdet_d0/` was made by
`tools/tfod_reference/make_efficientdet_references.py` with the TF OD API's own code from the
EfficientDet-D0 sample config, reduced by config fields (3 classes, its keep-aspect-ratio
resizer at 256 px, BiFPN and predictor 16 filters, EfficientNet-B0 at width 0.1 through
`depth_multiplier`: see the script). Comparisons as in `test_tfod_parity.py`.
"""

import numpy as np
import pytest
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import loaded
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import restore_tfod_checkpoint

NAME = "ssd_efficientdet_d0"
# The EfficientNet's top convolution, its batch norm and the ImageNet classifier: built and
# saved by the TF OD API (`classification_backbone`), never read by detection.
UNREAD_PREFIX = "model/_feature_extractor/classification_backbone/"


@pytest.fixture(scope="module")
def restored():
    return loaded(NAME)


def test_every_checkpoint_variable_is_restored_but_the_unread_classifier(restored):
    model, restore = restored
    checkpoint = TFODCheckpoint.open(REFERENCES / NAME / "checkpoint")
    read = sorted(key for _, key in restore.restored)
    assert read == sorted(key for key in checkpoint.shapes if not key.startswith(UNREAD_PREFIX))
    assert len(restore.unused) == 7 and all(k.startswith(UNREAD_PREFIX) for k in restore.unused)
    assert not restore.not_restored
    assert len(restore.restored) == len(model.weights)


def test_raw_outputs_and_detections_match_the_tf_od_api(restored):
    model, _ = restored
    expected = reference(NAME)
    image = photo()
    outputs = model(image[None], training=False)
    for ours, theirs in (
        ("anchors", "anchors"),
        ("box_encodings", "box_encodings"),
        ("class_logits", "class_predictions_with_background"),
    ):
        np.testing.assert_allclose(
            outputs[ours], expected[f"predict/{theirs}"], atol=RAW_TOLERANCE, err_msg=ours
        )
    assert_same_detections(model.predict_on_batch(image[None]), expected, image.shape)


def test_the_feature_maps_are_the_checkpoints_and_a_detection_restore_leaves_the_heads(restored):
    model, _ = restored
    expected = reference(NAME)
    feature_maps = model.feature_extractor(expected["predict/preprocessed_inputs"])
    assert len(feature_maps) == 5
    for index, feature_map in enumerate(feature_maps):
        np.testing.assert_allclose(
            feature_map, expected[f"predict/feature_maps/{index}"], atol=RAW_TOLERANCE
        )
    restore = restore_tfod_checkpoint(model, REFERENCES / NAME / "checkpoint", "detection")
    assert restore.not_restored
    assert all("box_predictor" in path for path in restore.not_restored)
    assert not any("box_predictor" in path for path, _ in restore.restored)
