"""Box-aware random crops (and crop-then-pad steps), named and parameterized as in the TF OD API.

Every op takes one decoded example `(image, boxes, labels)` — image `[height, width, 3]` uint8 or
float 0..255 (returned in the same dtype), boxes float32 `[num_boxes, 4]` `rel_yxyx`, labels
`[num_boxes]` or a dict of per-object fields (`object_fields`: labels, keypoints, masks) — and
returns it cropped. Boxes that fall out of the crop are dropped together with their labels (and
keypoints and masks), so the number of boxes can shrink (to zero); images without boxes work
too. Keypoints outside the crop become not labelled (visibility 0); masks are cut with the
image.

These are written with `tf.image` rather than `keras.layers.RandomCrop`/`RandomZoom`: the TF OD API
crops are constrained by the boxes (`tf.image.sample_distorted_bounding_box` with
`min_object_covered`, an overlap rule for keeping boxes), which the Keras layers do not offer.

Reference: TF OD API `object_detection/core/preprocessor.py` and `protos/preprocessor.proto`;
Liu et al., "SSD: Single Shot MultiBox Detector", https://arxiv.org/abs/1512.02325 (the crop
schedule of `ssd_random_crop`); Tan et al., "EfficientDet", https://arxiv.org/abs/1911.09070
(`random_scale_crop_and_pad_to_square`).
"""

import tensorflow as tf

from kdet.data.augmentation import _common
from kdet.data.augmentation import geometric

# The TF OD API `ssd_random_crop` defaults: seven crops, one drawn per image.
SSD_RANDOM_CROP_OPERATIONS = tuple(
    {
        "min_object_covered": covered,
        "min_aspect_ratio": 0.5,
        "max_aspect_ratio": 2.0,
        "min_area": 0.1,
        "max_area": 1.0,
        "overlap_thresh": covered,
        "clip_boxes": True,
        "random_coef": 0.15,
    }
    for covered in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
)


# The TF OD API `ssd_random_crop_pad` defaults: six crops (no 0% one), each padded afterwards.
SSD_RANDOM_CROP_PAD_OPERATIONS = tuple(
    {
        "min_object_covered": covered,
        "min_aspect_ratio": 0.5,
        "max_aspect_ratio": 2.0,
        "min_area": 0.1,
        "max_area": 1.0,
        "overlap_thresh": covered,
        "clip_boxes": True,
        "random_coef": 0.15,
        "min_padded_size_ratio": (1.0, 1.0),
        "max_padded_size_ratio": (2.0, 2.0),
        "pad_color_r": None,
        "pad_color_g": None,
        "pad_color_b": None,
    }
    for covered in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
)
# The TF OD API `ssd_random_crop_fixed_aspect_ratio` defaults: the SSD crops without aspect range.
SSD_RANDOM_CROP_FIXED_ASPECT_RATIO_OPERATIONS = tuple(
    {
        key: value
        for key, value in operation.items()
        if key not in ("min_aspect_ratio", "max_aspect_ratio")
    }
    for operation in SSD_RANDOM_CROP_OPERATIONS
)


def _check_crop_ranges(op, min_aspect_ratio, max_aspect_ratio, min_area, max_area):
    if not 0.0 < min_aspect_ratio <= max_aspect_ratio:
        raise ValueError(
            f"{op}: expected 0 < min_aspect_ratio <= max_aspect_ratio, got {min_aspect_ratio} "
            f"and {max_aspect_ratio}"
        )
    if not 0.0 <= min_area <= max_area or not 0.0 < max_area <= 1.0:
        raise ValueError(
            f"{op}: expected 0 <= min_area <= max_area <= 1 and max_area > 0, got {min_area} "
            f"and {max_area}"
        )


