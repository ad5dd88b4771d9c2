"""COCO instance-mask metrics (`coco_mask_metrics`, pycocotools `segm`): hand-made cases, the
TF OD API's CocoMaskEvaluator numbers, COCOEvaluator from an eval_config, and the errors."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from pycocotools import mask as mask_utils

import tiny_pipeline
from kdet import configs
from kdet import evaluation
from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import parse
from kdet.evaluation import COCO_MASK_METRIC_NAMES
from kdet.evaluation import COCOEvaluator
from kdet.evaluation import compute_coco_mask_metrics
from kdet.evaluation import encode_masks
from kdet.layers.image_resizer import RESIZED_IMAGES
from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE

FOLDER = pathlib.Path(__file__).parents[1] / "data" / "tfod_reference"
MAP = "DetectionMasks_Precision/mAP"


def _reference():
    """The reference JSON, with each image's masks: ground truth uint8 and detection
    probabilities float32 (the uint8 stored / 255, as the TF OD API evaluated them)."""
    reference = json.loads((FOLDER / "coco_mask_metrics.json").read_text())
    with np.load(FOLDER / "coco_mask_metrics.npz") as arrays:
        for index, image in enumerate(reference["images"]):
            image["groundtruth"]["masks"] = arrays[f"groundtruth_masks_{index}"]
            probabilities = arrays[f"detection_probabilities_{index}"]
            image["detections"]["masks"] = probabilities.astype(np.float32) / 255
    return reference


def _square(size, top, left, side, value=1):
    mask = np.zeros((size, size), np.float32)
    mask[top:top + side, left:left + side] = value
    return mask


def test_mask_iou_decides_not_the_box_and_probabilities_are_cut_at_one_half():
    # A 20 × 20 object; the detection's box is right but its mask is 10 pixels off: IoU 1/3.
    truth = {"boxes": [[10, 10, 30, 30]], "labels": [1], "masks": [_square(64, 10, 10, 20)]}
    half = _square(64, 10, 20, 20, 0.9)
    detection = {"boxes": [[10, 10, 30, 30]], "labels": [1], "confidences": [0.8]}
    metrics = compute_coco_mask_metrics([truth], [dict(detection, masks=[half])])
    assert metrics[MAP] == 0.0
    # The same object at probability 0.6 (> 0.5) with a 0.5 halo (not > 0.5): IoU 1.
    soft = np.maximum(_square(64, 10, 10, 20, 0.6), _square(64, 5, 5, 30, 0.5))
    metrics = compute_coco_mask_metrics([truth], [dict(detection, masks=[soft])])
    assert list(metrics) == list(COCO_MASK_METRIC_NAMES) + [
        "DetectionMasks_PerformanceByCategory/mAP/1"
    ]
    assert metrics[MAP] == pytest.approx(1.0)
    assert metrics["DetectionMasks_Precision/mAP (small)"] == pytest.approx(1.0)  # 400 px²
    assert metrics["DetectionMasks_Precision/mAP (large)"] == -1.0


def test_crowd_masks_excuse_detections_inside_them():
    crowd = _square(64, 0, 0, 40)
    truth = {"boxes": [[0, 0, 40, 40], [50, 50, 60, 60]], "labels": [1, 1],
             "iscrowd": [1, 0], "masks": [crowd, _square(64, 50, 50, 10)]}
    detection = {"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "labels": [1, 1],
                 "confidences": [0.9, 0.5],
                 "masks": [_square(64, 2, 2, 8), _square(64, 50, 50, 10)]}
    assert compute_coco_mask_metrics([truth], [detection])[MAP] == pytest.approx(1.0)
    # Not crowd: the same detection is a false positive ranked first, the object missed.
    metrics = compute_coco_mask_metrics([dict(truth, iscrowd=[0, 0])], [detection])
    assert metrics[MAP] < 0.6


def test_equal_to_the_tf_od_api_coco_mask_evaluator():
    reference = _reference()
    groundtruth = [image["groundtruth"] for image in reference["images"]]
    detections = [image["detections"] for image in reference["images"]]
    label_map = {1: "person", 2: "dog", 3: "car"}
    metrics = compute_coco_mask_metrics(groundtruth, detections, label_map=label_map,
                                        all_metrics_per_category=True,
                                        super_categories={"animal": ["person", "dog"]})
    summary = {name: metrics[name] for name in COCO_MASK_METRIC_NAMES}
    assert summary.keys() == reference["metrics"].keys()
    np.testing.assert_allclose(list(summary.values()), list(reference["metrics"].values()),
                               rtol=0, atol=1e-6)
    for name, expected in reference["per_category"].items():
        assert metrics[f"DetectionMasks_PerformanceByCategory/mAP/{name}"] == pytest.approx(
            expected[MAP], abs=1e-6)
        for key, value in expected.items():
            per_category = key.replace("/", " ", 1) + f" ByCategory/{name}"
            assert metrics[per_category] == pytest.approx(value, abs=1e-6), per_category
    per_category = reference["per_category"]
    assert metrics["DetectionMasks_PerformanceBySuperCategory/animal"] == pytest.approx(
        (per_category["person"][MAP] + per_category["dog"][MAP]) / 2, abs=1e-6)
    # Data the test would catch errors with: partial APs, and every size range defined.
    assert 0.1 < metrics[MAP] < 0.9
    assert all(metrics[f"DetectionMasks_Precision/mAP ({size})"] > 0
               for size in ("small", "medium", "large"))


class _TableModel(keras.Model):
    """Predicts the rows of a fixed table: those of the image whose first pixel holds its
    index (so any batching gets each image's own detections)."""

    def __init__(self, table):
        super().__init__(name="table_model")
        self.table = {key: tf.constant(value) for key, value in table.items()}
        self.bounding_box_format = "yxyx"

    def call(self, images):
        index = tf.cast(images[:, 0, 0, 0], tf.int32)
        return {key: tf.gather(value, index) for key, value in self.table.items()}


def _batched(dicts, rows, height, width):
    """Per-image dicts → one batched dict padded to `rows` rows (-1; masks 0) and to
    `height × width` pixels (bottom/right, as batches of different sizes are padded)."""
    result = {}
    for key, shape in (("boxes", (4,)), ("labels", ()), ("confidences", ()), ("iscrowd", ())):
        if key in dicts[0]:
            padded = np.full((len(dicts), rows, *shape), -1, np.float32)
            for b, image in enumerate(dicts):
                array = np.asarray(image[key], np.float32).reshape(-1, *shape)
                padded[b, : len(array)] = array
            result[key] = padded.astype(np.int32) if key in ("labels", "iscrowd") else padded
    masks = np.zeros((len(dicts), rows, height, width), dicts[0]["masks"].dtype)
    for b, image in enumerate(dicts):
        count, h, w = image["masks"].shape
        masks[b, :count, :h, :w] = image["masks"]
    result["masks"] = masks
    return result


def test_coco_evaluator_from_the_eval_config_equals_the_tf_od_api(tmp_path):
    reference = _reference()
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text(reference["label_map"])
    settings = build_eval_settings(Node(parse(
        'metrics_set: "coco_detection_metrics"\n' + reference["eval_config"]
        + "eval_instance_masks: true\n", "eval.config"), "eval_config"))
    assert settings.metrics_sets == ("coco_detection_metrics", "coco_mask_metrics")
    # One image size for the batch: the masks padded bottom/right with zeros change nothing.
    groundtruth = [image["groundtruth"] for image in reference["images"]]
    detections = [image["detections"] for image in reference["images"]]
    y = _batched(groundtruth, 8, 140, 160)
    table = _batched(detections, 8, 140, 160)
    images = np.zeros((len(groundtruth), 140, 160, 3), np.float32)
    images[:, 0, 0, 0] = np.arange(len(groundtruth))
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(4)
    evaluator = COCOEvaluator(dataset, label_map=label_map, metrics_sets=settings.metrics_sets,
                              log_dir=tmp_path / "eval", num_visualizations=2)
    metrics = evaluator.evaluate(_TableModel(table), step=0)
    assert next(iter(metrics)) == "DetectionBoxes_Precision/mAP"
    masks = {name: value for name, value in metrics.items() if name.startswith("DetectionMasks")}
    assert masks.keys() == reference["metrics"].keys()
    np.testing.assert_allclose(list(masks.values()), list(reference["metrics"].values()),
                               rtol=0, atol=1e-6)
    # The drawings fill the masks: the detections' side differs from the image's black.
    assert len(evaluator.last_visualizations) == 2
    assert evaluator.last_visualizations[0][:, :160].any()


def test_errors_name_the_metric_and_what_is_missing():
    masks = np.zeros((1, 1, 16, 16), np.uint8)
    y = {"boxes": np.array([[[0, 0, 8, 8]]], np.float32), "labels": np.array([[1]], np.int32)}
    predictions = dict(y, confidences=np.array([[0.9]], np.float32))
    images = np.zeros((1, 16, 16, 3), np.float32)

    def evaluate(y, table):
        dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(1)
        return COCOEvaluator(dataset, metrics_sets="coco_mask_metrics").evaluate(
            _TableModel(table))

    with pytest.raises(ValueError, match=r"metrics set 'coco_mask_metrics' needs the instance "
                                         r"masks the model predicts, but its predictions have "
                                         r"no 'masks' \(keys: boxes, confidences, labels\)"):
        evaluate(dict(y, masks=masks), predictions)
    with pytest.raises(ValueError, match=r"'coco_mask_metrics' needs ground-truth instance "
                                         r"masks, but the evaluation dataset's y has no 'masks'.*"
                                         r"load_instance_masks"):
        evaluate(y, dict(predictions, masks=masks.astype(np.float32)))
    with pytest.raises(ValueError, match=r"image 0: the ground-truth and detection masks have "
                                         r"different sizes \[\(8, 8\), \(16, 16\)\]"):
        compute_coco_mask_metrics([dict(y, boxes=y["boxes"][0], labels=[1], masks=masks[0])],
                                  [dict(predictions, boxes=y["boxes"][0], labels=[1],
                                        confidences=[0.9], masks=np.ones((1, 8, 8)))])
    with pytest.raises(ValueError, match=r"groundtruth\[0\]: 'masks' must hold one \[height, "
                                         r"width\] mask per box \(1 boxes\); got \(2, 16, 16\)"):
        compute_coco_mask_metrics([{"boxes": [[0, 0, 8, 8]], "labels": [1],
                                    "masks": np.zeros((2, 16, 16))}], [predictions])


def test_encode_masks_thresholds_floats_and_keeps_rles():
    masks = np.array([[[0.2, 0.5], [0.51, 1.0]]], np.float32)
    rles = encode_masks(masks)
    assert encode_masks(rles) == rles
    np.testing.assert_array_equal(mask_utils.decode(rles)[..., 0], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(
        mask_utils.decode(encode_masks(np.array([[[0, 3], [255, 0]]], np.uint8)))[..., 0],
        [[0, 1], [1, 0]])


def test_kdet_eval_of_a_box_model_asking_for_mask_metrics_says_what_is_missing(tmp_path):
    config = tiny_pipeline.write_pipeline(
        tmp_path, eval_config='eval_config { metrics_set: "coco_mask_metrics" }',
        num_eval_images=1)
    pipeline = configs.load_pipeline(config)
    evaluator = evaluation.pipeline_evaluator(pipeline)
    assert evaluator.metrics_sets == ("coco_mask_metrics",)
    with pytest.raises(ValueError, match=r"metrics set 'coco_mask_metrics' needs the instance "
                                         r"masks the model predicts, but its predictions have "
                                         r"no 'masks' \(keys: boxes, .*\): evaluate a model "
                                         r"that predicts instance masks"):
        evaluator.evaluate(pipeline.model)


class _ResizedTableModel(_TableModel):
    """`_TableModel` for the dict of resized images a `keep_aspect_ratio_resizer` model takes."""

    def call(self, images):
        return super().call(images[RESIZED_IMAGES])


def test_resized_images_cut_the_masks_to_each_true_shape():
    # A 20 × 30 image padded to 32 × 32: the detection's pixels in the padding would make its
    # IoU 64 / 448.
    truth = np.zeros((1, 1, 32, 32), np.uint8)
    truth[0, 0, 4:12, 4:12] = 1
    detected = truth.astype(np.float32) * 0.9
    detected[0, 0, 20:32, :] = 0.9
    images = {RESIZED_IMAGES: np.zeros((1, 32, 32, 3), np.float32),
              TRUE_IMAGE_SHAPE: np.array([[20, 30, 3]], np.int32)}
    y = {"boxes": np.array([[[4, 4, 12, 12]]], np.float32), "labels": np.array([[1]], np.int32),
         "masks": truth}
    table = {"boxes": y["boxes"], "labels": y["labels"], "masks": detected,
             "confidences": np.array([[0.9]], np.float32)}
    dataset = tf.data.Dataset.from_tensor_slices((images, y)).batch(1)
    evaluator = COCOEvaluator(dataset, metrics_sets="coco_mask_metrics")
    assert evaluator.evaluate(_ResizedTableModel(table))[MAP] == pytest.approx(1.0)
    padded = compute_coco_mask_metrics(y, dict(table, num_detections=[1]))
    assert padded[MAP] == 0.0  # the same masks, uncut
