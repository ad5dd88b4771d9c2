"""COCO keypoint metrics (OKS AP through pycocotools): hand-computed OKS, pycocotools run by
hand, the TF OD API's CocoKeypointEvaluator numbers, and COCOEvaluator's keypoint_metrics."""

import contextlib
import io
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import parse
from kdet.evaluation import COCO_KEYPOINT_METRIC_NAMES
from kdet.evaluation import COCOEvaluator
from kdet.evaluation import CocoKeypointMetrics
from kdet.evaluation import compute_coco_keypoint_metrics

REFERENCE = (pathlib.Path(__file__).parents[1] / "data" / "tfod_reference"
             / "coco_keypoint_metrics.json")
MAP = "Keypoints_Precision/mAP ByCategory/person"
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
# A 100 × 80 person (area 8000, "medium") with four keypoints, (y, x) pixels.
BOX = [100.0, 200.0, 200.0, 280.0]
POINTS = [[110.0, 240.0], [150.0, 210.0], [150.0, 270.0], [195.0, 240.0]]
LABELS = ["head", "left_hand", "right_hand", "foot"]
SIGMAS = {"head": 0.026, "left_hand": 0.062, "right_hand": 0.062, "foot": 0.089}


def _person(points=POINTS, **extra):
    return {"boxes": [BOX], "labels": [1], "keypoints": [points], **extra}


def _metrics(groundtruth, detections, keypoints=LABELS, sigmas=SIGMAS):
    return compute_coco_keypoint_metrics(
        groundtruth, detections, 1, keypoints, category_name="person", keypoint_sigmas=sigmas
    )


