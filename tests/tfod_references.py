"""The TF OD API reference outputs of `tests/data/tfod_reference/` and how kdet's are compared
with them (raw tensors within `RAW_TOLERANCE`, detections as sets).

Each `<name>/` folder holds a small random-initialized TF OD API model made by
`tools/tfod_reference/make_references.py` (TF2) or `make_tf1_references.py` (TF1) with the TF OD
API's own code: its `pipeline.config`, its checkpoint and `outputs.npz`, the TF OD API's
`preprocess` / `predict` / `postprocess` tensors (`predict/…`, `detections/…`; `exported/…`
from its `exporter_lib_v2` SavedModel where made) on `photo.png`.
"""

import pathlib

import numpy as np
from PIL import Image

from kdet.checkpoints import TFODCheckpoint
from kdet.checkpoints import load_tfod_model

REFERENCES = pathlib.Path(__file__).resolve().parent / "data" / "tfod_reference"
# The TF OD API's own eager and compiled runs differ by up to 6e-4 on raw logits.
RAW_TOLERANCE = 1e-3


def photo():
    """The reference photo, `uint8 [161, 240, 3]`."""
    return np.asarray(Image.open(REFERENCES / "photo.png").convert("RGB"))


def reference(name):
    """`{key: array}` of the reference's `outputs.npz`."""
    return dict(np.load(REFERENCES / name / "outputs.npz"))


def loaded(name, checkpoint_type="full"):
    """`(model, TFODRestore)`: kdet's model of the reference's config with its checkpoint."""
    folder = REFERENCES / name
    return load_tfod_model(folder / "pipeline.config", folder / "checkpoint", checkpoint_type)


def assert_restores_all_but(model, restore, checkpoint, dead_scope):
    """Asserts a TF1 restore read every checkpoint variable into every model weight, one to
    one, but those under `dead_scope` (e.g. the first stage's `block4`, which the TF OD API
    builds and never runs), which it reports unused. Returns the dead keys."""
    shapes = TFODCheckpoint.open(checkpoint).shapes
    read = sorted(key for _, key in restore.restored)
    dead = sorted(key for key in shapes if key.startswith(dead_scope))
    assert sorted(read + dead) == sorted(shapes)
    assert restore.unused == dead
    assert not restore.not_restored
    assert len(restore.restored) == len(model.weights) == len(set(read))
    return dead


def iou(a, b):
    """IoU of two `[ymin, xmin, ymax, xmax]` boxes."""
    top_left = np.maximum(a[:2], b[:2])
    bottom_right = np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None))
    return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def assert_same_detections(detections, expected, image_shape, prefix="detections/"):
    """Asserts kdet's `detections` (of `predict_on_batch`/`detect` on one image: pixel boxes,
    label-map ids) are the TF OD API's `expected[prefix + …]` (relative boxes, 0-based
    classes): `assert_same_detection_sets`."""
    count = int(np.asarray(detections["num_detections"])[0])
    height, width = image_shape[:2]
    assert_same_detection_sets(
        np.asarray(detections["boxes"][0][:count]) / [height, width, height, width],
        np.asarray(detections["confidences"][0][:count]),
        np.asarray(detections["labels"][0][:count]) - 1,
        expected,
        prefix,
    )


def assert_same_detection_sets(boxes, scores, classes, expected, prefix):
    """Asserts that one image's detections (`boxes [n, 4]` relative to the image, `scores [n]`,
    `classes [n]` 0-based) are the TF OD API's `expected[prefix + "detection_boxes" …]` of
    the same kind as sets: the same count, and each TF OD API detection clearly above the
    score cut has one of the same class, IoU ≥ 0.99 and score within `RAW_TOLERANCE` (the last
    few may swap with ties at the cut)."""
    count = len(scores)
    expected_count = int(expected[prefix + "num_detections"][0])
    assert count == expected_count
    if not count:
        return
    cut = expected[prefix + "detection_scores"][0][expected_count - 1] + RAW_TOLERANCE
    for box, score, label in zip(
        expected[prefix + "detection_boxes"][0][:expected_count],
        expected[prefix + "detection_scores"][0][:expected_count],
        expected[prefix + "detection_classes"][0][:expected_count],
    ):
        if score < cut:
            continue
        same = [
            index
            for index in range(count)
            if int(classes[index]) == int(label)
            and abs(scores[index] - score) <= RAW_TOLERANCE
            and iou(boxes[index], box) >= 0.99
        ]
        assert same, f"TF OD API detection {label=} {score=:.5f} {box} not among kdet's"


