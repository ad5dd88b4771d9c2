"""CenterNet post-processing: heatmap peaks, boxes at the peaks, and keypoints refined by
snapping the keypoints regressed from each object's center to nearby heatmap candidates.

Batched versions of the TF OD API functions of `meta_architectures/center_net_meta_arch.py`
(`top_k_feature_map_locations`, `prediction_tensors_to_boxes`,
`prediction_tensors_to_keypoint_candidates`, `regressed_keypoints_at_object_centers`,
`refine_keypoints`). Coordinates are absolute in output-map cells.
"""

import tensorflow as tf

from kdet.models.center_net.center_net_targets import gather_at
from kdet.models.center_net.center_net_targets import gaussian_sigma

# A value within this of its neighbourhood's max-pool is a peak.
PEAK_EPSILON = 1e-6
# The distance given to padding candidates, so that they are never the nearest.
_FAR = 1e5
#: How `refine_keypoints` picks a candidate per regressed keypoint.
CANDIDATE_RANKING_MODES = (
    "min_distance",
    "score_distance_ratio",
    "score_scaled_distance_ratio",
    "gaussian_weighted",
)


def top_k_peaks(heatmap, max_pool_kernel_size, k, per_channel=False):
    """The `k` highest local maxima of a heatmap (max-pool non-maximum suppression).

    Args:
        heatmap: float `[B, H, W, C]` scores.
        max_pool_kernel_size: int; a cell is kept if it equals the max of its
            `size x size` neighbourhood in its channel. 1 or None: every cell.
        k: int.
        per_channel: bool. True: the top `k` of each channel; False: of the whole map.

    Returns:
        `(scores, y, x, channels)`: float32 and int32 `[B, k]` (`[B, C, k]` per channel), best
        first; when the map has fewer than `k` cells, padded with score 0 at cell 0.
    """
    heatmap = tf.cast(heatmap, tf.float32)
    if max_pool_kernel_size and max_pool_kernel_size > 1:
        pooled = tf.nn.max_pool2d(heatmap, max_pool_kernel_size, strides=1, padding="SAME")
        heatmap = heatmap * tf.cast(tf.abs(heatmap - pooled) < PEAK_EPSILON, tf.float32)
    shape = tf.shape(heatmap)
    width, num_channels = shape[2], shape[3]
    if per_channel:
        flat = tf.reshape(tf.transpose(heatmap, [0, 3, 1, 2]), [shape[0], num_channels, -1])
    else:
        flat = tf.reshape(heatmap, [shape[0], -1])
    safe_k = tf.minimum(k, tf.shape(flat)[-1])
    scores, indices = tf.math.top_k(flat, k=safe_k)
    padding = [[0, 0]] * (flat.shape.rank - 1) + [[0, k - safe_k]]
    scores, indices = tf.pad(scores, padding), tf.pad(indices, padding)
    if per_channel:
        channels = tf.broadcast_to(tf.range(num_channels)[None, :, None], tf.shape(indices))
        return scores, indices // width, indices % width, channels
    cells = indices // num_channels
    return scores, cells // width, cells % width, indices % num_channels


def boxes_at_peaks(y, x, sizes, offsets, out_height, out_width):
    """Boxes at object centers: cell + offset ± size / 2, clipped to the map.

    Args:
        y, x: int `[B, D]` peak cells.
        sizes: float `[B, H, W, 2]` predicted `(height, width)`.
        offsets: float `[B, H, W, 2]` predicted center offsets.
        out_height, out_width: int scalars.

    Returns:
        float32 `[B, D, 4]` absolute `yxyx` in output cells.
    """
    cells = tf.stack([y, x], axis=-1)
    size = tf.maximum(gather_at(sizes, cells), 0.0)
    center = tf.cast(cells, tf.float32) + gather_at(offsets, cells)
    limits = tf.cast(tf.stack([out_height, out_width, out_height, out_width]), tf.float32)
    boxes = tf.concat([center - size / 2.0, center + size / 2.0], axis=-1)
    return tf.clip_by_value(boxes, 0.0, limits)


