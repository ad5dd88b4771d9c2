"""Color, gamma, pixel-value, JPEG-quality, black-patch and patch-noise jitter, named and
parameterized as in the TF OD API.

Every op takes one decoded example `(image, boxes, labels)` and returns the image changed, with
the boxes and labels untouched:
- `image`: `[height, width, 3]`, uint8 or float 0..255; returned in the same dtype, in 0..255.
- `boxes`: float32 `[num_boxes, 4]`, `rel_yxyx`.
- `labels`: `[num_boxes]`, any dtype.
- `seed`: optional int `[2]` stateless seed; None uses TensorFlow's global generator.

Deltas and factors have the TF OD API meaning, on images scaled to 0..1 (a brightness `max_delta`
of 0.2 shifts pixels by up to 0.2 * 255).

Reference: TF OD API `object_detection/core/preprocessor.py` and `protos/preprocessor.proto`.
"""

import tensorflow as tf

from kdet.data.augmentation import _common


def _adjusted(image, transform):
    """Applies a float 0..255 transform and returns the result in the image's dtype."""
    return _common.restore_dtype(transform(_common.to_float(image)), image.dtype)


def _clip(image):
    return tf.clip_by_value(image, 0.0, 255.0)


def _brightness(image, max_delta, seed):
    return _clip(image + 255.0 * _common.uniform(seed, 0, -max_delta, max_delta))


def _contrast(image, min_delta, max_delta, seed):
    # Contrast is linear around the channel means, so it needs no rescaling to 0..1.
    return _clip(tf.image.adjust_contrast(image, _common.uniform(seed, 0, min_delta, max_delta)))


def _hue(image, max_delta, seed):
    delta = _common.uniform(seed, 0, -max_delta, max_delta)
    return _clip(tf.image.adjust_hue(image / 255.0, delta) * 255.0)


def _saturation(image, min_delta, max_delta, seed):
    factor = _common.uniform(seed, 0, min_delta, max_delta)
    return _clip(tf.image.adjust_saturation(image / 255.0, factor) * 255.0)


def random_adjust_brightness(image, boxes, labels, max_delta=0.2, seed=None):
    """Shifts brightness by a random delta in `[-max_delta, max_delta)` (0..1 scale), then clips.

    Args:
        image, boxes, labels, seed: see the module docstring.
        max_delta: float. Largest change, as a fraction of 255. Defaults to `0.2`.

    Returns:
        `(image, boxes, labels)`.

    Example:
    >>> image, boxes, labels = random_adjust_brightness(image, boxes, labels, max_delta=0.1)
    """
    return _adjusted(image, lambda x: _brightness(x, max_delta, seed)), boxes, labels


def random_adjust_contrast(image, boxes, labels, min_delta=0.8, max_delta=1.25, seed=None):
    """Scales each channel's deviation from its mean by a random factor, then clips.

    Args:
        image, boxes, labels, seed: see the module docstring.
        min_delta, max_delta: float. Range of the contrast factor. Default to `0.8`, `1.25`.

    Returns:
        `(image, boxes, labels)`.
    """
    return _adjusted(image, lambda x: _contrast(x, min_delta, max_delta, seed)), boxes, labels


def random_adjust_hue(image, boxes, labels, max_delta=0.02, seed=None):
    """Rotates the hue by a random delta in `[-max_delta, max_delta)` (fraction of a turn).

    Args:
        image, boxes, labels, seed: see the module docstring.
        max_delta: float. Largest hue change. Defaults to `0.02`.

    Returns:
        `(image, boxes, labels)`.
    """
    return _adjusted(image, lambda x: _hue(x, max_delta, seed)), boxes, labels


def random_adjust_saturation(image, boxes, labels, min_delta=0.8, max_delta=1.25, seed=None):
    """Scales the saturation by a random factor in `[min_delta, max_delta)`, then clips.

    Args:
        image, boxes, labels, seed: see the module docstring.
        min_delta, max_delta: float. Range of the saturation factor. Default to `0.8`, `1.25`.

    Returns:
        `(image, boxes, labels)`.
    """
    return _adjusted(image, lambda x: _saturation(x, min_delta, max_delta, seed)), boxes, labels


# The TF OD API `random_distort_color` schedule (the Inception color distortion).
_DISTORT_COLOR_STEPS = {
    "brightness": lambda x, seed: _brightness(x, 32.0 / 255.0, seed),
    "saturation": lambda x, seed: _saturation(x, 0.5, 1.5, seed),
    "hue": lambda x, seed: _hue(x, 0.2, seed),
    "contrast": lambda x, seed: _contrast(x, 0.5, 1.5, seed),
}
_DISTORT_COLOR_ORDERS = {
    0: ("brightness", "saturation", "hue", "contrast"),
    1: ("brightness", "contrast", "saturation", "hue"),
}