def _checked_operations(op, operations, defaults):
    """The operations of an SSD-style op, checked against the fields of its defaults."""
    operations = list(operations or defaults)
    for operation in operations:
        unknown = set(operation) - set(defaults[0])
        if unknown:
            raise ValueError(
                f"{op}: unknown operation field(s) {sorted(unknown)}; expected {list(defaults[0])}"
            )
    return operations


def _apply_one_of(operations, function, example, seed):
    """Applies `function(*example, **operation)` for one operation drawn uniformly."""
    choice = _common.uniform(seed, 0, 0, len(operations), tf.int32)
    branches = [
        lambda operation=operation: function(*example, seed=_common.sub_seed(seed, 1), **operation)
        for operation in operations
    ]
    return tf.switch_case(choice, branches)


def random_crop_image(
    image,
    boxes,
    labels,
    min_object_covered=1.0,
    min_aspect_ratio=0.75,
    max_aspect_ratio=1.33,
    min_area=0.1,
    max_area=1.0,
    overlap_thresh=0.3,
    clip_boxes=True,
    random_coef=0.0,
    seed=None,
):
    """Crops a random window that covers enough of at least one box; boxes follow.

    The window is drawn by `tf.image.sample_distorted_bounding_box` (100 attempts, the whole image
    when none fits). A box is kept when at least `overlap_thresh` of its area lies in the window.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        min_object_covered: float. The window covers at least this fraction of some box.
        min_aspect_ratio, max_aspect_ratio: float. Window width / height bounds.
        min_area, max_area: float. Window area bounds, as a fraction of the image.
        overlap_thresh: float. Minimum fraction of a box inside the window to keep it.
        clip_boxes: bool. Clip kept boxes to the window.
        random_coef: float. Probability of returning the example unchanged.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the crop, its boxes in `rel_yxyx` of the crop, their labels.

    Example:
    >>> image, boxes, labels = random_crop_image(image, boxes, labels, min_object_covered=0.5)
    """

    _check_crop_ranges("random_crop_image", min_aspect_ratio, max_aspect_ratio, min_area, max_area)

    def crop():
        sampler_args = dict(
            image_size=tf.shape(image),
            bounding_boxes=tf.clip_by_value(boxes, 0.0, 1.0)[tf.newaxis],
            min_object_covered=min_object_covered,
            aspect_ratio_range=(min_aspect_ratio, max_aspect_ratio),
            area_range=(min_area, max_area),
            max_attempts=100,
            use_image_if_no_bounding_boxes=True,
        )
        if seed is None:
            begin, size, window = tf.image.sample_distorted_bounding_box(**sampler_args)
        else:
            begin, size, window = tf.image.stateless_sample_distorted_bounding_box(
                seed=_common.sub_seed(seed, 1), **sampler_args
            )
        kept_boxes, kept_labels = _common.crop_boxes(
            boxes, labels, window[0, 0], overlap_thresh, clip_boxes, image_size=size[:2]
        )
        return tf.slice(image, begin, size), kept_boxes, kept_labels

    if random_coef <= 0.0:
        return crop()
    do_crop = _common.uniform(seed, 0) >= random_coef
    return tf.cond(do_crop, crop, lambda: (image, boxes, labels))


def ssd_random_crop(image, boxes, labels, operations=None, seed=None):
    """The SSD crop: draws one of several `random_crop_image` settings per image and applies it.

    With the default operations the window covers at least 0, 10, 30, 50, 70, 90 or 100% of some
    box (and keeps boxes with at least that fraction inside), has aspect ratio 0.5..2 and area
    10..100% of the image, and each is skipped with probability 0.15. As in the TF OD API, boxes
    are kept by that overlap fraction (the original SSD code keeps boxes by their centre).

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        operations: list of dicts with the `random_crop_image` parameters (the TF OD API
            `SSDRandomCropOperation` fields: `min_object_covered`, `min_aspect_ratio`,
            `max_aspect_ratio`, `min_area`, `max_area`, `overlap_thresh`, `clip_boxes`,
            `random_coef`); a missing field takes the `random_crop_image` default. Defaults to
            `SSD_RANDOM_CROP_OPERATIONS`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` as `random_crop_image`.

    Example:
    >>> image, boxes, labels = ssd_random_crop(image, boxes, labels)
    """
    operations = _checked_operations("ssd_random_crop", operations, SSD_RANDOM_CROP_OPERATIONS)
    return _apply_one_of(operations, random_crop_image, (image, boxes, labels), seed)


