"""SSD default boxes: one anchor grid per feature map, scales spread from finest to coarsest."""

import math

import keras
import tensorflow as tf

from kdet.layers.anchor_generator import AnchorGenerator
from kdet.layers.anchor_generator import anchor_sizes


@keras.saving.register_keras_serializable(package="kdet")
class SSDAnchorGenerator(AnchorGenerator):
    """SSD anchors ("default boxes") for `num_layers` feature maps, finest first.

    Layer `i` gets the scale `s_i`, spread linearly from `min_scale` to `max_scale` unless
    `scales` are given, and places one anchor per aspect ratio plus, when
    `interpolated_scale_aspect_ratio > 0`, one anchor of scale `sqrt(s_i * s_{i+1})` (with
    `s_{num_layers} = 1`) at that aspect ratio. With `reduce_boxes_in_lowest_layer` the finest
    layer gets only `(0.1, 1.0), (s_0, 2.0), (s_0, 0.5)` as `(scale, aspect_ratio)`. This is the
    TF OD API `ssd_anchor_generator` (`create_ssd_anchors` + `MultipleGridAnchorGenerator`).

    Sizes are normalized to the image's shorter side: an anchor is `scale * base_height /
    sqrt(r) * min(H, W) / H` high and `scale * base_width * sqrt(r) * min(H, W) / W` wide in
    `rel_yxyx`, so a unit-aspect anchor is square in pixels on non-square images. Anchors are not
    clipped to the image.

    Args:
        num_layers: int. Number of feature maps. Defaults to `6`.
        min_scale: float. Scale of the finest layer (fraction of the shorter image side).
            Defaults to `0.2`.
        max_scale: float. Scale of the coarsest layer. Defaults to `0.95`.
        scales: optional sequence of `num_layers` floats, overriding `min_scale`/`max_scale`.
            Defaults to `None`.
        aspect_ratios: sequence of floats, width / height ratios placed on every location of
            the non-reduced layers, in this order. Defaults to `(1.0, 2.0, 0.5, 3.0, 1/3)`, the
            order of the TF OD API `ssd_mobilenet_v2_coco` config.
        interpolated_scale_aspect_ratio: float. Aspect ratio of the extra interpolated-scale
            anchor; `0` leaves it out. Defaults to `1.0`.
        base_anchor_size: `(height, width)` multiplying every anchor size. Defaults to
            `(1.0, 1.0)`.
        anchor_strides: optional list of `num_layers` `(y, x)` strides in pixels. Defaults to
            `None`: `1 / feature map size` in normalized coordinates.
        anchor_offsets: optional list of `num_layers` `(y, x)` pixel centres of the anchors at
            grid location `(0, 0)`. Defaults to `None`: half the stride.
        reduce_boxes_in_lowest_layer: bool. Use the three fixed boxes on the finest layer.
            Defaults to `True`.

    Example:
    ```python
    generator = kdet.layers.SSDAnchorGenerator()
    shapes = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = generator.generate(shapes, image_height=300, image_width=300)
    sum(a.shape[0] for a in anchors)  # 1917, as in ssd_mobilenet_v2_coco
    ```

    Reference:
        [Liu et al., 2016](https://arxiv.org/abs/1512.02325) section 2.2; TF OD API
        `object_detection/anchor_generators/multiple_grid_anchor_generator.py`.
    """

    def __init__(
        self,
        num_layers=6,
        min_scale=0.2,
        max_scale=0.95,
        scales=None,
        aspect_ratios=(1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
        interpolated_scale_aspect_ratio=1.0,
        base_anchor_size=(1.0, 1.0),
        anchor_strides=None,
        anchor_offsets=None,
        reduce_boxes_in_lowest_layer=True,
    ):
        if scales is not None and len(scales) != num_layers:
            raise ValueError(
                f"scales must hold one scale per layer (num_layers={num_layers}); got "
                f"{len(scales)}: {scales}."
            )
        if len(base_anchor_size) != 2:
            raise ValueError(
                f"base_anchor_size must be a (height, width) pair; got {base_anchor_size}."
            )
        self.num_layers = num_layers
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.scales = None if scales is None else tuple(float(s) for s in scales)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.interpolated_scale_aspect_ratio = interpolated_scale_aspect_ratio
        self.base_anchor_size = tuple(float(v) for v in base_anchor_size)
        self.anchor_strides = _per_layer_pairs("anchor_strides", anchor_strides, num_layers)
        self.anchor_offsets = _per_layer_pairs("anchor_offsets", anchor_offsets, num_layers)
        self.reduce_boxes_in_lowest_layer = reduce_boxes_in_lowest_layer
        self._box_specs = self._layer_box_specs()

    def _layer_box_specs(self):
        """`(scales, aspect_ratios)` of the anchors of every layer."""
        if self.scales is None:
            # max() keeps a single layer at min_scale instead of dividing by zero.
            steps = max(self.num_layers - 1, 1)
            scales = [
                self.min_scale + (self.max_scale - self.min_scale) * i / steps
                for i in range(self.num_layers)
            ]
        else:
            scales = list(self.scales)
        scales.append(1.0)
        box_specs = []
        for layer in range(self.num_layers):
            scale, next_scale = scales[layer], scales[layer + 1]
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
            else:
                specs = [(scale, ratio) for ratio in self.aspect_ratios]
                if self.interpolated_scale_aspect_ratio > 0.0:
                    specs.append(
                        (math.sqrt(scale * next_scale), self.interpolated_scale_aspect_ratio)
                    )
            box_specs.append(tuple(zip(*specs)))
        return box_specs

    def num_anchors_per_location(self):
        return [len(layer_scales) for layer_scales, _ in self._box_specs]

    def get_config(self):
        return {
            "num_layers": self.num_layers,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "scales": self.scales,
            "aspect_ratios": self.aspect_ratios,
            "interpolated_scale_aspect_ratio": self.interpolated_scale_aspect_ratio,
            "base_anchor_size": self.base_anchor_size,
            "anchor_strides": self.anchor_strides,
            "anchor_offsets": self.anchor_offsets,
            "reduce_boxes_in_lowest_layer": self.reduce_boxes_in_lowest_layer,
        }

    def _anchor_grid(self, index, feature_map_shape, image_height, image_width):
        min_side = tf.minimum(image_height, image_width)
        base_anchor_size = (
            self.base_anchor_size[0] * min_side / image_height,
            self.base_anchor_size[1] * min_side / image_width,
        )
        heights, widths = anchor_sizes(*self._box_specs[index], base_anchor_size)
        if self.anchor_strides is None:
            stride = (
                1.0 / tf.cast(feature_map_shape[0], tf.float32),
                1.0 / tf.cast(feature_map_shape[1], tf.float32),
            )
        else:
            stride_y, stride_x = self.anchor_strides[index]
            stride = (stride_y / image_height, stride_x / image_width)
        if self.anchor_offsets is None:
            offset = (0.5 * stride[0], 0.5 * stride[1])
        else:
            offset_y, offset_x = self.anchor_offsets[index]
            offset = (offset_y / image_height, offset_x / image_width)
        return heights, widths, stride, offset


def _per_layer_pairs(name, pairs, num_layers):
    """Checks an optional per-layer list of `(y, x)` pairs and returns it as tuples of floats."""
    if pairs is None:
        return None
    if len(pairs) != num_layers or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            f"{name} must be a list of num_layers={num_layers} (y, x) pairs; got {pairs}."
        )
    return tuple((float(y), float(x)) for y, x in pairs)
