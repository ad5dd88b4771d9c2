"""Flips, rotation, padding, resizing, self-concatenation and box jitter, named and
parameterized as in the TF OD API.

Every op takes one decoded example and returns it transformed:
- `image`: `[height, width, 3]`, uint8 or float 0..255; returned in the same dtype.
- `boxes`: float32 `[num_boxes, 4]`, `rel_yxyx` (normalized ymin, xmin, ymax, xmax).
- `labels`: `[num_boxes]`, any dtype; or a dict of per-object fields (`"labels"`,
  `"keypoints"`, `"keypoint_visibilities"`, see `object_fields`), which move with the boxes.

The flips use `tf.image` directly rather than `keras.layers.RandomFlip(bounding_box_format=...)`:
inside `tf.data` the Keras layer ran 7-10x slower per 640x480 image here (see
benchmarks/README.md), it has no flip probability (the TF OD API `probability` field), and it
returns labels as float.

Reference: TF OD API `object_detection/core/preprocessor.py` and `protos/preprocessor.proto`.
"""

import tensorflow as tf

from kdet.data.augmentation import _common
from kdet.data.augmentation import object_fields


def _maybe(probability, seed, transform, image, boxes, labels):
    do_it = _common.uniform(seed, 0) < probability
    return tf.cond(
        do_it, lambda: transform(image, boxes, labels), lambda: (image, boxes, labels)
    )


def _flip_left_right(image, boxes, labels, permutation):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (
        tf.image.flip_left_right(image),
        tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], -1),
        object_fields.flip_left_right(labels, permutation),
    )


def _flip_up_down(image, boxes, labels, permutation):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (
        tf.image.flip_up_down(image),
        tf.stack([1.0 - ymax, xmin, 1.0 - ymin, xmax], -1),
        object_fields.flip_up_down(labels, permutation),
    )


def _rotate90(image, boxes, labels, permutation):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (
        tf.image.rot90(image),
        tf.stack([1.0 - xmax, ymin, 1.0 - xmin, ymax], -1),
        object_fields.rot90(labels, permutation),
    )


def random_horizontal_flip(
    image, boxes, labels, probability=0.5, keypoint_flip_permutation=None, seed=None
):
    """Flips the image and its boxes left-right with probability `probability`.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        probability: float. Chance of flipping. Defaults to `0.5`.
        keypoint_flip_permutation: list of ints, the keypoint order after a flip (TF OD API):
            flipped keypoint `k` is original keypoint `keypoint_flip_permutation[k]`, so
            `[0, 2, 1]` swaps a left and a right eye. Required when the examples have keypoints
            (as in the TF OD API), unused otherwise.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`; a box `[y1, x1, y2, x2]` becomes `[y1, 1 - x2, y2, 1 - x1]`,
        a keypoint `(y, x)` becomes `(y, 1 - x)` (and is reordered).

    Example:
    >>> image, boxes, labels = random_horizontal_flip(image, boxes, labels, probability=1.0)
    """
    object_fields.check_flip_permutation(
        labels, "random_horizontal_flip", keypoint_flip_permutation
    )
    return _maybe(
        probability,
        seed,
        lambda *example: _flip_left_right(*example, keypoint_flip_permutation),
        image,
        boxes,
        labels,
    )


def random_vertical_flip(
    image, boxes, labels, probability=0.5, keypoint_flip_permutation=None, seed=None
):
    """Flips the image and its boxes up-down with probability `probability`.

    Args: as `random_horizontal_flip`.

    Returns:
        `(image, boxes, labels)`; a box `[y1, x1, y2, x2]` becomes `[1 - y2, x1, 1 - y1, x2]`,
        a keypoint `(y, x)` becomes `(1 - y, x)` (and is reordered).
    """
    object_fields.check_flip_permutation(
        labels, "random_vertical_flip", keypoint_flip_permutation
    )
    return _maybe(
        probability,
        seed,
        lambda *example: _flip_up_down(*example, keypoint_flip_permutation),
        image,
        boxes,
        labels,
    )