def random_scale_crop_and_pad_to_square(
    image, boxes, labels, output_size=512, scale_min=0.1, scale_max=2.0, seed=None
):
    """Scale jitter: resizes by a random scale, crops a random square and pads it to size.

    The image is resized so that its longer side is `output_size * scale` with `scale` drawn in
    `[scale_min, scale_max)`; a random `output_size` square is cut from it (when larger) and
    padded with zeros at the bottom/right to `output_size` (when smaller). Boxes that end up
    entirely outside are dropped; the others are clipped.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        output_size: int. Side of the square output image. Defaults to `512`.
        scale_min, scale_max: float. Range of the random scale. Default to `0.1` and `2.0`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: an `[output_size, output_size, 3]` image and its boxes.

    Example:
    >>> image, boxes, labels = random_scale_crop_and_pad_to_square(image, boxes, labels, 320)
    """
    dtype = image.dtype
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = _common.uniform(seed, 0, scale_min, scale_max)
    scaled_size = tf.maximum(tf.cast(scale * output_size * size / tf.reduce_max(size), tf.int32), 1)
    slack = tf.cast(tf.maximum(scaled_size - output_size, 0), tf.float32)
    offset = tf.cast(
        slack * tf.stack([_common.uniform(seed, 1), _common.uniform(seed, 2)]), tf.int32
    )
    scaled = tf.image.resize(image, scaled_size)
    cropped = scaled[offset[0] : offset[0] + output_size, offset[1] : offset[1] + output_size]
    padded = tf.image.pad_to_bounding_box(cropped, 0, 0, output_size, output_size)

    window = tf.cast(tf.concat([offset, offset + output_size], 0), tf.float32) / tf.cast(
        tf.concat([scaled_size, scaled_size], 0), tf.float32
    )
    boxes, labels = _common.crop_boxes(
        boxes, labels, window, image_size=tf.constant([output_size, output_size])
    )
    return _common.restore_dtype(padded, dtype), boxes, labels


def random_crop_to_aspect_ratio(
    image, boxes, labels, aspect_ratio=1.0, overlap_thresh=0.3, clip_boxes=True, seed=None
):
    """Crops the largest window of `aspect_ratio` (width / height) at a random position.

    TF OD API `random_crop_to_aspect_ratio`: a wider image loses columns, a taller one rows;
    the window's offset is uniform. Boxes keep their pixels; a box with less than
    `overlap_thresh` of its area inside the window is dropped with its label.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        aspect_ratio: float > 0. Width / height of the crop. Defaults to `1.0`.
        overlap_thresh: float. Minimum fraction of a box inside the crop to keep it.
            Defaults to `0.3`.
        clip_boxes: bool. Clip kept boxes to the crop. Defaults to `True`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the crop (`round(height * aspect_ratio) == width` up to one
        pixel), its boxes in `rel_yxyx` of it, their labels.

    Example:
    >>> image, boxes, labels = random_crop_to_aspect_ratio(image, boxes, labels, 1.0)
    """
    if aspect_ratio <= 0:
        raise ValueError(
            f"random_crop_to_aspect_ratio: aspect_ratio must be > 0, got {aspect_ratio}"
        )
    size = tf.shape(image)[:2]
    height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    wider = width / height > aspect_ratio
    target_height = tf.where(wider, size[0], tf.cast(tf.round(width / aspect_ratio), tf.int32))
    target_width = tf.where(wider, tf.cast(tf.round(height * aspect_ratio), tf.int32), size[1])
    target_height = tf.clip_by_value(target_height, 1, size[0])
    target_width = tf.clip_by_value(target_width, 1, size[1])
    offset_y = _common.random_int(seed, 0, 0, size[0] - target_height + 1)
    offset_x = _common.random_int(seed, 1, 0, size[1] - target_width + 1)
    cropped = tf.image.crop_to_bounding_box(image, offset_y, offset_x, target_height, target_width)
    window = tf.cast(
        tf.stack([offset_y, offset_x, offset_y + target_height, offset_x + target_width]),
        tf.float32,
    ) / tf.stack([height, width, height, width])
    boxes, labels = _common.crop_boxes(
        boxes,
        labels,
        window,
        overlap_thresh,
        clip_boxes,
        image_size=tf.stack([target_height, target_width]),
    )
    return cropped, boxes, labels


