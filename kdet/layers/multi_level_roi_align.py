"""RoIAlign on a feature pyramid: each RoI is cropped from the level that fits its size."""

import math

import keras
import tensorflow as tf

from kdet.boxes.box_ops import area
from kdet.layers.crop_and_resize_roi_pooler import unflatten_rois

# Added before the floor, as torchvision's LevelMapper does, so that a RoI exactly on a level
# boundary (e.g. 224 pixels at the canonical level) is not pushed a level down by rounding.
_LEVEL_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="kdet")
class MultiLevelRoIAlign(keras.layers.Layer):
    """Fixed-size RoIAlign features for every region of interest, from an FPN pyramid.

    A RoI of `h` x `w` pixels of the (padded) input goes to level
    `floor(canonical_level + log2(sqrt(h * w) / canonical_size))`, clamped to
    `[min_level, max_level]` (FPN paper, equation 1). Its `crop_size` x `crop_size` output
    cells each average `sampling_ratio` x `sampling_ratio` bilinear samples taken at the
    centres of the cell's sub-cells (RoIAlign), with the TF OD API coordinate convention of
    `tf.image.crop_and_resize`: normalized coordinate 0 is the first feature cell and 1 the
    last. All RoIs are cropped in one `tf.image.crop_and_resize` call from the levels padded to
    a common size and stacked, so shapes stay static and each RoI costs one crop. RoIs are
    expected inside `[0, 1]` (clipped proposals); padding RoIs (-1 rows) give all-zero crops,
    never NaN.

    Args:
        min_level: int. Pyramid level of `feature_maps[0]` (stride `2**min_level`).
        max_level: int. Pyramid level of `feature_maps[-1]`.
        crop_size: int. Side of the output crops. Defaults to `7`.
        canonical_level: int. Level of a RoI of `canonical_size` pixels. Defaults to `4`.
        canonical_size: float. RoI size in pixels, `sqrt(h * w)`, mapped to
            `canonical_level` (the ImageNet pre-training size). Defaults to `224`.
        sampling_ratio: int. Bilinear samples per output cell along each axis. Defaults to
            `2` (Mask R-CNN, Detectron, torchvision); the TF OD API `multilevel_roi_align`
            takes 1.
        align_corners: bool. Put the first and last samples on the RoI's edges, as
            `tf.image.crop_and_resize` does (TF OD API `multilevel_matmul_crop_and_resize`),
            instead of at the centres of equal sub-cells (RoIAlign). Defaults to `False`.
        maxpool_kernel_size: int or None. A max pool of this size after the crop (TF OD API
            `maxpool_kernel_size`, with `maxpool_stride`); the output side is then
            `(crop_size - maxpool_kernel_size) // maxpool_stride + 1`. Defaults to `None`
            (no pool).
        maxpool_stride: int. Stride of that max pool. Defaults to `1`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        feature_maps: list of float tensors `[batch, height_l, width_l, channels]`, one per
            level `min_level..max_level`, finest first, all with the same channels.
        rois: float `[batch, num_rois, 4]`, `rel_yxyx` of the padded input, padded with -1.
        image_size: `(height, width)` of the padded input in pixels: an int `[2]` tensor, or
            Python ints passed as a keyword (Keras layers take only tensors positionally).

    Returns:
        `[batch, num_rois, side, side, channels]` in the dtype of the features, `side`
        `crop_size` (or the max-pooled size).

    Example:
    ```python
    roi_align = kdet.layers.MultiLevelRoIAlign(min_level=2, max_level=5)
    feature_maps = [tf.zeros([2, 256 // 2**level, 256 // 2**level, 64]) for level in range(2, 6)]
    crops = roi_align(feature_maps, tf.zeros([2, 100, 4]), image_size=(256, 256))
    crops.shape  # (2, 100, 7, 7, 64)
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144), section 4.2;
        [He et al., 2017](https://arxiv.org/abs/1703.06870), section 3; TF OD API
        `object_detection/utils/spatial_transform_ops.py` (`multilevel_roi_align`).
    """

    def __init__(
        self,
        min_level,
        max_level,
        crop_size=7,
        canonical_level=4,
        canonical_size=224,
        sampling_ratio=2,
        align_corners=False,
        maxpool_kernel_size=None,
        maxpool_stride=1,
        **kwargs,
    ):
        # No autocast: under a mixed-precision policy boxes must stay float32.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if min_level > max_level:
            raise ValueError(
                f"min_level must not exceed max_level; got min_level={min_level}, "
                f"max_level={max_level}."
            )
        if crop_size < 1 or sampling_ratio < 1:
            raise ValueError(
                "crop_size and sampling_ratio must be positive ints; got "
                f"crop_size={crop_size}, sampling_ratio={sampling_ratio}."
            )
        self.min_level = min_level
        self.max_level = max_level
        self.crop_size = crop_size
        self.canonical_level = canonical_level
        self.canonical_size = canonical_size
        self.sampling_ratio = sampling_ratio
        self.align_corners = bool(align_corners)
        self.maxpool_kernel_size = maxpool_kernel_size
        self.maxpool_stride = maxpool_stride

    def assign_levels(self, rois, image_size):
        """The pyramid level each RoI is cropped from.

        Args:
            rois: float `[batch, num_rois, 4]`, `rel_yxyx`, padded with -1.
            image_size: `(height, width)` of the padded input in pixels, ints or an int `[2]`
                tensor.

        Returns:
            int32 `[batch, num_rois]`, levels in `[min_level, max_level]`; padding and
            zero-area RoIs get `min_level`.
        """
        height = tf.cast(image_size[0], tf.float32)
        width = tf.cast(image_size[1], tf.float32)
        # Zero-area RoIs give log2(0) = -inf, which the clamp turns into min_level.
        size = tf.sqrt(area(rois) * height * width)
        level = tf.floor(
            self.canonical_level
            + tf.math.log(size / self.canonical_size) / math.log(2.0)
            + _LEVEL_EPSILON
        )
        level = tf.clip_by_value(level, float(self.min_level), float(self.max_level))
        return tf.cast(level, tf.int32)

    def call(self, feature_maps, rois, image_size):
        num_levels = self.max_level - self.min_level + 1
        if len(feature_maps) != num_levels:
            raise ValueError(
                f"MultiLevelRoIAlign expects {num_levels} feature maps, one per level "
                f"{self.min_level}..{self.max_level}; got {len(feature_maps)}."
            )
        channels = {features.shape[-1] for features in feature_maps}
        if len(channels) != 1:
            raise ValueError(
                "MultiLevelRoIAlign needs the same channels on every level; got shapes "
                f"{[tuple(features.shape) for features in feature_maps]}."
            )
        (channels,) = channels
        rois = tf.cast(rois, tf.float32)
        levels = self.assign_levels(rois, image_size) - self.min_level
        # One crop per RoI: the levels are padded to the finest map's size and stacked into
        # one batch of `batch * num_levels` maps, as the TF OD API `multilevel_roi_align` does.
        sizes = tf.stack([tf.shape(features)[1:3] for features in feature_maps])
        max_size = tf.reduce_max(sizes, axis=0)
        stacked = tf.stack(
            [
                tf.image.pad_to_bounding_box(features, 0, 0, max_size[0], max_size[1])
                for features in feature_maps
            ],
            axis=1,
        )
        stacked = tf.reshape(stacked, [-1, max_size[0], max_size[1], channels or -1])
        # crop_and_resize puts normalized 1 on the last cell, so a RoI's coordinates scale by
        # (level size - 1) / (padded size - 1) to stay on its own level's cells.
        scale = tf.math.divide_no_nan(
            tf.cast(tf.gather(sizes, levels) - 1, tf.float32),
            tf.cast(max_size - 1, tf.float32),
        )
        num_samples = self.crop_size * self.sampling_ratio
        if not self.align_corners:
            rois = _sample_centre_rois(rois, num_samples)
        boxes = rois * tf.tile(scale, [1, 1, 2])
        box_indices = tf.range(tf.shape(rois)[0])[:, tf.newaxis] * num_levels + levels
        # float32 in: `crop_and_resize` has no bfloat16 kernel (mixed_bfloat16 training).
        crops = tf.image.crop_and_resize(
            tf.cast(stacked, tf.float32),
            tf.reshape(boxes, [-1, 4]),
            tf.reshape(box_indices, [-1]),
            [num_samples, num_samples],
        )
        if self.sampling_ratio > 1:
            crops = tf.nn.avg_pool2d(
                crops, self.sampling_ratio, self.sampling_ratio, padding="VALID"
            )
        if self.maxpool_kernel_size:
            crops = tf.nn.max_pool2d(
                crops, self.maxpool_kernel_size, self.maxpool_stride, padding="VALID"
            )
        crops = tf.cast(crops, feature_maps[0].dtype)
        return unflatten_rois(crops, rois)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "min_level": self.min_level,
                "max_level": self.max_level,
                "crop_size": self.crop_size,
                "canonical_level": self.canonical_level,
                "canonical_size": self.canonical_size,
                "sampling_ratio": self.sampling_ratio,
                "align_corners": self.align_corners,
                "maxpool_kernel_size": self.maxpool_kernel_size,
                "maxpool_stride": self.maxpool_stride,
            }
        )
        return config


def _sample_centre_rois(rois, num_samples):
    """RoIs `[..., 4]` shrunk by half a sample step on every side.

    `tf.image.crop_and_resize` puts its first and last samples on the box edges; on the shrunk
    box its `num_samples` samples per axis fall on the centres of `num_samples` equal sub-cells
    of the RoI. Padding rows (zero size) stay as they are.
    """
    ymin, xmin, ymax, xmax = tf.unstack(rois, axis=-1)
    half_step_y = (ymax - ymin) / (2.0 * num_samples)
    half_step_x = (xmax - xmin) / (2.0 * num_samples)
    return tf.stack(
        [ymin + half_step_y, xmin + half_step_x, ymax - half_step_y, xmax - half_step_x],
        axis=-1,
    )
