"""Flips, 90° rotation and random padding, named and parameterized as in the TF OD API.

Every op takes one decoded example and returns it transformed:
- `image`: `[height, width, 3]`, uint8 or float 0..255; returned in the same dtype.
- `boxes`: float32 `[num_boxes, 4]`, `rel_yxyx` (normalized ymin, xmin, ymax, xmax).
- `labels`: `[num_boxes]`, any dtype.

The flips use `tf.image` directly rather than `keras.layers.RandomFlip(bounding_box_format=...)`:
inside `tf.data` the Keras layer ran 7-10x slower per 640x480 image here (see
benchmarks/README.md), it has no flip probability (the TF OD API `probability` field), and it
returns labels as float.

Reference: TF OD API `object_detection/core/preprocessor.py` and `protos/preprocessor.proto`.
"""

import tensorflow as tf

from kdet.data.augmentation import _common


def _maybe(probability, seed, transform, image, boxes, labels):
    do_it = _common.uniform(seed, 0) < probability
    image, boxes = tf.cond(do_it, lambda: transform(image, boxes), lambda: (image, boxes))
    return image, boxes, labels


def _flip_left_right(image, boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.image.flip_left_right(image), tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], -1)


def _flip_up_down(image, boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.image.flip_up_down(image), tf.stack([1.0 - ymax, xmin, 1.0 - ymin, xmax], -1)


def _rotate90(image, boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.image.rot90(image), tf.stack([1.0 - xmax, ymin, 1.0 - xmin, ymax], -1)


def random_horizontal_flip(image, boxes, labels, probability=0.5, seed=None):
    """Flips the image and its boxes left-right with probability `probability`.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        probability: float. Chance of flipping. Defaults to `0.5`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`; a box `[y1, x1, y2, x2]` becomes `[y1, 1 - x2, y2, 1 - x1]`.

    Example:
    >>> image, boxes, labels = random_horizontal_flip(image, boxes, labels, probability=1.0)
    """
    return _maybe(probability, seed, _flip_left_right, image, boxes, labels)


def random_vertical_flip(image, boxes, labels, probability=0.5, seed=None):
    """Flips the image and its boxes up-down with probability `probability`.

    Args: as `random_horizontal_flip`.

    Returns:
        `(image, boxes, labels)`; a box `[y1, x1, y2, x2]` becomes `[1 - y2, x1, 1 - y1, x2]`.
    """
    return _maybe(probability, seed, _flip_up_down, image, boxes, labels)


def random_rotation90(image, boxes, labels, probability=0.5, seed=None):
    """Rotates the image and its boxes 90° counter-clockwise with probability `probability`.

    Combined with both flips this gives all eight 90° rotations/reflections with equal chance.

    Args: as `random_horizontal_flip`.

    Returns:
        `(image, boxes, labels)`; the image becomes `[width, height, 3]` and a box
        `[y1, x1, y2, x2]` becomes `[1 - x2, y1, 1 - x1, y2]`.
    """
    return _maybe(probability, seed, _rotate90, image, boxes, labels)


def _size_pair(name, height, width, default):
    if (height is None) != (width is None):
        raise ValueError(
            f"random_pad_image: {name}_image_height and {name}_image_width must be both set or "
            f"both unset; got height={height}, width={width}"
        )
    return default if height is None else tf.constant([height, width], tf.int32)


def random_pad_image(
    image,
    boxes,
    labels,
    min_image_height=None,
    min_image_width=None,
    max_image_height=None,
    max_image_width=None,
    pad_color=None,
    seed=None,
):
    """Pads the image to a random size, placing it at a random offset; boxes follow.

    The padded size is drawn uniformly in `[min_image_*, max_image_*)` per side (each bound at
    least the input size), and the image lands at a uniformly drawn offset inside it.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        min_image_height, min_image_width: int. Smallest padded size; unset means the input size.
        max_image_height, max_image_width: int. Largest padded size; unset means twice the input.
        pad_color: 3 floats (RGB, 0..255); unset pads with the image's mean color.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the padded image and the boxes in `rel_yxyx` of it.

    Example:
    >>> image, boxes, labels = random_pad_image(image, boxes, labels, max_image_height=256,
    ...                                         max_image_width=256)
    """
    dtype = image.dtype
    image = _common.to_float(image)
    size = tf.shape(image)[:2]
    min_size = tf.maximum(_size_pair("min", min_image_height, min_image_width, size), size)
    max_size = tf.maximum(_size_pair("max", max_image_height, max_image_width, 2 * size), size)

    def draw(low, high, salt):
        # A uniform int in [low, high), or `high` when the range is empty (TF OD API semantics).
        return tf.cond(
            high > low,
            lambda: _common.uniform(seed, salt, low, high, tf.int32),
            lambda: high,
        )

    target_height = draw(min_size[0], max_size[0], 0)
    target_width = draw(min_size[1], max_size[1], 1)
    offset_y = draw(0, target_height - size[0], 2)
    offset_x = draw(0, target_width - size[1], 3)
    color = (
        tf.reduce_mean(image, axis=[0, 1])
        if pad_color is None
        else tf.constant(pad_color, tf.float32)
    )
    # Pads (image - color) with zeros, so that adding the color back fills the border with it.
    padded = (
        tf.image.pad_to_bounding_box(image - color, offset_y, offset_x, target_height, target_width)
        + color
    )

    window = tf.cast(
        tf.stack([-offset_y, -offset_x, target_height - offset_y, target_width - offset_x]),
        tf.float32,
    ) / tf.cast(tf.concat([size, size], 0), tf.float32)
    return (
        _common.restore_dtype(padded, dtype),
        _common.change_coordinate_frame(boxes, window),
        labels,
    )
