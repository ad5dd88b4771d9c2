"""CenterNet training targets: Gaussian heatmaps, box size and offset, keypoint offsets and
the regression from object centers to keypoints.

Pure functions on padded batches (no loop over images), in the output frame of the network:
coordinates are absolute in feature-map cells (a relative coordinate times the map's height or
width), as the TF OD API `CenterNet*TargetAssigner`s compute them
(`core/target_assigner.py`, `utils/target_assigner_utils.py`).

Shapes: `B` images, `N` ground-truth rows (padding rows have weight 0), `K` keypoints of a task,
`J` neighbouring cells within `peak_radius` of a peak, `H, W` the output map.
"""

import tensorflow as tf

# The minimum IoU of the Gaussian radius of keypoint heatmaps (a TF OD API constant).
KEYPOINT_MIN_OVERLAP = 0.7
# Keypoint weights below this black out the keypoint's channel in its object's box.
_BLACKOUT_WEIGHT = 1e-3


def to_output_frame(values, out_height, out_width):
    """Relative `(y, x, ...)` coordinates `[..., 2 * n]` → absolute output-map cells."""
    size = tf.cast(tf.stack([out_height, out_width]), tf.float32)
    repeats = values.shape[-1] // 2
    return values * tf.tile(size, [repeats])


def centers_and_sizes(boxes):
    """`yxyx` boxes `[..., 4]` → `(y_center, x_center, height, width)`, each `[...]`."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


def max_distance_for_overlap(height, width, min_iou):
    """How far a box's corners may move while its IoU with the box stays ≥ `min_iou`.

    The CenterNet `gaussian_radius` as the TF OD API computes it (including the original
    repository's formula for the root, `(-b + sqrt(b² - 4ac)) / 2` whatever `a`): the smallest
    of three cases (a shifted box, a box inside, a box around).

    Args:
        height, width: float tensors of the same shape, box sizes.
        min_iou: float.

    Returns:
        float tensor of the shape of `height`.
    """

    def root(a, b, c):
        return (-b + tf.sqrt(b * b - 4.0 * a * c)) / 2.0

    shifted = root(1.0, -(height + width), width * height * ((1.0 - min_iou) / (1.0 + min_iou)))
    inside = root(4.0, -2.0 * (height + width), (1.0 - min_iou) * width * height)
    around = root(4.0 * min_iou, 2.0 * min_iou * (width + height), (min_iou - 1.0) * width * height)
    return tf.minimum(tf.minimum(shifted, around), inside)


def gaussian_sigma(height, width, min_iou):
    """Standard deviation of a box's heatmap Gaussian: `(2 * floor(radius) + 1) / 6`."""
    radius = max_distance_for_overlap(height, width, min_iou)
    return (2.0 * tf.maximum(tf.floor(radius), 0.0) + 1.0) / 6.0


def gaussian_heatmap(points, sigmas, weights, out_height, out_width, channels=None,
                     num_channels=None):
    """Heatmap of Gaussians at the floored points, the maximum over the instances.

    Args:
        points: float `[B, N, P, 2]` absolute `(y, x)` in output cells.
        sigmas: float `[B, N, P]`.
        weights: float `[B, N, P]`, each Gaussian's peak value (0 leaves it out).
        out_height, out_width: int scalars, the map size.
        channels: optional int `[B, N, P]`, the channel of each point (e.g. its class). None:
            point `p` goes to channel `p` (keypoint types).
        num_channels: int, the number of channels (needed with `channels`).

    Returns:
        float32 `[B, out_height, out_width, C]` (C = `num_channels`, or `P`), without gradient.
    """
    ys = tf.range(tf.cast(out_height, tf.float32))
    xs = tf.range(tf.cast(out_width, tf.float32))
    points, sigmas, weights = (
        tf.cast(tensor, tf.float32) for tensor in (points, sigmas, weights)
    )
    if channels is not None:
        heatmap = _channel_max(
            _gaussians(ys, xs, points, sigmas, weights), channels, num_channels
        )
        return tf.stop_gradient(heatmap)

    def add_instance(heatmap, instance):
        # One row of every image at a time: [B, P, H, W] instead of [B, N, P, H, W] at once.
        gaussians = _gaussians(ys, xs, *instance)
        return tf.maximum(heatmap, tf.transpose(gaussians, [0, 2, 3, 1]))

    instances = tuple(
        tf.experimental.numpy.moveaxis(tensor, 1, 0) for tensor in (points, sigmas, weights)
    )
    initial = tf.zeros(
        tf.stack([tf.shape(points)[0], tf.size(ys), tf.size(xs), points.shape[2]]), tf.float32
    )
    return tf.stop_gradient(tf.foldl(add_instance, instances, initializer=initial))


def _gaussians(ys, xs, points, sigmas, weights):
    """`weights * exp(-d² / 2σ²)` over the map, d the distance to each floored point.

    Args:
        ys, xs: float32 `[H]`, `[W]` the cell coordinates.
        points: float32 `[..., 2]`; sigmas, weights: float32 `[...]`.

    Returns:
        float32 `[..., H, W]`.
    """
    dy = ys[:, None] - tf.floor(points[..., 0])[..., None, None]
    dx = xs[None, :] - tf.floor(points[..., 1])[..., None, None]
    variance = 2.0 * sigmas * sigmas
    gaussians = tf.exp(-(dy * dy + dx * dx) / variance[..., None, None])
    return gaussians * weights[..., None, None]


def _channel_max(gaussians, channels, num_channels):
    """The maximum of the Gaussians of each image and channel, 0 where none.

    Args:
        gaussians: float32 `[B, N, P, H, W]`, non-negative.
        channels: int `[B, N, P]` in `[0, num_channels)`.
        num_channels: int C.

    Returns:
        float32 `[B, H, W, C]`.
    """
    shape = tf.shape(gaussians)
    batch, height, width = shape[0], shape[3], shape[4]
    # One segment per image and channel: O(B N P H W), not O(B N P H W C) through a one-hot.
    segments = tf.cast(channels, tf.int32) + num_channels * tf.range(batch)[:, None, None]
    maxima = tf.math.unsorted_segment_max(
        tf.reshape(gaussians, [-1, height * width]),
        tf.reshape(segments, [-1]),
        batch * num_channels,
    )  # [B * C, H * W]; the lowest float where a segment is empty
    maxima = tf.maximum(maxima, 0.0)
    return tf.transpose(tf.reshape(maxima, [batch, num_channels, height, width]), [0, 2, 3, 1])


def center_heatmap_targets(boxes, labels, num_classes, out_height, out_width, min_overlap):
    """The object-center heatmap targets (TF OD API `assign_center_targets_from_boxes`).

    Args:
        boxes: float `[B, N, 4]` absolute `yxyx` in output cells.
        labels: int `[B, N]` label ids 1..num_classes, ≤ 0 on padding rows.
        num_classes: int.
        out_height, out_width: int scalars.
        min_overlap: float, `min_box_overlap_iou`.

    Returns:
        float32 `[B, out_height, out_width, num_classes]`.
    """
    y_center, x_center, height, width = centers_and_sizes(boxes)
    sigma = gaussian_sigma(height, width, min_overlap)
    real = tf.cast(labels > 0, tf.float32)
    return gaussian_heatmap(
        tf.stack([y_center, x_center], axis=-1)[:, :, None, :],
        sigma[..., None],
        real[..., None],
        out_height,
        out_width,
        channels=tf.maximum(labels - 1, 0)[..., None],
        num_channels=num_classes,
    )


def box_size_and_offset_targets(boxes, out_height, out_width):
    """Where each box's size and offset are read, and their targets.

    Args:
        boxes: float `[B, N, 4]` absolute `yxyx` in output cells.
        out_height, out_width: int scalars.

    Returns:
        `(indices, sizes, offsets)`: int32 `[B, N, 2]` the `(y, x)` cell of each box's floored
        center (clipped to the map), float32 `[B, N, 2]` `(height, width)` and float32
        `[B, N, 2]` center minus floored center.
    """
    y_center, x_center, height, width = centers_and_sizes(boxes)
    centers = tf.stack([y_center, x_center], axis=-1)
    return (
        _cell_indices(tf.floor(centers), out_height, out_width),
        tf.stack([height, width], axis=-1),
        centers - tf.floor(centers),
    )


def _cell_indices(cells, out_height, out_width):
    """float `(y, x)` cells `[..., 2]` → int32 indices clipped into the map."""
    limits = tf.stack([out_height, out_width]) - 1
    return tf.clip_by_value(tf.cast(cells, tf.int32), 0, tf.cast(limits, tf.int32))


def radius_offsets(radius):
    """float32 `[J, 2]` integer `(dy, dx)` with `dy² + dx² ≤ radius²`, row-major."""
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy * dy + dx * dx <= radius * radius
    ]
    return tf.constant(offsets, tf.float32)


