"""The TF OD API's COCO instance-mask metrics on seeded hand-made masks, for kdet's parity test.

Builds ground truth and detections with instance masks (NumPy, seeded): images of three sizes,
objects of three classes from small to large, crowd ground truth, detection masks as
probabilities (blurred, shifted ellipses) with false positives, a detection of a class outside
the label map, an image without detections, one without ground truth, one with neither. Runs
them through the TF OD API's `CocoMaskEvaluator` made as `model_lib_v2.eager_eval_loop` makes
it (`label_map_util.create_category_index_from_labelmap`, then `eval_util.get_evaluators` for an
`eval_config` with `metrics_set: "coco_mask_metrics"`), the detection probabilities binarized
as `eval_util` binarizes float `detection_masks` (`tf.greater(masks, 0.5)`).

The TF OD API's per-category numbers (`include_metrics_per_category`) need the
`category_stats` of Google's pycocotools fork; the PyPI pycocotools of the venv has none (the
evaluator raises "Category stats do not exist"). The fork's `category_stats[:, k]` are the 12
summary numbers of category k alone, so a `CocoMaskEvaluator` per category, given only that
category, gives them here.

Writes to `tests/data/tfod_reference/`:

- `coco_mask_metrics.npz`: per image `groundtruth_masks_<i>` uint8 `[N, H, W]` (nonzero =
  object; one image's masks are 0/255) and `detection_probabilities_<i>` uint8 `[K, H, W]`, the
  probability times 255 (the float32 probabilities evaluated are these / 255);
- `coco_mask_metrics.json`: `label_map`, `eval_config`, per image `groundtruth` (`boxes` yxyx
  pixels, `labels`, `iscrowd`) and `detections` (`boxes`, `labels`, `confidences`), and the
  `metrics` the evaluator returns (`DetectionMasks_…`), and `per_category`: `{category name:
  the 12 metrics of its own evaluator}`.

Run with the TF OD API venv (see README.md):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_mask_metric_references.py
"""

import json
import pathlib
import sys
import tempfile

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_keypoint_metric_references import _stand_in_for_lvis

_stand_in_for_lvis()
from object_detection import eval_util
from object_detection.protos import eval_pb2
from object_detection.utils import label_map_util

FOLDER = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tfod_reference"
LABEL_MAP = """
item { id: 1 name: 'person' }
item { id: 2 name: 'dog' }
item { id: 3 name: 'car' }
"""
EVAL_CONFIG = """
metrics_set: "coco_mask_metrics"
"""
SIZES = ((120, 160), (96, 128), (140, 110))
NUM_IMAGES = 9
# Detections of this class are outside the label map: both sides ignore them.
UNKNOWN_CLASS = 4


