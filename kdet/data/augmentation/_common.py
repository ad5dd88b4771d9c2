"""Pieces the augmentation ops share: random draws, image dtypes, box bookkeeping.

Every op takes an optional `seed`: None draws from TensorFlow's global generator (the TF OD API
way); an int `[2]` seed makes the op stateless, so the same seed always gives the same result,
whatever the `tf.data` parallelism.
"""

import tensorflow as tf


def sub_seed(seed, salt):
    """Derives an independent `[2]` seed for the `salt`-th random draw (None stays None)."""
    if seed is None:
        return None
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), salt)


def uniform(seed, salt, minval=0.0, maxval=1.0, dtype=tf.float32):
    """A scalar uniform draw in `[minval, maxval)`, stateless when `seed` is given."""
    if seed is None:
        return tf.random.uniform([], minval, maxval, dtype=dtype)
    return tf.random.stateless_uniform([], sub_seed(seed, salt), minval, maxval, dtype=dtype)


def to_float(image):
    """Returns the image as float32 with values 0..255 (uint8 or float input)."""
    return tf.cast(image, tf.float32)


def restore_dtype(image, dtype):
    """Casts a float32 0..255 image back to `dtype`, rounding and saturating for integers."""
    if dtype.is_integer:
        return tf.cast(tf.clip_by_value(tf.round(image), dtype.min, dtype.max), dtype)
    return tf.cast(image, dtype)


def change_coordinate_frame(boxes, window):
    """Expresses `rel_yxyx` boxes relative to `window` (`rel_yxyx` `[4]` of the same image)."""
    origin = tf.stack([window[0], window[1], window[0], window[1]])
    extent = tf.stack([window[2] - window[0], window[3] - window[1]] * 2)
    return (boxes - origin) / extent


def crop_boxes(boxes, labels, window, overlap_thresh=0.0, clip=True):
    """Moves boxes into a crop window and drops those that do not belong to the crop.

    A box is kept when it overlaps the window with a positive area and at least `overlap_thresh`
    of its own area lies inside the window (TF OD API `prune_completely_outside_window` +
    `prune_non_overlapping_boxes`); degenerate boxes (zero area) are dropped with their labels.

    Args:
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx` of the uncropped image.
        labels: `[num_boxes]`, any dtype.
        window: float32 `[4]`, the crop in `rel_yxyx` of the uncropped image.
        overlap_thresh: float. Minimum fraction of a box's area inside the window.
        clip: bool. Clip the kept boxes to the crop.

    Returns:
        `(boxes, labels)`: the kept boxes in `rel_yxyx` of the crop and their labels.
    """
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    inter_height = tf.minimum(ymax, window[2]) - tf.maximum(ymin, window[0])
    inter_width = tf.minimum(xmax, window[3]) - tf.maximum(xmin, window[1])
    overlaps = (inter_height > 0.0) & (inter_width > 0.0)
    area = (ymax - ymin) * (xmax - xmin)
    inside_fraction = tf.math.divide_no_nan(
        tf.maximum(inter_height, 0.0) * tf.maximum(inter_width, 0.0), area
    )
    keep = overlaps & (inside_fraction >= overlap_thresh)
    new_boxes = change_coordinate_frame(tf.boolean_mask(boxes, keep), window)
    if clip:
        new_boxes = tf.clip_by_value(new_boxes, 0.0, 1.0)
    return new_boxes, tf.boolean_mask(labels, keep)
