"""Box-aware random crops, named and parameterized as in the TF OD API.

Every op takes one decoded example `(image, boxes, labels)` — image `[height, width, 3]` uint8 or
float 0..255 (returned in the same dtype), boxes float32 `[num_boxes, 4]` `rel_yxyx`, labels
`[num_boxes]` — and returns it cropped. Boxes that fall out of the crop are dropped together with
their labels, so the number of boxes can shrink (to zero); images without boxes work too.

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
            boxes, labels, window[0, 0], overlap_thresh, clip_boxes
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
    operations = list(operations or SSD_RANDOM_CROP_OPERATIONS)
    for operation in operations:
        unknown = set(operation) - set(SSD_RANDOM_CROP_OPERATIONS[0])
        if unknown:
            raise ValueError(
                f"ssd_random_crop: unknown operation field(s) {sorted(unknown)}; expected "
                f"{list(SSD_RANDOM_CROP_OPERATIONS[0])}"
            )
    choice = _common.uniform(seed, 0, 0, len(operations), tf.int32)
    branches = [
        lambda operation=operation: random_crop_image(
            image, boxes, labels, seed=_common.sub_seed(seed, 1), **operation
        )
        for operation in operations
    ]
    return tf.switch_case(choice, branches)


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
    boxes, labels = _common.crop_boxes(boxes, labels, window)
    return _common.restore_dtype(padded, dtype), boxes, labels