def random_distort_color(image, boxes, labels, color_ordering=0, seed=None):
    """Jitters brightness (±32/255), saturation (0.5..1.5), hue (±0.2), contrast (0.5..1.5).

    Args:
        image, boxes, labels, seed: see the module docstring.
        color_ordering: int. 0 applies brightness, saturation, hue, contrast; 1 applies
            brightness, contrast, saturation, hue. Defaults to `0`.

    Returns:
        `(image, boxes, labels)`; the image is rounded back to its dtype once, after all steps.
    """
    if color_ordering not in _DISTORT_COLOR_ORDERS:
        raise ValueError(
            f"random_distort_color: color_ordering must be 0 or 1, got {color_ordering!r}"
        )

    def distort(x):
        for index, step in enumerate(_DISTORT_COLOR_ORDERS[color_ordering]):
            x = _DISTORT_COLOR_STEPS[step](x, _common.sub_seed(seed, index))
        return x

    return _adjusted(image, distort), boxes, labels


def random_rgb_to_gray(image, boxes, labels, probability=0.1, seed=None):
    """Turns the image gray (three equal channels) with probability `probability`.

    Args:
        image, boxes, labels, seed: see the module docstring.
        probability: float. Chance of the gray conversion. Defaults to `0.1`.

    Returns:
        `(image, boxes, labels)`.
    """

    def gray(x):
        return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x))

    to_gray = _common.uniform(seed, 0) < probability
    image = tf.cond(to_gray, lambda: _adjusted(image, gray), lambda: image)
    return image, boxes, labels


def random_jpeg_quality(
    image, boxes, labels, random_coef=0.0, min_jpeg_quality=0, max_jpeg_quality=100, seed=None
):
    """Re-encodes the image as JPEG with a random quality in `[min_jpeg_quality, max_jpeg_quality)`.

    Args:
        image, boxes, labels, seed: see the module docstring (float images are rounded to uint8
            for the encoder).
        random_coef: float. Probability of keeping the image unchanged. Defaults to `0.0`.
        min_jpeg_quality, max_jpeg_quality: int, 0..100. Quality range. Default to `0`, `100`.

    Returns:
        `(image, boxes, labels)`.

    Example:
    >>> image, boxes, labels = random_jpeg_quality(image, boxes, labels, min_jpeg_quality=50)
    """
    if not 0 <= min_jpeg_quality < max_jpeg_quality <= 100:
        raise ValueError(
            "random_jpeg_quality: expected 0 <= min_jpeg_quality < max_jpeg_quality <= 100, got "
            f"{min_jpeg_quality} and {max_jpeg_quality}"
        )

    def reencode(x):
        quality = _common.uniform(seed, 1, min_jpeg_quality, max_jpeg_quality, tf.int32)
        encoded = tf.image.adjust_jpeg_quality(_common.restore_dtype(x, tf.uint8), quality)
        return _common.to_float(encoded)

    keep = _common.uniform(seed, 0) < random_coef
    image = tf.cond(keep, lambda: image, lambda: _adjusted(image, reencode))
    return image, boxes, labels


def random_pixel_value_scale(image, boxes, labels, minval=0.9, maxval=1.1, seed=None):
    """Multiplies every pixel value by its own random factor in `[minval, maxval)`, then clips.

    TF OD API `random_pixel_value_scale` (one factor per pixel and channel).

    Args:
        image, boxes, labels, seed: see the module docstring.
        minval, maxval: float. Range of the factors. Default to `0.9`, `1.1`.

    Returns:
        `(image, boxes, labels)`.
    """

    def scale(x):
        return _clip(x * _common.uniform_tensor(seed, 0, tf.shape(x), minval, maxval))

    return _adjusted(image, scale), boxes, labels


def adjust_gamma(image, boxes, labels, gamma=1.0, gain=1.0, seed=None):
    """Gamma correction `gain * (x / 255) ** gamma * 255`, clipped (TF OD API `adjust_gamma`).

    Args:
        image, boxes, labels: see the module docstring.
        gamma: float >= 0. Defaults to `1.0`.
        gain: float. Defaults to `1.0`.
        seed: unused (the op is deterministic); accepted like every op's.

    Returns:
        `(image, boxes, labels)`.
    """
    if gamma < 0:
        raise ValueError(f"adjust_gamma: gamma must be >= 0, got {gamma}")

    def correct(x):
        return _clip(tf.image.adjust_gamma(x / 255.0, gamma, gain) * 255.0)

    return _adjusted(image, correct), boxes, labels


