"""FPN / RetinaNet anchors: one grid per pyramid level, sized by the level's stride."""

import keras
import tensorflow as tf

from kdet.layers.anchor_generator import AnchorGenerator
from kdet.layers.anchor_generator import anchor_sizes
from kdet.layers.anchor_generator import aspect_ratio_major_pairs


@keras.saving.register_keras_serializable(package="kdet")
class MultiscaleGridAnchorGenerator(AnchorGenerator):
    """Anchors for pyramid levels `min_level..max_level`, as in RetinaNet and SSD FPN models.

    Level `l` has stride `2**l` pixels and base anchor size `anchor_scale * 2**l`; every location
    gets `len(aspect_ratios) * scales_per_octave` anchors of scales `2**(i / scales_per_octave)`,
    ordered aspect ratio first and scale fastest (TF OD API `multiscale_anchor_generator`).
    Anchor centres sit at `stride / 2 + i * stride` along an image side that is a multiple of
    the stride, and at `i * stride` otherwise, the TF OD API rule for integer image sizes (which
    kdet also applies to image sizes given as tensors, where the TF OD API always offsets).

    Args:
        min_level: int. Finest pyramid level. Defaults to `3`.
        max_level: int. Coarsest pyramid level. Defaults to `7`.
        anchor_scale: float. Base anchor size in units of the level's stride. Defaults to `4.0`.
        aspect_ratios: sequence of floats, width / height ratios. Defaults to `(1.0, 2.0, 0.5)`.
        scales_per_octave: int. Number of intermediate scales per octave. Defaults to `2`.
        normalize_coordinates: bool. Return `rel_yxyx`; `False` returns pixel `yxyx`.
            Defaults to `True`.

    Example:
    ```python
    generator = kdet.layers.MultiscaleGridAnchorGenerator()
    shapes = [(80, 80), (40, 40), (20, 20), (10, 10), (5, 5)]
    anchors = generator.generate(shapes, image_height=640, image_width=640)
    sum(a.shape[0] for a in anchors)  # 51150 = 6 * (6400 + 1600 + 400 + 100 + 25)
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1708.02002); TF OD API
        `object_detection/anchor_generators/multiscale_grid_anchor_generator.py`.
    """

    def __init__(
        self,
        min_level=3,
        max_level=7,
        anchor_scale=4.0,
        aspect_ratios=(1.0, 2.0, 0.5),
        scales_per_octave=2,
        normalize_coordinates=True,
    ):
        if min_level > max_level:
            raise ValueError(
                f"min_level must not exceed max_level; got min_level={min_level}, "
                f"max_level={max_level}."
            )
        self.min_level = min_level
        self.max_level = max_level
        self.anchor_scale = anchor_scale
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.scales_per_octave = scales_per_octave
        self.normalize_coordinates = normalize_coordinates

    def num_anchors_per_location(self):
        num_levels = self.max_level - self.min_level + 1
        return num_levels * [len(self.aspect_ratios) * self.scales_per_octave]

    def get_config(self):
        return {
            "min_level": self.min_level,
            "max_level": self.max_level,
            "anchor_scale": self.anchor_scale,
            "aspect_ratios": self.aspect_ratios,
            "scales_per_octave": self.scales_per_octave,
            "normalize_coordinates": self.normalize_coordinates,
        }

    def _anchor_grid(self, index, feature_map_shape, image_height, image_width):
        stride = float(2 ** (self.min_level + index))
        octave_scales = [2 ** (i / self.scales_per_octave) for i in range(self.scales_per_octave)]
        base_size = self.anchor_scale * stride
        heights, widths = anchor_sizes(
            *aspect_ratio_major_pairs(octave_scales, self.aspect_ratios), (base_size, base_size)
        )
        offset = (_centre_offset(image_height, stride), _centre_offset(image_width, stride))
        if not self.normalize_coordinates:
            return heights, widths, (stride, stride), offset
        return (
            heights / image_height,
            widths / image_width,
            (stride / image_height, stride / image_width),
            (offset[0] / image_height, offset[1] / image_width),
        )


def _centre_offset(image_side, stride):
    """Half a stride where the image side is a multiple of the stride, else 0 (TF OD API rule)."""
    return tf.where(tf.math.floormod(image_side, stride) == 0.0, stride / 2.0, 0.0)
