import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import MultiClassNonMaxSuppression

# Pixel yxyx boxes: 0 and 1 overlap with IoU 81 / 119 = 0.68, box 2 is far away.
BOXES = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]]


def _nms(boxes, scores, **kwargs):
    layer = MultiClassNonMaxSuppression(**kwargs)
    return {k: v.numpy() for k, v in layer(tf.constant(boxes), tf.constant(scores)).items()}


def test_suppresses_within_a_class_but_not_across_classes():
    # Class 0: box 1 (0.8) overlaps box 0 (0.9) above 0.6 IoU → suppressed. Class 1: box 1
    # (0.7) is the best class-1 box, so box 0's class-1 score (0.6) is suppressed instead.
    scores = [[[0.9, 0.6], [0.8, 0.7], [0.05, 0.3]]]
    out = _nms([BOXES], scores, max_detections=6)
    assert out["num_detections"].tolist() == [4]
    np.testing.assert_allclose(out["confidences"][0, :4], [0.9, 0.7, 0.3, 0.05], atol=1e-7)
    assert out["labels"][0].tolist() == [0, 1, 1, 0, -1, -1]
    np.testing.assert_allclose(out["boxes"][0, :4], [BOXES[0], BOXES[1], BOXES[2], BOXES[2]])


def test_padding_rows_and_an_image_with_no_detections():
    scores = [[[0.9, 0.0], [0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
    out = _nms([BOXES, BOXES], scores, max_detections=4)
    assert out["num_detections"].tolist() == [1, 0]
    assert out["boxes"].shape == (2, 4, 4)
    assert out["labels"].dtype == np.int32 and out["num_detections"].dtype == np.int32
    np.testing.assert_allclose(out["boxes"][0, 0], BOXES[0])
    np.testing.assert_array_equal(out["boxes"][0, 1:], -1.0)
    np.testing.assert_array_equal(out["boxes"][1], -1.0)
    assert out["labels"].tolist() == [[0, -1, -1, -1], [-1, -1, -1, -1]]
    np.testing.assert_array_equal(out["confidences"][0, 1:], 0.0)
    np.testing.assert_array_equal(out["confidences"][1], 0.0)


def test_score_threshold_drops_boxes_at_or_below_it():
    scores = [[[0.9], [0.0], [0.5]]]
    assert _nms([BOXES], scores, score_threshold=0.5)["num_detections"].tolist() == [1]
    assert _nms([BOXES], scores, score_threshold=0.4)["num_detections"].tolist() == [2]


def test_max_detections_per_class_and_in_total():
    # Three disjoint boxes, both classes: 6 candidates, none suppressed.
    boxes = [[[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]]]
    scores = [[[0.9, 0.4], [0.8, 0.5], [0.7, 0.6]]]
    per_class = _nms(boxes, scores, max_detections_per_class=2, max_detections=6)
    assert per_class["num_detections"].tolist() == [4]
    # Class 0 keeps boxes 0, 1 (0.9, 0.8); class 1 keeps boxes 2, 1 (0.6, 0.5).
    np.testing.assert_allclose(per_class["confidences"][0, :4], [0.9, 0.8, 0.6, 0.5])
    assert per_class["labels"][0].tolist() == [0, 0, 1, 1, -1, -1]
    np.testing.assert_allclose(per_class["boxes"][0, :4, 0], [0.0, 2.0, 4.0, 2.0])
    total = _nms(boxes, scores, max_detections_per_class=3, max_detections=2)
    assert total["num_detections"].tolist() == [2]
    assert total["boxes"].shape == (1, 2, 4)
    np.testing.assert_allclose(total["confidences"][0], [0.9, 0.8])


def test_per_class_boxes():
    # Class 1 has its own boxes: its copy of box 1 is moved far away, so it is not suppressed.
    per_class_boxes = [[[b, b] for b in BOXES]]
    per_class_boxes[0][1][1] = [20.0, 20.0, 30.0, 30.0]
    scores = [[[0.0, 0.9], [0.0, 0.8], [0.0, 0.0]]]
    out = _nms(per_class_boxes, scores, max_detections=3)
    assert out["num_detections"].tolist() == [2]
    np.testing.assert_allclose(out["boxes"][0, :2], [BOXES[0], [20.0, 20.0, 30.0, 30.0]])
    assert out["labels"][0].tolist() == [1, 1, -1]


def test_pixel_boxes_are_not_clipped_by_default():
    out = _nms([BOXES], [[[0.0], [0.0], [0.9]]], max_detections=1)
    np.testing.assert_allclose(out["boxes"][0, 0], BOXES[2])
    clipped = _nms([BOXES], [[[0.0], [0.0], [0.9]]], max_detections=1, clip_boxes=True)
    np.testing.assert_allclose(clipped["boxes"][0, 0], [1.0, 1.0, 1.0, 1.0])


def test_runs_under_tf_function_and_in_a_functional_model():
    layer = MultiClassNonMaxSuppression(max_detections=3)
    scores = tf.constant([[[0.9, 0.6], [0.8, 0.7], [0.05, 0.3]]])
    expected = layer(tf.constant([BOXES]), scores)
    traced = tf.function(layer)(tf.constant([BOXES]), scores)
    boxes_input = keras.Input((3, 4))
    scores_input = keras.Input((3, 2))
    model = keras.Model([boxes_input, scores_input], layer(boxes_input, scores_input))
    predicted = model.predict([np.array([BOXES]), scores.numpy()], verbose=0)
    for key in expected:
        np.testing.assert_allclose(traced[key], expected[key])
        np.testing.assert_allclose(predicted[key], expected[key])


def test_rejects_boxes_of_the_wrong_rank():
    with pytest.raises(ValueError, match="boxes must be"):
        MultiClassNonMaxSuppression()(tf.zeros([3, 4]), tf.zeros([1, 3, 2]))


def test_config_round_trip():
    layer = MultiClassNonMaxSuppression(
        score_threshold=0.3, iou_threshold=0.5, max_detections_per_class=7, max_detections=9,
        clip_boxes=True,
    )
    restored = MultiClassNonMaxSuppression.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, MultiClassNonMaxSuppression)
    assert restored.max_detections == 9 and restored.clip_boxes is True