def assert_ssd_feature_maps_match(model, expected, relative=False):
    """The SSD extractor's feature maps of the TF OD API's preprocessed photo match the
    reference's within `RAW_TOLERANCE` (times each map's largest magnitude, at least 1, when
    `relative`: maps that reach hundreds differ by float32 rounding alone); returns them."""
    feature_maps = model.feature_extractor(expected["predict/preprocessed_inputs"])
    for index, feature_map in enumerate(feature_maps):
        tf_od_api_map = expected[f"predict/feature_maps/{index}"]
        scale = max(1.0, float(np.abs(tf_od_api_map).max())) if relative else 1.0
        np.testing.assert_allclose(feature_map, tf_od_api_map, atol=RAW_TOLERANCE * scale)
    return feature_maps


def assert_ssd_outputs_match(model, expected, anchor_tolerance=1e-6):
    """The SSD's anchors (within `anchor_tolerance`), box encodings and class logits (within
    `RAW_TOLERANCE`) on `photo()` match the reference's."""
    outputs = model(photo()[None], training=False)
    np.testing.assert_allclose(
        outputs["anchors"], expected["predict/anchors"], atol=anchor_tolerance
    )
    np.testing.assert_allclose(
        outputs["box_encodings"], expected["predict/box_encodings"], atol=RAW_TOLERANCE
    )
    np.testing.assert_allclose(
        outputs["class_logits"],
        expected["predict/class_predictions_with_background"],
        atol=RAW_TOLERANCE,
    )


def assert_faster_rcnn_outputs_match(model, outputs, expected, image_size):
    """Asserts a single-map (C4) Faster R-CNN's raw outputs (`outputs` of `model(photo)`) are
    the TF OD API's `predict/…` within `RAW_TOLERANCE`: anchors (pixels of `image_size`, the
    TF OD API's `(height, width)` frame), RPN box encodings and objectness, the proposals
    (the valid rows: the TF OD API pads with zero boxes, kdet with -1), the body's first stage
    on the TF OD API's preprocessed input, its second stage on the RoI crops of the proposals,
    the class logits and refined box encodings (one box broadcast to every class when the
    TF OD API shares it across classes)."""
    height, width = image_size
    size = [height, width, height, width]
    np.testing.assert_allclose(
        np.asarray(outputs["anchors"]) * size, expected["predict/anchors"], atol=RAW_TOLERANCE
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
    features = model.feature_extractor.extract_proposal_features(
        expected["predict/preprocessed_inputs"]
    )
    np.testing.assert_allclose(
        features, expected["predict/rpn_features_to_crop/0"], atol=RAW_TOLERANCE
    )
    crops = model.roi_heads.crop([features], outputs["proposals"], image_size)
    np.testing.assert_allclose(
        model.feature_extractor.extract_box_classifier_features(crops)[:count],
        expected["predict/box_classifier_features"][:count],
        atol=RAW_TOLERANCE,
    )
    np.testing.assert_allclose(
        outputs["class_logits"][0, :count],
        expected["predict/class_predictions_with_background"][:count],
        atol=RAW_TOLERANCE,
    )
    refined = expected["predict/refined_box_encodings"][:count]
    if refined.shape[1] == 1:  # `share_box_across_classes`
        refined = np.broadcast_to(refined, outputs["box_encodings"][0, :count].shape)
    np.testing.assert_allclose(outputs["box_encodings"][0, :count], refined, atol=RAW_TOLERANCE)
