"""A TF OD API EfficientDet TF2 checkpoint loads into kdet, which then computes what the TF OD
API computes.

`tests/data/tfod_reference/ssd_efficientdet_d0/` was made by
`tools/tfod_reference/make_efficientdet_references.py` with the TF OD API's own code from the
EfficientDet-D0 sample config, reduced by config fields (3 classes, its keep-aspect-ratio
resizer at 256 px, BiFPN and predictor 16 filters, EfficientNet-B0 at width 0.1 through
`depth_multiplier`: see the script). Comparisons as in `test_tfod_parity.py`.

`tests/data/tfod_reference/ssd_efficientdet_d1/` was made by
`tools/tfod_reference/make_classification_checkpoints.py`: a TF2 classification checkpoint of
a Model Garden EfficientNet-B1 classifier (width 0.075, 8 classes, randomized) as the
EfficientDet configs' `fine_tune_checkpoint_type: "classification"` reads it, the reduced D1
config, and the body maps of the TF OD API's EfficientDet-D1 after its own classification
restore (`model_lib_v2.load_fine_tune_checkpoint`).
"""

import numpy as np
import pytest
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import loaded
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.mappings.efficientdet import efficientnet_classification_layers
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint

NAME = "ssd_efficientdet_d0"
# The EfficientNet's top convolution, its batch norm and the ImageNet classifier: built and
# saved by the TF OD API (`classification_backbone`), never read by detection.
UNREAD_PREFIX = "model/_feature_extractor/classification_backbone/"
CLASSIFICATION = "ssd_efficientdet_d1"
# Layers of the EfficientNet-B1 classifier (185 with weights) past kdet's body: stack_6/block_1
# (8), the top convolution, its batch norm and the classifier.
B1_UNREAD_LAYERS = {f"feature_extractor/layer_with_weights-{index}" for index in range(174, 185)}


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


def test_an_efficientnet_classification_checkpoint_starts_the_body_as_in_the_tf_od_api(tmp_path):
    # The D1 config as a user runs it: fine_tune_checkpoint_type "classification" on the
    # classifier's checkpoint.
    folder = REFERENCES / CLASSIFICATION
    text = (folder / "pipeline.config").read_text()
    assert 'fine_tune_checkpoint_type: "classification"' in text
    text = text.replace("PATH_TO_BE_CONFIGURED/ckpt-0", str(folder / "classification" / "ckpt-0"))
    (tmp_path / "pipeline.config").write_text(text)
    pipeline = load_pipeline(tmp_path / "pipeline.config", dtype_policy="float32")
    model = pipeline.model
    extractor = model.feature_extractor
    assert len(restore_fine_tune_checkpoint(pipeline).restored) == len(extractor.body.weights)
    expected = reference(CLASSIFICATION)
    maps = extractor.body(extractor.preprocess(np.float32(photo())[None]))
    assert len(maps) == 3
    for index, feature_map in enumerate(maps):
        np.testing.assert_allclose(
            feature_map, expected[f"backbone/{index}"], atol=RAW_TOLERANCE, err_msg=str(index)
        )
    restore = restore_tfod_checkpoint(model, folder / "classification", "classification")
    body = extractor.body.weights
    assert sorted(path for path, _ in restore.restored) == sorted(w.path for w in body)
    assert {key.split("/.ATTRIBUTES")[0].rsplit("/", 1)[0] for key in restore.unused} == (
        B1_UNREAD_LAYERS
    )
    body_paths = {w.path for w in body}
    assert sorted(restore.not_restored) == sorted(
        w.path for w in model.weights if w.path not in body_paths
    )


def test_an_efficientnet_classification_checkpoint_of_another_version_does_not_fit(restored):
    model, _ = restored
    # B0: the detection checkpoint's body layers and its unread classifier layers.
    checkpoint = TFODCheckpoint.open(REFERENCES / NAME / "checkpoint")
    layers = {key.split("/.ATTRIBUTES")[0].rsplit("/", 1)[0] for key in checkpoint.shapes}
    assert efficientnet_classification_layers(model.feature_extractor) == len(
        [path for path in layers if "/_efficientnet/" in path or path.startswith(UNREAD_PREFIX)]
    ) == 131
    before = [weight.numpy().copy() for weight in model.weights]
    with pytest.raises(CheckpointError, match="185 layers with weights under feature_extractor/"
                       ", the kdet model 131 .*reads the first 128"):
        restore_tfod_checkpoint(
            model, REFERENCES / CLASSIFICATION / "classification", "classification"
        )
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