def random_rotation90(
    image, boxes, labels, probability=0.5, keypoint_rot_permutation=None, seed=None
):
    """Rotates the image and its boxes 90° counter-clockwise with probability `probability`.

    Combined with both flips this gives all eight 90° rotations/reflections with equal chance.

    Args: as `random_horizontal_flip`; `keypoint_rot_permutation` reorders the keypoints like
        `keypoint_flip_permutation` (unset keeps their order, as in the TF OD API).

    Returns:
        `(image, boxes, labels)`; the image becomes `[width, height, 3]`, a box
        `[y1, x1, y2, x2]` becomes `[1 - x2, y1, 1 - x1, y2]` and a keypoint `(y, x)` becomes
        `(1 - x, y)`.
    """
    return _maybe(
        probability,
        seed,
        lambda *example: _rotate90(*example, keypoint_rot_permutation),
        image,
        boxes,
        labels,
    )


def _size_pair(name, height, width, default):
    if (height is None) != (width is None):
        raise ValueError(
            f"random_pad_image: {name}_image_height and {name}_image_width must be both set or "
            f"both unset; got height={height}, width={width}"
        )
    return default if height is None else tf.constant([height, width], tf.int32)


def _pad(image, boxes, labels, min_size, max_size, pad_color, seed):
    """TF OD API `random_pad_image` with int32 `[2]` size bounds, in the image's dtype.

    The canvas size is drawn in `[min_size, max_size)` per side (each bound at least the image
    size; `max_size` itself when the range is empty) and the image lands at an offset drawn in
    `[0, canvas - size)` (0 when the canvas is not larger).
    """
    size = tf.shape(image)[:2]
    min_size = tf.maximum(min_size, size)
    max_size = tf.maximum(max_size, size)

    def draw(low, high, salt):
        return tf.where(high > low, _common.random_int(seed, salt, low, high), high)

    target = tf.stack([draw(min_size[0], max_size[0], 0), draw(min_size[1], max_size[1], 1)])
    offset = tf.stack(
        [
            _common.random_int(seed, 2, 0, target[0] - size[0]),
            _common.random_int(seed, 3, 0, target[1] - size[1]),
        ]
    )
    if pad_color is None:
        pad_color = tf.reduce_mean(_common.to_float(image), axis=[0, 1])
    padded = _common.place(image, offset, target, pad_color)
    window = _common.pad_window(offset, target, size)
    return (
        padded,
        _common.change_coordinate_frame(boxes, window),
        object_fields.change_frame(labels, window, target, prune=False),
    )


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
    size = tf.shape(image)[:2]
    min_size = _size_pair("min", min_image_height, min_image_width, size)
    max_size = _size_pair("max", max_image_height, max_image_width, 2 * size)
    color = _common.check_color("random_pad_image", pad_color)
    return _pad(image, boxes, labels, min_size, max_size, color, seed)


def random_absolute_pad_image(
    image, boxes, labels, max_height_padding=1, max_width_padding=1, pad_color=None, seed=None
):
    """Pads each side by a random absolute amount: height by `[0, max_height_padding)` pixels.

    TF OD API `random_absolute_pad_image`: `random_pad_image` with the canvas drawn between the
    image size and the image size plus the maximum padding; the image lands at a random offset
    inside it. An unset (or 0) maximum reads as 1, i.e. no padding on that axis, as in the
    TF OD API builder.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        max_height_padding, max_width_padding: int. Exclusive bound of the padding in pixels.
            Default to `1` (no padding).
        pad_color: 3 floats (RGB, 0..255); unset pads with the image's mean color.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: an image of `[height + dy, width + dx, 3]` with
        `0 <= dy < max_height_padding`, and the boxes in `rel_yxyx` of it (on the same pixels).

    Example:
    >>> image, boxes, labels = random_absolute_pad_image(
    ...     image, boxes, labels, max_height_padding=200, max_width_padding=200,
    ...     pad_color=[0, 0, 0])
    """
    size = tf.shape(image)[:2]
    padding = tf.constant([max_height_padding or 1, max_width_padding or 1], tf.int32)
    color = _common.check_color("random_absolute_pad_image", pad_color)
    return _pad(image, boxes, labels, size, size + padding, color, seed)


