"""Open Images metrics (TF OD API `oid_V2_detection_metrics`, `oid_challenge_detection_metrics`):
hand-computed values, records carrying group-of flags and image-level labels, config names."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.configs.eval_builder import build_eval_settings
from kdet.configs.field_reader import Node
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.evaluation import COCOEvaluator
from kdet.evaluation import compute_pascal_voc_metrics
from kdet.evaluation.evaluator import check_metrics_sets
from kdet.evaluation.open_images_metrics import compute_open_images_metrics

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfod_configs"
LABEL_MAP = {1: "car", 2: "tree", 3: "dog"}
V2 = "OpenImagesV2_Precision/mAP@0.5IOU"
CHALLENGE = "OpenImagesDetectionChallenge_Precision/mAP@0.5IOU"

# Image 0: a car A and a group-of box G of cars (a car park). Its detections of cars:
#   0.95 far from both (false positive), 0.9 and 0.3 inside G (the detection's area lies in
#   G; IoU with A is 0), 0.8 on A (true positive), 0.6 a second detection on A (duplicate).
IMAGE_0 = (
    {"boxes": [[0, 0, 10, 10], [20, 0, 60, 100]], "labels": [1, 1], "group_of": [0, 1],
     "image_labels": [1]},
    {"boxes": [[80, 80, 95, 95], [30, 10, 50, 30], [25, 60, 35, 70], [0, 0, 10, 9],
               [0, 0, 9, 10]],
     "labels": [1, 1, 1, 1, 1], "confidences": [0.95, 0.9, 0.3, 0.8, 0.6]},
)
# Image 1: no boxes; "car" verified absent (a negative image-level label): a car detection
# at 0.97 is a false positive for the challenge too.
IMAGE_1 = (
    {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "group_of": np.zeros(0, int),
     "image_labels": [1]},
    {"boxes": [[10, 10, 30, 30]], "labels": [1], "confidences": [0.97]},
)
# Image 2: no boxes and no verified labels: its car (0.96) and dog (0.99) detections are not
# judged by the challenge metric; the V2 metric counts the car as a false positive.
IMAGE_2 = (
    {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int), "group_of": np.zeros(0, int),
     "image_labels": np.zeros(0, int)},
    {"boxes": [[10, 10, 30, 30], [40, 40, 60, 60]], "labels": [1, 3],
     "confidences": [0.96, 0.99]},
)


def _split(*images):
    return [gt for gt, _ in images], [dt for _, dt in images]


def test_v2_group_of_detections_are_ignored():
    # Counted, by confidence: 0.95 FP, 0.8 TP, 0.6 FP (0.9 and 0.3 ignored inside G).
    # One car counts (A; G is group-of): precision 1/2 at recall 1 → AP 0.5.
    metrics = compute_open_images_metrics(*_split(IMAGE_0), label_map=LABEL_MAP)
    assert metrics[V2] == pytest.approx(0.5)
    assert metrics["OpenImagesV2_PerformanceByCategory/AP@0.5IOU/car"] == pytest.approx(0.5)
    assert np.isnan(metrics["OpenImagesV2_PerformanceByCategory/AP@0.5IOU/tree"])
    assert list(metrics) == [V2] + [f"OpenImagesV2_PerformanceByCategory/AP@0.5IOU/{name}"
                                    for name in LABEL_MAP.values()]
    # Pascal VOC counts G as a car: 0.95 FP, 0.9 FP, 0.8 TP, 0.6 FP, 0.3 FP over 2 cars →
    # precision 1/3 at recall 1/2 → AP 1/6.
    pascal = compute_pascal_voc_metrics(*_split(IMAGE_0), label_map=LABEL_MAP)
    assert pascal["PascalBoxes_Precision/mAP@0.5IOU"] == pytest.approx(1 / 6)


def test_v2_counts_every_image_and_class():
    # 0.97 FP (image 1), 0.96 FP (image 2), 0.95 FP, 0.8 TP, 0.6 FP → precision 1/4 at recall 1.
    metrics = compute_open_images_metrics(*_split(IMAGE_0, IMAGE_1, IMAGE_2),
                                          label_map=LABEL_MAP)
    assert metrics[V2] == pytest.approx(0.25)


def test_challenge_detected_group_of_box_is_one_true_positive():
    # The cars: A and G (weight 1). Counted: 0.95 FP, G at 0.9 (the best of 0.9 and 0.3) TP,
    # 0.8 TP, 0.6 FP → precision 0, 1/2, 2/3, 1/2 at recall 0, 1/2, 1, 1 → AP
    # 1/2 · 2/3 + 1/2 · 2/3 = 2/3.
    metrics = compute_open_images_metrics(*_split(IMAGE_0), challenge=True, label_map=LABEL_MAP)
    assert metrics[CHALLENGE] == pytest.approx(2 / 3)
    # With the V2 weight (0) the group-of box is neither ground truth nor a detection.
    v2_weight = compute_open_images_metrics(*_split(IMAGE_0), challenge=True,
                                            group_of_weight=0.0, label_map=LABEL_MAP)
    assert v2_weight[CHALLENGE] == pytest.approx(0.5)


def test_challenge_judges_only_verified_or_boxed_classes():
    # Image 1's car is judged (car verified absent), image 2's car and dog are not:
    # 0.97 FP, 0.95 FP, G 0.9 TP, 0.8 TP, 0.6 FP over 2 cars → precision 1/3, 1/2 at recall
    # 1/2, 1 → AP 1/2 · 1/2 + 1/2 · 1/2 = 1/2. No dog is judged anywhere: AP NaN.
    metrics = compute_open_images_metrics(*_split(IMAGE_0, IMAGE_1, IMAGE_2), challenge=True,
                                          label_map=LABEL_MAP)
    assert metrics[CHALLENGE] == pytest.approx(0.5)
    assert np.isnan(metrics["OpenImagesDetectionChallenge_PerformanceByCategory/AP@0.5IOU/dog"])
    # Without image labels only boxed classes are judged: image 1's car goes too.
    unlabelled = [{key: value for key, value in gt.items() if key != "image_labels"}
                  for gt in _split(IMAGE_0, IMAGE_1, IMAGE_2)[0]]
    metrics = compute_open_images_metrics(unlabelled, _split(IMAGE_0, IMAGE_1, IMAGE_2)[1],
                                          challenge=True, label_map=LABEL_MAP)
    assert metrics[CHALLENGE] == pytest.approx(2 / 3)


def test_fractional_group_of_weight():
    # Weight 0.5: cars count 1 + 0.5. 0.95 FP, G 0.9 (+0.5 TP), 0.8 TP, 0.6 FP →
    # TP 0, 0.5, 1.5, 1.5; FP 1, 1, 1, 2; precision 0, 1/3, 3/5, 3/7; recall 0, 1/3, 1, 1 →
    # AP 1/3 · 3/5 + 2/3 · 3/5 = 3/5.
    metrics = compute_open_images_metrics(*_split(IMAGE_0), challenge=True, group_of_weight=0.5,
                                          label_map=LABEL_MAP)
    assert metrics[CHALLENGE] == pytest.approx(0.6)


def _records(tmp_path):
    """IMAGE_0..2 as TF OD API records (boxes normalized by a 100×100 image)."""
    examples = []
    for gt, _ in (IMAGE_0, IMAGE_1, IMAGE_2):
        labels = np.asarray(gt["labels"], int)
        examples.append(kdet.data.create_tf_example(
            kdet.data.encode_image(np.zeros([100, 100, 3], "uint8"), "png"), 100, 100,
            np.asarray(gt["boxes"], float).reshape(-1, 4) / 100, labels,
            [LABEL_MAP[int(label)] for label in labels],
            group_of=gt["group_of"],
            image_class_texts=[LABEL_MAP[int(label)] for label in gt["image_labels"]],
        ))
    kdet.data.write_tfrecord(examples, tmp_path / "oid.record")
    return tmp_path / "oid.record"


class _FixedDetections(keras.Model):
    """Returns IMAGE_0..2's detections for the images in order (a stand-in for a detector's
    `predict_on_batch`, so that the records' side is what is tested)."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def predict_on_batch(self, images):
        batch = []
        for _ in range(len(images)):
            batch.append((IMAGE_0, IMAGE_1, IMAGE_2)[self.seen][1])
            self.seen += 1
        size = max(len(dt["labels"]) for dt in batch)
        return {
            "boxes": np.stack([_padded(dt["boxes"], size, -1, 4) for dt in batch]),
            "labels": np.stack([_padded(dt["labels"], size, -1) for dt in batch]).astype(int),
            "confidences": np.stack([_padded(dt["confidences"], size, 0) for dt in batch]),
            "num_detections": np.array([len(dt["labels"]) for dt in batch]),
        }