def _cocoeval_by_hand(gt_annotations, dt_annotations, num_images, sigmas):
    """pycocotools' 10 keypoint stats of COCO-format annotations (x, y, v keypoints)."""
    images = [{"id": i + 1} for i in range(num_images)]
    categories = [{"id": 1, "name": "person"}]

    def coco(annotations):
        result = COCO()
        result.dataset = {"images": images, "categories": categories,
                          "annotations": [dict(a, id=i + 1) for i, a in enumerate(annotations)]}
        result.createIndex()
        return result

    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco(gt_annotations), coco(dt_annotations), iouType="keypoints")
        evaluation.params.kpt_oks_sigmas = np.array(sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def test_perfect_keypoints_score_one():
    large = {"boxes": [[0.0, 0.0, 200.0, 150.0]], "labels": [1],
             "keypoints": [[[10.0, 10.0], [100.0, 50.0], [150.0, 140.0], [190.0, 75.0]]]}
    groundtruth = [_person(), large]
    detections = [dict(image, confidences=[0.8]) for image in groundtruth]
    metrics = _metrics(groundtruth, detections)
    assert list(metrics) == [f"Keypoints_{name} ByCategory/person"
                             for name in COCO_KEYPOINT_METRIC_NAMES]
    assert list(metrics.values()) == pytest.approx([1.0] * 10)


@pytest.mark.parametrize("shift", [3.0, 4.5, 6.0, 10.0])
def test_a_shifted_keypoint_lowers_ap_as_oks_says(shift):
    shifted = np.array(POINTS)
    shifted[0, 1] += shift  # the head moves right by `shift` pixels
    metrics = _metrics([_person()], [_person(shifted, confidences=[0.9])])
    # OKS: the mean over the four keypoints of exp(-d² / (2 · area · (2σ)²)).
    area = 100.0 * 80.0
    oks = (3.0 + np.exp(-shift**2 / (2 * area * (2 * SIGMAS["head"]) ** 2))) / 4
    # One object, one detection: AP (and recall) is 1 at the OKS thresholds it reaches, else 0.
    expected = np.mean(OKS_THRESHOLDS <= oks)
    assert metrics[MAP] == pytest.approx(expected)
    assert metrics["Keypoints_Recall/AR@1 ByCategory/person"] == pytest.approx(expected)
    assert metrics["Keypoints_Precision/mAP@.50IOU ByCategory/person"] == pytest.approx(1.0)
    assert metrics["Keypoints_Precision/mAP@.75IOU ByCategory/person"] == pytest.approx(1.0)
    assert metrics["Keypoints_Precision/mAP (large) ByCategory/person"] == -1.0
    # pycocotools by hand, from COCO's own [x, y, v] annotations.
    coco_points = [value for y, x in POINTS for value in (x, y, 2)]
    coco_shifted = [value for y, x in shifted for value in (x, y, 2)]
    gt = [{"image_id": 1, "category_id": 1, "bbox": [200, 100, 80, 100], "area": area,
           "iscrowd": 0, "keypoints": coco_points, "num_keypoints": 4}]
    dt = [{"image_id": 1, "category_id": 1, "bbox": [200, 100, 80, 100], "area": area,
           "score": 0.9, "keypoints": coco_shifted}]
    stats = _cocoeval_by_hand(gt, dt, 1, [SIGMAS[label] for label in LABELS])
    np.testing.assert_allclose(list(metrics.values()), stats)


def test_given_area_replaces_the_box_area_in_oks():
    shifted = np.array(POINTS)
    shifted[3, 0] += 12.0  # the foot moves down
    area = 2000.0
    metrics = _metrics([_person(area=[area])], [_person(shifted, confidences=[0.9])])
    oks = (3.0 + np.exp(-12.0**2 / (2 * area * (2 * SIGMAS["foot"]) ** 2))) / 4
    assert metrics[MAP] == pytest.approx(np.mean(OKS_THRESHOLDS <= oks))
    # 2000 px² is "medium"; the same shift with the 8000 px² box area scores higher.
    assert metrics[MAP] < _metrics([_person()], [_person(shifted, confidences=[0.9])])[MAP]


def test_unlabelled_keypoints_and_objects_are_ignored():
    # The head is far off and the left hand 25 px off: with the head unlabelled, OKS is the
    # mean over the three other keypoints.
    detection = np.array(POINTS)
    detection[0] = [400.0, 10.0]
    detection[1, 0] += 25.0
    hand = np.exp(-25.0**2 / (2 * 8000.0 * (2 * SIGMAS["left_hand"]) ** 2))
    expected = np.mean(OKS_THRESHOLDS <= (hand + 2) / 3)
    unlabelled_head = _person(keypoint_visibilities=[[0, 2, 1, 2]])
    nan_head = _person([[np.nan, np.nan]] + POINTS[1:])  # no visibilities: NaN = unlabelled
    for groundtruth in (unlabelled_head, nan_head):
        metrics = _metrics([groundtruth], [_person(detection, confidences=[0.9])])
        assert metrics[MAP] == pytest.approx(expected)
        assert 0.0 < expected < 1.0
    # An object with no labelled keypoint is ignored: a detection on it is no false positive.
    ignored = {"boxes": [BOX, [300, 300, 400, 380]], "labels": [1, 1],
               "keypoints": [POINTS, POINTS], "keypoint_visibilities": [[2] * 4, [0] * 4]}
    detections = {"boxes": [BOX, [300, 300, 400, 380]], "labels": [1, 1],
                  "confidences": [0.5, 0.9], "keypoints": [POINTS, POINTS]}
    assert _metrics([ignored], [detections])[MAP] == pytest.approx(1.0)


def test_keypoint_ids_pick_columns_sigmas_follow_labels_and_other_classes_are_left_out():
    rng = np.random.default_rng(0)
    shifted = np.array(POINTS) + rng.normal(0, 4, (4, 2))
    # The class's keypoints are columns 3, 0, 5 and 1 of six; the others hold garbage.
    columns = {"head": 3, "left_hand": 0, "right_hand": 5, "foot": 1}
    wide_gt, wide_dt = np.full((1, 6, 2), -50.0), rng.uniform(0, 400, (2, 6, 2))
    for label, column in columns.items():
        wide_gt[0, column] = POINTS[LABELS.index(label)]
        wide_dt[0, column] = shifted[LABELS.index(label)]
    # A dog (class 2) with its own box and keypoints, undetected, and a false dog detection.
    groundtruth = {"boxes": [BOX, [0, 0, 50, 50]], "labels": [1, 2],
                   "keypoints": np.concatenate([wide_gt, rng.uniform(0, 50, (1, 6, 2))])}
    detections = {"boxes": [BOX, [300, 300, 350, 350]], "labels": [1, 2],
                  "confidences": [0.9, 0.95], "keypoints": wide_dt}
    wide = _metrics([groundtruth], [detections], keypoints=columns)
    narrow = _metrics([_person()], [_person(shifted, confidences=[0.9])])
    assert 0.0 < wide[MAP] < 1.0
    assert list(wide.values()) == pytest.approx(list(narrow.values()))


def test_default_sigmas_and_errors():
    shifted = np.array(POINTS)
    shifted[0, 1] += 10.0
    default = _metrics([_person()], [_person(shifted, confidences=[0.9])], sigmas=None)
    oks = (3.0 + np.exp(-100.0 / (2 * 8000.0 * (2 * 0.05) ** 2))) / 4
    assert default[MAP] == pytest.approx(np.mean(OKS_THRESHOLDS <= oks))
    detections = [_person(confidences=[0.9])]
    with pytest.raises(ValueError, match=r"no sigma for the keypoints \['foot'\]"):
        _metrics([_person()], detections, sigmas={"head": 0.1, "left_hand": 0.1,
                                                  "right_hand": 0.1})
    with pytest.raises(ValueError, match=r"keypoint ids \[0, 7\] do not all index"):
        _metrics([_person()], detections, keypoints={"a": 0, "b": 7}, sigmas=None)
    with pytest.raises(KeyError, match=r"detections\[0\] has no 'keypoints'"):
        _metrics([_person()], [{"boxes": [BOX], "labels": [1], "confidences": [0.9]}])


def _reference():
    return json.loads(REFERENCE.read_text())


def test_equal_to_the_tf_od_api_coco_keypoint_evaluator():
    reference = _reference()
    groundtruth = [image["groundtruth"] for image in reference["images"]]
    detections = [image["detections"] for image in reference["images"]]
    metrics = {}
    for category_id, name, keypoints in (
        (1, "person", {"head": 0, "left_hand": 1, "right_hand": 2, "foot": 3}),
        (2, "dog", {"nose": 4, "tail": 5}),
    ):
        sigmas = SIGMAS if name == "person" else None
        metrics.update(compute_coco_keypoint_metrics(
            groundtruth, detections, category_id, keypoints, category_name=name,
            keypoint_sigmas=sigmas,
        ))
    assert metrics.keys() == reference["metrics"].keys()
    np.testing.assert_allclose(list(metrics.values()), list(reference["metrics"].values()),
                               rtol=0, atol=1e-12)
    # Data the test would catch errors with: partial APs, and both classes defined.
    assert 0.2 < metrics[MAP] < 0.9
    assert 0.0 < metrics["Keypoints_Precision/mAP ByCategory/dog"] < 1.0


class _TableModel(keras.Model):
    """Predicts the rows of a fixed table: those of the image whose first pixel holds its
    index (so any batching gets each image's own detections)."""

    def __init__(self, table, bounding_box_format="yxyx"):
        super().__init__(name="table_model")
        self.table = {key: tf.constant(value) for key, value in table.items()}
        self.bounding_box_format = bounding_box_format

    def call(self, images):
        index = tf.cast(images[:, 0, 0, 0], tf.int32)
        return {key: tf.gather(value, index) for key, value in self.table.items()}


# The per-row shape of each key of the reference data (K = 6 keypoints per object).
_ROW_SHAPES = {"boxes": (4,), "labels": (), "confidences": (), "area": (),
               "keypoints": (6, 2), "keypoint_visibilities": (6,)}


def _padded(dicts, rows):
    """Per-image dicts → one batched dict, each key padded to `rows` rows with -1 (labels
    int32, the rest float32)."""
    result = {}
    for key in dicts[0]:
        if key not in _ROW_SHAPES:
            continue
        shape = _ROW_SHAPES[key]
        padded = np.full((len(dicts), rows, *shape), -1, np.float32)
        for b, image in enumerate(dicts):
            array = np.asarray(image[key], np.float32).reshape(-1, *shape)
            padded[b, : len(array)] = array
        result[key] = padded.astype(np.int32) if key == "labels" else padded
    return result


def test_coco_evaluator_from_the_eval_config_and_label_map_equals_the_tf_od_api(tmp_path):
    reference = _reference()
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text(reference["label_map"])
    settings = build_eval_settings(
        Node(parse(reference["eval_config"], "eval.config"), "eval_config")
    )
    assert settings.keypoint_metrics == (
        CocoKeypointMetrics("person", SIGMAS), CocoKeypointMetrics("dog", None)
    )
    groundtruth = [image["groundtruth"] for image in reference["images"]]
    detections = [image["detections"] for image in reference["images"]]
    y = _padded(groundtruth, 8)
    table = _padded(detections, 32)
    images = np.zeros((len(groundtruth), 8, 8, 3), np.float32)
    images[:, 0, 0, 0] = np.arange(len(groundtruth))
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(4)
    evaluator = COCOEvaluator(dataset, label_map=label_map, metrics_sets=settings.metrics_sets,
                              keypoint_metrics=settings.keypoint_metrics)
    metrics = evaluator.evaluate(_TableModel(table))
    keypoint_metrics = {k: v for k, v in metrics.items() if k.startswith("Keypoints_")}
    assert next(iter(metrics)) == "DetectionBoxes_Precision/mAP"
    assert keypoint_metrics.keys() == reference["metrics"].keys()
    # float32 data: OKS differs from the float64 reference by ~1e-7, no threshold is crossed.
    np.testing.assert_allclose(list(keypoint_metrics.values()),
                               list(reference["metrics"].values()), atol=1e-6)


def test_coco_evaluator_keypoints_in_a_relative_format_and_drawn(tmp_path):
    size = 64.0
    box = np.array([[8.0, 16.0, 56.0, 48.0]])
    points = np.array([[[30.0, 32.0], [40.0, 20.0], [40.0, 44.0], [52.0, 32.0]]])
    shifted = points + [[[0.0, 2.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
    y = {"boxes": box[None], "labels": np.array([[1]], np.int32), "keypoints": points[None],
         "keypoint_visibilities": np.array([[[2, 2, 1, 2]]], np.int32)}
    table = {"boxes": box[None], "labels": np.array([[1]], np.int32),
             "confidences": np.array([[0.9]], np.float32), "keypoints": shifted[None],
             "keypoint_scores": np.ones((1, 1, 4), np.float32)}
    images = np.zeros((1, 64, 64, 3), np.float32)
    spec = CocoKeypointMetrics("person", keypoints={"a": 0, "b": 1, "c": 2, "d": 3})

    def evaluate(box_format, scale, log_dir=None):
        relative = {key: (np.float32(value / scale) if key in ("boxes", "keypoints") else value)
                    for key, value in table.items()}
        truth = {key: (np.float32(value / scale) if key in ("boxes", "keypoints") else value)
                 for key, value in y.items()}
        dataset = tf.data.Dataset.from_tensor_slices((images, truth)).batch(1)
        evaluator = COCOEvaluator(dataset, label_map={1: "person"}, keypoint_metrics=[spec],
                                  log_dir=log_dir, keypoint_edges=[(0, 3)])
        metrics = evaluator.evaluate(_TableModel(relative, box_format))
        return metrics, evaluator.last_visualizations

    pixels, _ = evaluate("yxyx", 1.0)
    relative, drawings = evaluate("rel_yxyx", size, log_dir=tmp_path)
    assert 0.0 < pixels[MAP] < 1.0
    assert relative == pytest.approx(pixels)
    # Detections left, ground truth right (black images): the head keypoint (y 30, x 34 / 32)
    # and the head → foot edge (x 32, y 30 → 52) are drawn, nothing beside the edge.
    drawing = drawings[0]
    assert drawing[30, 34].any() and drawing[30, 64 + 32].any()
    assert drawing[45, 64 + 32].any() and not drawing[45, 64 + 26].any()


def test_coco_evaluator_keypoint_metrics_need_the_class_and_its_keypoints(tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.zeros((1, 8, 8, 3), np.float32),
         {"boxes": np.zeros((1, 1, 4), np.float32), "labels": np.ones((1, 1), np.int32)})
    ).batch(1)
    with pytest.raises(ValueError, match=r"class_label 'cat': the label map has no class of "
                                         r"that name; its names are \['person'\]"):
        COCOEvaluator(dataset, {1: "person"}, keypoint_metrics=[{"class_label": "cat"}])
    with pytest.raises(ValueError, match=r"class_label 'person': the class's keypoints are "
                                         r"unknown"):
        COCOEvaluator(dataset, {1: "person"}, keypoint_metrics=[{"class_label": "person"}])
    with pytest.raises(ValueError, match=r"metrics set 'coco_keypoint_metrics' is not computed "
                                         r"by kdet: keypoint metrics are set per class"):
        COCOEvaluator(dataset, {1: "person"}, metrics_sets="coco_keypoint_metrics")