def ssd_random_crop_fixed_aspect_ratio(
    image, boxes, labels, operations=None, aspect_ratio=1.0, seed=None
):
    """The SSD crop with every window of one aspect ratio (TF OD API
    `ssd_random_crop_fixed_aspect_ratio`).

    One of the `operations` is drawn and applied as `random_crop_image` with
    `min_aspect_ratio = max_aspect_ratio = aspect_ratio`; then `random_crop_to_aspect_ratio`
    (with its default `overlap_thresh` 0.3) makes the result exactly that aspect ratio, also when
    the crop was skipped (`random_coef`) or fell back to the whole image. Unlike the TF OD API,
    whose builder forgets `aspect_ratio` when no `operations` are given, kdet always honours it.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        operations: list of dicts with the fields of `SSDRandomCropFixedAspectRatioOperation`
            (`min_object_covered`, `min_area`, `max_area`, `overlap_thresh`, `clip_boxes`,
            `random_coef`). Defaults to `SSD_RANDOM_CROP_FIXED_ASPECT_RATIO_OPERATIONS` (the seven
            SSD crops).
        aspect_ratio: float > 0. Width / height of every crop. Defaults to `1.0`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` as `random_crop_image`.

    Example:
    >>> image, boxes, labels = ssd_random_crop_fixed_aspect_ratio(image, boxes, labels)
    """
    operations = _checked_operations(
        "ssd_random_crop_fixed_aspect_ratio",
        operations,
        SSD_RANDOM_CROP_FIXED_ASPECT_RATIO_OPERATIONS,
    )
    operations = [
        {**operation, "min_aspect_ratio": aspect_ratio, "max_aspect_ratio": aspect_ratio}
        for operation in operations
    ]
    example = _apply_one_of(operations, random_crop_image, (image, boxes, labels), seed)
    return random_crop_to_aspect_ratio(
        *example, aspect_ratio=aspect_ratio, seed=_common.sub_seed(seed, 2)
    )


