"""TF OD API TF2 Faster R-CNN ResNet checkpoints load into kdet's FasterRCNN, which then
computes what the TF OD API computes (see `test_tfod_parity.py` for the references).

The references' ResNet bodies are 0.0625 wide (`tools/tfod_reference/README.md`): the TF OD
API's Faster R-CNN extractors have no config field for the width, its generator passes it to
the TF OD API's ResNet builders. kdet's extractor takes it (`depth_multiplier`), so the model
here is the config's with that one argument changed; the FPN reference's box classifier has
32 units (the TF OD API hard-codes 1024, the generator narrowed it). The config asks for `use_bfloat16` (TPU
training): the model is built float32.
"""

import functools

import numpy as np
import pytest
from tfod_reference_extractors import RESNET_DEPTH_MULTIPLIER
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_faster_rcnn_outputs_match
from tfod_references import assert_same_detections
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline
from kdet.layers.proposal_generator import ProposalGenerator
from kdet.models.faster_rcnn import RoIHeads
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN

NAMES = ["faster_rcnn_resnet50", "faster_rcnn_resnet101", "faster_rcnn_resnet50_fpn"]
# The FPN reference's box classifier width (`FPN_BOX_CLASSIFIER_UNITS` of the generator).
FPN_BOX_CLASSIFIER_UNITS = 32


def reference_model(name, config_path=None):
    """kdet's FasterRCNN of the reference's config (or `config_path`), float32, with the
    reference's ResNet width; not restored."""
    model = load_pipeline(
        config_path or REFERENCES / name / "pipeline.config", dtype_policy="float32"
    ).model
    config = model.get_config()
    extractor = config["feature_extractor"]["config"]
    extractor["depth_multiplier"] = RESNET_DEPTH_MULTIPLIER
    if "box_classifier_units" in extractor:
        extractor["box_classifier_units"] = FPN_BOX_CLASSIFIER_UNITS
    return FasterRCNN.from_config(config)


@functools.cache
def restored(name):
    """`(model, TFODRestore)`: the reference model with the reference's checkpoint."""
    model = reference_model(name)
    return model, restore_tfod_checkpoint(model, REFERENCES / name / "checkpoint")


@pytest.mark.parametrize("name", NAMES)
def test_every_checkpoint_variable_is_restored(name):
    model, restore = restored(name)
    checkpoint = TFODCheckpoint.open(REFERENCES / name / "checkpoint")
    assert sorted(key for _, key in restore.restored) == sorted(checkpoint.shapes)
    assert not restore.not_restored
    assert len(restore.restored) == len(model.weights)


@pytest.mark.parametrize("name", NAMES)
def test_raw_outputs_match_the_tf_od_api(name):
    model, _ = restored(name)
    expected = reference(name)
    outputs = model(photo()[None], training=False)
    # The TF OD API's anchors are pixels of the padded 128x128 input, clipped to it.
    height, width = expected["predict/image_shape"][1:3]
    if model.feature_extractor.is_fpn:
        np.testing.assert_allclose(
            np.asarray(outputs["anchors"]) * [height, width, height, width],
            expected["predict/anchors"],
            atol=RAW_TOLERANCE,
        )
        return _assert_fpn_outputs_match(model, outputs, expected, (height, width))
    assert_faster_rcnn_outputs_match(model, outputs, expected, (height, width))


def _assert_fpn_outputs_match(model, outputs, expected, image_size):
    """The FPN reference: every pyramid level, then the RPN, proposals, crops from the levels
    the TF OD API assigns, the box classifier and its predictions."""
    features = model.feature_extractor.extract_proposal_features(
        expected["predict/preprocessed_inputs"]
    )
    assert len(features) == 5  # P2..P6, all cropped from and all feeding the RPN
    for level, level_features in enumerate(features):
        np.testing.assert_allclose(
            level_features,
            expected[f"predict/rpn_features_to_crop/{level}"],
            atol=RAW_TOLERANCE,
            err_msg=f"pyramid level {level + 2}",
        )
    for ours, theirs in (
        ("rpn_box_encodings", "rpn_box_encodings"),
        ("rpn_objectness_logits", "rpn_objectness_predictions_with_background"),
    ):
        np.testing.assert_allclose(
            outputs[ours], expected[f"predict/{theirs}"], atol=RAW_TOLERANCE, err_msg=ours
        )
    count = int(expected["predict/num_proposals"][0])
    assert int(outputs["num_proposals"][0]) == count
    np.testing.assert_allclose(
        outputs["proposals"][0, :count],
        expected["predict/proposal_boxes_normalized"][0, :count],
        atol=RAW_TOLERANCE,
    )
    crops = model.roi_heads.crop(features, outputs["proposals"], image_size)
    np.testing.assert_allclose(
        model.feature_extractor.extract_box_classifier_features(crops)[:count],
        np.reshape(expected["predict/box_classifier_features"], [-1, FPN_BOX_CLASSIFIER_UNITS])[
            :count
        ],
        atol=RAW_TOLERANCE,
    )
    np.testing.assert_allclose(
        outputs["class_logits"][0, :count],
        expected["predict/class_predictions_with_background"][:count],
        atol=RAW_TOLERANCE,
    )
    # One box per class (the sample config does not share boxes across classes).
    np.testing.assert_allclose(
        outputs["box_encodings"][0, :count],
        expected["predict/refined_box_encodings"][:count],
        atol=RAW_TOLERANCE,
    )


