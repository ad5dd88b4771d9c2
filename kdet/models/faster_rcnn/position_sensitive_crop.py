"""Position-sensitive RoI pooling of R-FCN: each bin of a box reads its own channel group."""

import tensorflow as tf


def position_sensitive_crop_regions(features, boxes, crop_size, num_spatial_bins):
    """Position-sensitive crop of every box, averaged over its bins and their samples.

    Each box is split into `bins_y x bins_x` bins; bin `(i, j)` is bilinearly cropped
    (`tf.image.crop_and_resize`: relative coordinate `y` samples the map at `y * (h - 1)`) to
    `crop_size / num_spatial_bins` samples from the channel group `i * bins_x + j` of
    `features` (the channels split into `bins_y * bins_x` consecutive groups). The crops of
    all bins are averaged, then their samples: R-FCN's position-sensitive RoI pooling with
    average voting, as the TF OD API's `batch_position_sensitive_crop_regions(...,
    global_pool=True)` (equal on boxes inside the map, as the clipped proposals are; beyond
    its edges, the TF OD API's static-shape crop weights each of a sample's 4 neighbours
    apart where `tf.image.crop_and_resize` zeroes the whole sample).

    Args:
        features: float `[B, h, w, C]`, `C` a multiple of `bins_y * bins_x`.
        boxes: float32 `[B, R, 4]` `rel_yxyx` of the map's frame (padding rows are cropped
            too; their values mean nothing).
        crop_size: `(crop_height, crop_width)`, multiples of `num_spatial_bins`.
        num_spatial_bins: `(bins_y, bins_x)`, each at least 1.

    Returns:
        float32 `[B, R, C // (bins_y * bins_x)]`.

    Reference:
        [Dai et al., 2016](https://arxiv.org/abs/1605.06409); TF OD API
        `utils/ops.py` (`position_sensitive_crop_regions`).
    """
    bins_y, bins_x = check_bins(crop_size, num_spatial_bins)
    total_bins = bins_y * bins_x
    channels = features.shape[-1]
    if channels is None or channels % total_bins:
        raise ValueError(
            f"position_sensitive_crop_regions: the features' {channels} channels must be a "
            f"multiple of the {bins_y} x {bins_x} spatial bins"
        )
    bin_crop_size = (crop_size[0] // bins_y, crop_size[1] // bins_x)
    batch, num_boxes = tf.shape(boxes)[0], tf.shape(boxes)[1]
    flat_boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    box_indices = tf.repeat(tf.range(batch), num_boxes)
    ymin, xmin, ymax, xmax = tf.unstack(flat_boxes, axis=1)
    step_y = (ymax - ymin) / bins_y
    step_x = (xmax - xmin) / bins_x
    groups = tf.split(tf.cast(features, tf.float32), total_bins, axis=-1)
    pooled = 0.0
    for bin_y in range(bins_y):
        for bin_x in range(bins_x):
            bin_boxes = tf.stack(
                [
                    ymin + bin_y * step_y,
                    xmin + bin_x * step_x,
                    ymin + (bin_y + 1) * step_y,
                    xmin + (bin_x + 1) * step_x,
                ],
                axis=1,
            )
            crops = tf.image.crop_and_resize(
                groups[bin_y * bins_x + bin_x], bin_boxes, box_indices, bin_crop_size
            )
            pooled += tf.reduce_mean(crops, axis=[1, 2])
    return tf.reshape(pooled / total_bins, [batch, num_boxes, channels // total_bins])


def check_bins(crop_size, num_spatial_bins):
    """`num_spatial_bins` as a tuple, after checking it divides `crop_size`.

    Raises:
        ValueError: a bin count below 1, or a crop dimension it does not divide.
    """
    bins = tuple(int(value) for value in num_spatial_bins)
    crop = tuple(int(value) for value in crop_size)
    if len(bins) != 2 or len(crop) != 2:
        raise ValueError(
            f"crop_size and num_spatial_bins are (height, width) pairs; got {crop_size} and "
            f"{num_spatial_bins}"
        )
    for bins_of, crop_of in zip(bins, crop):
        if bins_of < 1 or crop_of % bins_of:
            raise ValueError(
                f"num_spatial_bins {bins} must be at least 1 and divide crop_size {crop}"
            )
    return bins
