import math

import keras
import numpy as np
import tensorflow as tf

from kdet.boxes import FasterRcnnBoxCoder
from kdet.targets import IGNORED
from kdet.targets import UNMATCHED
from kdet.targets import ArgmaxMatcher
from kdet.targets import TargetAssigner

PAD = [-1.0, -1.0, -1.0, -1.0]
ANCHORS = [
    [0.0, 0.0, 0.5, 0.5],
    [0.5, 0.5, 1.0, 1.0],
    [0.0, 0.5, 0.5, 1.0],
    [0.5, 0.0, 1.0, 0.5],
]
GT_BOXES = [
    # IoU 0.8 with anchor 0, 0.9 with anchor 1, then padding.
    [[0.0, 0.0, 0.5, 0.4], [0.5, 0.55, 1.0, 1.0], PAD],
    # IoU 0.6 with anchor 2 (ignored band); a real box whose label was dropped (-1); padding.
    [[0.0, 0.5, 0.5, 0.8], [0.5, 0.0, 1.0, 0.5], PAD],
]
GT_LABELS = [[3, 7, -1], [2, -1, -1]]


def _assigner(force_match_for_each_row=False):
    return TargetAssigner(
        matcher=ArgmaxMatcher(0.7, 0.3, force_match_for_each_row=force_match_for_each_row),
        box_coder=FasterRcnnBoxCoder(),
    )


def test_hand_built_batch():
    targets = _assigner().assign(ANCHORS, GT_BOXES, GT_LABELS)
    np.testing.assert_array_equal(
        targets["match"], [[0, 1, UNMATCHED, UNMATCHED], [UNMATCHED, UNMATCHED, IGNORED, UNMATCHED]]
    )
    np.testing.assert_array_equal(targets["cls_targets"], [[3, 7, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(targets["cls_weights"], [[1, 1, 1, 1], [1, 1, 0, 1]])
    np.testing.assert_array_equal(targets["reg_weights"], [[1, 1, 0, 0], [0, 0, 0, 0]])
    expected_reg = np.zeros([2, 4, 4], "float32")
    expected_reg[0, 0] = [0.0, -1.0, 0.0, 5 * math.log(0.8)]
    expected_reg[0, 1] = [0.0, 0.5, 0.0, 5 * math.log(0.9)]
    np.testing.assert_allclose(targets["reg_targets"], expected_reg, atol=1e-5)
    assert targets["cls_targets"].dtype == tf.int32
    assert targets["match"].dtype == tf.int32


def test_force_match_makes_rpn_objectness_positive():
    targets = _assigner(force_match_for_each_row=True).assign(ANCHORS, GT_BOXES, GT_LABELS)
    objectness = targets["cls_targets"] > 0
    np.testing.assert_array_equal(
        objectness, [[True, True, False, False], [False, False, True, False]]
    )
    np.testing.assert_array_equal(targets["reg_weights"], objectness)


def test_images_without_groundtruth_are_all_background():
    for gt_boxes, gt_labels in [
        (tf.fill([2, 3, 4], -1.0), tf.fill([2, 3], -1)),
        (tf.zeros([2, 0, 4]), tf.zeros([2, 0], tf.int32)),
    ]:
        targets = TargetAssigner().assign(ANCHORS, gt_boxes, gt_labels)
        for value in targets.values():
            assert not np.isnan(value.numpy()).any()
        np.testing.assert_array_equal(targets["match"], np.full([2, 4], UNMATCHED))
        np.testing.assert_array_equal(targets["cls_targets"], np.zeros([2, 4]))
        np.testing.assert_array_equal(targets["cls_weights"], np.ones([2, 4]))
        np.testing.assert_array_equal(targets["reg_weights"], np.zeros([2, 4]))
        np.testing.assert_array_equal(targets["reg_targets"], np.zeros([2, 4, 4]))


def test_per_image_anchors_with_padding_rows_are_ignored():
    anchors = [[ANCHORS[0], PAD], [ANCHORS[1], ANCHORS[2]]]
    gt_boxes = [[ANCHORS[0]], [ANCHORS[1]]]
    targets = TargetAssigner().assign(anchors, gt_boxes, [[1], [5]])
    np.testing.assert_array_equal(targets["match"], [[0, IGNORED], [0, UNMATCHED]])
    np.testing.assert_array_equal(targets["cls_targets"], [[1, 0], [5, 0]])
    np.testing.assert_array_equal(targets["cls_weights"], [[1, 0], [1, 1]])
    np.testing.assert_allclose(targets["reg_targets"], np.zeros([2, 2, 4]), atol=1e-5)


def test_static_output_shapes_under_tf_function():
    assign = tf.function(_assigner(force_match_for_each_row=True).assign)
    concrete = assign.get_concrete_function(
        tf.TensorSpec([4, 4], tf.float32),
        tf.TensorSpec([2, 3, 4], tf.float32),
        tf.TensorSpec([2, 3], tf.int32),
    )
    shapes = {key: tuple(value.shape) for key, value in concrete.structured_outputs.items()}
    assert shapes == {
        "cls_targets": (2, 4),
        "cls_weights": (2, 4),
        "reg_targets": (2, 4, 4),
        "reg_weights": (2, 4),
        "match": (2, 4),
    }
    eager = _assigner(force_match_for_each_row=True).assign(ANCHORS, GT_BOXES, GT_LABELS)
    graph = assign(tf.constant(ANCHORS), tf.constant(GT_BOXES), tf.constant(GT_LABELS))
    for key in eager:
        np.testing.assert_allclose(graph[key], eager[key])


def test_config_round_trip():
    assigner = TargetAssigner(
        matcher=ArgmaxMatcher(0.7, 0.3, force_match_for_each_row=True),
        box_coder=FasterRcnnBoxCoder(scale_factors=None),
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(assigner))
    assert isinstance(restored, TargetAssigner)
    assert isinstance(restored.matcher, ArgmaxMatcher)
    assert restored.matcher.force_match_for_each_row
    assert restored.box_coder.scale_factors is None
    assert restored.get_config() == assigner.get_config()


def test_defaults():
    assigner = TargetAssigner()
    assert assigner.matcher.get_config() == ArgmaxMatcher(matched_threshold=0.5).get_config()
    assert assigner.box_coder.scale_factors == (10.0, 10.0, 5.0, 5.0)