def neighbor_cells(points, radius, out_height, out_width):
    """The cells within `radius` of each floored point.

    Args:
        points: float `[..., 2]` absolute `(y, x)`.
        radius: int.
        out_height, out_width: int scalars.

    Returns:
        `(cells, valid)`: float32 `[..., J, 2]` (0 where outside the map) and bool `[..., J]`.
    """
    cells = tf.floor(points)[..., None, :] + radius_offsets(radius)
    size = tf.cast(tf.stack([out_height, out_width]), tf.float32)
    valid = tf.reduce_all((cells >= 0.0) & (cells < size), axis=-1)
    return tf.where(valid[..., None], cells, 0.0), valid


def task_keypoints(keypoints, visibilities, labels, class_id, keypoint_indices):
    """A keypoint task's keypoints of the ground truth and their weights.

    Args:
        keypoints: float `[B, N, K_all, 2]` `(y, x)`, any unit.
        visibilities: bool or int `[B, N, K_all]`; 0 / False: not labelled.
        labels: int `[B, N]`, -1 on padding rows.
        class_id: int, the label id whose objects have the task's keypoints.
        keypoint_indices: list of int, the task's columns of `keypoints`.

    Returns:
        `(keypoints, weights)`: float32 `[B, N, K, 2]` (0 where not finite) and float32
        `[B, N, K]`: 1 for a labelled, finite keypoint of an object of `class_id`, else 0.
    """
    keypoints = tf.gather(tf.cast(keypoints, tf.float32), keypoint_indices, axis=2)
    visible = tf.gather(tf.cast(visibilities, tf.bool), keypoint_indices, axis=2)
    finite = tf.reduce_all(tf.math.is_finite(keypoints), axis=-1)
    weights = visible & finite & tf.equal(labels, class_id)[..., None]
    return tf.where(finite[..., None], keypoints, 0.0), tf.cast(weights, tf.float32)