def _ellipse(height, width, box, softness):
    """float64 `[height, width]`: 1 inside the ellipse in `box` (yxyx), falling to 0 outside
    over about `softness` times its radii (0: a hard 0/1 mask)."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    center_y, center_x = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    radius_y, radius_x = max((box[2] - box[0]) / 2, 1), max((box[3] - box[1]) / 2, 1)
    distance = np.sqrt(((y - center_y) / radius_y) ** 2 + ((x - center_x) / radius_x) ** 2)
    if softness == 0:
        return (distance <= 1).astype(np.float64)
    return 1 / (1 + np.exp(np.minimum((distance - 1) / softness, 50)))


def _boxes(rng, count, height, width):
    """`count` yxyx boxes inside the image, sides from 4 pixels to most of the image."""
    size = np.exp(rng.uniform(np.log(4), np.log(0.95 * min(height, width)), (count, 2)))
    top_left = rng.uniform(0, 1, (count, 2)) * ([height, width] - size)
    return np.round(np.concatenate([top_left, top_left + size], axis=1), 2)


def _image(rng, index):
    """Ground truth (with masks) and detections (with probability masks) of one image."""
    height, width = SIZES[index % len(SIZES)]
    count = {6: 0, 7: 0}.get(index, int(rng.integers(1, 7)))
    boxes = _boxes(rng, count, height, width)
    if index in (0, 4):  # a large object (area above 96²)
        boxes[0] = [5.5, 8.25, height - 6, width - 4.5]
    labels = rng.choice([1, 2, 3], count, p=[0.5, 0.3, 0.2])
    iscrowd = (rng.uniform(size=count) < 0.15).astype(np.int64)
    masks = np.stack([_ellipse(height, width, box, 0) for box in boxes]).astype(np.uint8) \
        if count else np.zeros((0, height, width), np.uint8)
    if index == 2:
        masks *= 255
    found = rng.uniform(size=count) < 0.8
    if index in (5, 7):
        found[:] = False
    shift = rng.normal(0, 1, (count, 4)) * np.tile(boxes[:, 2:] - boxes[:, :2], 2) * 0.08
    num_false = 0 if index in (5, 7) else int(rng.integers(0, 4)) + (index == 6)
    detection_boxes = np.concatenate([(boxes + shift)[found], _boxes(rng, num_false, height,
                                                                     width)])
    detection_labels = np.concatenate([labels[found], rng.choice([1, 2, 3], num_false)])
    if index == 3 and len(detection_labels):
        detection_labels[-1] = UNKNOWN_CLASS
    probabilities = [
        _ellipse(height, width, box, rng.uniform(0.02, 0.2)) for box in detection_boxes
    ]
    probabilities = np.round(
        np.stack(probabilities) * 255 if probabilities else np.zeros((0, height, width))
    ).astype(np.uint8)
    confidences = np.concatenate(
        [rng.uniform(0.3, 1, int(found.sum())), rng.uniform(0.05, 0.8, num_false)]
    )
    groundtruth = {"boxes": boxes, "labels": labels, "iscrowd": iscrowd}
    detections = {"boxes": np.round(detection_boxes, 2), "labels": detection_labels,
                  "confidences": np.round(confidences, 4)}
    return groundtruth, masks, detections, probabilities


def _mask_evaluator(label_map_path):
    """The `CocoMaskEvaluator` `model_lib_v2.eager_eval_loop` builds for `EVAL_CONFIG`."""
    eval_config = text_format.Parse(EVAL_CONFIG, eval_pb2.EvalConfig())
    categories = label_map_util.create_category_index_from_labelmap(label_map_path)
    evaluators = eval_util.get_evaluators(
        eval_config, list(categories.values()),
        eval_util.evaluator_options_from_eval_config(eval_config))
    assert [type(e).__name__ for e in evaluators] == ["CocoMaskEvaluator"], evaluators
    return evaluators[0], list(categories.values())


def _evaluate(evaluator, images):
    """The metrics of `evaluator` fed the images' ground truth and detections."""
    for index, (groundtruth, masks, detections, probabilities) in enumerate(images):
        evaluator.add_single_ground_truth_image_info(index, {
            "groundtruth_boxes": groundtruth["boxes"],
            "groundtruth_classes": groundtruth["labels"],
            "groundtruth_instance_masks": masks,
            "groundtruth_is_crowd": groundtruth["iscrowd"],
        })
        # eval_util's binarization of float detection masks.
        binary = tf.cast(tf.greater(probabilities.astype(np.float32) / 255, 0.5), tf.uint8)
        evaluator.add_single_detected_image_info(index, {
            "detection_scores": detections["confidences"],
            "detection_classes": detections["labels"],
            "detection_masks": binary.numpy(),
        })
    return {name: float(value) for name, value in evaluator.evaluate().items()}


def main():
    rng = np.random.default_rng(19)
    images = [_image(rng, index) for index in range(NUM_IMAGES)]
    with tempfile.TemporaryDirectory() as folder:
        label_map_path = pathlib.Path(folder) / "label_map.pbtxt"
        label_map_path.write_text(LABEL_MAP)
        evaluator, categories = _mask_evaluator(str(label_map_path))
    metrics = _evaluate(evaluator, images)
    per_category = {
        category["name"]: _evaluate(type(evaluator)([category]), images)
        for category in categories
    }
    arrays = {}
    for index, (_, masks, _, probabilities) in enumerate(images):
        arrays[f"groundtruth_masks_{index}"] = masks
        arrays[f"detection_probabilities_{index}"] = probabilities
    np.savez_compressed(FOLDER / "coco_mask_metrics.npz", **arrays)
    (FOLDER / "coco_mask_metrics.json").write_text(json.dumps({
        "label_map": LABEL_MAP,
        "eval_config": EVAL_CONFIG,
        "images": [
            {"groundtruth": {key: value.tolist() for key, value in groundtruth.items()},
             "detections": {key: value.tolist() for key, value in detections.items()}}
            for groundtruth, _, detections, _ in images
        ],
        "metrics": metrics,
        "per_category": per_category,
    }, indent=1) + "\n")
    for name, value in metrics.items():
        print(f"{name}: {value:.6f}")
    for category, values in per_category.items():
        print(f"{category}: mAP {values['DetectionMasks_Precision/mAP']:.6f}")


if __name__ == "__main__":
    main()
