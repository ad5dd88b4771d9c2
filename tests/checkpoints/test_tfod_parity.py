"""TF OD API TF2 checkpoints load into kdet models that then compute what the TF OD API
computes.

`tests/data/tfod_reference/<name>/` holds, for each architecture, a small random-initialized
TF OD API model made by `tools/tfod_reference/make_references.py` with the TF OD API's own
code (its README says how): `pipeline.config`, the TF2 object-based checkpoint
(`checkpoint/ckpt-0`, as `model_lib_v2` writes it) and `outputs.npz`, the TF OD API's
`preprocess` / `predict` / `postprocess` tensors on `photo.png`. kdet builds the model from
the config unchanged, restores the checkpoint (every variable must be used) and must match the
raw outputs within 1e-3 and the detections as sets (same classes, IoU ≥ 0.99, scores within
1e-3): the TF OD API's own eager and compiled runs differ by up to 6e-4 on logits. Models are
built float32, as the TF OD API's exporter builds them: a TF2 config's `use_bfloat16` (the
RetinaNet configs') is a TPU training switch.
"""

import numpy as np
import pytest
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import assert_ssd_outputs_match
from tfod_references import loaded
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline

# The SSD references whose architecture kdet maps (the others come with their mappings).
MAPPED = [
    "ssd_mobilenet_v2",
    "ssd_mobilenet_v2_fpnlite",
    "ssd_mobilenet_v1_fpn",
    "ssd_resnet50_v1_fpn",
]


@pytest.mark.parametrize("name", MAPPED)
def test_every_checkpoint_variable_is_restored(name):
    model, restore = loaded(name)
    checkpoint = TFODCheckpoint.open(REFERENCES / name / "checkpoint")
    assert checkpoint.version == "V2"
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert not restore.not_restored
    assert len(restore.restored) == len(model.weights)


@pytest.mark.parametrize("name", MAPPED)
def test_raw_outputs_match_the_tf_od_api(name):
    model, _ = loaded(name)
    expected = reference(name)
    assert_ssd_outputs_match(model, expected, anchor_tolerance=RAW_TOLERANCE)


@pytest.mark.parametrize("name", MAPPED)
def test_detections_match_the_tf_od_api_as_sets(name):
    model, _ = loaded(name)
    image = photo()
    detections = model.predict_on_batch(image[None])
    assert_same_detections(detections, reference(name), image.shape)


@pytest.mark.parametrize("name", MAPPED)
def test_a_detection_restore_leaves_the_box_predictor_and_allows_other_classes(name, tmp_path):
    # fine_tune_checkpoint_type "detection" (TF2 meaning): the feature extractor only, so a
    # config with another num_classes starts from the checkpoint's extractor.
    folder = REFERENCES / name
    text = (folder / "pipeline.config").read_text().replace("num_classes: 3", "num_classes: 5")
    (tmp_path / "pipeline.config").write_text(text)
    model = load_pipeline(tmp_path / "pipeline.config", dtype_policy="float32").model
    restore = restore_tfod_checkpoint(model, folder / "checkpoint", "detection")
    restored = {path for path, _ in restore.restored}
    assert restored and all("box_predictor" not in path for path in restored)
    assert any("box_predictor" in path for path in restore.not_restored)
    # The whole extractor (body, extra layers or pyramid) computes the checkpoint's maps.
    expected = reference(name)
    feature_maps = model.feature_extractor(expected["predict/preprocessed_inputs"])
    for index, feature_map in enumerate(feature_maps):
        np.testing.assert_allclose(
            feature_map, expected[f"predict/feature_maps/{index}"], atol=RAW_TOLERANCE
        )
    # "full" into 5 classes fails before assigning anything, naming the class heads.
    before = [weight.numpy().copy() for weight in model.weights]
    with pytest.raises(CheckpointError, match="(?i)class_?predictor.*shape"):
        restore_tfod_checkpoint(model, folder / "checkpoint", "full")
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_config_that_does_not_describe_the_checkpoint_is_refused(tmp_path):
    folder = REFERENCES / "ssd_mobilenet_v2"
    text = (folder / "pipeline.config").read_text().replace(
        "depth_multiplier: 0.25", "depth_multiplier: 0.5"
    )
    (tmp_path / "pipeline.config").write_text(text)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_tfod_model(tmp_path / "pipeline.config", folder / "checkpoint")


def test_missing_and_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path / "nothing")):
        TFODCheckpoint.open(tmp_path / "nothing")
    (tmp_path / "ckpt-1.index").write_bytes(b"not an index")
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        TFODCheckpoint.open(tmp_path / "ckpt-1")
