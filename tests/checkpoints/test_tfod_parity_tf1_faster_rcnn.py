"""TF OD API TF1 Faster R-CNN ResNet checkpoints (`model.ckpt`, TF-Slim names) load into kdet's
FasterRCNN built from the TF1 config (`faster_rcnn_resnet50`: the TF-Slim ResNet layout), which
then computes what the TF OD API's TF1 code computes; a slim `resnet_v1_50.ckpt` starts its
body.

`tests/data/tfod_reference/tf1_faster_rcnn_resnet50/` was made by
`tools/tfod_reference/make_tf1_references.py` with the TF OD API's TF1 code, its slim ResNet
0.0625 wide (bottlenecks `max(int(d * 0.0625), 8)`, the extractor's second-stage `block4`
scaled alike): the model here is the config's with that `depth_multiplier`.
"""

import functools
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tfod_reference_extractors import RESNET_DEPTH_MULTIPLIER
from tfod_references import REFERENCES
from tfod_references import assert_faster_rcnn_outputs_match
from tfod_references import assert_restores_all_but
from tfod_references import assert_same_detections
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.zoo.tf_od_api_converter import load_detector_weights
from kdet.zoo.tf_od_api_converter import read_frozen_graph_constants

NAME = "tf1_faster_rcnn_resnet50"
FOLDER = REFERENCES / NAME
# What slim's resnet_v1 builds in the first stage and the TF OD API never computes with.
DEAD_SCOPE = "FirstStageFeatureExtractor/resnet_v1_50/block4/"


def reference_model(config_path=FOLDER / "pipeline.config", **extractor_changes):
    """kdet's FasterRCNN of the TF1 config, float32, at the reference's ResNet width; not
    restored."""
    model = load_pipeline(config_path, dtype_policy="float32").model
    config = model.get_config()
    # The TF OD API clips the anchors at inference whatever clip_anchors_to_image says (this
    # TF1 config does not set it); kdet's RPN too (clip_anchors_at_inference).
    assert not config["region_proposal_network"]["config"]["clip_anchors_to_image"]
    assert config["region_proposal_network"]["config"]["clip_anchors_at_inference"]
    config["feature_extractor"]["config"].update(
        depth_multiplier=RESNET_DEPTH_MULTIPLIER, **extractor_changes
    )
    return FasterRCNN.from_config(config)


@functools.cache
def restored():
    model = reference_model()
    return model, restore_tfod_checkpoint(model, FOLDER / "model.ckpt")


def test_the_tf1_config_builds_the_slim_layout():
    model, _ = restored()
    assert model.feature_extractor.slim_layout
    assert not load_pipeline(
        REFERENCES / "faster_rcnn_resnet50" / "pipeline.config"
    ).model.feature_extractor.slim_layout


def test_every_variable_is_restored_but_the_dead_first_stage_block4():
    model, restore = restored()
    dead = assert_restores_all_but(model, restore, FOLDER / "model.ckpt", DEAD_SCOPE)
    assert len(dead) == (3 * 3 + 1) * 5  # 3 units x 3 convs + a shortcut, weights + 4 BN
    # The second stage's block4 and the RPN convolution are read under their slim names.
    paths = dict(restore.restored)
    body = model.feature_extractor.box_classifier_body
    assert (
        paths[body.get_layer("conv5_block1_0_conv").kernel.path]
        == "SecondStageFeatureExtractor/resnet_v1_50/block4/unit_1/bottleneck_v1/shortcut/weights"
    )
    assert paths[model.region_proposal_network.rpn_head.rpn_conv.kernel.path] == "Conv/weights"


def test_raw_outputs_match_the_tf_od_api():
    model, _ = restored()
    expected = reference(NAME)
    outputs = model(photo()[None], training=False)
    # The TF OD API's anchors are pixels of the resized (unpadded) input, clipped to it; the
    # TF1 second stage is the slim body's block4 (stride 1) on the RoI crops: [16, 7, 7, 128].
    height, width = expected["predict/preprocessed_inputs"].shape[1:3]
    assert_faster_rcnn_outputs_match(model, outputs, expected, (height, width))


def test_detections_match_the_tf_od_api_as_sets():
    model, _ = restored()
    image = photo()
    detections = model.predict_on_batch(image[None])
    assert_same_detections(detections, reference(NAME), image.shape)


