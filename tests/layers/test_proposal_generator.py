import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.boxes import FasterRcnnBoxCoder
from kdet.boxes import pairwise_iou
from kdet.layers import GridAnchorGenerator
from kdet.layers import ProposalGenerator
from kdet.models.faster_rcnn import RPNHead

# rel_yxyx anchors: 0 and 1 overlap with IoU 0.2304 / 0.2696 = 0.85; 2 and 3 are apart.
ANCHORS = [
    [0.0, 0.0, 0.5, 0.5],
    [0.02, 0.02, 0.52, 0.52],
    [0.5, 0.5, 1.0, 1.0],
    [0.0, 0.5, 0.5, 1.0],
]


def _logits(probabilities):
    """Objectness logits `[background, object]` whose softmax object column is `p`."""
    p = np.asarray(probabilities, np.float32)
    return np.stack([np.zeros_like(p), np.log(p / (1.0 - p))], axis=-1)


def _generate(box_encodings, probabilities, anchors=ANCHORS, window=None, **kwargs):
    generator = ProposalGenerator(**kwargs)
    outputs = generator(
        tf.constant(box_encodings, tf.float32),
        tf.constant(_logits(probabilities)),
        tf.constant(anchors, tf.float32),
        window=window,
    )
    return {key: value.numpy() for key, value in outputs.items()}


def test_nms_suppresses_overlapping_boxes_and_pads():
    out = _generate(np.zeros([1, 4, 4]), [[0.7, 0.9, 0.6, 0.2]], max_proposals=5)
    # Anchor 0 (0.7) overlaps anchor 1 (0.9) above 0.7 IoU, so it is suppressed.
    assert out["num_proposals"].tolist() == [3]
    assert out["num_proposals"].dtype == np.int32
    np.testing.assert_allclose(
        out["proposals"][0, :3], [ANCHORS[1], ANCHORS[2], ANCHORS[3]], atol=1e-6
    )
    np.testing.assert_array_equal(out["proposals"][0, 3:], -1.0)
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.6, 0.2, 0.0, 0.0], atol=1e-6)
    kept = _generate(np.zeros([1, 4, 4]), [[0.7, 0.9, 0.6, 0.2]], nms_iou_threshold=0.9)
    assert kept["num_proposals"].tolist() == [4]


def test_boxes_are_decoded_and_clipped_to_the_window():
    encodings = np.zeros([1, 4, 4], np.float32)
    encodings[0, 0] = [5.0, 0.0, 0.0, 0.0]  # anchor 0 moved down by half its height
    encodings[0, 3] = [0.0, 2.0, 0.0, 0.0]  # anchor 3 moved right by a fifth of its width
    probabilities = [[0.9, 0.1, 0.8, 0.7]]
    whole = _generate(encodings, probabilities, max_proposals=4)
    np.testing.assert_allclose(
        whole["proposals"][0, :3],
        [[0.25, 0.0, 0.75, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.6, 0.5, 1.0]],
        atol=1e-6,
    )
    # Content fills the top half and 3/4 of the width: anchor 2 ends up with zero area and
    # is dropped, the others are clipped.
    windowed = _generate(encodings, probabilities, window=(0.5, 0.75), max_proposals=4)
    assert windowed["num_proposals"].tolist() == [3]
    np.testing.assert_allclose(
        windowed["proposals"][0, :3],
        [[0.25, 0.0, 0.5, 0.5], [0.0, 0.6, 0.5, 0.75], [0.02, 0.02, 0.5, 0.52]],
        atol=1e-6,
    )
    np.testing.assert_allclose(windowed["scores"][0, :3], [0.9, 0.7, 0.1], atol=1e-6)


def test_max_proposals_and_an_image_without_proposals():
    encodings = np.zeros([2, 4, 4], np.float32)
    encodings[1, :, 2:] = -1000.0  # every box of image 1 collapses to zero area
    out = _generate(encodings, [[0.2, 0.3, 0.6, 0.9], [0.9, 0.9, 0.9, 0.9]], max_proposals=2)
    assert out["proposals"].shape == (2, 2, 4) and out["scores"].shape == (2, 2)
    assert out["num_proposals"].tolist() == [2, 0]
    np.testing.assert_allclose(out["proposals"][0], [ANCHORS[3], ANCHORS[2]], atol=1e-6)
    np.testing.assert_array_equal(out["proposals"][1], -1.0)
    np.testing.assert_array_equal(out["scores"][1], 0.0)


def test_score_threshold():
    out = _generate(np.zeros([1, 4, 4]), [[0.7, 0.9, 0.6, 0.2]], score_threshold=0.5)
    assert out["num_proposals"].tolist() == [2]
    np.testing.assert_allclose(out["scores"][0, :2], [0.9, 0.6], atol=1e-6)


def test_pre_nms_top_k_keeps_only_the_best_boxes_for_nms():
    probabilities = [[0.7, 0.9, 0.6, 0.2]]
    full = _generate(np.zeros([1, 4, 4]), probabilities, max_proposals=2)
    np.testing.assert_allclose(full["proposals"][0], [ANCHORS[1], ANCHORS[2]], atol=1e-6)
    # The two best boxes overlap: NMS keeps one, and the third box never was a candidate.
    top_two = _generate(np.zeros([1, 4, 4]), probabilities, max_proposals=2, pre_nms_top_k=2)
    assert top_two["num_proposals"].tolist() == [1]
    np.testing.assert_allclose(top_two["proposals"][0, 0], ANCHORS[1], atol=1e-6)
    larger = _generate(np.zeros([1, 4, 4]), probabilities, max_proposals=2, pre_nms_top_k=50)
    np.testing.assert_allclose(larger["proposals"], full["proposals"])
    with pytest.raises(ValueError, match="pre_nms_top_k"):
        ProposalGenerator(max_proposals=10, pre_nms_top_k=5)


