"""TF OD API CenterNet losses and post-processing on fixed inputs, for kdet's unit tests.

Builds the TF OD API's `CenterNetMetaArch` (two classes, a keypoint task of three keypoints on
class 0 with per-keypoint offsets and peak radius 1, two feature outputs of a stride-4 dummy
extractor), gives it seeded random head outputs and a small ground truth (one image padded),
and saves the inputs with the outputs of its `loss` and `postprocess` in
`tests/data/tfod_reference/center_net_reference.npz` (a few KB).

Run in the TF OD API venv (see README.md):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_center_net_references.py
"""

import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
from object_detection.core import losses
from object_detection.meta_architectures import center_net_meta_arch as cnma

OUTPUT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "tests" / "data" / "tfod_reference" / "center_net_reference.npz"
)
INPUT_SIZE = 64
STRIDE = 4
NUM_CLASSES = 2
NUM_OUTPUTS = 2
TASK = "kpt"
STD_DEVS = [1.0, 0.5, 2.0]
MAX_DETECTIONS = 6


class _Extractor(cnma.CenterNetFeatureExtractor):
    """Only what the meta-architecture's constructor reads."""

    def __init__(self):
        super().__init__(channel_means=(0.0, 0.0, 0.0), channel_stds=(1.0, 1.0, 1.0))

    def call(self, inputs):
        raise NotImplementedError

    @property
    def out_stride(self):
        return STRIDE

    @property
    def num_feature_outputs(self):
        return NUM_OUTPUTS


def _model():
    return cnma.CenterNetMetaArch(
        is_training=True,
        add_summaries=False,
        num_classes=NUM_CLASSES,
        feature_extractor=_Extractor(),
        image_resizer_fn=None,
        object_center_params=cnma.ObjectCenterParams(
            classification_loss=losses.PenaltyReducedLogisticFocalLoss(alpha=2.0, beta=4.0),
            object_center_loss_weight=1.0,
            min_box_overlap_iou=0.7,
            max_box_predictions=MAX_DETECTIONS,
        ),
        object_detection_params=cnma.ObjectDetectionParams(
            localization_loss=losses.L1LocalizationLoss(),
            scale_loss_weight=0.1,
            offset_loss_weight=1.0,
        ),
        keypoint_params_dict={
            TASK: cnma.KeypointEstimationParams(
                task_name=TASK,
                class_id=0,
                keypoint_indices=[0, 1, 2],
                classification_loss=losses.PenaltyReducedLogisticFocalLoss(alpha=2.0, beta=4.0),
                localization_loss=losses.L1LocalizationLoss(),
                keypoint_std_dev=STD_DEVS,
                keypoint_regression_loss_weight=0.1,
                offset_peak_radius=1,
                per_keypoint_offset=True,
                score_distance_offset=1.0,
                candidate_search_scale=0.6,
            )
        },
    )


def _refine_keypoints_cases(rng):
    """`refine_keypoints` of random objects and candidates, in each candidate ranking mode."""
    boxes = np.sort(rng.uniform(0, 16, [1, 5, 2, 2]), axis=2).transpose(0, 1, 3, 2)
    regressed = rng.uniform(0, 16, [1, 5, 3, 2])
    # Five candidates near the regressed keypoints, three anywhere.
    near = regressed + rng.normal(0.0, 0.3, regressed.shape)
    inputs = {
        "regressed": regressed,
        "candidates": np.concatenate([near, rng.uniform(0, 16, [1, 3, 3, 2])], axis=1),
        "scores": rng.uniform(0, 1, [1, 8, 3]),
        "num_candidates": np.array([[8, 5, 0]]),
        "boxes": boxes.reshape(1, 5, 4),
    }
    inputs = {name: np.asarray(value, np.int32 if name == "num_candidates" else np.float32)
              for name, value in inputs.items()}
    arrays = {f"refine/{name}": value for name, value in inputs.items()}
    for mode in ("min_distance", "score_distance_ratio", "score_scaled_distance_ratio",
                 "gaussian_weighted"):
        keypoints, scores, _ = cnma.refine_keypoints(
            tf.constant(inputs["regressed"]), tf.constant(inputs["candidates"]),
            tf.constant(inputs["scores"]), tf.constant(inputs["num_candidates"]),
            bboxes=tf.constant(inputs["boxes"]), candidate_ranking_mode=mode,
            score_distance_offset=1.0, candidate_search_scale=0.6, keypoint_std_dev=STD_DEVS,
        )
        arrays[f"refine/{mode}/keypoints"] = keypoints.numpy()
        arrays[f"refine/{mode}/scores"] = scores.numpy()
    return arrays


