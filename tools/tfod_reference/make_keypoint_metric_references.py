"""The TF OD API's COCO keypoint metrics on seeded hand-made data, for kdet's parity test.

Builds ground truth and detections with keypoints (NumPy, seeded), a label map with
`keypoints { id label }` and an `eval_config` with two `parameterized_metric {
coco_keypoint_metrics { … } }`, runs them through the TF OD API's own evaluators, made as
`model_lib_v2.eager_eval_loop` makes them (`label_map_util.create_category_index_from_labelmap`
then `eval_util.get_evaluators`), and writes everything to
`tests/data/tfod_reference/coco_keypoint_metrics.json`:

- `label_map`, `eval_config`: the texts used;
- `images`: per image `groundtruth` (`boxes` yxyx pixels, `labels`, `keypoints` `[N, K, 2]`
  (y, x) pixels, `keypoint_visibilities` `[N, K]` COCO v, `area`) and `detections` (`boxes`,
  `labels`, `confidences`, `keypoints`);
- `metrics`: what the keypoint evaluators return (`Keypoints_… ByCategory/<class>`).

Run with the TF OD API venv (see README.md):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_keypoint_metric_references.py
"""

import json
import pathlib
import sys
import tempfile
import types

import numpy as np
from google.protobuf import text_format


def _stand_in_for_lvis():
    """`eval_util` imports the LVIS evaluator at module level, which imports the `lvis` package
    (not in the venv: it needs OpenCV) and subclasses `lvis.LVIS` and `eval.LVISEval`. Keypoint
    evaluation never uses them, so modules holding empty classes of those names let `eval_util`
    load unchanged."""
    package = types.ModuleType("lvis")
    for name, classes in (("results", ()), ("eval", ("LVISEval",)), ("lvis", ("LVIS",))):
        module = types.ModuleType(f"lvis.{name}")
        for class_name in classes:
            setattr(module, class_name, type(class_name, (), {}))
        setattr(package, name, module)
        sys.modules[module.__name__] = module
    sys.modules["lvis"] = package


_stand_in_for_lvis()
from object_detection import eval_util
from object_detection.protos import eval_pb2
from object_detection.utils import label_map_util

OUTPUT = (pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tfod_reference"
          / "coco_keypoint_metrics.json")
HEIGHT, WIDTH = 480, 640
# Class 1 has keypoints 0-3, class 2 keypoints 4-5 (K = 6 per object in the data), class 3 none.
LABEL_MAP = """
item { id: 1 name: '/m/01g317' display_name: 'person'
  keypoints { id: 0 label: 'head' } keypoints { id: 1 label: 'left_hand' }
  keypoints { id: 2 label: 'right_hand' } keypoints { id: 3 label: 'foot' } }
item { id: 2 name: 'dog' keypoints { id: 4 label: 'nose' } keypoints { id: 5 label: 'tail' } }
item { id: 3 name: 'car' }
"""
EVAL_CONFIG = """
metrics_set: "coco_detection_metrics"
parameterized_metric { coco_keypoint_metrics { class_label: "person"
  keypoint_label_to_sigmas { key: "head" value: 0.026 }
  keypoint_label_to_sigmas { key: "left_hand" value: 0.062 }
  keypoint_label_to_sigmas { key: "right_hand" value: 0.062 }
  keypoint_label_to_sigmas { key: "foot" value: 0.089 } } }
parameterized_metric { coco_keypoint_metrics { class_label: "dog" } }
"""
NUM_KEYPOINTS = 6


def _objects(rng, count):
    """`count` objects: yxyx boxes of small to large sizes, keypoints inside them, COCO v."""
    size = np.exp(rng.uniform(np.log(12), np.log(300), (count, 2)))
    top_left = rng.uniform(0, 1, (count, 2)) * ([HEIGHT, WIDTH] - size)
    boxes = np.round(np.concatenate([top_left, top_left + size], axis=1), 2)
    keypoints = np.round(
        top_left[:, None] + rng.uniform(0, 1, (count, NUM_KEYPOINTS, 2)) * size[:, None], 2
    )
    visibilities = rng.choice([0, 1, 2], (count, NUM_KEYPOINTS), p=[0.2, 0.2, 0.6])
    visibilities[rng.uniform(size=count) < 0.1] = 0  # a few objects with no labelled keypoint
    return boxes, keypoints, visibilities


