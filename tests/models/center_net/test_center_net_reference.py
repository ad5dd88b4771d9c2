"""CenterNet losses and post-processing against the TF OD API's on the same head outputs.

`tests/data/tfod_reference/center_net_reference.npz` is made by
`tools/tfod_reference/make_center_net_references.py`: the TF OD API `CenterNetMetaArch` (two
classes, two feature outputs, a three-keypoint task on class 0 with per-keypoint offsets and peak
radius 1, one image padded to 48x56 of 64x64) given seeded random head outputs.
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tiny_center_net import tiny_center_net

from kdet.models.center_net import KeypointEstimationTask
from kdet.models.center_net import center_net_postprocessing as post

REFERENCE = (
    pathlib.Path(__file__).resolve().parents[2]
    / "data" / "tfod_reference" / "center_net_reference.npz"
)
LOSS_NAMES = {
    "object_center_loss": "Loss/object_center",
    "box_scale_loss": "Loss/box/scale",
    "box_offset_loss": "Loss/box/offset",
    "kpt_keypoint_heatmap_loss": "Loss/kpt/keypoint/heatmap",
    "kpt_keypoint_offset_loss": "Loss/kpt/keypoint/offset",
    "kpt_keypoint_regression_loss": "Loss/kpt/keypoint/regression",
}


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(REFERENCE))


@pytest.fixture(scope="module")
def model():
    task = KeypointEstimationTask(
        "kpt", 1, [0, 1, 2], keypoint_std_dev=[1.0, 0.5, 2.0],
        keypoint_regression_loss_weight=0.1, offset_peak_radius=1, per_keypoint_offset=True,
        candidate_search_scale=0.6,
    )
    return tiny_center_net(num_classes=2, num_outputs=2, keypoint_tasks=[task],
                           max_box_predictions=6)


def _outputs(reference, scale):
    outputs = {
        name.removeprefix("prediction/").replace("kpt/keypoint/", "kpt/keypoint_").replace(
            "box/", "box_"): [tf.constant(m) for m in maps]
        for name, maps in reference.items() if name.startswith("prediction/")
    }
    outputs["scale"] = tf.constant(scale, tf.float32)
    outputs["input_size"] = tf.constant([64.0, 64.0])
    return outputs


def test_losses_match_the_tf_od_api(model, reference):
    # The TF OD API's boxes and keypoints are relative to the padded 64x64 frame; kdet's to
    # each image's content.
    scale = reference["true_image_shapes"] / 64.0
    real = reference["weights"] > 0
    boxes = np.where(real[..., None], reference["boxes"] / np.tile(scale, 2)[:, None], -1.0)
    labels = np.where(real, reference["classes"] + 1, -1)
    keypoints = reference["keypoints"] / scale[:, None, None]
    losses = model.compute_losses(
        _outputs(reference, scale), tf.constant(boxes, tf.float32), tf.constant(labels),
        gt_keypoints=tf.constant(keypoints, tf.float32),
        gt_keypoint_visibilities=tf.constant(reference["visible"]),
    )
    assert set(losses) == set(LOSS_NAMES)
    for name, reference_name in LOSS_NAMES.items():
        np.testing.assert_allclose(float(losses[name]), reference[reference_name], rtol=1e-4,
                                   err_msg=name)


def test_postprocess_matches_the_tf_od_api(model, reference):
    detections = model.postprocess(_outputs(reference, np.ones([2, 2])))
    np.testing.assert_array_equal(detections["labels"], reference["detection_classes"] + 1)
    np.testing.assert_allclose(detections["confidences"], reference["detection_scores"],
                               atol=1e-6)
    np.testing.assert_array_equal(detections["num_detections"], reference["num_detections"])
    np.testing.assert_allclose(detections["boxes"], reference["detection_boxes"], atol=1e-5)
    has_keypoints = (reference["detection_classes"] == 0)[..., None]
    assert has_keypoints.any() and not has_keypoints.all()
    np.testing.assert_allclose(
        detections["keypoints"],
        np.where(has_keypoints[..., None], reference["detection_keypoints"], -1.0),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        detections["keypoint_scores"],
        np.where(has_keypoints, reference["detection_keypoint_scores"], 0.0),
        atol=1e-6,
    )
    # Some keypoints snapped to a heatmap candidate, some kept the regressed position.
    scores = np.asarray(detections["keypoint_scores"])[np.broadcast_to(has_keypoints, (2, 6, 3))]
    assert np.any(scores == np.float32(0.1)) and np.any(scores != np.float32(0.1))


@pytest.mark.parametrize(
    "mode",
    ["min_distance", "score_distance_ratio", "score_scaled_distance_ratio", "gaussian_weighted"],
)
def test_refine_keypoints_matches_the_tf_od_api(reference, mode):
    inputs = {name.removeprefix("refine/"): value for name, value in reference.items()
              if name.startswith("refine/") and name.count("/") == 1}
    keypoints, scores = post.refine_keypoints(
        inputs["regressed"], inputs["candidates"], inputs["scores"], inputs["num_candidates"],
        inputs["boxes"], candidate_ranking_mode=mode, score_distance_offset=1.0,
        candidate_search_scale=0.6, std_devs=[1.0, 0.5, 2.0],
    )
    expected_scores = reference[f"refine/{mode}/scores"]
    np.testing.assert_allclose(keypoints, reference[f"refine/{mode}/keypoints"], atol=1e-5)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert np.any(expected_scores == np.float32(0.1)) and np.any(expected_scores != 0.1)
