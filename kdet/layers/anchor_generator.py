"""Base class of the anchor generators: one anchor grid per feature map."""

import tensorflow as tf


class AnchorGenerator:
    """Places a fixed set of anchors on every location of one or more feature maps.

    The number of anchors per location is fixed at construction; the feature map and image sizes
    arrive at `generate` time, so one generator serves any input resolution. Anchors of one
    feature map are ordered row-major over `(y, x)` and then by the anchor index within the
    location, the layout of the TF OD API, so box predictors trained there line up one-to-one.

    Subclasses implement `num_anchors_per_location`, `get_config` and `_anchor_grid`, which gives
    the anchor sizes, stride and offset of one feature map in the output units.

    Reference:
        TF OD API `object_detection/core/anchor_generator.py`.
    """

    def num_anchors_per_location(self):
        """Returns the number of anchors per spatial location, one int per feature map."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def generate(self, feature_map_shapes, image_height, image_width):
        """Generates the anchors of every feature map.

        Args:
            feature_map_shapes: list of `(height, width)` pairs, Python ints or int scalar
                tensors, one per feature map, finest first.
            image_height: int or int scalar tensor. Height of the input image in pixels.
            image_width: int or int scalar tensor. Width of the input image in pixels.

        Returns:
            A list with one float32 tensor `[height * width * num_anchors_per_location, 4]` per
            feature map, `rel_yxyx` (normalized to the image; pixel `yxyx` where a subclass is
            built with `normalize_coordinates=False`).
        """
        num_anchors = self.num_anchors_per_location()
        if len(feature_map_shapes) != len(num_anchors):
            raise ValueError(
                f"{type(self).__name__} expects {len(num_anchors)} feature map shape(s), one per "
                f"entry of num_anchors_per_location()={num_anchors}; got "
                f"feature_map_shapes={feature_map_shapes}."
            )
        image_height = tf.cast(image_height, tf.float32)
        image_width = tf.cast(image_width, tf.float32)
        anchors = []
        for index, shape in enumerate(feature_map_shapes):
            if len(shape) != 2:
                raise ValueError(
                    f"feature_map_shapes[{index}] must be a (height, width) pair; got {shape}."
                )
            heights, widths, stride, offset = self._anchor_grid(
                index, shape, image_height, image_width
            )
            anchors.append(_tile_anchors(shape, heights, widths, stride, offset))
        return anchors

    def _anchor_grid(self, index, feature_map_shape, image_height, image_width):
        """Returns `(heights, widths, (stride_y, stride_x), (offset_y, offset_x))` of one map.

        `heights` and `widths` are float32 `[num_anchors_per_location]`; the offset is the centre
        of the anchors at grid location `(0, 0)`; all in the units of the output boxes.
        """
        raise NotImplementedError


def anchor_sizes(scales, aspect_ratios, base_anchor_size):
    """Heights and widths of anchors given paired scales and aspect ratios (width / height).

    Args:
        scales: sequence of floats, one per anchor.
        aspect_ratios: sequence of floats, one per anchor, paired with `scales`.
        base_anchor_size: `(height, width)` pair of floats or float32 scalar tensors.

    Returns:
        `(heights, widths)`, float32 `[num_anchors]` each: `scale * base_height / sqrt(ratio)`
        and `scale * base_width * sqrt(ratio)`, so every aspect ratio keeps the scale's area.
    """
    scales = tf.constant(scales, tf.float32)
    ratio_sqrts = tf.sqrt(tf.constant(aspect_ratios, tf.float32))
    return scales / ratio_sqrts * base_anchor_size[0], scales * ratio_sqrts * base_anchor_size[1]


def aspect_ratio_major_pairs(scales, aspect_ratios):
    """Every `(scale, aspect_ratio)` pair, aspect ratio outermost and scale fastest.

    The order the TF OD API grid anchor generators use (its `ops.meshgrid(scales,
    aspect_ratios)` flattened row-major), which pretrained box predictors depend on.

    Returns:
        `(scales, aspect_ratios)`, two tuples of length `len(scales) * len(aspect_ratios)`.
    """
    pairs = [(scale, ratio) for ratio in aspect_ratios for scale in scales]
    return tuple(scale for scale, _ in pairs), tuple(ratio for _, ratio in pairs)


def _tile_anchors(feature_map_shape, heights, widths, stride, offset):
    """Centres the `k` anchor sizes on every location of a grid: `[h * w * k, 4]`, `yxyx`."""
    grid_height, grid_width = feature_map_shape
    y_centers = tf.range(grid_height, dtype=tf.float32) * stride[0] + offset[0]
    x_centers = tf.range(grid_width, dtype=tf.float32) * stride[1] + offset[1]
    y_centers, x_centers = tf.meshgrid(y_centers, x_centers, indexing="ij")
    y_centers = y_centers[..., tf.newaxis]
    x_centers = x_centers[..., tf.newaxis]
    half_heights = 0.5 * heights
    half_widths = 0.5 * widths
    boxes = tf.stack(
        [
            y_centers - half_heights,
            x_centers - half_widths,
            y_centers + half_heights,
            x_centers + half_widths,
        ],
        axis=-1,
    )
    return tf.reshape(boxes, [-1, 4])
