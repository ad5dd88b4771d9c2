import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet import boxes as box_ops

PAD = [-1.0, -1.0, -1.0, -1.0]


def test_is_padding_needs_all_four_coordinates_at_minus_one():
    boxes = [[[0.1, 0.2, 0.3, 0.4], PAD, [-1.0, -1.0, -1.0, 0.0]]]
    np.testing.assert_array_equal(box_ops.is_padding(boxes), [[False, True, False]])


def test_convert_format_keeps_padding_rows():
    boxes = [[[10.0, 20.0, 50.0, 80.0], PAD], [PAD, [0.0, 0.0, 4.0, 2.0]]]
    xywh = box_ops.convert_format(boxes, "yxyx", "xywh")
    np.testing.assert_allclose(
        xywh, [[[20.0, 10.0, 60.0, 40.0], PAD], [PAD, [0.0, 0.0, 2.0, 4.0]]]
    )
    # Keras alone would turn the padding row into a real-looking box.
    raw = keras.utils.bounding_boxes.convert_format(
        tf.constant([PAD]), source="yxyx", target="xywh"
    )
    assert not np.allclose(raw, [PAD])


def test_convert_format_relative_round_trip():
    boxes = tf.constant([[10.0, 20.0, 50.0, 60.0], PAD])
    rel = box_ops.convert_format(boxes, "yxyx", "rel_yxyx", height=100, width=200)
    np.testing.assert_allclose(rel, [[0.1, 0.1, 0.5, 0.3], PAD], rtol=1e-6)
    back = box_ops.convert_format(rel, "rel_yxyx", "yxyx", height=100, width=200)
    np.testing.assert_allclose(back, boxes, rtol=1e-6)


def test_area_of_regular_inverted_and_padding_boxes():
    np.testing.assert_allclose(
        box_ops.area([[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 1.0, 3.0], PAD]), [6.0, 0.0, 0.0]
    )


def test_clip_boxes_pixels_and_normalized_keep_padding():
    np.testing.assert_allclose(
        box_ops.clip_boxes([[-5.0, 10.0, 40.0, 300.0], PAD], height=32, width=64),
        [[0.0, 10.0, 32.0, 64.0], PAD],
    )
    np.testing.assert_allclose(
        box_ops.clip_boxes([[[-0.2, 0.5, 1.5, 0.7], PAD]]), [[[0.0, 0.5, 1.0, 0.7], PAD]]
    )


def test_clip_boxes_rejects_height_without_width():
    with pytest.raises(ValueError, match="both `height` and `width`"):
        box_ops.clip_boxes([[0.0, 0.0, 1.0, 1.0]], height=10)


def test_pairwise_iou_pinned_values():
    boxes1 = [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]]
    boxes2 = [[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]
    np.testing.assert_allclose(
        box_ops.pairwise_iou(boxes1, boxes2),
        [[1.0 / 3.0, 1.0, 0.0], [0.0, 0.25, 0.0]],
        rtol=1e-6,
    )


def test_pairwise_iou_is_exact_for_tiny_normalized_boxes():
    tiny = [[0.5, 0.5, 0.501, 0.501]]
    np.testing.assert_allclose(box_ops.pairwise_iou(tiny, tiny), [[1.0]], rtol=1e-5)


def test_pairwise_iou_padding_pairs_are_minus_one_and_zero_area_is_zero():
    boxes1 = [[0.0, 0.0, 1.0, 1.0], PAD, [0.3, 0.3, 0.3, 0.3]]
    boxes2 = [[0.0, 0.0, 1.0, 1.0], PAD, [0.3, 0.3, 0.3, 0.3]]
    iou = box_ops.pairwise_iou(boxes1, boxes2).numpy()
    assert not np.isnan(iou).any()
    np.testing.assert_allclose(
        iou, [[1.0, -1.0, 0.0], [-1.0, -1.0, -1.0], [0.0, -1.0, 0.0]], rtol=1e-6
    )


def test_pairwise_iou_broadcasts_batch_and_matches_keras_compute_iou():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0.0, 100.0, size=(2, 5, 2, 2))
    boxes1 = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1)
    corners = rng.uniform(0.0, 100.0, size=(7, 2, 2))
    boxes2 = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=-1)
    iou = box_ops.pairwise_iou(boxes1.astype("float32"), boxes2.astype("float32"))
    assert iou.shape == (2, 5, 7)
    expected = keras.utils.bounding_boxes.compute_iou(
        boxes1.astype("float32"), boxes2.astype("float32"), "yxyx"
    )
    np.testing.assert_allclose(iou, expected, atol=1e-5)


def test_pairwise_iou_static_shape_under_tf_function():
    fn = tf.function(box_ops.pairwise_iou)
    concrete = fn.get_concrete_function(
        tf.TensorSpec([3, 6, 4], tf.float32), tf.TensorSpec([10, 4], tf.float32)
    )
    assert concrete.structured_outputs.shape == (3, 6, 10)
    np.testing.assert_allclose(
        fn(tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), tf.constant([[0.0, 0.0, 0.5, 1.0], PAD])),
        [[[0.5, -1.0]]],
    )