def random_pad_to_aspect_ratio(
    image,
    boxes,
    labels,
    aspect_ratio=1.0,
    min_padded_size_ratio=(1.0, 1.0),
    max_padded_size_ratio=(2.0, 2.0),
    seed=None,
):
    """Zero-pads the image at the bottom/right to `aspect_ratio` (width / height), randomly scaled.

    TF OD API `random_pad_to_aspect_ratio` (the last step of
    `ssd_random_crop_pad_fixed_aspect_ratio`; not a `preprocessor.proto` step of its own): the
    smallest canvas of the aspect ratio that holds the image is scaled by a factor drawn so that
    the canvas stays within `[min, max]_padded_size_ratio` of the image size where possible.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        aspect_ratio: float. Width / height of the result. Defaults to `1.0`.
        min_padded_size_ratio, max_padded_size_ratio: (height, width) ratios of the canvas to
            the image. Default to `(1, 1)` and `(2, 2)`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the padded image (its content at the top-left) and the boxes in
        `rel_yxyx` of it.
    """
    min_ratio = _common.check_pair(
        "random_pad_to_aspect_ratio", "min_padded_size_ratio", min_padded_size_ratio
    )
    max_ratio = _common.check_pair(
        "random_pad_to_aspect_ratio", "max_padded_size_ratio", max_padded_size_ratio
    )
    if aspect_ratio <= 0:
        raise ValueError(
            f"random_pad_to_aspect_ratio: aspect_ratio must be > 0, got {aspect_ratio}"
        )
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    height, width = size[0], size[1]
    target_height = tf.where(width / height <= aspect_ratio, height, width / aspect_ratio)
    target_width = tf.where(width / height >= aspect_ratio, width, height * aspect_ratio)
    min_height = tf.maximum(min_ratio[0] * height, target_height)
    min_width = tf.maximum(min_ratio[1] * width, target_width)
    max_height = tf.maximum(max_ratio[0] * height, target_height)
    max_width = tf.maximum(max_ratio[1] * width, target_width)
    max_scale = tf.minimum(max_height / target_height, max_width / target_width)
    min_scale = tf.minimum(
        max_scale, tf.maximum(min_height / target_height, min_width / target_width)
    )
    scale = min_scale + (max_scale - min_scale) * _common.uniform(seed, 0)
    canvas = tf.cast(tf.round(scale * tf.stack([target_height, target_width])), tf.int32)
    canvas = tf.maximum(canvas, tf.shape(image)[:2])
    padded = _common.place(image, tf.zeros([2], tf.int32), canvas)
    window = _common.pad_window(tf.zeros([2], tf.int32), canvas, tf.shape(image)[:2])
    return (
        padded,
        _common.change_coordinate_frame(boxes, window),
        object_fields.change_frame(labels, window, canvas, prune=False),
    )


# TF OD API `ResizeImage.Method` names → `tf.image.resize` methods.
RESIZE_METHODS = {
    "AREA": "area",
    "BICUBIC": "bicubic",
    "BILINEAR": "bilinear",
    "NEAREST_NEIGHBOR": "nearest",
}


def _resized(image, size, method):
    """Resizes a uint8/float 0..255 image to int32 `[2]` `size`, keeping its dtype."""
    dtype = image.dtype
    resized = tf.image.resize(_common.to_float(image), size, method=method)
    return _common.restore_dtype(tf.clip_by_value(resized, 0.0, 255.0), dtype)


def resize_image(
    image, boxes, labels, new_height=None, new_width=None, method="BILINEAR", seed=None
):
    """Resizes the image to `[new_height, new_width]` (aspect ratio not kept); boxes unchanged.

    TF OD API `resize_image` as an augmentation step: the model's own image resizer still runs
    afterwards (as in the TF OD API), so this changes what the network sees only through the
    distortion and the resampling.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx` (normalized, so they need no change).
        labels: `[num_boxes]`.
        new_height, new_width: int, required (the TF OD API has no default for them).
        method: `"AREA"`, `"BICUBIC"`, `"BILINEAR"` or `"NEAREST_NEIGHBOR"` (the
            `ResizeImage.Method` names). Defaults to `"BILINEAR"`.
        seed: unused (the op is deterministic); accepted like every op's.

    Returns:
        `(image, boxes, labels)` with an image of `[new_height, new_width, 3]`.
    """
    if not (new_height and new_width and new_height > 0 and new_width > 0):
        raise ValueError(
            f"resize_image: new_height and new_width must be set to positive sizes, got "
            f"{new_height} and {new_width}"
        )
    method = str(method).upper()
    if method not in RESIZE_METHODS:
        raise ValueError(
            f"resize_image: method must be one of {list(RESIZE_METHODS)}, got {method!r}"
        )
    size = tf.constant([new_height, new_width], tf.int32)
    return (
        _resized(image, size, RESIZE_METHODS[method]),
        boxes,
        object_fields.resize(labels, size),
    )