def regressed_keypoints(regressions, y, x, num_keypoints):
    """Keypoints regressed from the object centers: cell + regression vector.

    Args:
        regressions: float `[B, H, W, 2 * K]` `(y0, x0, y1, x1, …)`.
        y, x: int `[B, D]` object center cells.
        num_keypoints: int K.

    Returns:
        float32 `[B, D, K, 2]` absolute `(y, x)`.
    """
    cells = tf.stack([y, x], axis=-1)
    vectors = gather_at(regressions, cells)
    vectors = tf.reshape(vectors, tf.concat([tf.shape(vectors)[:2], [num_keypoints, 2]], 0))
    return tf.cast(cells, tf.float32)[:, :, None, :] + vectors


def keypoint_candidates(heatmap, offsets, score_threshold, max_pool_kernel_size,
                        max_candidates):
    """Keypoint candidates: the top peaks of each keypoint heatmap, moved by their offsets.

    Args:
        heatmap: float `[B, H, W, K]` keypoint probabilities.
        offsets: float `[B, H, W, 2]` (shared) or `[B, H, W, 2 * K]` (per keypoint).
        score_threshold: float; candidates scoring below it are not counted.
        max_pool_kernel_size: int.
        max_candidates: int M.

    Returns:
        `(candidates, scores, num_candidates)`: float32 `[B, M, K, 2]` absolute `(y, x)`,
        float32 `[B, M, K]`, int32 `[B, K]` (the candidates scoring ≥ `score_threshold`; they
        come first).
    """
    num_keypoints = heatmap.shape[-1]
    scores, y, x, types = top_k_peaks(heatmap, max_pool_kernel_size, max_candidates, True)
    cells = tf.stack([y, x], axis=-1)  # [B, K, M, 2]
    if offsets.shape[-1] == 2:
        cell_offsets = gather_at(offsets, cells)
    else:
        shape = tf.shape(offsets)
        per_keypoint = tf.reshape(offsets, tf.concat([shape[:3], [num_keypoints, 2]], 0))
        cell_offsets = gather_at(per_keypoint, tf.concat([cells, types[..., None]], axis=-1))
    candidates = tf.cast(cells, tf.float32) + cell_offsets
    num_candidates = tf.reduce_sum(tf.cast(scores >= score_threshold, tf.int32), axis=-1)
    return (
        tf.transpose(candidates, [0, 2, 1, 3]),
        tf.transpose(scores, [0, 2, 1]),
        num_candidates,
    )


