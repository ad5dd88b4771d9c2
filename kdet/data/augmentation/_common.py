"""Pieces the augmentation ops share: random draws, image dtypes, box bookkeeping.

Every op takes an optional `seed`: None draws from TensorFlow's global generator (the TF OD API
way); an int `[2]` seed makes the op stateless, so the same seed always gives the same result,
whatever the `tf.data` parallelism.
"""

import tensorflow as tf

from kdet.data.augmentation import object_fields


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


def crop_boxes(boxes, labels, window, overlap_thresh=0.0, clip=True, image_size=None):
    """Moves boxes into a crop window and drops those that do not belong to the crop.

    A box is kept when it overlaps the window with a positive area and at least `overlap_thresh`
    of its own area lies inside the window (TF OD API `prune_completely_outside_window` +
    `prune_non_overlapping_boxes`); degenerate boxes (zero area) are dropped with their labels.
    Per-object fields move along (`object_fields`): the kept objects' keypoints into the crop's
    coordinates, those outside it not labelled any more (also with `clip=False`, where the TF
    OD API keeps them).

    Args:
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx` of the uncropped image.
        labels: `[num_boxes]`, any dtype, or a dict of per-object fields (`object_fields`).
        window: float32 `[4]`, the crop in `rel_yxyx` of the uncropped image.
        overlap_thresh: float. Minimum fraction of a box's area inside the window.
        clip: bool. Clip the kept boxes to the crop.
        image_size: int32 `[2]`, the size of the cropped image (for per-object fields).

    Returns:
        `(boxes, labels)`: the kept boxes in `rel_yxyx` of the crop and their labels (fields).
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
    objects = object_fields.change_frame(object_fields.select(labels, keep), window, image_size)
    return new_boxes, objects


def uniform_tensor(seed, salt, shape, minval=0.0, maxval=1.0, dtype=tf.float32):
    """A uniform draw of `shape` in `[minval, maxval)`, stateless when `seed` is given."""
    if seed is None:
        return tf.random.uniform(shape, minval, maxval, dtype=dtype)
    return tf.random.stateless_uniform(shape, sub_seed(seed, salt), minval, maxval, dtype=dtype)


def normal_tensor(seed, salt, shape, stddev):
    """A zero-mean normal draw of `shape`, stateless when `seed` is given."""
    if seed is None:
        return tf.random.normal(shape, stddev=stddev)
    return tf.random.stateless_normal(shape, sub_seed(seed, salt), stddev=stddev)


def random_int(seed, salt, low, high):
    """A uniform int32 scalar in `[low, high)`, or `low` when the range is empty.

    Branch-free (a scaled float draw, exact for ranges below 2**24): a `tf.cond` per draw made
    the graphs of the SSD crops several times slower to build and optimize.
    """
    low = tf.cast(low, tf.int32)
    span = tf.maximum(tf.cast(high, tf.int32) - low, 0)
    offset = tf.cast(tf.floor(uniform(seed, salt) * tf.cast(span, tf.float32)), tf.int32)
    return low + tf.minimum(offset, tf.maximum(span - 1, 0))


def pad_window(offset, target_size, size):
    """The `rel_yxyx` window that maps boxes of an image into its padded canvas.

    Args:
        offset: int32 `[2]`, where the image's top-left lands in the canvas.
        target_size: int32 `[2]`, the canvas size.
        size: int32 `[2]`, the image size.

    Returns:
        float32 `[4]`: the canvas in `rel_yxyx` of the image (use with `change_coordinate_frame`).
    """
    corners = tf.concat([-offset, target_size - offset], 0)
    return tf.cast(corners, tf.float32) / tf.cast(tf.concat([size, size], 0), tf.float32)


def place(image, offset, target_size, fill=None):
    """Puts an image on a `target_size` canvas at `offset`, the rest filled with `fill`.

    Built by concatenating the image with filled blocks: on this CPU that is several times
    faster than `tf.image.pad_to_bounding_box` or a `tf.where` over the canvas.

    Args:
        image: `[height, width, channels]`, any dtype.
        offset: int32 `[2]`, at least 0.
        target_size: int32 `[2]`, at least `offset + size`.
        fill: None (zeros) or float32 `[channels]` in 0..255, rounded for integer images.

    Returns:
        `[target_height, target_width, channels]` in the image's dtype.
    """
    shape = tf.shape(image)
    if fill is None:
        pixel = tf.zeros([shape[2]], image.dtype)
    else:
        pixel = restore_dtype(tf.cast(fill, tf.float32), image.dtype)

    def block(height, width):
        return tf.broadcast_to(pixel, tf.stack([height, width, shape[2]]))

    right = target_size[1] - offset[1] - shape[1]
    middle = tf.concat([block(shape[0], offset[1]), image, block(shape[0], right)], axis=1)
    bottom = target_size[0] - offset[0] - shape[0]
    return tf.concat(
        [block(offset[0], target_size[1]), middle, block(bottom, target_size[1])], axis=0
    )


def paste(image, patch, begin):
    """Replaces the pixels of `image` under `patch` (placed at int32 `[2]` `begin`, inside it)."""
    end = begin + tf.shape(patch)[:2]
    middle = tf.concat(
        [image[begin[0] : end[0], : begin[1]], patch, image[begin[0] : end[0], end[1] :]], axis=1
    )
    return tf.concat([image[: begin[0]], middle, image[end[0] :]], axis=0)


def check_pair(op, name, value):
    """Returns a 2-sequence of floats, or raises a `ValueError` naming `op` and `name`."""
    values = list(value)
    if len(values) != 2:
        raise ValueError(f"{op}: {name} needs 2 values (height, width ratios), got {values}")
    return [float(v) for v in values]


def check_color(op, pad_color):
    """Returns `pad_color` (3 numbers, or a `[3]` tensor) as float32 `[3]`, None when unset."""
    if pad_color is None:
        return None
    color = tf.cast(tf.convert_to_tensor(pad_color), tf.float32)
    if color.shape.rank == 1 and color.shape[0] == 0:
        return None
    if color.shape != (3,):
        raise ValueError(f"{op}: pad_color needs 3 values (R, G, B in 0..255), got {pad_color}")
    return color
