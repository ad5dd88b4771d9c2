"""Base class of the image resizers: raw images of any size → the model's input size."""

import tensorflow as tf

# TF1's `ResizeBilinear` (align_corners=False, half_pixel_centers=False) samples at
# `x_in = x_out * in / out`, not at pixel centres as `tf.image.resize` does. Models converted
# from TF OD API graphs were trained with it; any other resize shifts their scores by up to 0.15.
LEGACY_BILINEAR = "legacy_bilinear"
RESIZE_METHODS = ("bilinear", LEGACY_BILINEAR, "nearest", "bicubic", "area")


def resize_images(images, size, method):
    """Resizes a batch of images with one of `RESIZE_METHODS`.

    Args:
        images: float32 `[batch, height, width, channels]`.
        size: `(height, width)` of the output, ints or int scalar tensors.
        method: one of `RESIZE_METHODS`.

    Returns:
        float32 `[batch, size[0], size[1], channels]`.
    """
    if method == LEGACY_BILINEAR:
        return tf.raw_ops.ResizeBilinear(
            images=images, size=tf.stack(size), align_corners=False, half_pixel_centers=False
        )
    return tf.image.resize(images, size, method=method)


class ImageResizer:
    """Resizes raw images to a model's input and reports where the image content lies.

    Subclasses implement `content_and_padded_size(height, width)`. `__call__` resizes the
    content to its size and pads bottom/right with zeros up to the padded size; boxes in
    `rel_yxyx` of the original image map to the padded frame by `content / padded` along each
    axis (see `to_padded_frame` / `from_padded_frame`).

    Args:
        resize_method: one of `"bilinear"`, `"legacy_bilinear"` (TF1 `ResizeBilinear`, as in
            TF OD API graphs), `"nearest"`, `"bicubic"`, `"area"`.
    """

    def __init__(self, resize_method="bilinear"):
        if resize_method not in RESIZE_METHODS:
            raise ValueError(
                f"resize_method must be one of {RESIZE_METHODS}, got {resize_method!r}"
            )
        self.resize_method = resize_method

    def content_and_padded_size(self, height, width):
        """Returns `((content_h, content_w), (padded_h, padded_w))` for an input image size."""
        raise NotImplementedError

    def __call__(self, images):
        """Resizes a batch.

        Args:
            images: float `[batch, height, width, 3]`, raw pixel values.

        Returns:
            `(resized, scale)`: float32 `[batch, padded_h, padded_w, 3]` and float32 `[2]`, the
            `(content_h / padded_h, content_w / padded_w)` fraction of the output the image fills.
        """
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        content, padded = self.content_and_padded_size(shape[1], shape[2])
        resized = resize_images(images, content, self.resize_method)
        # Subclasses return the same tuple for both when there is no padding.
        if content is not padded:
            resized = tf.image.pad_to_bounding_box(resized, 0, 0, padded[0], padded[1])
        scale = tf.cast(tf.stack(content), tf.float32) / tf.cast(tf.stack(padded), tf.float32)
        return resized, scale

    def get_config(self):
        return {"resize_method": self.resize_method}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def to_padded_frame(boxes, scale):
    """Maps `rel_yxyx` boxes `[..., 4]` of the original image into the resized, padded frame."""
    return boxes * tf.tile(scale, [2])


def from_padded_frame(boxes, scale):
    """Maps `rel_yxyx` boxes `[..., 4]` of the padded frame back to the original image."""
    return boxes / tf.tile(scale, [2])
