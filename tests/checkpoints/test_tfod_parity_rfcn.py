"""TF OD API TF1 R-FCN checkpoints (`model.ckpt`, TF-Slim names) load into kdet's RFCN built
from the TF1 config, which then computes what the TF OD API's TF1 code computes.

`tests/data/tfod_reference/tf1_rfcn_resnet101/` was made by
`tools/tfod_reference/make_tf1_rfcn_references.py`: the TF1 zoo's `rfcn_resnet101_coco`
config reduced (`rfcn_box_predictor` depth 32, `first_stage_box_predictor_depth` 16), its slim
ResNet-101 0.03125 wide: the TF OD API's extractors have no config field for the width, the
generator passes it to slim's ResNet builder; kdet's extractor takes it (`depth_multiplier`),
so the model here is the config's with that one argument changed.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import REFERENCES
from tfod_references import assert_restores_all_but
from tfod_references import assert_same_detections
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline
from kdet.models.faster_rcnn import RFCN

NAME = "tf1_rfcn_resnet101"
FOLDER = REFERENCES / NAME
RESNET_DEPTH_MULTIPLIER = 0.03125  # TF1_RFCN_REFERENCES of the generator
# What slim's resnet_v1 builds in the first stage and the TF OD API never computes with.
DEAD_SCOPE = "FirstStageFeatureExtractor/resnet_v1_101/block4/"
# The box classifier's outputs (class logits up to ~4, box encodings) agree within this.
BOX_CLASSIFIER_TOLERANCE = 1e-4


@functools.cache
def restored():
    """`(model, TFODRestore)`: kdet's RFCN of the reference's config (float32, the
    reference's ResNet width) with the reference's checkpoint."""
    model = load_pipeline(FOLDER / "pipeline.config", dtype_policy="float32").model
    config = model.get_config()
    config["feature_extractor"]["config"]["depth_multiplier"] = RESNET_DEPTH_MULTIPLIER
    model = RFCN.from_config(config)
    return model, restore_tfod_checkpoint(model, FOLDER / "model.ckpt")


def test_every_variable_is_restored_but_the_dead_first_stage_block4():
    model, restore = restored()
    assert_restores_all_but(model, restore, FOLDER / "model.ckpt", DEAD_SCOPE)
    paths = dict(restore.restored)
    predictor = model.roi_heads.box_predictor
    assert paths[predictor.reduce_depth_conv.kernel.path] == (
        "SecondStageBoxPredictor/reduce_depth/weights"
    )
    assert paths[predictor.refined_locations_conv.bias.path] == (
        "SecondStageBoxPredictor/refined_locations/biases"
    )
    assert paths[predictor.class_predictions_conv.kernel.path] == (
        "SecondStageBoxPredictor/class_predictions/weights"
    )


def test_raw_outputs_match_the_tf_od_api():
    model, _ = restored()
    expected = reference(NAME)
    outputs = model(photo()[None], training=False)
    height, width = expected["true_image_shapes"][0, :2]
    size = [height, width, height, width]
    np.testing.assert_allclose(
        np.asarray(outputs["anchors"]) * size, expected["predict/anchors"], atol=1e-3
    )
    for ours, theirs in (
        ("rpn_box_encodings", "rpn_box_encodings"),
        ("rpn_objectness_logits", "rpn_objectness_predictions_with_background"),
    ):
        np.testing.assert_allclose(
            outputs[ours], expected[f"predict/{theirs}"], atol=1e-4, err_msg=ours
        )
    count = int(expected["predict/num_proposals"][0])
    assert int(outputs["num_proposals"][0]) == count == 16
    proposals = outputs["proposals"][0, :count]
    np.testing.assert_allclose(
        proposals, expected["predict/proposal_boxes_normalized"][0, :count], atol=1e-5
    )
    # Stage 2 of R-FCN: the slim block4 on the whole proposal feature map, then the
    # position-sensitive score maps pooled at the proposals.
    # (The reference keeps no preprocessed photo: kdet's own resize and preprocessing, which
    # test_tfod_building_blocks checks, feed the body here.)
    resized, _ = model.resize_inputs(tf.constant(photo()[None], tf.float32))
    features = model.feature_extractor.extract_proposal_features(
        model.feature_extractor.preprocess(resized)
    )
    np.testing.assert_allclose(
        features, expected["predict/rpn_features_to_crop/0"], rtol=1e-4, atol=1e-4
    )
    box_features = model.feature_extractor.extract_box_classifier_features(features)
    np.testing.assert_allclose(
        box_features, expected["predict/box_classifier_features"], rtol=1e-4, atol=1e-4
    )
    assert np.abs(expected["predict/class_predictions_with_background"]).max() > 1.0
    np.testing.assert_allclose(
        outputs["class_logits"][0, :count],
        expected["predict/class_predictions_with_background"][:count],
        atol=BOX_CLASSIFIER_TOLERANCE,
    )
    np.testing.assert_allclose(
        outputs["box_encodings"][0, :count],
        expected["predict/refined_box_encodings"][:count],
        atol=BOX_CLASSIFIER_TOLERANCE,
    )


def test_detections_match_the_tf_od_api_as_sets():
    model, _ = restored()
    image = photo()
    detections = model.detect(image[None].astype(np.float32))  # eager: no tracing
    assert_same_detections(detections, reference(NAME), image.shape)


def _changed_checkpoint(folder, change):
    """The reference checkpoint, every value + 1, with `change({key: value})` applied,
    written under `folder`."""
    reader = tf.train.load_checkpoint(str(FOLDER / "model.ckpt"))
    # Every value moved, so that a weight assigned before the refusal would show.
    values = {key: reader.get_tensor(key) + 1 for key in reader.get_variable_to_shape_map()}
    change(values)
    names = sorted(values)
    prefix = str(folder / "model.ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[name]) for name in names],
    )
    return prefix


def _narrower(values):
    # An R-FCN box predictor of depth 16: its three kernels take another shape.
    scope = "SecondStageBoxPredictor/"
    values[scope + "reduce_depth/weights"] = values[scope + "reduce_depth/weights"][..., :16]
    values[scope + "reduce_depth/biases"] = values[scope + "reduce_depth/biases"][:16]
    for branch in ("refined_locations", "class_predictions"):
        values[f"{scope}{branch}/weights"] = values[f"{scope}{branch}/weights"][:, :, :16]


def _with_batch_norms(values):
    # Predictor hyperparams with a batch norm: slim keeps it in each convolution's scope.
    depth = values["SecondStageBoxPredictor/reduce_depth/biases"].shape
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        values[f"SecondStageBoxPredictor/reduce_depth/BatchNorm/{name}"] = np.ones(depth, "f")


NARROWER = (
    "reduce_depth_conv/kernel: shape \\[1, 1, 64, 32\\], checkpoint "
    "SecondStageBoxPredictor/reduce_depth/weights \\[1, 1, 64, 16\\]"
)
WITH_BATCH_NORMS = (
    "checkpoint variable SecondStageBoxPredictor/reduce_depth/BatchNorm/beta has no kdet weight"
)


@pytest.mark.parametrize(
    "change, problem",
    [(_narrower, NARROWER), (_with_batch_norms, WITH_BATCH_NORMS)],
    ids=["depth", "batch_norm"],
)
def test_another_predictor_layout_is_refused_and_nothing_assigned(tmp_path, change, problem):
    model, _ = restored()
    before = [weight.numpy() for weight in model.weights]
    with pytest.raises(CheckpointError, match=problem):
        restore_tfod_checkpoint(model, _changed_checkpoint(tmp_path, change))
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
