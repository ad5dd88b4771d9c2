"""CenterNet targets, the penalty-reduced focal loss and peak extraction on hand-computed values."""

import math

import numpy as np
import tensorflow as tf

from kdet.losses import PenaltyReducedLogisticFocalLoss
from kdet.models.center_net import center_net_postprocessing as post
from kdet.models.center_net import center_net_targets as targets


def test_focal_loss_values():
    loss = PenaltyReducedLogisticFocalLoss()
    logits = tf.zeros([1, 3, 1])  # p = 0.5
    heatmap = tf.constant([[[1.0], [0.5], [0.0]]])
    values = loss(logits, heatmap, tf.ones([1, 3])).numpy()[0]
    log_half = math.log(0.5)
    expected = [-(0.5**2) * log_half, -(0.5**4) * 0.25 * log_half, -0.25 * log_half]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    # Per-channel weights of [batch, pixels, channels] weigh each channel.
    weighted = loss(tf.zeros([1, 1, 2]), tf.constant([[[1.0, 0.0]]]), tf.constant([[[0.0, 2.0]]]))
    np.testing.assert_allclose(weighted.numpy(), [[-2 * 0.25 * log_half]], rtol=1e-5)


def test_gaussian_radius_and_sigma():
    # A 10x10 box at IoU 0.7: the three roots; the smallest is the box-inside case.
    height = width = tf.constant([10.0])
    shifted = (20 + math.sqrt(400 - 4 * 100 * 0.3 / 1.7)) / 2
    inside = (40 + math.sqrt(1600 - 16 * 0.3 * 100)) / 2
    around = (-2 * 0.7 * 20 + math.sqrt((2 * 0.7 * 20) ** 2 + 16 * 0.7 * 0.3 * 100)) / 2
    radius = targets.max_distance_for_overlap(height, width, 0.7).numpy()[0]
    assert math.isclose(radius, min(shifted, inside, around), rel_tol=1e-5)
    sigma = targets.gaussian_sigma(height, width, 0.7).numpy()[0]
    assert math.isclose(sigma, (2 * math.floor(radius) + 1) / 6, rel_tol=1e-6)


def test_center_heatmap_peaks_at_the_floored_center_of_its_class():
    # Box centered at (5.5, 3.25) of class 2, a padding row (label -1).
    boxes = tf.constant([[[3.5, 1.25, 7.5, 5.25], [-1.0, -1.0, -1.0, -1.0]]])
    heatmap = targets.center_heatmap_targets(boxes, tf.constant([[2, -1]]), 3, 8, 8, 0.7)
    assert heatmap.shape == (1, 8, 8, 3)
    heatmap = heatmap.numpy()[0]
    assert heatmap[5, 3, 1] == 1.0 and heatmap[..., 0].max() == 0 and heatmap[..., 2].max() == 0
    sigma = targets.gaussian_sigma(tf.constant(4.0), tf.constant(4.0), 0.7).numpy()
    np.testing.assert_allclose(heatmap[5, 4, 1], math.exp(-1 / (2 * sigma**2)), rtol=1e-5)
    np.testing.assert_allclose(heatmap[6, 4, 1], math.exp(-2 / (2 * sigma**2)), rtol=1e-5)


def test_box_size_and_offset_targets():
    boxes = tf.constant([[[3.5, 1.25, 7.5, 5.25]]])
    indices, sizes, offsets = targets.box_size_and_offset_targets(boxes, 8, 8)
    np.testing.assert_array_equal(indices, [[[5, 3]]])
    np.testing.assert_allclose(sizes, [[[4.0, 4.0]]])
    np.testing.assert_allclose(offsets, [[[0.5, 0.25]]])


def test_keypoint_offsets_at_the_cells_within_the_radius():
    keypoints = tf.constant([[[[0.5, 2.75]]]])  # one object, one keypoint
    indices, offsets, weights = targets.keypoint_offset_targets(
        keypoints, tf.ones([1, 1, 1]), 1, 8, 8
    )
    # Cells (dy, dx) in row-major order: (-1, 0) is outside the map (cell 0, weight 0).
    np.testing.assert_array_equal(
        indices[0, 0, 0], [[0, 0, 0], [0, 1, 0], [0, 2, 0], [0, 3, 0], [1, 2, 0]]
    )
    np.testing.assert_allclose(weights[0, 0, 0], [0, 1, 1, 1, 1])
    np.testing.assert_allclose(offsets[0, 0, 0, 1:], [[0.5, 1.75], [0.5, 0.75], [0.5, -0.25],
                                                      [-0.5, 0.75]])


