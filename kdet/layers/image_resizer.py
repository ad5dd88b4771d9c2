"""Base class of the image resizers: raw images of any size → the model's input size."""

import tensorflow as tf

from kdet.boxes.box_ops import is_padding

# TF1's `ResizeBilinear` (align_corners=False, half_pixel_centers=False) samples at
# `x_in = x_out * in / out`, not at pixel centres as `tf.image.resize` does. Models converted
# from TF OD API graphs were trained with it; any other resize shifts their scores by up to 0.15.
LEGACY_BILINEAR = "legacy_bilinear"
# TF1's `ResizeNearestNeighbor` and `ResizeBicubic` with the same sampling: the TF OD API's
# `NEAREST_NEIGHBOR` and `BICUBIC` resize methods.
LEGACY_NEAREST = "legacy_nearest"
LEGACY_BICUBIC = "legacy_bicubic"
_LEGACY_OPS = {
    LEGACY_BILINEAR: tf.raw_ops.ResizeBilinear,
    LEGACY_NEAREST: tf.raw_ops.ResizeNearestNeighbor,
    LEGACY_BICUBIC: tf.raw_ops.ResizeBicubic,
}
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area", *_LEGACY_OPS)
# Keys of the dict of already resized images (and their content sizes) detectors also take,
# see `ObjectDetector.resize_inputs`; the TF OD API's `image` and `true_image_shape`.
RESIZED_IMAGES = "resized_images"
TRUE_IMAGE_SHAPE = "true_image_shape"


def resize_images(images, size, method):
    """Resizes a batch of images with one of `RESIZE_METHODS`.

    Args:
        images: float32 `[batch, height, width, channels]`.
        size: `(height, width)` of the output, ints or int scalar tensors.
        method: one of `RESIZE_METHODS`.

    Returns:
        float32 `[batch, size[0], size[1], channels]`.
    """
    if method in _LEGACY_OPS:
        resized = _LEGACY_OPS[method](
            images=images, size=tf.stack(size), align_corners=False, half_pixel_centers=False
        )
        return tf.cast(resized, tf.float32)
    return tf.image.resize(images, size, method=method)


class ImageResizer:
    """Resizes raw images to a model's input and reports where the image content lies.

    Subclasses implement `content_and_padded_size(height, width)`. `resize` resizes a batch
    of equally sized images to the content size and pads bottom/right up to the padded size;
    it is the one implementation of the resize: the model's `preprocess` calls it on raw
    batches, and `kdet.data.read_tfrecords(image_resizer=...)` (what `kdet.configs.
    train_dataset` / `eval_dataset` use for aspect-keeping resizers) calls it on each image,
    so training, evaluation and prediction feed the network the same pixels. Boxes in
    `rel_yxyx` of the original image map to the padded frame by `content / padded` along each
    axis (see `to_padded_frame` / `from_padded_frame`).

    Args:
        resize_method: one of `"bilinear"`, `"nearest"`, `"bicubic"`, `"area"`, or
            `"legacy_bilinear"`, `"legacy_nearest"`, `"legacy_bicubic"` (TF1 `ResizeBilinear`,
            `ResizeNearestNeighbor`, `ResizeBicubic` without half-pixel centres, as in TF OD
            API graphs).
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

    def pad_values(self):
        """float32 `[3]`: the value of the padding pixels per channel (zeros by default)."""
        return tf.zeros([3], tf.float32)

    def resize(self, images):
        """Resizes a batch of equally sized raw images and pads it.

        Args:
            images: `[batch, height, width, 3]`, raw pixel values 0..255, any dtype.

        Returns:
            `(resized, true_image_shape)`: float32 `[batch, padded_h, padded_w, 3]` (content
            top-left, padding bottom/right with `pad_values()`) and int32 `[batch, 2]`, the
            `(content_h, content_w)` of each image (the TF OD API's `true_image_shape`).
        """
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        content, padded = self.content_and_padded_size(shape[1], shape[2])
        resized = resize_images(images, content, self.resize_method)
        # Subclasses return the same tuple for both when there is no padding.
        if content is not padded:
            pad_values = self.pad_values()
            resized = tf.image.pad_to_bounding_box(
                resized - pad_values, 0, 0, padded[0], padded[1]
            ) + pad_values
        true_image_shape = tf.tile(tf.stack(content)[None], [shape[0], 1])
        return resized, tf.cast(true_image_shape, tf.int32)

    def resize_one(self, image):
        """`resize` of one image `[height, width, 3]`: `(resized [padded_h, padded_w, 3],
        true_image_shape int32 [2])`, for a `tf.data` map."""
        resized, true_image_shape = self.resize(image[None])
        return resized[0], true_image_shape[0]

    def __call__(self, images):
        """Resizes a batch.

        Args:
            images: float `[batch, height, width, 3]`, raw pixel values.

        Returns:
            `(resized, scale)`: float32 `[batch, padded_h, padded_w, 3]` and float32 `[2]`, the
            `(content_h / padded_h, content_w / padded_w)` fraction of the output the image fills.
        """
        resized, true_image_shape = self.resize(images)
        return resized, content_fraction(true_image_shape[0], resized)

    def get_config(self):
        return {"resize_method": self.resize_method}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def image_part(inputs):
    """The images of detector inputs (tensors or `tf.TypeSpec`s): `inputs` itself, or the
    `"resized_images"` of the dict of resized images and true shapes."""
    return inputs[RESIZED_IMAGES] if isinstance(inputs, dict) else inputs


def content_fraction(true_image_shape, resized):
    """float32 `[..., 2]`: `true_image_shape` `[..., 2]` over the `(height, width)` of the
    padded batch `resized` `[batch, padded_h, padded_w, 3]`: the part of it the content fills."""
    padded = tf.cast(tf.shape(resized)[1:3], tf.float32)
    return tf.cast(true_image_shape, tf.float32) / padded


def _frame_scale(boxes, scale):
    """`scale` `[2]` or per image `[batch, 2]` as `[..., 4]` factors that broadcast against
    `boxes` `[batch, ..., 4]`."""
    scale = tf.cast(scale, tf.float32)
    if scale.shape.rank == 1:
        return tf.tile(scale, [2])
    factors = tf.tile(scale, [1, 2])
    return tf.reshape(factors, [-1] + [1] * (boxes.shape.rank - 2) + [4])


def to_padded_frame(boxes, scale):
    """Maps `rel_yxyx` boxes `[batch, ..., 4]` of the original image into the resized, padded
    frame; `scale`: the content fraction, `[2]` or per image `[batch, 2]`."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    return tf.where(is_padding(boxes)[..., None], boxes, boxes * _frame_scale(boxes, scale))


def from_padded_frame(boxes, scale):
    """Maps `rel_yxyx` boxes `[batch, ..., 4]` of the padded frame back to the original image;
    `scale`: the content fraction, `[2]` or per image `[batch, 2]`."""
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    return tf.where(is_padding(boxes)[..., None], boxes, boxes / _frame_scale(boxes, scale))
