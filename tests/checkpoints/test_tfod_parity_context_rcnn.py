"""TF OD API TF1 Context R-CNN checkpoints (`model.ckpt`, TF-Slim names) load into kdet's
ContextRCNN built from the TF1 config with `tf1_attention=True`, which then computes what the
TF OD API's TF1 graph (`context_rcnn_lib`'s attention) computes.

`tests/data/tfod_reference/tf1_context_rcnn_resnet101/` was made by
`tools/tfod_reference/make_tf1_context_rcnn_references.py`: the
`context_rcnn_resnet101_snapshot_serengeti` sample config reduced (4 context features of
length 8, attention 8 deep, `first_stage_box_predictor_depth` 16), its slim ResNet-101 0.03125
wide (`depth_multiplier` here, as in test_tfod_parity_rfcn), with the photo's context features
(3 valid rows of 4) in its outputs.npz.
"""

import copy
import functools

import numpy as np
import pytest
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.tfod_mapping import tf1_layer_pairs
from kdet.configs import load_pipeline
from kdet.models.faster_rcnn import ContextRCNN
from kdet.models.faster_rcnn.context_attention import ContextAttention

NAME = "tf1_context_rcnn_resnet101"
FOLDER = REFERENCES / NAME
RESNET_DEPTH_MULTIPLIER = 0.03125  # REFERENCE of the generator
# What slim's resnet_v1 builds in the first stage and the TF OD API never computes with.
DEAD_SCOPE = "FirstStageFeatureExtractor/resnet_v1_101/block4/"
# The stage-1 features (up to ~12) agree within 3e-4 (measured: 1.7e-4), the box classifier's
# outputs (class logits up to ~5, box encodings) within 1e-4 plus 1e-4 relative (measured:
# 1.5e-4 on a logit of -1.07; without the TF1 attention's 2 x pooled box features, 3.4).
FEATURE_TOLERANCE = 3e-4
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


@functools.cache
def _pipeline_config():
    """The `ContextRCNN` config of the reference's pipeline.config (float32, the reference's
    ResNet width)."""
    model = load_pipeline(FOLDER / "pipeline.config", dtype_policy="float32").model
    assert isinstance(model, ContextRCNN)
    config = model.get_config()
    config["feature_extractor"]["config"]["depth_multiplier"] = RESNET_DEPTH_MULTIPLIER
    return config


def _config():
    return copy.deepcopy(_pipeline_config())


@functools.cache
def restored():
    """`(model, TFODRestore)`: kdet's TF1-attention ContextRCNN with the reference's
    checkpoint."""
    model = ContextRCNN.from_config({**_config(), "tf1_attention": True})
    return model, restore_tfod_checkpoint(model, FOLDER / "model.ckpt")


def _inputs(model):
    expected = reference(NAME)
    return model.context_inputs(
        photo()[None].astype(np.float32),
        expected["context_features"],
        expected["valid_context_size"],
    )


def test_every_variable_is_restored_but_the_dead_first_stage_block4():
    model, restore = restored()
    checkpoint = TFODCheckpoint.open(FOLDER / "model.ckpt")
    read = sorted(key for _, key in restore.restored)
    dead = sorted(key for key in checkpoint.shapes if key.startswith(DEAD_SCOPE))
    assert sorted(read + dead) == sorted(checkpoint.shapes)
    assert restore.unused == dead
    assert not restore.not_restored
    assert len(restore.restored) == len(model.weights) == len(set(read))
    paths = dict(restore.restored)
    attention = model.context_attention
    assert paths[attention.query_projection.dense.kernel.path] == (
        "AttentionBlock0_AttentionLayer0/fully_connected/weights"
    )
    assert paths[attention.value_projection.batch_norm.moving_mean.path] == (
        "AttentionBlock0_AttentionLayer0/fully_connected_2/BatchNorm/moving_mean"
    )
    assert paths[attention.output_projection.dense.kernel.path] == "fully_connected/weights"
    assert attention.query_projection.dense.bias is None  # TF1: no projection biases
    assert model.get_config()["tf1_attention"] is True
    assert ContextAttention.from_config(attention.get_config()).tf1_attention


def test_outputs_match_the_tf1_graph():
    model, _ = restored()
    expected = reference(NAME)
    outputs = model(_inputs(model), training=False)
    features = model.feature_extractor.extract_proposal_features(
        model.feature_extractor.preprocess(_inputs(model)["resized_images"])
    )
    np.testing.assert_allclose(
        features, expected["predict/rpn_features_to_crop/0"], atol=FEATURE_TOLERANCE
    )
    np.testing.assert_allclose(
        outputs["rpn_box_encodings"], expected["predict/rpn_box_encodings"], atol=1e-4
    )
    count = int(expected["predict/num_proposals"][0])
    assert int(outputs["num_proposals"][0]) == count == 16
    np.testing.assert_allclose(
        outputs["proposals"][0, :count],
        expected["predict/proposal_boxes_normalized"][0, :count],
        atol=1e-5,
    )
    assert np.abs(expected["predict/class_predictions_with_background"]).max() > 1.0
    np.testing.assert_allclose(
        outputs["class_logits"][0, :count],
        expected["predict/class_predictions_with_background"][:count],
        **TOLERANCE,
    )
    box_encodings = np.asarray(outputs["box_encodings"][0, :count])
    np.testing.assert_allclose(  # share_box_across_classes: TF1 one box, kdet one per class
        box_encodings,
        np.broadcast_to(expected["predict/refined_box_encodings"][:count], box_encodings.shape),
        **TOLERANCE,
    )
    detections = model.detect(_inputs(model))
    assert_same_detections(detections, expected, expected["true_image_shapes"][0])


def test_a_model_with_the_tf2_attention_is_refused():
    model = ContextRCNN.from_config({**_config(), "tf1_attention": False})  # refused unbuilt
    with pytest.raises(CheckpointError, match="tf1_attention=True"):
        tf1_layer_pairs(model)
