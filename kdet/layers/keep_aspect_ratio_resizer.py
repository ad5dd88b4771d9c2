"""TF OD API `keep_aspect_ratio_resizer`: shorter side to min, longer side at most max."""

import keras
import tensorflow as tf

from kdet.layers.image_resizer import ImageResizer


@keras.saving.register_keras_serializable(package="kdet")
class KeepAspectRatioResizer(ImageResizer):
    """Scales images so the shorter side is `min_dimension` unless the longer side would then
    exceed `max_dimension` (then the longer side is `max_dimension`), keeping the aspect ratio.

    The size follows the TF OD API's `resize_to_range` exactly: the shorter side is scaled to
    `min_dimension` (sides rounded); if the longer side then exceeds `max_dimension`, the
    longer side is scaled to `max_dimension` instead. With `pad_to_max_dimension` the result is
    padded (bottom/right, with `per_channel_pad_value`) to a static `max_dimension ×
    max_dimension`, as the TF OD API Faster R-CNN configs do; the model then clips and maps
    boxes with the true image shape (`resize` returns it per image).

    A 1000×1333 photo with `(600, 1024)` becomes 600×800; a 500×1000 one 512×1024.

    Args:
        min_dimension: int. Target of the shorter side. Defaults to `600`.
        max_dimension: int. Bound on the longer side. Defaults to `1024`.
        pad_to_max_dimension: bool. Pad to a square `max_dimension` output. Defaults to `False`.
        resize_method: see `ImageResizer`. Defaults to `"bilinear"`.
        per_channel_pad_value: 3 floats, the padding pixels' value per channel (TF OD API
            `per_channel_pad_value`). Defaults to `(0, 0, 0)`.

    Reference:
        TF OD API `core/preprocessor.py` `resize_to_range`.
    """

    def __init__(
        self, min_dimension=600, max_dimension=1024, pad_to_max_dimension=False,
        resize_method="bilinear", per_channel_pad_value=(0.0, 0.0, 0.0),
    ):
        super().__init__(resize_method)
        per_channel_pad_value = tuple(float(value) for value in per_channel_pad_value)
        if len(per_channel_pad_value) != 3:
            raise ValueError(
                "per_channel_pad_value needs one value per RGB channel, got "
                f"{per_channel_pad_value}"
            )
        self.per_channel_pad_value = per_channel_pad_value
        if min_dimension > max_dimension:
            raise ValueError(
                f"min_dimension ({min_dimension}) must not exceed max_dimension ({max_dimension})"
            )
        self.min_dimension = min_dimension
        self.max_dimension = max_dimension
        self.pad_to_max_dimension = pad_to_max_dimension

    def content_and_padded_size(self, height, width):
        height = tf.cast(height, tf.float32)
        width = tf.cast(width, tf.float32)

        def rounded(factor):
            return tuple(tf.cast(tf.round(side * factor), tf.int32) for side in (height, width))

        # TF OD API `resize_to_range`: the min_dimension size unless its longer (rounded) side
        # exceeds max_dimension, then the max_dimension size.
        large = rounded(self.min_dimension / tf.minimum(height, width))
        small = rounded(self.max_dimension / tf.maximum(height, width))
        too_large = tf.maximum(*large) > self.max_dimension
        content = tuple(tf.where(too_large, s, l) for s, l in zip(small, large))
        if self.pad_to_max_dimension:
            return content, (self.max_dimension, self.max_dimension)
        return content, content

    def pad_values(self):
        return tf.constant(self.per_channel_pad_value, tf.float32)

    def get_config(self):
        config = {
            "min_dimension": self.min_dimension,
            "max_dimension": self.max_dimension,
            "pad_to_max_dimension": self.pad_to_max_dimension,
            **super().get_config(),
        }
        # Only when set, so that configs (and .keras files) of zero padding stay as they were.
        if any(self.per_channel_pad_value):
            config["per_channel_pad_value"] = list(self.per_channel_pad_value)
        return config
