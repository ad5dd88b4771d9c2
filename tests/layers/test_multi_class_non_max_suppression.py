import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.layers import MultiClassNonMaxSuppression
from kdet.layers.multi_class_non_max_suppression import clip_and_prune

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


# -- class-agnostic NMS, soft-NMS, score conversion (TF OD API post_processing) --------------

IOU_01 = 81.0 / 119.0  # IoU of BOXES[0] and BOXES[1]


def test_class_agnostic_nms_lets_boxes_of_different_classes_suppress_each_other():
    scores = [[[0.9, 0.1], [0.2, 0.8], [0.3, 0.05]]]
    per_class = _nms([BOXES], scores, max_detections=4)
    assert per_class["num_detections"].tolist() == [4]
    agnostic = _nms([BOXES], scores, max_detections=4, use_class_agnostic_nms=True)
    # Box 1 (best class 1, 0.8) overlaps box 0 (best class 0, 0.9) above 0.6 IoU: removed.
    assert agnostic["num_detections"].tolist() == [2]
    np.testing.assert_allclose(agnostic["confidences"][0], [0.9, 0.3, 0.0, 0.0], atol=1e-7)
    assert agnostic["labels"][0].tolist() == [0, 0, -1, -1]
    np.testing.assert_allclose(agnostic["boxes"][0, :2], [BOXES[0], BOXES[2]])
    np.testing.assert_array_equal(agnostic["boxes"][0, 2:], -1.0)


def test_class_agnostic_nms_takes_the_box_of_the_best_class():
    # Per-class boxes [1, 2, 2, 4]: box 0 class 1 wins, so its class-1 box is returned.
    boxes = [[[[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]], [[2.0, 2.0, 3.0, 3.0]] * 2]]
    scores = [[[0.1, 0.9], [0.7, 0.2]]]
    out = _nms(boxes, scores, max_detections=3, use_class_agnostic_nms=True)
    assert out["labels"][0].tolist() == [1, 0, -1]
    np.testing.assert_allclose(out["boxes"][0, :2], [[5.0, 5.0, 6.0, 6.0], [2.0, 2.0, 3.0, 3.0]])


def test_soft_nms_decays_overlapping_scores_instead_of_removing_them():
    scores = [[[0.9], [0.8], [0.5]]]
    hard = _nms([BOXES], scores, max_detections=4)
    assert hard["num_detections"].tolist() == [2]
    soft = _nms([BOXES], scores, max_detections=4, iou_threshold=1.0, soft_nms_sigma=0.5)
    decayed = 0.8 * np.exp(-0.5 * IOU_01**2 / 0.5)
    assert soft["num_detections"].tolist() == [3]
    np.testing.assert_allclose(soft["confidences"][0], [0.9, decayed, 0.5, 0.0], rtol=1e-5)
    assert soft["labels"][0].tolist() == [0, 0, 0, -1]
    np.testing.assert_allclose(soft["boxes"][0, :3], BOXES)
    # A decayed score at or below score_threshold drops the box.
    cut = _nms(
        [BOXES], [[[0.9], [0.8], [0.6]]], max_detections=4, iou_threshold=1.0,
        soft_nms_sigma=0.5, score_threshold=0.55,
    )
    assert cut["num_detections"].tolist() == [2]  # box 1 decayed to 0.503
    np.testing.assert_allclose(cut["confidences"][0, :2], [0.9, 0.6])


def test_soft_nms_per_class_ranks_all_classes_and_keeps_max_detections():
    # Two images; class 1 of image 0 has two overlapping boxes, soft-NMS keeps both.
    scores = [
        [[0.9, 0.6], [0.1, 0.7], [0.05, 0.02]],
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.3]],
    ]
    out = _nms(
        [BOXES, BOXES], scores, max_detections=3, max_detections_per_class=2,
        iou_threshold=1.0, soft_nms_sigma=0.5,
    )
    decayed = 0.6 * np.exp(-0.5 * IOU_01**2 / 0.5)
    assert out["num_detections"].tolist() == [3, 1]
    np.testing.assert_allclose(out["confidences"][0], [0.9, 0.7, decayed], rtol=1e-5)
    assert out["labels"].tolist() == [[0, 1, 1], [1, -1, -1]]
    np.testing.assert_allclose(out["boxes"][1, 0], BOXES[2])
    np.testing.assert_array_equal(out["boxes"][1, 1:], -1.0)
    np.testing.assert_array_equal(out["confidences"][1, 1:], 0.0)


@pytest.mark.parametrize(
    "mode", [{"use_class_agnostic_nms": True}, {"soft_nms_sigma": 0.3, "iou_threshold": 1.0}]
)
def test_other_modes_run_batched_under_tf_function(mode):
    layer = MultiClassNonMaxSuppression(max_detections=5, max_detections_per_class=3, **mode)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None, 2])]
    )
    def run(boxes, scores):
        return layer(boxes, scores)

    scores = tf.constant([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.05]]] * 2)
    out = run(tf.constant([BOXES, BOXES]), scores)
    assert out["boxes"].shape == (2, 5, 4) and out["labels"].shape == (2, 5)
    eager = layer(tf.constant([BOXES, BOXES]), scores)
    for key in eager:
        np.testing.assert_allclose(out[key], eager[key])