def random_crop_pad_image(
    image,
    boxes,
    labels,
    min_object_covered=1.0,
    min_aspect_ratio=0.75,
    max_aspect_ratio=1.33,
    min_area=0.1,
    max_area=1.0,
    overlap_thresh=0.3,
    clip_boxes=True,
    random_coef=0.0,
    min_padded_size_ratio=(1.0, 1.0),
    max_padded_size_ratio=(2.0, 2.0),
    pad_color=None,
    seed=None,
):
    """`random_crop_image`, then `random_pad_image` to a size relative to the *original* image.

    TF OD API `random_crop_pad_image`: the canvas height is drawn in
    `[min_padded_size_ratio[0], max_padded_size_ratio[0]) * height` (each bound at least the
    crop's height), the width likewise, and the crop lands at a random offset in it.

    Args:
        image, boxes, labels: as `random_crop_image`.
        min_object_covered, min_aspect_ratio, max_aspect_ratio, min_area, max_area,
            overlap_thresh, clip_boxes, random_coef: the crop, as `random_crop_image`.
        min_padded_size_ratio, max_padded_size_ratio: (height, width) ratios of the canvas to
            the input image. Default to `(1, 1)` and `(2, 2)`.
        pad_color: 3 floats (RGB, 0..255); unset pads with the crop's mean color.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the padded crop and its boxes in `rel_yxyx` of it.
    """
    min_ratio = _common.check_pair(
        "random_crop_pad_image", "min_padded_size_ratio", min_padded_size_ratio
    )
    max_ratio = _common.check_pair(
        "random_crop_pad_image", "max_padded_size_ratio", max_padded_size_ratio
    )
    color = _common.check_color("random_crop_pad_image", pad_color)
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    cropped, boxes, labels = random_crop_image(
        image,
        boxes,
        labels,
        min_object_covered=min_object_covered,
        min_aspect_ratio=min_aspect_ratio,
        max_aspect_ratio=max_aspect_ratio,
        min_area=min_area,
        max_area=max_area,
        overlap_thresh=overlap_thresh,
        clip_boxes=clip_boxes,
        random_coef=random_coef,
        seed=_common.sub_seed(seed, 0),
    )
    min_size = tf.cast(size * min_ratio, tf.int32)
    max_size = tf.cast(size * max_ratio, tf.int32)
    return geometric._pad(
        cropped, boxes, labels, min_size, max_size, color, _common.sub_seed(seed, 1)
    )


def _crop_pad_operation(
    image,
    boxes,
    labels,
    pad_color_r=None,
    pad_color_g=None,
    pad_color_b=None,
    seed=None,
    **crop_pad,
):
    colors = (pad_color_r, pad_color_g, pad_color_b)
    pad_color = None if all(c is None for c in colors) else [c or 0.0 for c in colors]
    return random_crop_pad_image(image, boxes, labels, pad_color=pad_color, seed=seed, **crop_pad)


def ssd_random_crop_pad(image, boxes, labels, operations=None, seed=None):
    """The SSD crop followed by a random pad: one of several `random_crop_pad_image` settings.

    TF OD API `ssd_random_crop_pad`. The default six operations cover at least 10, 30, 50, 70,
    90 or 100% of some box (keeping boxes with that fraction inside), aspect 0.5..2, area
    10..100%, are skipped with probability 0.15, and pad to 1..2 times the input size with the
    crop's mean color.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        operations: list of dicts with the `SSDRandomCropPadOperation` fields (those of
            `random_crop_image`, plus `min_padded_size_ratio`, `max_padded_size_ratio` and
            `pad_color_r`, `pad_color_g`, `pad_color_b`: 0..255; all three unset pads with the
            mean color, a missing one of them is 0). Defaults to `SSD_RANDOM_CROP_PAD_OPERATIONS`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` as `random_crop_pad_image`.
    """
    operations = _checked_operations(
        "ssd_random_crop_pad", operations, SSD_RANDOM_CROP_PAD_OPERATIONS
    )
    return _apply_one_of(operations, _crop_pad_operation, (image, boxes, labels), seed)


def ssd_random_crop_pad_fixed_aspect_ratio(
    image,
    boxes,
    labels,
    operations=None,
    aspect_ratio=1.0,
    min_padded_size_ratio=(1.0, 1.0),
    max_padded_size_ratio=(2.0, 2.0),
    seed=None,
):
    """The SSD crop, then zero padding to a fixed aspect ratio (TF OD API
    `ssd_random_crop_pad_fixed_aspect_ratio`).

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        operations: list of dicts with the `random_crop_image` fields (as `ssd_random_crop`).
            Defaults to `SSD_RANDOM_CROP_OPERATIONS`.
        aspect_ratio: float > 0. Width / height after padding. Defaults to `1.0`.
        min_padded_size_ratio, max_padded_size_ratio: (height, width) ratios of the canvas to
            the crop, as `geometric.random_pad_to_aspect_ratio`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: the crop padded at the bottom/right with zeros.
    """
    operations = _checked_operations(
        "ssd_random_crop_pad_fixed_aspect_ratio", operations, SSD_RANDOM_CROP_OPERATIONS
    )
    example = _apply_one_of(operations, random_crop_image, (image, boxes, labels), seed)
    return geometric.random_pad_to_aspect_ratio(
        *example,
        aspect_ratio=aspect_ratio,
        min_padded_size_ratio=min_padded_size_ratio,
        max_padded_size_ratio=max_padded_size_ratio,
        seed=_common.sub_seed(seed, 2),
    )


