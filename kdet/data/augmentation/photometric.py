"""Color and JPEG-quality jitter, named and parameterized as in the TF OD API.

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