def _image(rng, index):
    """Ground truth and detections of one image (index 3: more than 20 detections)."""
    count = int(rng.integers(0, 6))
    boxes, keypoints, visibilities = _objects(rng, count)
    labels = rng.choice([1, 2, 3], count, p=[0.6, 0.25, 0.15])
    # Half the objects carry a segmentation-like area (a fraction of the box), the others 0.
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = np.where(rng.uniform(size=count) < 0.5, np.round(box_area * 0.6, 2), 0.0)
    found = rng.uniform(size=count) < 0.85
    scale = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    noise = rng.normal(0, 1, keypoints.shape) * scale[:, None] * rng.uniform(0, 0.08, (count, 1, 1))
    num_false = 25 if index == 3 else int(rng.integers(0, 4))
    false_boxes, false_keypoints, _ = _objects(rng, num_false)
    detections = {
        "boxes": np.round(np.concatenate(
            [boxes[found] + rng.normal(0, 2, (int(found.sum()), 4)), false_boxes]), 2),
        "labels": np.concatenate([labels[found], rng.choice([1, 2, 3], num_false)]),
        "confidences": np.round(np.concatenate(
            [rng.uniform(0.3, 1, int(found.sum())), rng.uniform(0.05, 0.7, num_false)]), 4),
        "keypoints": np.round(np.concatenate([(keypoints + noise)[found], false_keypoints]), 2),
    }
    groundtruth = {"boxes": boxes, "labels": labels, "keypoints": keypoints,
                   "keypoint_visibilities": visibilities, "area": area}
    return groundtruth, detections


def _evaluators(label_map_path):
    """The evaluators `model_lib_v2.eager_eval_loop` builds for `EVAL_CONFIG`."""
    eval_config = text_format.Parse(EVAL_CONFIG, eval_pb2.EvalConfig())
    categories = label_map_util.create_category_index_from_labelmap(label_map_path)
    return eval_util.get_evaluators(
        eval_config, list(categories.values()),
        eval_util.evaluator_options_from_eval_config(eval_config))


def main():
    rng = np.random.default_rng(18)
    images = [_image(rng, index) for index in range(10)]
    with tempfile.TemporaryDirectory() as folder:
        label_map_path = pathlib.Path(folder) / "label_map.pbtxt"
        label_map_path.write_text(LABEL_MAP)
        evaluators = _evaluators(str(label_map_path))
    keypoint_evaluators = [e for e in evaluators if type(e).__name__ == "CocoKeypointEvaluator"]
    assert len(keypoint_evaluators) == 2, evaluators
    for index, (groundtruth, detections) in enumerate(images):
        for evaluator in keypoint_evaluators:
            evaluator.add_single_ground_truth_image_info(index, {
                "groundtruth_boxes": groundtruth["boxes"],
                "groundtruth_classes": groundtruth["labels"],
                "groundtruth_keypoints": groundtruth["keypoints"],
                "groundtruth_keypoint_visibilities": groundtruth["keypoint_visibilities"],
                "groundtruth_area": groundtruth["area"],
                "groundtruth_is_crowd": np.zeros(len(groundtruth["labels"]), np.int64),
            })
            evaluator.add_single_detected_image_info(index, {
                "detection_boxes": detections["boxes"],
                "detection_classes": detections["labels"],
                "detection_scores": detections["confidences"],
                "detection_keypoints": detections["keypoints"],
            })
    metrics = {}
    for evaluator in keypoint_evaluators:
        metrics.update({name: float(value) for name, value in evaluator.evaluate().items()})
    OUTPUT.write_text(json.dumps({
        "label_map": LABEL_MAP,
        "eval_config": EVAL_CONFIG,
        "images": [
            {"groundtruth": {key: value.tolist() for key, value in groundtruth.items()},
             "detections": {key: value.tolist() for key, value in detections.items()}}
            for groundtruth, detections in images
        ],
        "metrics": metrics,
    }, indent=1) + "\n")
    for name, value in metrics.items():
        print(f"{name}: {value:.6f}")


if __name__ == "__main__":
    main()