def main():
    rng = np.random.default_rng(0)
    cells = INPUT_SIZE // STRIDE
    # Boxes normalized to the padded frame; image 1's content is 48x56 of the 64x64 frame.
    boxes = np.array(
        [[[0.1, 0.1, 0.5, 0.4], [0.45, 0.5, 0.95, 0.9], [0.0, 0.0, 0.0, 0.0]],
         [[0.2, 0.3, 0.6, 0.7], [0.05, 0.05, 0.3, 0.2], [0.5, 0.1, 0.7, 0.35]]], np.float32)
    classes = np.array([[0, 1, 0], [0, 0, 1]])
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
    keypoints = np.stack([
        boxes[..., 0:2] + 0.03, (boxes[..., 0:2] + boxes[..., 2:4]) / 2,
        boxes[..., 2:4] - 0.04,
    ], axis=2).astype(np.float32)
    visible = np.ones(keypoints.shape[:3], bool)
    visible[0, 0, 2] = False
    visible[1, 1, 0] = False
    keypoints_with_nan = np.where(visible[..., None], keypoints, np.nan).astype(np.float32)
    true_image_shapes = np.array([[64, 64, 3], [48, 56, 3]], np.int32)

    def random_maps(channels, scale=1.0, shift=0.0):
        return [
            tf.constant(shift + scale * rng.standard_normal([2, cells, cells, channels]),
                        tf.float32)
            for _ in range(NUM_OUTPUTS)
        ]

    predictions = {
        "preprocessed_inputs": tf.zeros([2, INPUT_SIZE, INPUT_SIZE, 3]),
        "object_center": random_maps(NUM_CLASSES, 1.5, -2.0),
        "box/scale": random_maps(2, 3.0, 6.0),
        "box/offset": random_maps(2, 0.5, 0.5),
        f"{TASK}/keypoint/heatmap": random_maps(3, 1.5, -1.5),
        f"{TASK}/keypoint/offset": random_maps(6, 0.5, 0.5),
        f"{TASK}/keypoint/regression": random_maps(6, 3.0, 0.0),
    }
    model = _model()
    model.provide_groundtruth(
        groundtruth_boxes_list=[tf.constant(b) for b in boxes],
        groundtruth_classes_list=[tf.one_hot(c, NUM_CLASSES) for c in classes],
        groundtruth_weights_list=[tf.constant(w) for w in weights],
        groundtruth_keypoints_list=[tf.constant(k) for k in keypoints_with_nan],
    )
    loss = model.loss(predictions, tf.constant(true_image_shapes))
    detections = model.postprocess(
        predictions, tf.constant(np.array([[64, 64, 3], [64, 64, 3]], np.int32))
    )
    arrays = {
        "boxes": boxes, "classes": classes, "weights": weights, "keypoints": keypoints,
        "visible": visible, "true_image_shapes": true_image_shapes[:, :2],
    }
    for name, maps in predictions.items():
        if name != "preprocessed_inputs":
            arrays["prediction/" + name] = np.stack([m.numpy() for m in maps])
    for name, value in loss.items():
        arrays[name] = value.numpy()
    for name in ("detection_boxes", "detection_scores", "detection_classes", "num_detections",
                 "detection_keypoints", "detection_keypoint_scores"):
        arrays[name] = detections[name].numpy()
    arrays.update(_refine_keypoints_cases(rng))
    np.savez_compressed(OUTPUT, **arrays)
    print(OUTPUT, {name: np.asarray(value).shape for name, value in arrays.items()})
    print({name: float(value) for name, value in loss.items()})


if __name__ == "__main__":
    main()
