"""TF OD API TF2 checkpoints of CenterNet feature extractors load into kdet's, which then
compute what the TF OD API's compute.

`tests/data/tfod_reference/center_net_hourglass_extractor/` (the Hourglass-104 layout: two
stacked hourglasses, reduced to 3 stages of 4..8 channels, the hourglass configs' BGR
statistics) and `center_net_mobilenet_v2_fpn_extractor/` (`mobilenet_v2_fpn` with
`use_separable_conv`, depth multiplier 0.1, the zoo config's statistics) are made by
`tools/tfod_reference/make_center_net_extractor_references.py` with the TF OD API's own
extractors: seeded random weights, calibrated batch norms, run on the top-left 64×96 of
`photo.png`. Their checkpoints hold the extractor under `model/`.

`center_net_mobilenet_v2_fpn_model/` is a whole TF OD API CenterNet (extractor and heads, a
keypoint task of 4 keypoints on class 2) that `model_builder` built from its
`pipeline.config`, made by `tools/tfod_reference/make_center_net_model_references.py`: kdet
builds the same config, restores every weight and computes the same head outputs and
detections (boxes, keypoints) on the top-left 96×128 of `photo.png`.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_same_detections
from tfod_references import iou
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import CheckpointError
from kdet.checkpoints import restore_tfod_checkpoint
from kdet.checkpoints.mappings.center_net import tf_head_name
from kdet.checkpoints.tfod_checkpoint import VARIABLE_SUFFIX
from kdet.checkpoints.tfod_mapping import tf2_layer_pairs
from kdet.configs.model_builder import build_model_from_text
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


# Listings (`variables.txt` only) of the TF OD API's full-size ResNet extractors → kdet's
# extractor of the same type and the number of checkpoint variables it leaves unread:
# keras.applications' ResNet-v2 ends in a batch norm (`post_bn`, 4 variables, the last layer of
# the TF OD API's `_base_model`) after the `conv5_block3_out` both read.
LISTED = {
    "center_net_resnet_v2_50_extractor": ("resnet_v2_50", 4),
    "center_net_resnet_v1_50_fpn_extractor": ("resnet_v1_50_fpn", 0),
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
    """N of a key `…/_base_model/layer_with_weights-N/…`."""
    return int(key.split("/_base_model/layer_with_weights-")[1].split("/")[0])


@pytest.mark.parametrize("name", sorted(LISTED))
def test_resnet_mapping_pairs_every_tf_od_api_variable(name):
    extractor_type, num_unread = LISTED[name]
    extractor = build_feature_extractor(extractor_type)
    shapes = _listed_shapes(name)
    assignments = [
        item for pair in tf2_layer_pairs(extractor, "model", shapes) for item in pair.assignments()
    ]
    assert len(assignments) == len(extractor.weights)
    assert len({key for _, key in assignments}) == len(assignments)
    for variable, key in assignments:
        assert shapes[key] == list(variable.shape), (variable.path, key)
    unread = set(shapes) - {key for _, key in assignments}
    assert len(unread) == num_unread
    last_body_layer = max(_layer_index(key) for key in shapes if "/_base_model/" in key)
    assert all(_layer_index(key) == last_body_layer for key in unread)


MODEL = "center_net_mobilenet_v2_fpn_model"
MODEL_CROP = (96, 128)  # the config's fixed_shape_resizer: nothing is resized
MODEL_WEIGHTS = 315
MODEL_EXTRACTOR_WEIGHTS = 289


def _model_config(label_map=None, **replacements):
    """The reference's pipeline.config text, its label map path made absolute (or
    `label_map`), each `replacements` key replaced by its value."""
    text = (REFERENCES / MODEL / "pipeline.config").read_text()
    label_map = label_map or REFERENCES / MODEL / "label_map.pbtxt"
    text = text.replace('"label_map.pbtxt"', f'"{label_map}"')
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return text


def _without_keypoint_task(text):
    """`text` cut before `keypoint_label_map_path` (the keypoint task follows it)."""
    return text.split("    keypoint_label_map_path")[0] + "  }\n}\n"


@pytest.fixture(scope="module")
def restored_model():
    model = build_model_from_text(_model_config())
    return model, restore_tfod_checkpoint(model, REFERENCES / MODEL / "checkpoint")


def test_whole_model_restores_every_weight_and_head_outputs_match(restored_model):
    model, restore = restored_model
    assert len(restore.restored) == len(model.weights) == MODEL_WEIGHTS
    assert not restore.not_restored
    assert not restore.unused
    assert restore.ignored == ["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
    expected = reference(MODEL)
    images = photo()[None, : MODEL_CROP[0], : MODEL_CROP[1]].astype(np.float32)
    outputs = model(images, training=False)
    heads = [name for name in outputs if isinstance(outputs[name], list)]
    assert len(heads) == 6
    for name in heads:
        want = expected[f"predict/{tf_head_name(name)}/0"]
        assert np.abs(want).max() > 0.5  # calibrated outputs, not vanishing ones
        np.testing.assert_allclose(outputs[name][0], want, atol=RAW_TOLERANCE, err_msg=name)


def test_whole_model_detections_and_keypoints_match(restored_model):
    model, _ = restored_model
    expected = reference(MODEL)
    height, width = MODEL_CROP
    detections = model.predict_on_batch(photo()[None, :height, :width])
    assert_same_detections(detections, expected, MODEL_CROP)
    scale = np.array([height, width])
    boxes = np.asarray(detections["boxes"][0]) / np.tile(scale, 2)
    labels = np.asarray(detections["labels"][0]) - 1
    keypoints = np.asarray(detections["keypoints"][0]) / scale
    keypoint_scores = np.asarray(detections["keypoint_scores"][0])
    with_keypoints = 0
    for box, label, want, want_scores in zip(
        expected["detections/detection_boxes"][0],
        expected["detections/detection_classes"][0],
        expected["detections/detection_keypoints"][0],
        expected["detections/detection_keypoint_scores"][0],
    ):
        (index,) = [
            i for i in range(len(labels)) if labels[i] == label and iou(boxes[i], box) > 0.99
        ]
        if label != 1:  # no keypoints: the TF OD API's are zeros, kdet's -1 with score 0
            assert np.all(keypoints[index] < 0) and not keypoint_scores[index].any()
            continue
        with_keypoints += 1
        np.testing.assert_allclose(keypoints[index], want, atol=RAW_TOLERANCE)
        np.testing.assert_allclose(keypoint_scores[index], want_scores, atol=RAW_TOLERANCE)
    # Persons among the detections, keypoints both snapped to a heatmap peak and not (0.1).
    assert with_keypoints >= 5
    scores = expected["detections/detection_keypoint_scores"][0][
        expected["detections/detection_classes"][0] == 1]
    assert (scores > 0.5).any() and np.isclose(scores, 0.1).any()


def test_a_detection_restore_reads_the_extractor_of_a_whole_model_checkpoint():
    # Another number of classes and no keypoint task: the heads stay as they were.
    model = build_model_from_text(
        _without_keypoint_task(_model_config(**{"num_classes: 3": "num_classes: 5"}))
    )
    restore = restore_tfod_checkpoint(model, REFERENCES / MODEL / "checkpoint", "detection")
    extractor_weights = len(model.feature_extractor.weights)
    assert len(restore.restored) == extractor_weights == MODEL_EXTRACTOR_WEIGHTS
    assert len(restore.not_restored) == len(model.weights) - MODEL_EXTRACTOR_WEIGHTS
    assert len(restore.unused) == MODEL_WEIGHTS - MODEL_EXTRACTOR_WEIGHTS


def _fewer_keypoints(tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    text = (REFERENCES / MODEL / "label_map.pbtxt").read_text()
    label_map.write_text(text.replace('keypoints { id: 3 label: "tail" }', ""))
    return _model_config(label_map, **{'keypoint_label_to_std { key: "tail" value: 1.5 }': ""})


REFUSED = {
    "classes": (
        lambda tmp_path: _model_config(**{"num_classes: 3": "num_classes: 5"}),
        r"'object_center' head 0 predicts 3 channels, the kdet model's 5 \(classes",
    ),
    "keypoints": (
        _fewer_keypoints,
        r"'human_pose/keypoint/heatmap' head 0 predicts 4 channels, the kdet model's 3 \(keyp",
    ),
    "no keypoint task": (
        lambda tmp_path: _without_keypoint_task(_model_config()),
        r"has model/_prediction_head_dict/human_pose.Skeypoint.Sheatmap/0/ .*no counterpart",
    ),
    "another keypoint task": (
        lambda tmp_path: _model_config(**{'"human_pose"': '"pose"'}),
        "the checkpoint has no 'pose/keypoint/heatmap' head 0",
    ),
    "head filters": (
        lambda tmp_path: _model_config(**{"num_filters: [16, 8]": "num_filters: [16]",
                                           "kernel_sizes: [3, 1]": "kernel_sizes: [3]"}),
        "'object_center' head 0 has 2 hidden convolutions, the kdet model's 1",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_whole_model_checkpoint_of_another_layout_is_refused(name, tmp_path):
    config, message = REFUSED[name]
    model = build_model_from_text(config(tmp_path))
    model.build((None, None, None, 3))
    before = [np.array(weight) for weight in model.weights]
    with pytest.raises(CheckpointError, match=message):
        restore_tfod_checkpoint(model, REFERENCES / MODEL / "checkpoint")
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight, value)  # nothing assigned