def test_keypoint_regression_from_the_object_center():
    boxes = tf.constant([[[2.0, 2.0, 6.0, 4.0]]])  # center (4, 3)
    keypoints = tf.constant([[[[2.5, 2.5], [5.0, 3.5]]]])
    indices, regressions, weights = targets.keypoint_regression_targets(
        keypoints, tf.constant([[[1.0, 0.0]]]), boxes, 0, 8, 8
    )
    np.testing.assert_array_equal(indices[0, 0, :, 0], [[4, 3, 0], [4, 3, 1]])
    np.testing.assert_allclose(regressions[0, 0, :, 0], [[-1.5, -0.5], [1.0, 0.5]])
    np.testing.assert_allclose(weights[0, 0, :, 0], [1.0, 0.0])


def test_unlabelled_keypoints_black_out_their_box():
    boxes = tf.constant([[[0.0, 0.0, 2.0, 2.0], [4.0, 4.0, 6.0, 8.0]]])
    keypoints = tf.constant([[[[1.0, 1.0]], [[5.0, 5.0]]]])
    heatmap, valid = targets.keypoint_heatmap_targets(
        keypoints, tf.constant([[[1.0], [0.0]]]), boxes, tf.constant([[True, True]]), [1.0], 8, 8
    )
    assert heatmap.numpy()[0, 1, 1, 0] == 1.0 and heatmap.numpy()[0, 5, 5, 0] < 1.0
    expected = np.ones([8, 8])
    expected[4:6, 4:8] = 0.0
    np.testing.assert_array_equal(valid.numpy()[0, ..., 0], expected)


def test_top_k_peaks_suppresses_non_maxima():
    heatmap = np.zeros([1, 4, 4, 2], np.float32)
    heatmap[0, 1, 1, 0] = 0.9
    heatmap[0, 1, 2, 0] = 0.8  # next to a higher value: not a peak
    heatmap[0, 3, 3, 1] = 0.7
    scores, y, x, channels = post.top_k_peaks(heatmap, 3, 3)
    np.testing.assert_allclose(scores, [[0.9, 0.7, 0.0]])
    np.testing.assert_array_equal(np.stack([y, x, channels])[:, 0, :2], [[1, 3], [1, 3], [0, 1]])
    # Fewer cells than k: padded with zeros.
    scores, _, _, _ = post.top_k_peaks(heatmap[:, :1, :1], 1, 5, per_channel=True)
    assert scores.shape == (1, 2, 5)


def test_refine_keypoints_snaps_to_a_near_candidate_inside_the_box():
    regressed = tf.constant([[[[2.0, 2.0]], [[10.0, 10.0]]]])  # 2 objects, 1 keypoint
    candidates = tf.constant([[[[3.3, 2.0]], [[9.0, 14.0]]]])  # 2 candidates
    scores = tf.constant([[[0.8], [0.9]]])
    boxes = tf.constant([[[0.0, 0.0, 4.0, 4.0], [8.0, 8.0, 12.0, 12.0]]])
    keypoints, keypoint_scores = post.refine_keypoints(
        regressed, candidates, scores, tf.constant([[2]]), boxes
    )
    # Object 0 snaps: distance 1.3 ≤ 0.3 x the scaled box's side 1.2 x 4 (the TF OD API's
    # search radius; the unscaled box's would be 1.2). Object 1's nearest candidate is outside its
    # box scaled by 1.2 (x 14 > 12.4): it keeps its regressed keypoint, scored 0.1.
    np.testing.assert_allclose(keypoints, [[[[3.3, 2.0]], [[10.0, 10.0]]]])
    np.testing.assert_allclose(keypoint_scores, [[[0.8], [0.1]]])
