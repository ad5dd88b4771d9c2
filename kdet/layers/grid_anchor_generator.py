"""Faster R-CNN first-stage anchors: one grid of scales x aspect ratios."""

import keras

from kdet.layers.anchor_generator import AnchorGenerator
from kdet.layers.anchor_generator import anchor_sizes
from kdet.layers.anchor_generator import aspect_ratio_major_pairs


@keras.saving.register_keras_serializable(package="kdet")
class GridAnchorGenerator(AnchorGenerator):
    """Anchors of every scale and aspect ratio on one feature map, as in Faster R-CNN's RPN.

    Anchor sizes and strides are in pixels (the TF OD API `grid_anchor_generator` math): an
    anchor of scale `s` and aspect ratio `r` (width / height) is
    `s * base_height / sqrt(r)` high and `s * base_width * sqrt(r)` wide, and the anchors at grid
    location `(i, j)` are centred on `(i * stride_y + offset_y, j * stride_x + offset_x)`.
    `generate` divides by the image size and returns normalized `rel_yxyx`. The `k = len(scales)
    * len(aspect_ratios)` anchors of a location are ordered aspect ratio first, scale fastest.
    Clipping anchors to the image is the model's job, not the generator's.

    Args:
        scales: sequence of floats. Anchor scales relative to `base_anchor_size`. Defaults to
            `(0.5, 1.0, 2.0)`.
        aspect_ratios: sequence of floats. Width / height ratios. Defaults to `(0.5, 1.0, 2.0)`.
        base_anchor_size: `(height, width)` in pixels of the anchor with scale 1 and aspect
            ratio 1. Defaults to `(256, 256)`.
        anchor_stride: `(y, x)` distance in pixels between the centres of neighbouring grid
            locations, the feature map's output stride. Defaults to `(16, 16)`.
        anchor_offset: `(y, x)` centre in pixels of the anchors at grid location `(0, 0)`.
            Defaults to `(0, 0)`, the TF OD API default.

    Example:
    ```python
    generator = kdet.layers.GridAnchorGenerator(scales=(0.25, 0.5, 1.0, 2.0))
    (anchors,) = generator.generate([(40, 40)], image_height=640, image_width=640)
    anchors.shape  # (19200, 4): 40 * 40 locations * 12 anchors, rel_yxyx
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `object_detection/anchor_generators/grid_anchor_generator.py`.
    """

    def __init__(
        self,
        scales=(0.5, 1.0, 2.0),
        aspect_ratios=(0.5, 1.0, 2.0),
        base_anchor_size=(256, 256),
        anchor_stride=(16, 16),
        anchor_offset=(0, 0),
    ):
        for name, pair in [
            ("base_anchor_size", base_anchor_size),
            ("anchor_stride", anchor_stride),
            ("anchor_offset", anchor_offset),
        ]:
            if len(pair) != 2:
                raise ValueError(f"{name} must be a (y, x) pair of floats; got {pair}.")
        self.scales = tuple(float(s) for s in scales)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.base_anchor_size = tuple(float(v) for v in base_anchor_size)
        self.anchor_stride = tuple(float(v) for v in anchor_stride)
        self.anchor_offset = tuple(float(v) for v in anchor_offset)

    def num_anchors_per_location(self):
        return [len(self.scales) * len(self.aspect_ratios)]

    def get_config(self):
        return {
            "scales": self.scales,
            "aspect_ratios": self.aspect_ratios,
            "base_anchor_size": self.base_anchor_size,
            "anchor_stride": self.anchor_stride,
            "anchor_offset": self.anchor_offset,
        }

    def _anchor_grid(self, index, feature_map_shape, image_height, image_width):
        heights, widths = anchor_sizes(
            *aspect_ratio_major_pairs(self.scales, self.aspect_ratios), self.base_anchor_size
        )
        stride = (self.anchor_stride[0] / image_height, self.anchor_stride[1] / image_width)
        offset = (self.anchor_offset[0] / image_height, self.anchor_offset[1] / image_width)
        return heights / image_height, widths / image_width, stride, offset