def keypoint_heatmap_targets(keypoints, weights, boxes, real, std_devs, out_height, out_width):
    """Keypoint heatmaps and where their loss counts (TF OD API
    `assign_keypoint_heatmap_targets` with boxes).

    Each keypoint's Gaussian has the standard deviation of its object's box Gaussian (IoU 0.7)
    times the keypoint type's `std_devs`. A keypoint with weight 0 (not labelled, or of an
    object of another class) blacks its channel out inside its object's box.

    Args:
        keypoints: float `[B, N, K, 2]` absolute `(y, x)` in output cells.
        weights: float `[B, N, K]`.
        boxes: float `[B, N, 4]` absolute `yxyx` in output cells.
        real: bool `[B, N]`, the rows that are objects (not padding).
        std_devs: K floats.
        out_height, out_width: int scalars.

    Returns:
        `(heatmap, valid)`: float32 `[B, H, W, K]` each.
    """
    _, _, height, width = centers_and_sizes(boxes)
    box_sigma = gaussian_sigma(height, width, KEYPOINT_MIN_OVERLAP)
    sigmas = box_sigma[..., None] * tf.constant(std_devs, tf.float32)
    heatmap = gaussian_heatmap(keypoints, sigmas, weights, out_height, out_width)
    ys = tf.range(tf.cast(out_height, tf.float32))[None, None, :, None]
    xs = tf.range(tf.cast(out_width, tf.float32))[None, None, None, :]
    ymin, xmin, ymax, xmax = (value[..., None, None] for value in tf.unstack(boxes, axis=-1))
    inside = (ys >= ymin) & (ys < ymax) & (xs >= xmin) & (xs < xmax) & real[..., None, None]
    blackout = tf.cast(weights < _BLACKOUT_WEIGHT, tf.float32)
    blocked = tf.einsum("bnhw,bnk->bhwk", tf.cast(inside, tf.float32), blackout)
    return heatmap, tf.stop_gradient(tf.cast(blocked == 0.0, tf.float32))