@pytest.mark.parametrize("name", NAMES)
def test_detections_match_the_tf_od_api_as_sets(name):
    model, _ = restored(name)
    image = photo()
    detections = model.predict_on_batch(image[None])
    assert_same_detections(detections, reference(name), image.shape)


def test_clipping_before_nms_as_kdet_did_changes_the_detections():
    # What the TF OD API's order (NMS on the decoded boxes, then clip and drop empty boxes)
    # changes on the reference: with kdet's former order, boxes clipped to nothing (on the
    # image border) are detections.
    model = reference_model("faster_rcnn_resnet50")
    model.roi_heads.clip_after_non_max_suppression = False
    restore_tfod_checkpoint(model, REFERENCES / "faster_rcnn_resnet50" / "checkpoint")
    image = photo()
    detections = model.predict_on_batch(image[None])
    boxes = np.asarray(detections["boxes"][0][: int(detections["num_detections"][0])])
    assert np.any((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) == 0.0)
    with pytest.raises(AssertionError, match="not among kdet's"):
        assert_same_detections(detections, reference("faster_rcnn_resnet50"), image.shape)


def test_a_detection_restore_leaves_the_heads_and_allows_other_classes(tmp_path):
    # fine_tune_checkpoint_type "detection" (TF2): both halves of the ResNet body only.
    folder = REFERENCES / "faster_rcnn_resnet50"
    text = (folder / "pipeline.config").read_text().replace("num_classes: 3", "num_classes: 5")
    (tmp_path / "pipeline.config").write_text(text)
    model = reference_model("faster_rcnn_resnet50", tmp_path / "pipeline.config")
    restore = restore_tfod_checkpoint(model, folder / "checkpoint", "detection")
    restored_paths = sorted(path for path, _ in restore.restored)
    assert restored_paths == sorted(weight.path for weight in model.feature_extractor.weights)
    heads = model.region_proposal_network.weights + model.roi_heads.weights
    assert sorted(restore.not_restored) == sorted(weight.path for weight in heads)
    # "full" into 5 classes fails before assigning anything, naming the class predictor.
    before = [weight.numpy().copy() for weight in model.weights]
    with pytest.raises(CheckpointError, match="ClassPredictor_dense.*shape"):
        restore_tfod_checkpoint(model, folder / "checkpoint", "full")
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_tf2_classification_checkpoint_starts_the_whole_resnet_body():
    # `classification/ckpt-0`: the TF OD API's classification backbone (the whole ResNet) as
    # `model_lib_v2` restores it for fine_tune_checkpoint_type "classification"
    # (tools/tfod_reference/make_classification_checkpoints.py), here the reference's own.
    folder = REFERENCES / "faster_rcnn_resnet50"
    model = reference_model("faster_rcnn_resnet50")
    restore = restore_tfod_checkpoint(model, folder / "classification", "classification")
    extractor = model.feature_extractor.weights
    assert sorted(path for path, _ in restore.restored) == sorted(w.path for w in extractor)
    assert all(key.startswith("feature_extractor/") for _, key in restore.restored)
    expected, _ = restored("faster_rcnn_resnet50")
    for ours, theirs in zip(extractor, expected.feature_extractor.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    heads = model.region_proposal_network.weights + model.roi_heads.weights
    assert sorted(restore.not_restored) == sorted(weight.path for weight in heads)
    # Another architecture's backbone does not fit, and the error says how.
    with pytest.raises(CheckpointError, match="layers with weights under feature_extractor/"):
        restore_tfod_checkpoint(
            reference_model("faster_rcnn_resnet101"), folder / "classification", "classification"
        )


def test_a_full_width_model_does_not_fit_the_narrow_checkpoint():
    folder = REFERENCES / "faster_rcnn_resnet50"
    model = load_pipeline(folder / "pipeline.config", dtype_policy="float32").model
    with pytest.raises(CheckpointError, match="does not fit the model"):
        restore_tfod_checkpoint(model, folder / "checkpoint")


def test_components_saved_before_keep_clipping_before_nms():
    generator = ProposalGenerator(max_proposals=8)
    assert generator.clip_after_non_max_suppression
    config = generator.get_config()
    del config["clip_after_non_max_suppression"]
    assert not ProposalGenerator.from_config(config).clip_after_non_max_suppression
    heads = RoIHeads(2)
    assert heads.clip_after_non_max_suppression
    config = heads.get_config()
    del config["clip_after_non_max_suppression"]
    assert not RoIHeads.from_config(config).clip_after_non_max_suppression