def random_black_patches(
    image, boxes, labels, max_black_patches=10, probability=0.5, size_to_image_ratio=0.1, seed=None
):
    """Blacks out up to `max_black_patches` squares, each present with `probability`.

    TF OD API `random_black_patches`: every patch has side
    `int(size_to_image_ratio * min(height, width))` and its top-left corner at a uniform
    fraction in `[0, 1 - size_to_image_ratio)` of the height and width. Boxes are unchanged.

    Args:
        image, boxes, labels, seed: see the module docstring.
        max_black_patches: int. Number of patch draws. Defaults to `10`.
        probability: float. Chance of each patch. Defaults to `0.5`.
        size_to_image_ratio: float in (0, 1). Patch side / shorter image side. Defaults to `0.1`.

    Returns:
        `(image, boxes, labels)`.
    """
    if not 0.0 < size_to_image_ratio < 1.0:
        raise ValueError(
            "random_black_patches: size_to_image_ratio must be in (0, 1), got "
            f"{size_to_image_ratio}"
        )
    if max_black_patches <= 0:
        return image, boxes, labels
    size = tf.shape(image)[:2]
    float_size = tf.cast(size, tf.float32)
    side = tf.cast(tf.reduce_min(float_size) * size_to_image_ratio, tf.int32)
    present = _common.uniform_tensor(seed, 0, [max_black_patches]) <= probability
    corners = tf.cast(
        _common.uniform_tensor(seed, 1, [max_black_patches, 2], 0.0, 1.0 - size_to_image_ratio)
        * float_size,
        tf.int32,
    )

    def covered(axis):
        # [patches, length]: whether each row (or column) lies in each patch.
        positions = tf.range(size[axis])[tf.newaxis]
        start = corners[:, axis : axis + 1]
        return (positions >= start) & (positions < start + side)

    # Rows x columns of the present patches: a [height, width] count, > 0 where any covers.
    rows = tf.cast(covered(0) & present[:, tf.newaxis], tf.float32)
    black = tf.matmul(rows, tf.cast(covered(1), tf.float32), transpose_a=True) > 0.0
    # A multiply, not a tf.where: several times faster on a uint8 image here.
    image = image * tf.cast(~black, image.dtype)[:, :, tf.newaxis]
    return image, boxes, labels


def random_patch_gaussian(
    image,
    boxes,
    labels,
    random_coef=0.0,
    min_patch_size=1,
    max_patch_size=250,
    min_gaussian_stddev=0.0,
    max_gaussian_stddev=1.0,
    seed=None,
):
    """Adds Gaussian noise inside one random square patch (TF OD API `random_patch_gaussian`).

    The patch side is drawn in `[min_patch_size, max_patch_size)`, its center uniformly over the
    image (the patch may stick out), the noise standard deviation in
    `[min_gaussian_stddev, max_gaussian_stddev)` on the 0..1 scale; the noisy pixels are clipped
    to the value range. Lopes et al., "Improving Robustness Without Sacrificing Accuracy with
    Patch Gaussian Augmentation", https://arxiv.org/abs/1906.02611.

    Args:
        image, boxes, labels, seed: see the module docstring.
        random_coef: float. Probability of keeping the image unchanged. Defaults to `0.0`.
        min_patch_size, max_patch_size: int, `1 <= min`. Defaults to `1`, `250`.
        min_gaussian_stddev, max_gaussian_stddev: float. Defaults to `0.0`, `1.0`.

    Returns:
        `(image, boxes, labels)`.
    """
    if min_patch_size < 1:
        raise ValueError(
            f"random_patch_gaussian: min_patch_size must be >= 1, got {min_patch_size}"
        )

    def patch():
        size = tf.shape(image)[:2]
        side = _common.random_int(seed, 1, min_patch_size, max_patch_size)
        stddev = _common.uniform(seed, 2, min_gaussian_stddev, max_gaussian_stddev)
        center = tf.stack(
            [_common.random_int(seed, 3, 0, size[0]), _common.random_int(seed, 4, 0, size[1])]
        )
        # An even side puts the extra row/column before the center, as the TF OD API does.
        start = center - side // 2
        # Only the part of the patch inside the image gets noise (drawn for that part alone).
        begin = tf.maximum(start, 0)
        end = tf.minimum(start + side, size)
        region = _common.to_float(image[begin[0] : end[0], begin[1] : end[1]])
        noisy = tf.clip_by_value(
            region / 255.0 + _common.normal_tensor(seed, 5, tf.shape(region), stddev), 0.0, 1.0
        )
        noisy = _common.restore_dtype(noisy * 255.0, image.dtype)
        return _common.paste(image, noisy, begin)

    do_it = _common.uniform(seed, 0) >= random_coef
    image = tf.cond(do_it, patch, lambda: image)
    return image, boxes, labels