def random_resize_method(image, boxes, labels, target_height=None, target_width=None, seed=None):
    """Resizes the image to `[target_height, target_width]` with a randomly chosen method.

    TF OD API `random_resize_method`: bilinear, nearest neighbor, bicubic or area, each with
    probability 1/4. Boxes are normalized and need no change.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        target_height, target_width: int, required.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` with an image of `[target_height, target_width, 3]`.
    """
    if not (target_height and target_width and target_height > 0 and target_width > 0):
        raise ValueError(
            "random_resize_method: target_height and target_width must be set to positive "
            f"sizes, got {target_height} and {target_width}"
        )
    size = tf.constant([target_height, target_width], tf.int32)
    choice = _common.uniform(seed, 0, 0, 4, tf.int32)
    branches = [
        lambda method=method: _resized(image, size, method)
        for method in ("bilinear", "nearest", "bicubic", "area")
    ]
    return tf.switch_case(choice, branches), boxes, object_fields.resize(labels, size)


def random_image_scale(image, boxes, labels, min_scale_ratio=0.5, max_scale_ratio=2.0, seed=None):
    """Resizes the image by a random factor in `[min_scale_ratio, max_scale_ratio)`, keeping its
    aspect ratio; the normalized boxes are unchanged.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        min_scale_ratio, max_scale_ratio: float. Range of the factor. Default to `0.5`, `2.0`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` with an image of `[int(height * s), int(width * s), 3]`.
    """
    scale = _common.uniform(seed, 0, min_scale_ratio, max_scale_ratio)
    size = tf.cast(scale * tf.cast(tf.shape(image)[:2], tf.float32), tf.int32)
    size = tf.maximum(size, 1)
    return _resized(image, size, "bilinear"), boxes, object_fields.resize(labels, size)


def random_downscale_to_target_pixels(
    image,
    boxes,
    labels,
    random_coef=0.0,
    min_target_pixels=300000,
    max_target_pixels=800000,
    seed=None,
):
    """Shrinks the image (keeping its aspect ratio) to a random number of pixels.

    TF OD API `random_downscale_to_target_pixels`: a target pixel count is drawn in
    `[min_target_pixels, max_target_pixels)`; an image with more pixels is resized to about that
    many, a smaller one is left alone. Unset `max_target_pixels` is 800000, the TF OD API
    function default its builder falls back to (the proto comment says 500000).

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        random_coef: float. Probability of keeping the image unchanged. Defaults to `0.0`.
        min_target_pixels, max_target_pixels: int > 0. Range of the target pixel count.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`.
    """
    if min_target_pixels <= 0 or max_target_pixels <= 0:
        raise ValueError(
            "random_downscale_to_target_pixels: min_target_pixels and max_target_pixels must be "
            f"positive, got {min_target_pixels} and {max_target_pixels}"
        )
    size = tf.shape(image)[:2]
    pixels = size[0] * size[1]
    target = _common.random_int(seed, 1, min_target_pixels, max_target_pixels)
    factor = tf.sqrt(tf.cast(target, tf.float32) / tf.cast(pixels, tf.float32))
    new_size = tf.maximum(tf.cast(factor * tf.cast(size, tf.float32), tf.int32), 1)
    apply = (_common.uniform(seed, 0) >= random_coef) & (pixels > target)
    image = tf.cond(apply, lambda: _resized(image, new_size, "bilinear"), lambda: image)
    return image, boxes, object_fields.resize(labels, tf.shape(image)[:2])


def random_self_concat_image(
    image,
    boxes,
    labels,
    concat_vertical_probability=0.1,
    concat_horizontal_probability=0.1,
    seed=None,
):
    """Tiles the image with itself vertically and/or horizontally; the boxes are repeated.

    TF OD API `random_self_concat_image`: with the first probability the image is stacked on
    itself (height doubles, every box appears twice, in the top and the bottom half), then,
    independently, with the second probability it is put beside itself.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        concat_vertical_probability, concat_horizontal_probability: float. Default to `0.1`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: up to `[2 * height, 2 * width, 3]`, up to `4 * num_boxes` boxes.
    """

    def concat(image, boxes, labels, axis):
        scale = [0.5, 1.0, 0.5, 1.0] if axis == 0 else [1.0, 0.5, 1.0, 0.5]
        shift = [0.5, 0.0, 0.5, 0.0] if axis == 0 else [0.0, 0.5, 0.0, 0.5]
        first = boxes * scale
        image = tf.concat([image, image], axis)
        # The doubled image in the frame of each copy: [0, 0, 2, 1] and [-1, 0, 1, 1] vertically.
        windows = [[0.0, 0.0, 2.0, 1.0], [-1.0, 0.0, 1.0, 1.0]]
        if axis == 1:
            windows = [[0.0, 0.0, 1.0, 2.0], [0.0, -1.0, 1.0, 1.0]]
        size = tf.shape(image)[:2]
        copies = [
            object_fields.change_frame(labels, tf.constant(window), size, prune=False)
            for window in windows
        ]
        return image, tf.concat([first, first + shift], 0), object_fields.concat(copies)

    example = (image, boxes, labels)
    for salt, (axis, probability) in enumerate(
        ((0, concat_vertical_probability), (1, concat_horizontal_probability))
    ):
        do_it = _common.uniform(seed, salt) < probability
        example = tf.cond(
            do_it,
            lambda example=example, axis=axis: concat(*example, axis),
            lambda example=example: example,
        )
    return example