def _padded(values, size, fill, *row_shape):
    values = np.asarray(values, float).reshape((-1, *row_shape))
    return np.concatenate([values, np.full((size - len(values), *row_shape), fill)])


def test_records_carry_group_of_and_image_labels_to_the_evaluator(tmp_path):
    path = _records(tmp_path)
    dataset = kdet.data.read_tfrecords(path, batch_size=2, shuffle=False, label_map=LABEL_MAP,
                                       include_difficult=True)
    first = next(iter(dataset))[1]
    np.testing.assert_array_equal(first["group_of"][0, :3], [0, 1, 0])
    np.testing.assert_array_equal(first["image_labels"][:, :2], [[1, -1], [1, -1]])
    assert first["image_labels"].shape == (2, kdet.data.input_pipeline.MAX_IMAGE_LABELS)

    sets = ("oid_V2_detection_metrics", "oid_challenge_detection_metrics")
    metrics = COCOEvaluator(dataset, label_map=LABEL_MAP, metrics_sets=sets).evaluate(
        _FixedDetections())
    assert metrics[V2] == pytest.approx(0.25)
    assert metrics[CHALLENGE] == pytest.approx(0.5)


def test_records_without_the_keys_decode_as_no_group_of_and_no_labels(tmp_path):
    example = kdet.data.create_tf_example(
        kdet.data.encode_image(np.zeros([8, 8, 3], "uint8"), "png"), 8, 8,
        [[0.1, 0.1, 0.5, 0.5]], [1], ["car"])
    decoded = kdet.data.decode_tf_example(example.SerializeToString())
    np.testing.assert_array_equal(decoded["group_of"], [0])
    assert decoded["image_labels"].shape == (0,)
    with_ids = kdet.data.create_tf_example(
        kdet.data.encode_image(np.zeros([8, 8, 3], "uint8"), "png"), 8, 8,
        [[0.1, 0.1, 0.5, 0.5]], [1], ["car"], image_class_labels=[3, 1])
    decoded = tf.function(kdet.data.decode_tf_example)(with_ids.SerializeToString())
    np.testing.assert_array_equal(decoded["image_labels"], [3, 1])


