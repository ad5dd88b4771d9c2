"""Faster R-CNN RoI pooling on one feature map: bilinear crop-and-resize, then max-pool."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class CropAndResizeRoIPooler(keras.layers.Layer):
    """Fixed-size features for every region of interest of a batch, from one feature map.

    Each RoI is cropped from its own image's feature map and bilinearly resized to
    `crop_size` x `crop_size` with `tf.image.crop_and_resize` (normalized coordinate 0 is the
    first feature cell, 1 the last, as in the TF OD API), then max-pooled with
    `maxpool_kernel_size` / `maxpool_stride` ("valid" padding). This is the TF OD API
    second-stage input: `initial_crop_size: 14`, `maxpool_kernel_size: 2`,
    `maxpool_stride: 2` give 7x7 crops. Padding RoIs (-1 rows) lie outside the map and give
    all-zero crops, never NaN; the model gives them zero weight.

    Args:
        crop_size: int. Side of the bilinear crop (TF OD API `initial_crop_size`). Defaults
            to `14`.
        maxpool_kernel_size: int. Max-pool window; `1` with stride `1` disables pooling.
            Defaults to `2`.
        maxpool_stride: int. Max-pool stride. Defaults to `2`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: float `[batch, height, width, channels]`.
        rois: float `[batch, num_rois, 4]`, `rel_yxyx` of the input the features come from,
            padded with -1 rows.

    Returns:
        `[batch, num_rois, pooled, pooled, channels]` in the dtype of `features`, where
        `pooled = (crop_size - maxpool_kernel_size) // maxpool_stride + 1`.

    Example:
    ```python
    pooler = kdet.layers.CropAndResizeRoIPooler()
    crops = pooler(tf.zeros([2, 38, 50, 1024]), tf.zeros([2, 300, 4]))
    crops.shape  # (2, 300, 7, 7, 1024)
    ```

    Reference:
        [Huang et al., 2017](https://arxiv.org/abs/1611.10012), section 3.1.1; TF OD API
        `object_detection/meta_architectures/faster_rcnn_meta_arch.py`
        (`_compute_second_stage_input_feature_maps`).
    """

    def __init__(self, crop_size=14, maxpool_kernel_size=2, maxpool_stride=2, **kwargs):
        # No autocast: under a mixed-precision policy boxes must stay float32.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if min(crop_size, maxpool_kernel_size, maxpool_stride) < 1:
            raise ValueError(
                "crop_size, maxpool_kernel_size and maxpool_stride must be positive ints; got "
                f"{crop_size}, {maxpool_kernel_size} and {maxpool_stride}."
            )
        if maxpool_kernel_size > crop_size:
            raise ValueError(
                f"maxpool_kernel_size={maxpool_kernel_size} does not fit in a crop of "
                f"crop_size={crop_size}."
            )
        self.crop_size = crop_size
        self.maxpool_kernel_size = maxpool_kernel_size
        self.maxpool_stride = maxpool_stride

    def call(self, features, rois):
        rois = tf.cast(rois, tf.float32)
        box_indices = tf.repeat(tf.range(tf.shape(rois)[0]), tf.shape(rois)[1])
        # float32 in: `crop_and_resize` has no bfloat16 kernel (mixed_bfloat16 training).
        crops = tf.image.crop_and_resize(
            tf.cast(features, tf.float32),
            tf.reshape(rois, [-1, 4]),
            box_indices,
            [self.crop_size, self.crop_size],
        )
        crops = tf.cast(crops, features.dtype)
        crops = tf.nn.max_pool2d(
            crops, self.maxpool_kernel_size, self.maxpool_stride, padding="VALID"
        )
        return unflatten_rois(crops, rois)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "crop_size": self.crop_size,
                "maxpool_kernel_size": self.maxpool_kernel_size,
                "maxpool_stride": self.maxpool_stride,
            }
        )
        return config


def unflatten_rois(crops, rois):
    """`[batch * num_rois, ...]` → `[batch, num_rois, ...]`, keeping static dims."""
    batch_size = rois.shape[0] if rois.shape[0] is not None else tf.shape(rois)[0]
    num_rois = rois.shape[1] if rois.shape[1] is not None else tf.shape(rois)[1]
    crop_dims = [-1 if dim is None else dim for dim in crops.shape[1:]]
    return tf.reshape(crops, [batch_size, num_rois, *crop_dims])