def keypoint_offset_targets(keypoints, weights, radius, out_height, out_width):
    """Sub-cell offsets of each keypoint, at the cells within `radius` of it.

    Returns:
        `(indices, offsets, offset_weights)`: int32 `[B, N, K, J, 3]` `(y, x, keypoint type)`,
        float32 `[B, N, K, J, 2]` keypoint minus cell, float32 `[B, N, K, J]`.
    """
    cells, valid = neighbor_cells(keypoints, radius, out_height, out_width)
    offsets = keypoints[..., None, :] - cells
    return (
        _with_keypoint_types(_cell_indices(cells, out_height, out_width)),
        offsets,
        tf.cast(valid, tf.float32) * weights[..., None],
    )


def keypoint_regression_targets(keypoints, weights, boxes, radius, out_height, out_width):
    """Vectors from the cells within `radius` of each object's center to its keypoints.

    Args:
        keypoints: float `[B, N, K, 2]` absolute `(y, x)`.
        weights: float `[B, N, K]`.
        boxes: float `[B, N, 4]` absolute `yxyx`.
        radius, out_height, out_width: as `keypoint_offset_targets`.

    Returns:
        `(indices, regressions, regression_weights)` shaped as `keypoint_offset_targets`.
    """
    y_center, x_center, _, _ = centers_and_sizes(boxes)
    cells, valid = neighbor_cells(
        tf.stack([y_center, x_center], axis=-1), radius, out_height, out_width
    )  # [B, N, J, 2]
    num_keypoints = keypoints.shape[2]
    cells = tf.repeat(cells[:, :, None], num_keypoints, axis=2)  # [B, N, K, J, 2]
    regressions = keypoints[..., None, :] - cells
    regression_weights = tf.cast(valid, tf.float32)[:, :, None, :] * weights[..., None]
    return (
        _with_keypoint_types(_cell_indices(cells, out_height, out_width)),
        regressions,
        regression_weights,
    )


def _with_keypoint_types(indices):
    """int32 `[B, N, K, J, 2]` cells → `[B, N, K, J, 3]` with each keypoint's type appended."""
    shape = tf.shape(indices)
    types = tf.range(shape[2])[None, None, :, None, None]
    types = tf.broadcast_to(types, tf.concat([shape[:-1], [1]], axis=0))
    return tf.concat([indices, types], axis=-1)


def valid_output_mask(true_image_shape, stride, out_height, out_width):
    """float32 `[B, H, W]`: 1 on the cells of each image's content (not its padding).

    Args:
        true_image_shape: float `[B, 2]` content height and width in input pixels.
        stride: int, the network's output stride.
    """
    limits = tf.math.ceil(tf.cast(true_image_shape, tf.float32) / float(stride))
    rows = tf.range(tf.cast(out_height, tf.float32))[None, :] < limits[:, 0:1]
    columns = tf.range(tf.cast(out_width, tf.float32))[None, :] < limits[:, 1:2]
    return tf.cast(rows[:, :, None] & columns[:, None, :], tf.float32)


def gather_at(predictions, indices):
    """`predictions` `[B, H, W, ...]` at per-image `indices` `[B, ..., d]` → `[B, ..., rest]`."""
    return tf.gather_nd(predictions, indices, batch_dims=1)

