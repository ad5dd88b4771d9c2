"""TF OD API Mask R-CNN checkpoints (TF2 and TF1) load into kdet's MaskRCNN, which then
computes what the TF OD API computes, masks included.

The TF2 reference (`tools/tfod_reference/make_mask_rcnn_references.py`) is the TF OD API's
`faster_rcnn_resnet50_keras` Mask R-CNN (`number_of_stages: 3`, the mask fields of the TF2
zoo's `mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8` config, 15x15 masks) with its
ResNet-50 body 0.03125 wide: the TF OD API's extractors have no config field for the width,
its generator passes it to the TF OD API's ResNet builder; kdet's extractor takes it
(`depth_multiplier`), so the model here is the config's with that one argument changed.
The TF1 reference (`make_tf1_mask_rcnn_references.py`) is the TF1 zoo's
`mask_rcnn_resnet50_atrous_coco` config reduced alike (slim ResNet-50 0.03125 wide, 15x15
masks).
"""

import functools

import numpy as np
import pytest
from tfod_references import RAW_TOLERANCE
from tfod_references import REFERENCES
from tfod_references import assert_faster_rcnn_outputs_match
from tfod_references import assert_restores_all_but
from tfod_references import assert_same_detections
from tfod_references import iou
from tfod_references import photo
from tfod_references import reference

from kdet.checkpoints import restore_tfod_checkpoint
from kdet.configs import load_pipeline
from kdet.models.faster_rcnn import MaskRCNN

TF2 = "mask_rcnn_resnet50"
TF1 = "tf1_mask_rcnn_resnet50_atrous"
NAMES = [TF2, TF1]
CHECKPOINTS = {TF2: "checkpoint", TF1: "model.ckpt"}
# The references' ResNet width (`MASK_REFERENCES`, `TF1_MASK_REFERENCES` of the generators).
RESNET_DEPTH_MULTIPLIER = 0.03125
# What slim's resnet_v1 builds in the first stage and the TF OD API never computes with.
TF1_DEAD_SCOPE = "FirstStageFeatureExtractor/resnet_v1_50/block4/"


@functools.cache
def restored(name):
    """`(model, TFODRestore)`: kdet's MaskRCNN of the reference's config (float32, the
    reference's ResNet width) with the reference's checkpoint."""
    folder = REFERENCES / name
    model = load_pipeline(folder / "pipeline.config", dtype_policy="float32").model
    config = model.get_config()
    config["feature_extractor"]["config"]["depth_multiplier"] = RESNET_DEPTH_MULTIPLIER
    model = MaskRCNN.from_config(config)
    return model, restore_tfod_checkpoint(model, folder / CHECKPOINTS[name])


@functools.cache
def outputs(name):
    """kdet's outputs on the reference photo."""
    model, _ = restored(name)
    return model(photo()[None], training=False)


@pytest.mark.parametrize("name", NAMES)
def test_every_checkpoint_variable_is_restored_into_every_weight(name):
    model, restore = restored(name)
    assert_restores_all_but(model, restore, REFERENCES / name / CHECKPOINTS[name], TF1_DEAD_SCOPE)
    mask_scope = "/_third_stage_heads/" if name == TF2 else "SecondStageBoxPredictor/Conv"
    mask_keys = sorted(key for _, key in restore.restored if mask_scope in key)
    # 4 convolutions (kernel, bias), the zoo configs' mask head without batch norms.
    assert len(mask_keys) == 8 == len(model.mask_head.weights)
    if name == TF1:
        assert mask_keys[-2:] == [
            "SecondStageBoxPredictor/Conv_3/biases",
            "SecondStageBoxPredictor/Conv_3/weights",
        ]


def test_raw_outputs_match_the_tf_od_api():
    model, _ = restored(TF2)
    expected = reference(TF2)
    height, width = expected["predict/image_shape"][1:3]
    assert_faster_rcnn_outputs_match(model, outputs(TF2), expected, (height, width))


@pytest.mark.parametrize("name", NAMES)
def test_detections_match_the_tf_od_api_as_sets(name):
    model, _ = restored(name)
    image = photo()
    assert_same_detections(model.predict_on_batch(image[None]), reference(name), image.shape)


@pytest.mark.parametrize("name", NAMES)
def test_mask_logits_of_the_tf_od_api_detection_boxes_match(name):
    # The mask head on the crops at the TF OD API's detection boxes (relative to the resized
    # image, so scaled to the padded frame the features cover): every class's mask logits.
    model, _ = restored(name)
    expected = reference(name)
    frame = expected["predict/image_shape"][1:3]
    true_height, true_width = expected["true_image_shapes"][0, :2]
    scale = np.array([true_height, true_width] * 2) / np.array([*frame, *frame])
    boxes = expected["predict/detection_boxes"] * scale
    features = model.feature_extractor.extract_proposal_features(
        expected["predict/preprocessed_inputs"]
    )
    crops = model.roi_heads.crop([features], boxes, tuple(frame))
    logits = model.mask_head(model.feature_extractor.extract_box_classifier_features(crops))
    np.testing.assert_allclose(logits, expected["predict/mask_predictions"], atol=RAW_TOLERANCE)


@pytest.mark.parametrize("name", NAMES)
def test_detection_masks_match_the_tf_od_api_as_sets(name):
    # Each TF OD API detection's box-frame mask (`detection_masks`, as its SavedModel gives
    # it) is the mask of kdet's detection of the same class and box.
    expected = reference(name)
    detections = outputs(name)["detections"]
    count = int(expected["detections/num_detections"][0])
    assert int(detections["num_detections"][0]) == count
    boxes = np.asarray(detections["boxes"][0, :count])
    labels = np.asarray(detections["labels"][0, :count]) - 1
    box_masks = np.asarray(detections["box_masks"][0, :count])
    if name == TF2:
        np.testing.assert_allclose(
            expected["exported/detection_masks"], expected["detections/detection_masks"],
            atol=1e-5,
        )
    for box, label, mask in zip(
        expected["detections/detection_boxes"][0, :count],
        expected["detections/detection_classes"][0, :count],
        expected["detections/detection_masks"][0, :count],
    ):
        same = [i for i in range(count) if labels[i] == label and iou(boxes[i], box) >= 0.99]
        assert same, f"TF OD API detection {label=} {box} not among kdet's"
        errors = [np.abs(box_masks[i] - mask).max() for i in same]
        assert min(errors) <= RAW_TOLERANCE, (label, box, errors)
    # The masks pasted into the photo are 0 outside each box and in [0, 1].
    masks = np.asarray(detections["masks"][0, :count])
    assert masks.shape[1:] == photo().shape[:2]
    assert masks.min() >= 0.0 and masks.max() <= 1.0 and masks.max() > 0.5
