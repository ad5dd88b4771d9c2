"""TF OD API `keep_aspect_ratio_resizer`: shorter side to min, longer side at most max."""

import keras
import tensorflow as tf

from kdet.layers.image_resizer import ImageResizer


@keras.saving.register_keras_serializable(package="kdet")
class KeepAspectRatioResizer(ImageResizer):
    """Scales images so the shorter side is `min_dimension` unless the longer side would then
    exceed `max_dimension` (then the longer side is `max_dimension`), keeping the aspect ratio.

    With `pad_to_max_dimension` the result is zero-padded (bottom/right) to a static
    `max_dimension × max_dimension`, as the TF OD API Faster R-CNN configs do; the model then
    clips and maps boxes with the content fraction the resizer returns.

    Args:
        min_dimension: int. Target of the shorter side. Defaults to `600`.
        max_dimension: int. Bound on the longer side. Defaults to `1024`.
        pad_to_max_dimension: bool. Pad to a square `max_dimension` output. Defaults to `False`.
        resize_method: see `ImageResizer`. Defaults to `"bilinear"`.

    Reference:
        TF OD API `core/preprocessor.py` `resize_to_range`.
    """

    def __init__(
        self, min_dimension=600, max_dimension=1024, pad_to_max_dimension=False,
        resize_method="bilinear",
    ):
        super().__init__(resize_method)
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
        scale = tf.minimum(
            self.min_dimension / tf.minimum(height, width),
            self.max_dimension / tf.maximum(height, width),
        )
        # Round like the TF OD API, and never exceed max_dimension through rounding.
        content = tuple(
            tf.minimum(tf.cast(tf.round(side * scale), tf.int32), self.max_dimension)
            for side in (height, width)
        )
        if self.pad_to_max_dimension:
            return content, (self.max_dimension, self.max_dimension)
        return content, content

    def get_config(self):
        return {
            "min_dimension": self.min_dimension,
            "max_dimension": self.max_dimension,
            "pad_to_max_dimension": self.pad_to_max_dimension,
            **super().get_config(),
        }