@pytest.mark.parametrize("clip_after_non_max_suppression", [True, False])
def test_proposals_from_a_random_rpn_are_valid(clip_after_non_max_suppression):
    # Seeded: whether clipping after NMS makes two proposals overlap past the NMS threshold
    # depends on the head's random weights.
    keras.utils.set_random_seed(0)
    anchor_generator = GridAnchorGenerator(base_anchor_size=(32, 32), anchor_stride=(8, 8))
    (anchors,) = anchor_generator.generate([(8, 8)], image_height=64, image_width=64)
    head = RPNHead(anchor_generator.num_anchors_per_location(), depth=8)
    features = tf.constant(np.random.default_rng(0).normal(size=[2, 8, 8, 4]), tf.float32)
    box_encodings, objectness_logits = head(features)
    generator = ProposalGenerator(
        max_proposals=50,
        pre_nms_top_k=200,
        clip_after_non_max_suppression=clip_after_non_max_suppression,
    )
    out = generator(box_encodings, objectness_logits, anchors, tf.constant([0.75, 1.0]))
    for image in range(2):
        count = int(out["num_proposals"][image])
        assert 0 < count <= 50
        boxes = out["proposals"][image, :count].numpy()
        scores = out["scores"][image, :count].numpy()
        assert np.all(boxes >= 0.0) and np.all(boxes[:, [0, 2]] <= 0.75)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all(np.diff(scores) <= 0.0) and np.all(scores > 0.0)
        iou = pairwise_iou(boxes, boxes).numpy() - np.eye(count)
        # NMS bounds the overlaps of the boxes it saw: clipped ones, or (the TF OD API's
        # order) the decoded ones, which clipping can make overlap more.
        assert (iou.max() <= 0.7 + 1e-6) != clip_after_non_max_suppression


def test_nms_runs_on_the_decoded_boxes_then_clips_them():
    # Anchors 0 and 1 stick out of the window (height 0.5): as decoded their IoU is 0.6, so
    # NMS at 0.7 keeps both, and clipping then makes them the same box (the TF OD API order).
    anchors = [[0.3, 0.0, 0.9, 0.4], [0.3, 0.0, 1.3, 0.4], [0.6, 0.6, 0.9, 0.9]]
    probabilities = [[0.9, 0.8, 0.7]]
    out = _generate(np.zeros([1, 3, 4]), probabilities, anchors, window=(0.5, 1.0))
    # Anchor 2 lies outside the window: clipped to nothing, it is dropped after NMS.
    assert out["num_proposals"].tolist() == [2]
    np.testing.assert_allclose(out["proposals"][0, :2], [[0.3, 0.0, 0.5, 0.4]] * 2, atol=1e-6)
    np.testing.assert_allclose(out["scores"][0, :2], [0.9, 0.8], atol=1e-6)
    # Clipped first (generators saved before), the two are one box and NMS keeps one.
    before = _generate(
        np.zeros([1, 3, 4]),
        probabilities,
        anchors,
        window=(0.5, 1.0),
        clip_after_non_max_suppression=False,
    )
    assert before["num_proposals"].tolist() == [1]


def test_no_gradient_and_tf_function_with_dynamic_shapes():
    generator = ProposalGenerator(max_proposals=3)
    encodings = tf.zeros([1, 4, 4])
    logits = tf.constant(_logits([[0.7, 0.9, 0.6, 0.2]]))
    with tf.GradientTape() as tape:
        tape.watch([encodings, logits])
        outputs = generator(encodings, logits, tf.constant(ANCHORS))
    assert tape.gradient(outputs["scores"], [encodings, logits]) == [None, None]
    traced = tf.function(
        generator,
        input_signature=[
            tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([None, None, 2], tf.float32),
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([2], tf.float32),
        ],
    )(encodings, logits, tf.constant(ANCHORS), tf.constant([1.0, 1.0]))
    for key in outputs:
        np.testing.assert_allclose(traced[key], outputs[key])


def test_mixed_precision_keeps_boxes_in_float32():
    anchors = tf.constant([[0.1234567, 0.2345678, 0.3456789, 0.4567891]])
    generator = ProposalGenerator(max_proposals=1, dtype="mixed_float16")
    logits = tf.constant([[[0.0, 1.0]]], tf.float16)
    out = generator(tf.zeros([1, 1, 4], tf.float16), logits, anchors)
    assert out["proposals"].dtype == tf.float32
    # float16 would round these coordinates by up to 1e-4.
    np.testing.assert_allclose(out["proposals"][0], anchors, atol=1e-7)


def test_config_round_trip():
    generator = ProposalGenerator(
        max_proposals=100,
        nms_iou_threshold=0.6,
        pre_nms_top_k=1000,
        score_threshold=0.05,
        box_coder=FasterRcnnBoxCoder(scale_factors=(5.0, 5.0, 2.0, 2.0)),
    )
    restored = ProposalGenerator.from_config(generator.get_config())
    assert restored.get_config() == generator.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(generator)))
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, ProposalGenerator)
    assert restored.box_coder.scale_factors == (5.0, 5.0, 2.0, 2.0)
    assert restored.pre_nms_top_k == 1000 and restored.max_proposals == 100