def test_convert_scores_applies_the_score_converter_to_scaled_logits():
    logits = tf.constant([[[2.0, -1.0, 0.5]]])
    identity = MultiClassNonMaxSuppression().convert_scores(logits)
    np.testing.assert_allclose(identity, logits)
    sigmoid = MultiClassNonMaxSuppression(score_converter="sigmoid", logit_scale=2.0)
    np.testing.assert_allclose(sigmoid.convert_scores(logits), tf.sigmoid(logits / 2.0))
    softmax = MultiClassNonMaxSuppression(score_converter="softmax", logit_scale=0.5)
    np.testing.assert_allclose(
        softmax.convert_scores(logits), tf.nn.softmax(logits / 0.5), rtol=1e-6
    )


def test_new_arguments_round_trip_and_bad_ones_are_refused():
    layer = MultiClassNonMaxSuppression(
        score_threshold=0.1, use_class_agnostic_nms=True, soft_nms_sigma=0.4,
        score_converter="softmax", logit_scale=3.0,
    )
    config = json.loads(json.dumps(layer.get_config()))
    restored = MultiClassNonMaxSuppression.from_config(config)
    assert restored.get_config() == layer.get_config()
    assert (restored.use_class_agnostic_nms, restored.soft_nms_sigma) == (True, 0.4)
    assert (restored.score_converter, restored.logit_scale) == ("softmax", 3.0)
    with pytest.raises(ValueError, match="max_classes_per_detection must be 1"):
        MultiClassNonMaxSuppression(use_class_agnostic_nms=True, max_classes_per_detection=2)
    with pytest.raises(ValueError, match="soft_nms_sigma"):
        MultiClassNonMaxSuppression(soft_nms_sigma=-1.0)
    with pytest.raises(ValueError, match="score_converter"):
        MultiClassNonMaxSuppression(score_converter="tanh")


def test_calibration_after_the_score_converter():
    logits = tf.constant([[[-3.0, 0.0, 1.0, 4.0]]])
    scores = tf.sigmoid(logits)
    sigmoid = MultiClassNonMaxSuppression(
        score_converter="sigmoid", calibration={"sigmoid": {"a": -2.0, "b": 1.0}}
    )
    np.testing.assert_allclose(
        sigmoid.convert_scores(logits), 1.0 / (1.0 + np.exp(-2.0 * scores + 1.0)), rtol=1e-6
    )
    points = {"x": [0.1, 0.5, 0.9], "y": [0.0, 0.8, 1.0]}
    table = MultiClassNonMaxSuppression(
        score_converter="sigmoid", calibration={"function_approximation": points}
    )
    expected = np.interp(scores.numpy(), points["x"], points["y"])  # constant beyond the ends
    np.testing.assert_allclose(table.convert_scores(logits), expected, rtol=1e-6)
    restored = MultiClassNonMaxSuppression.from_config(json.loads(json.dumps(table.get_config())))
    np.testing.assert_allclose(restored.convert_scores(logits), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="x ascending"):
        MultiClassNonMaxSuppression(
            calibration={"function_approximation": {"x": [0.5, 0.1], "y": [0.0, 1.0]}}
        )


@pytest.mark.parametrize("mode", [{}, {"soft_nms_sigma": 0.5}, {"use_class_agnostic_nms": True}])
def test_max_detections_of_one_call(mode):
    scores = [[[0.9, 0.1], [0.8, 0.7], [0.6, 0.5]]]
    layer = MultiClassNonMaxSuppression(max_detections=1, **mode)
    wider = layer(tf.constant([BOXES]), tf.constant(scores), max_detections=4)
    assert wider["boxes"].shape == (1, 4, 4)
    assert int(wider["num_detections"][0]) > 1
    assert layer(tf.constant([BOXES]), tf.constant(scores))["boxes"].shape == (1, 1, 4)


def test_clip_and_prune_drops_boxes_clipped_to_nothing_and_keeps_the_best():
    detections = {
        "boxes": tf.constant([[[0.2, 1.1, 0.5, 1.4], [0.5, 0.9, 1.2, 1.3], [0.1, 0.1, 0.3, 0.3],
                               [-1.0, -1.0, -1.0, -1.0]]]),
        "labels": tf.constant([[0, 1, 0, -1]]),
        "confidences": tf.constant([[0.9, 0.8, 0.7, 0.0]]),
        "num_detections": tf.constant([3]),
    }
    pruned = {k: v.numpy() for k, v in clip_and_prune(detections, 3).items()}
    # Box 0 lies right of the image: clipped to nothing, dropped; box 1 is clipped.
    assert pruned["num_detections"].tolist() == [2]
    np.testing.assert_allclose(
        pruned["boxes"][0], [[0.5, 0.9, 1.0, 1.0], [0.1, 0.1, 0.3, 0.3], [-1, -1, -1, -1]]
    )
    assert pruned["labels"][0].tolist() == [1, 0, -1]
    np.testing.assert_allclose(pruned["confidences"][0], [0.8, 0.7, 0.0])
    # A window clips image b to [0, h_b] x [0, w_b]: box 1 now ends at 0.6 and 0.95.
    windowed = clip_and_prune(detections, 2, window=tf.constant([[0.6, 0.95]]))
    np.testing.assert_allclose(windowed["boxes"][0, 0], [0.5, 0.9, 0.6, 0.95])