@pytest.mark.parametrize(
    "name, canonical",
    [("open_images_V2_detection_metrics", "oid_V2_detection_metrics"),
     ("open_images_metrics", "oid_V2_detection_metrics"),
     ("oid_challenge_object_detection_metrics", "oid_challenge_detection_metrics"),
     ("coco_metrics", "coco_detection_metrics"),
     ("pascal_voc_metrics", "pascal_voc_detection_metrics")],
)
def test_older_tf_od_api_names_select_the_same_sets(name, canonical):
    assert check_metrics_sets([name, canonical]) == (canonical,)


def test_sample_oid_config_eval_config_builds():
    path = CONFIGS / "ssd_mobilenet_v2_oid_v4.config"
    root = parse(path.read_text(), str(path))
    settings = build_eval_settings(Node(root.first("eval_config"), "eval_config"))
    assert settings.metrics_sets == ("oid_V2_detection_metrics",)


def test_mask_metrics_are_refused_saying_why():
    root = parse('eval_config {\n  metrics_set: "oid_challenge_segmentation_metrics"\n}',
                 "pipeline.config")
    with pytest.raises(ConfigError, match=r"pipeline.config:2:3: 'eval_config.metrics_set': "
                                          r"metrics set 'oid_challenge_segmentation_metrics' is "
                                          r"not computed by kdet: kdet computes the metrics of "
                                          r"instance masks as coco_mask_metrics only"):
        build_eval_settings(Node(root.first("eval_config"), "eval_config"))