def test_the_frozen_graph_loads_and_detects_as_the_tf_od_api_export():
    # The TF1 exporter's frozen graph (as in the TF1 zoo archives): its constants are the
    # checkpoint's variables under the same slim names, without the dead block4.
    constants = read_frozen_graph_constants(FOLDER / "frozen_inference_graph.pb")
    assert not any(name.startswith(DEAD_SCOPE) for name in constants)
    model = reference_model()
    load_detector_weights(constants, model)
    full, _ = restored()
    for ours, theirs in zip(model.weights, full.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    image = photo()
    expected = reference(NAME)
    # The exported graph's classes are 1-based (the exporter adds the label-id offset).
    expected["frozen/detection_classes"] = expected["frozen/detection_classes"] - 1
    detections = model.predict_on_batch(image[None])
    assert_same_detections(detections, expected, image.shape, prefix="frozen/")


def test_the_tf2_layout_does_not_take_a_tf1_checkpoint():
    model = reference_model(slim_layout=False)
    with pytest.raises(CheckpointError, match="TF2 \\(Keras\\) ResNet layout"):
        restore_tfod_checkpoint(model, FOLDER / "model.ckpt")


def test_a_slim_classification_checkpoint_starts_both_stages(tmp_path):
    # resnet_v1_50.ckpt of the slim model zoo: `resnet_v1_50/{conv1, block1..4}/…` and a
    # classifier (`resnet_v1_50/logits`) the restore leaves unused. Its values here: the
    # reference's stage-1 body and stage-2 block4 under the classification names.
    reader = tf.train.load_checkpoint(str(FOLDER / "model.ckpt"))
    values = {}
    for key in reader.get_variable_to_shape_map():
        stage, _, name = key.partition("/")
        if stage == "SecondStageFeatureExtractor" or (
            stage == "FirstStageFeatureExtractor" and not key.startswith(DEAD_SCOPE)
        ):
            values[name] = reader.get_tensor(key)
    values["resnet_v1_50/logits/weights"] = np.ones([1, 1, 128, 10], np.float32)
    values["resnet_v1_50/logits/biases"] = np.zeros([10], np.float32)
    names = sorted(values)
    prefix = str(tmp_path / "resnet_v1_50.ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[name]) for name in names],
    )
    model = reference_model()
    model.build((None, None, None, 3))
    restore = restore_tfod_checkpoint(model, prefix, "classification")
    assert sorted(path for path, _ in restore.restored) == sorted(
        weight.path for weight in model.feature_extractor.weights
    )
    assert restore.unused == ["resnet_v1_50/logits/biases", "resnet_v1_50/logits/weights"]
    full, _ = restored()
    expected = reference(NAME)["predict/preprocessed_inputs"]
    np.testing.assert_array_equal(
        model.feature_extractor.extract_proposal_features(expected),
        full.feature_extractor.extract_proposal_features(expected),
    )


def test_the_tf1_pets_config_fine_tunes_from_a_tf1_detection_checkpoint(tmp_path):
    # The TF OD API's TF1 faster_rcnn_resnet50_pets.config (from_detection_checkpoint, no
    # checkpoint version: V1 read from the files), its extractor type swapped for the
    # references' narrow one (tfod_reference_extractors, a TF1 name: slim_layout too) and its
    # fine_tune_checkpoint set: the body's both stages come from the COCO-style checkpoint,
    # the 37-class heads are left.
    configs = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"
    text = (configs / "faster_rcnn_resnet50_pets.config").read_text()
    text = text.replace("type: 'faster_rcnn_resnet50'", "type: 'reference_faster_rcnn_resnet50'")
    text = text.replace('"PATH_TO_BE_CONFIGURED/model.ckpt"', f'"{FOLDER / "model.ckpt"}"')
    (tmp_path / "pipeline.config").write_text(text)
    pipeline = load_pipeline(tmp_path / "pipeline.config")
    extractor = pipeline.model.feature_extractor
    assert extractor.slim_layout and extractor.depth_multiplier == RESNET_DEPTH_MULTIPLIER
    restore = restore_fine_tune_checkpoint(pipeline)
    assert len(restore.restored) == len(extractor.weights) == 260
    assert all(
        key.startswith(("FirstStageFeatureExtractor/", "SecondStageFeatureExtractor/"))
        for key in restore.checkpoint_keys.values()
    )
    assert pipeline.model.roi_heads.num_classes == 37