def scale_boxes(boxes, factor):
    """`yxyx` boxes `[..., 4]` scaled by `factor` about their centers."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    y_center, x_center = (ymin + ymax) / 2.0, (xmin + xmax) / 2.0
    half_height, half_width = factor * (ymax - ymin) / 2.0, factor * (xmax - xmin) / 2.0
    return tf.stack(
        [y_center - half_height, x_center - half_width, y_center + half_height,
         x_center + half_width],
        axis=-1,
    )


def refine_keypoints(regressed, candidates, candidate_scores, num_candidates, boxes,
                     unmatched_keypoint_score=0.1, box_scale=1.2, candidate_search_scale=0.3,
                     candidate_ranking_mode="min_distance", score_distance_offset=1.0,
                     score_threshold=0.1, score_distance_multiplier=0.1, std_devs=None):
    """Snaps each regressed keypoint to a candidate of its type, where one is near enough.

    For every object and keypoint type, the candidate is ranked by `candidate_ranking_mode`:
    `"min_distance"` (the nearest), `"score_distance_ratio"` (score / (distance +
    score_distance_offset)), `"score_scaled_distance_ratio"` (score / (distance + max box side
    × score_distance_multiplier)), `"gaussian_weighted"` (score × a Gaussian of the distance
    with the keypoint's box-scaled `std_devs`; its value becomes the keypoint score). The
    regressed keypoint is kept, with score `unmatched_keypoint_score`, when the chosen
    candidate lies outside the object's box scaled by `box_scale`, scores below
    `score_threshold`, or the nearest candidate is farther than `candidate_search_scale` × the
    scaled box's larger side. A candidate may serve several objects.

    Args:
        regressed: float `[B, D, K, 2]` keypoints regressed from the D object centers.
        candidates: float `[B, M, K, 2]`; candidate_scores: float `[B, M, K]`;
        num_candidates: int `[B, K]` (see `keypoint_candidates`).
        boxes: float `[B, D, 4]` the objects' boxes, `yxyx`, all in output cells.
        std_devs: K floats, for `"gaussian_weighted"`.

    Returns:
        `(keypoints, scores)`: float32 `[B, D, K, 2]` and `[B, D, K]`.
    """
    max_candidates = tf.shape(candidates)[1]
    padding = tf.range(max_candidates)[None, :, None] >= num_candidates[:, None, :]  # [B, M, K]
    difference = regressed[:, :, None] - candidates[:, None]  # [B, D, M, K, 2]
    distances = tf.sqrt(tf.reduce_sum(difference * difference, axis=-1))  # [B, D, M, K]
    distances = tf.where(padding[:, None], _FAR, distances)
    min_distances = tf.reduce_min(distances, axis=2)
    scores = candidate_scores[:, None]  # [B, 1, M, K]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    box_side = tf.maximum(ymax - ymin, xmax - xmin)  # [B, D]
    if candidate_ranking_mode == "min_distance":
        chosen = tf.argmin(distances, axis=2, output_type=tf.int32)
    elif candidate_ranking_mode == "score_distance_ratio":
        chosen = tf.argmax(scores / (distances + score_distance_offset), axis=2,
                           output_type=tf.int32)
    elif candidate_ranking_mode == "score_scaled_distance_ratio":
        offset = (box_side * score_distance_multiplier)[:, :, None, None]
        chosen = tf.argmax(scores / (distances + offset), axis=2, output_type=tf.int32)
    elif candidate_ranking_mode == "gaussian_weighted":
        sigma = gaussian_sigma(ymax - ymin, xmax - xmin, 0.7)[..., None] * tf.constant(
            std_devs, tf.float32
        )  # [B, D, K]
        ranking = scores * tf.exp(-distances * distances / (2.0 * sigma * sigma)[:, :, None])
        chosen = tf.argmax(ranking, axis=2, output_type=tf.int32)
    else:
        raise ValueError(
            f"candidate_ranking_mode must be one of {CANDIDATE_RANKING_MODES}; got "
            f"{candidate_ranking_mode!r}"
        )
    # chosen: [B, D, K] candidate index per object and keypoint type.
    chosen_coordinates = tf.gather(
        tf.transpose(candidates, [0, 2, 1, 3]),  # [B, K, M, 2]
        tf.transpose(chosen, [0, 2, 1]),  # [B, K, D]
        batch_dims=2,
    )  # [B, K, D, 2]
    chosen_coordinates = tf.transpose(chosen_coordinates, [0, 2, 1, 3])
    if candidate_ranking_mode == "gaussian_weighted":
        chosen_scores = tf.reduce_max(ranking, axis=2)
    else:
        chosen_scores = tf.transpose(
            tf.gather(tf.transpose(candidate_scores, [0, 2, 1]), tf.transpose(chosen, [0, 2, 1]),
                      batch_dims=2),
            [0, 2, 1],
        )
    window = scale_boxes(boxes, box_scale)  # [B, D, 4]
    search_radius = candidate_search_scale * tf.maximum(
        window[..., 2] - window[..., 0], window[..., 3] - window[..., 1]
    )
    window = window[:, :, None, :]
    y, x = chosen_coordinates[..., 0], chosen_coordinates[..., 1]
    keep_regressed = (
        (y < window[..., 0]) | (y > window[..., 2]) | (x < window[..., 1]) | (x > window[..., 3])
        | (chosen_scores < score_threshold)
        | (min_distances > search_radius[..., None])
    )
    keypoints = tf.where(keep_regressed[..., None], regressed, chosen_coordinates)
    keypoint_scores = tf.where(keep_regressed, unmatched_keypoint_score, chosen_scores)
    return keypoints, keypoint_scores
