"""A TF1 checkpoint of the TF OD API's Faster R-CNN Inception-ResNet-v2 (atrous: stride 8, RPN
rate 2) loads into kdet's model of the same config, which then computes what the TF OD API's
TF1 code computes.

The TF OD API has no width multiplier for this body, and its full checkpoint (55M values,
220 MB) cannot be committed: `tests/data/tfod_reference/tf1_faster_rcnn_inception_resnet_v2/`
holds its variable list and the TF OD API's outputs with every variable set to
`seeded_value(name, shape, seed 21)` (`tests/seeded_tfod_checkpoint.py`), made by
`tools/tfod_reference/make_inception_resnet_v2_references.py`. The test writes that checkpoint
(TF-Slim names, as TF1 training and the TF1 zoo's `model.ckpt`) and restores it with
`kdet.checkpoints.restore_tfod_checkpoint`, which must use every variable of it.
"""

import numpy as np
import pytest
from seeded_tfod_checkpoint import read_variable_list
from seeded_tfod_checkpoint import seeded_value
from seeded_tfod_checkpoint import write_tf1_checkpoint
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline

NAME = "tf1_faster_rcnn_inception_resnet_v2"
FOLDER = REFERENCES / NAME
SEED = 21


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    """`(model, TFODRestore, variable list)`: kdet's model of the reference config with the
    seeded checkpoint."""
    variables = read_variable_list(FOLDER / "variables.txt")
    prefix = tmp_path_factory.mktemp(NAME) / "model.ckpt"
    write_tf1_checkpoint(prefix, variables, SEED)
    model = load_pipeline(FOLDER / "pipeline.config", dtype_policy="float32").model
    return model, restore_tfod_checkpoint(model, prefix), variables


def test_every_variable_is_restored_by_its_slim_name(restored):
    model, restore, variables = restored
    assert model.feature_extractor.slim_layout
    assert model.feature_extractor.first_stage_features_stride == 8
    assert len(restore.restored) == len(variables) == len(model.weights) == 906
    assert not restore.unused and not restore.not_restored
    paths = dict(restore.restored)
    extractor = model.feature_extractor
    # The first stage's block17s under slim's `Repeat_1`, the second stage's block8s under
    # `Repeat` and its unrepeated last block8 as `Block8`; the RPN convolution is `Conv`.
    for layer, weight, key in (
        (extractor.proposal_body, "block17_20_branch_1_conv2d_0c_7x1", "kernel"),
        (extractor.box_classifier_body, "block8_9_conv", "bias"),
        (extractor.box_classifier_body, "block8_10_branch_0_conv2d_1x1_bn", "moving_mean"),
    ):
        path = getattr(layer.get_layer(weight), key).path
        assert paths[path] == {
            "kernel": "FirstStageFeatureExtractor/InceptionResnetV2/Repeat_1/block17_20/"
            "Branch_1/Conv2d_0c_7x1/weights",
            "bias": "SecondStageFeatureExtractor/InceptionResnetV2/Repeat/block8_9/Conv2d_1x1/"
            "biases",
            "moving_mean": "SecondStageFeatureExtractor/InceptionResnetV2/Block8/Branch_0/"
            "Conv2d_1x1/BatchNorm/moving_mean",
        }[key]
    rpn_conv = model.region_proposal_network.rpn_head.rpn_conv
    assert rpn_conv.dilation_rate == (2, 2)  # first_stage_atrous_rate
    assert paths[rpn_conv.kernel.path] == "Conv/weights"


@pytest.fixture(scope="module")
def outputs(restored):
    """The raw outputs of the restored model on the photo (eager: tracing the full model for
    `predict` would double the test's time)."""
    return restored[0](photo()[None], training=False)


def test_raw_outputs_match_the_tf_od_api(restored, outputs):
    model, _, _ = restored
    expected = reference(NAME)
    preprocessed = expected["predict/preprocessed_inputs"]
    height, width = preprocessed.shape[1:3]
    np.testing.assert_allclose(
        model.feature_extractor.extract_proposal_features(preprocessed),
        expected["predict/feature_maps/0"],
        atol=RAW_TOLERANCE,
    )
    np.testing.assert_allclose(
        np.asarray(outputs["anchors"]) * [height, width, height, width],
        expected["predict/anchors"],
        atol=RAW_TOLERANCE,
    )
    for ours, theirs in (
        ("rpn_box_encodings", "rpn_box_encodings"),
        ("rpn_objectness_logits", "rpn_objectness_predictions_with_background"),
    ):
        np.testing.assert_allclose(
            outputs[ours], expected[f"predict/{theirs}"], atol=RAW_TOLERANCE, err_msg=ours
        )
    count = int(expected["predict/num_proposals"][0])
    assert int(outputs["num_proposals"][0]) == count == 4
    np.testing.assert_allclose(
        outputs["proposals"][0, :count],
        expected["predict/proposal_boxes_normalized"][0, :count],
        atol=RAW_TOLERANCE,
    )
    # The second stage (Mixed_7a "VALID" on the 17x17 crops, the block8s, Conv2d_7b_1x1),
    # average-pooled, feeds these.
    np.testing.assert_allclose(
        outputs["class_logits"][0, :count],
        expected["predict/class_predictions_with_background"][:count],
        atol=RAW_TOLERANCE,
    )
    np.testing.assert_allclose(
        outputs["box_encodings"][0, :count],
        expected["predict/refined_box_encodings"][:count],
        atol=RAW_TOLERANCE,
    )


def test_detections_match_the_tf_od_api_as_sets(restored, outputs):
    detections = restored[0].postprocess(outputs)  # boxes relative to the photo
    assert_same_detections(detections, reference(NAME), (1, 1))  # relative boxes


def test_a_slim_classification_checkpoint_restores_both_stages(restored, tmp_path):
    # inception_resnet_v2_2016_08_30.ckpt of the slim model zoo names the whole net under
    # `InceptionResnetV2/`, the block8 repeats `Repeat_2`, and has classifiers the restore
    # leaves unused. Its values here are the detection checkpoint's (the model stays as it is).
    model, _, variables = restored

    def classification_name(name):
        stage, _, rest = name.partition("/")
        if stage == "SecondStageFeatureExtractor":
            return rest.replace("InceptionResnetV2/Repeat/", "InceptionResnetV2/Repeat_2/")
        return rest if stage == "FirstStageFeatureExtractor" else name

    backbone = [
        (name, shape)
        for name, shape in variables
        if name.startswith(("FirstStageFeatureExtractor/", "SecondStageFeatureExtractor/"))
    ]
    logits = [("InceptionResnetV2/Logits/Logits/weights", [1536, 1001])]
    prefix = tmp_path / "inception_resnet_v2_2016_08_30.ckpt"
    write_tf1_checkpoint(prefix, backbone + logits, SEED, rename=classification_name)
    restore = restore_tfod_checkpoint(model, prefix, "classification")
    assert len(restore.restored) == len(model.feature_extractor.weights) == len(backbone)
    assert restore.unused == ["InceptionResnetV2/Logits/Logits/weights"]
    paths = dict(restore.restored)
    conv = model.feature_extractor.box_classifier_body.get_layer("block8_1_conv")
    assert paths[conv.kernel.path] == "InceptionResnetV2/Repeat_2/block8_1/Conv2d_1x1/weights"
    np.testing.assert_array_equal(
        conv.kernel.numpy(),
        seeded_value(
            "SecondStageFeatureExtractor/InceptionResnetV2/Repeat/block8_1/Conv2d_1x1/weights",
            conv.kernel.shape,
            SEED,
        ),
    )