# TF OD API `RandomJitterBoxes.JitterMode` names.
JITTER_MODES = (
    "DEFAULT",
    "EXPAND",
    "SHRINK",
    "EXPAND_SYMMETRIC",
    "SHRINK_SYMMETRIC",
    "EXPAND_SYMMETRIC_XY",
    "SHRINK_SYMMETRIC_XY",
)


def random_jitter_boxes(image, boxes, labels, ratio=0.05, jitter_mode="DEFAULT", seed=None):
    """Moves each box's sides by random fractions of its size (TF OD API `random_jitter_boxes`).

    `DEFAULT` moves each side independently by up to `ratio` / 2 of the box size in either
    direction; `EXPAND` / `SHRINK` only grow / shrink the box; the `*_SYMMETRIC` modes scale
    height and width around the box center (independently, or with one factor for `*_XY`),
    limited so the box stays inside the image. Boxes are clipped to the image; the image is
    unchanged.

    Args:
        image: `[height, width, 3]`, returned as is.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        ratio: float. Largest change as a fraction of the box size. Defaults to `0.05`.
        jitter_mode: one of `JITTER_MODES` (case-insensitive). Defaults to `"DEFAULT"`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`.
    """
    mode = str(jitter_mode).upper()
    if mode not in JITTER_MODES:
        raise ValueError(
            f"random_jitter_boxes: jitter_mode must be one of {JITTER_MODES}, got {jitter_mode!r}"
        )
    if mode.startswith("SHRINK"):
        low, high = -ratio, 0.0
    elif mode.startswith("EXPAND"):
        low, high = 0.0, ratio
    else:
        low, high = -ratio, ratio
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    y_center, x_center = (ymin + ymax) / 2.0, (xmin + xmax) / 2.0
    height = tf.maximum(tf.abs(ymax - ymin), 1e-6)
    width = tf.maximum(tf.abs(xmax - xmin), 1e-6)
    num_boxes = tf.shape(boxes)[0]
    if "SYMMETRIC" in mode:
        factor = 1.0 + _common.uniform_tensor(seed, 0, [num_boxes, 2], low, high)
        height_factor, width_factor = factor[:, 0], factor[:, 1]
        # Scaling around the center: a side may move at most to the image border.
        max_height = tf.abs(tf.minimum(2.0 * y_center / height, 2.0 * (1.0 - y_center) / height))
        max_width = tf.abs(tf.minimum(2.0 * x_center / width, 2.0 * (1.0 - x_center) / width))
        if mode.endswith("_XY"):
            width_factor = height_factor
            max_height = max_width = tf.minimum(max_height, max_width)
        height_factor = tf.clip_by_value(height_factor, -max_height, max_height)
        width_factor = tf.clip_by_value(width_factor, -max_width, max_width)
        jittered = tf.stack(
            [
                y_center - height * height_factor / 2.0,
                x_center - width * width_factor / 2.0,
                y_center + height * height_factor / 2.0,
                x_center + width * width_factor / 2.0,
            ],
            axis=-1,
        )
    else:
        factor = 1.0 + _common.uniform_tensor(seed, 0, [num_boxes, 4], low, high)
        jittered = tf.stack(
            [
                y_center - height * factor[:, 0] / 2.0,
                x_center - width * factor[:, 1] / 2.0,
                y_center + height * factor[:, 2] / 2.0,
                x_center + width * factor[:, 3] / 2.0,
            ],
            axis=-1,
        )
    return image, tf.clip_by_value(jittered, 0.0, 1.0), labels