def _crop_border(max_border, size):
    """The TF OD API's border for `random_square_crop_by_scale`: `max_border` halved until it is
    below half of `size` (int32 scalar)."""
    if max_border <= 0:
        return tf.constant(0, tf.int32)
    border = tf.constant(float(max_border))
    exponent = tf.math.ceil(
        tf.math.log(2.0 * border / tf.cast(size, tf.float32)) / tf.math.log(2.0)
    )
    divisor = tf.clip_by_value(tf.pow(2.0, exponent), 1.0, border)
    return max_border // tf.cast(divisor, tf.int32)


def random_square_crop_by_scale(
    image, boxes, labels, max_border=128, scale_min=0.6, scale_max=1.3, num_scales=8, seed=None
):
    """Crops a square whose side is a random scale of the image's longer side (CenterNet).

    TF OD API `random_square_crop_by_scale`: the scale is one of `num_scales` evenly spaced
    values in `[scale_min, scale_max]`; the square's center is uniform over the image minus a
    border (`max_border` halved until it is below half the image side); parts of the square
    outside the image are zeros. Boxes completely outside are dropped, the others clipped.
    (The TF OD API also leaves out the image's last row and column when the square reaches
    them; kdet keeps them.)

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: `[num_boxes]`.
        max_border: int. Largest border in pixels. Defaults to `128`.
        scale_min, scale_max: float. Range of the scale. Default to `0.6`, `1.3`.
        num_scales: int >= 1. Number of discrete scales. Defaults to `8`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)`: a `[side, side, 3]` image with
        `side = int(scale * max(height, width))` and its boxes.

    Example:
    >>> image, boxes, labels = random_square_crop_by_scale(image, boxes, labels, scale_min=0.6,
    ...                                                    scale_max=1.3)
    """
    if num_scales < 1:
        raise ValueError(f"random_square_crop_by_scale: num_scales must be >= 1, got {num_scales}")
    if not 0.0 < scale_min <= scale_max:
        raise ValueError(
            "random_square_crop_by_scale: expected 0 < scale_min <= scale_max, got "
            f"{scale_min} and {scale_max}"
        )
    size = tf.shape(image)[:2]
    scales = tf.linspace(float(scale_min), float(scale_max), num_scales)
    scale = tf.gather(scales, _common.random_int(seed, 0, 0, num_scales))
    side = tf.maximum(tf.cast(scale * tf.cast(tf.reduce_max(size), tf.float32), tf.int32), 1)
    border = tf.stack([_crop_border(max_border, size[0]), _crop_border(max_border, size[1])])
    center = tf.stack(
        [
            _common.random_int(seed, 1, border[0], size[0] - border[0] + 1),
            _common.random_int(seed, 2, border[1], size[1] - border[1] + 1),
        ]
    )
    corner = center - side // 2  # the square's top-left, possibly outside the image
    begin = tf.maximum(corner, 0)
    end = tf.minimum(corner + side, size)
    cropped = image[begin[0] : end[0], begin[1] : end[1]]
    offset = begin - corner
    padded = _common.place(cropped, offset, tf.stack([side, side]))
    window = tf.cast(tf.concat([corner, corner + side], 0), tf.float32) / tf.cast(
        tf.concat([size, size], 0), tf.float32
    )
    boxes, labels = _common.crop_boxes(boxes, labels, window, image_size=tf.stack([side, side]))
    return padded, boxes, labels
