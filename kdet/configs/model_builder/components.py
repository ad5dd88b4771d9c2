"""TF OD API image resizer, anchor generator, box coder, matcher and similarity messages."""

import functools

from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder
from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Fixed
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import Switch
from kdet.configs.field_reader import read
from kdet.configs.field_reader import read_one_of
from kdet.configs.model_builder.common import construct
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.image_resizer import LEGACY_BICUBIC
from kdet.layers.image_resizer import LEGACY_BILINEAR
from kdet.layers.image_resizer import LEGACY_NEAREST
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator
from kdet.targets.argmax_matcher import ArgmaxMatcher

# -- image resizers -------------------------------------------------------------------------

# The TF OD API resizes with TF1 `resize_images` (no half-pixel centres): kdet's `legacy_*`
# methods run the same TF ops; TF1 and TF2 `AREA` are one op.
_RESIZE_METHOD = Enum(
    {
        "BILINEAR": LEGACY_BILINEAR,
        "NEAREST_NEIGHBOR": LEGACY_NEAREST,
        "BICUBIC": LEGACY_BICUBIC,
        "AREA": "area",
    },
    default="BILINEAR",
)
_GRAYSCALE = Fixed(
    Bool(default=False),
    False,
    "kdet's feature extractors take 3-channel images (the TF OD API feeds a 1-channel image "
    "to a network built for it)",
)


def _build_fixed_shape_resizer(node):
    """Reads a TF OD API `FixedShapeResizer` → `kdet.layers.FixedShapeResizer`."""
    fields = read(
        node,
        {
            "height": Int(default=300, minimum=1),
            "width": Int(default=300, minimum=1),
            "resize_method": _RESIZE_METHOD,
            "convert_to_grayscale": _GRAYSCALE,
        },
    )
    return FixedShapeResizer(fields["height"], fields["width"], fields["resize_method"])


def _build_keep_aspect_ratio_resizer(node):
    """Reads a TF OD API `KeepAspectRatioResizer` → `kdet.layers.KeepAspectRatioResizer`."""
    fields = read(
        node,
        {
            "min_dimension": Int(default=600, minimum=1),
            "max_dimension": Int(default=1024, minimum=1),
            "resize_method": _RESIZE_METHOD,
            "pad_to_max_dimension": Bool(default=False),
            "convert_to_grayscale": _GRAYSCALE,
            "per_channel_pad_value": Repeated(Float()),
        },
    )
    pad_value = {}
    if fields["per_channel_pad_value"]:
        pad_value["per_channel_pad_value"] = fields["per_channel_pad_value"]
    return construct(
        node,
        KeepAspectRatioResizer,
        min_dimension=fields["min_dimension"],
        max_dimension=fields["max_dimension"],
        pad_to_max_dimension=fields["pad_to_max_dimension"],
        resize_method=fields["resize_method"],
        **pad_value,
    )


_IMAGE_RESIZERS = {
    "fixed_shape_resizer": _build_fixed_shape_resizer,
    "keep_aspect_ratio_resizer": _build_keep_aspect_ratio_resizer,
}


def build_image_resizer(node):
    """Reads a TF OD API `ImageResizer` (a oneof) → a kdet image resizer."""
    chosen = read_one_of(node, tuple(_IMAGE_RESIZERS))
    return _IMAGE_RESIZERS[chosen.name](chosen)

# -- anchor generators ----------------------------------------------------------------------


def _build_ssd_anchor_generator(node):
    """Reads a TF OD API `SsdAnchorGenerator` → `kdet.layers.SSDAnchorGenerator`."""
    fields = read(
        node,
        {
            "num_layers": Int(default=6, minimum=1),
            "min_scale": Float(default=0.2),
            "max_scale": Float(default=0.95),
            "scales": Repeated(Float()),
            "aspect_ratios": Repeated(Float()),
            "interpolated_scale_aspect_ratio": Float(default=1.0),
            "reduce_boxes_in_lowest_layer": Bool(default=True),
            "base_anchor_height": Float(default=1.0),
            "base_anchor_width": Float(default=1.0),
            "height_stride": Repeated(Int()),
            "width_stride": Repeated(Int()),
            "height_offset": Repeated(Int()),
            "width_offset": Repeated(Int()),
        },
    )
    return construct(
        node,
        SSDAnchorGenerator,
        num_layers=fields["num_layers"],
        min_scale=fields["min_scale"],
        max_scale=fields["max_scale"],
        scales=fields["scales"] or None,
        aspect_ratios=fields["aspect_ratios"],
        interpolated_scale_aspect_ratio=fields["interpolated_scale_aspect_ratio"],
        base_anchor_size=(fields["base_anchor_height"], fields["base_anchor_width"]),
        anchor_strides=_per_layer_pairs(fields, "height_stride", "width_stride"),
        anchor_offsets=_per_layer_pairs(fields, "height_offset", "width_offset"),
        reduce_boxes_in_lowest_layer=fields["reduce_boxes_in_lowest_layer"],
    )


def _per_layer_pairs(fields, y_name, x_name):
    """Zips two repeated fields into `(y, x)` pairs, or None when both are empty."""
    ys, xs = fields[y_name], fields[x_name]
    if not ys and not xs:
        return None
    if len(ys) != len(xs):
        raise fields.error(
            x_name if len(xs) > len(ys) else y_name,
            f"'{fields.node.path}' has {len(ys)} {y_name} and {len(xs)} {x_name} values; "
            "they pair up per layer, so their numbers must be equal",
        )
    return list(zip(ys, xs))


def _build_multiscale_anchor_generator(node, normalize_coordinates, frame):
    """Reads a TF OD API `MultiscaleAnchorGenerator` → `MultiscaleGridAnchorGenerator`.

    `normalize_coordinates` is the only value the meta-architecture works with in the TF OD API
    (`frame` says why); kdet's anchor generators always return normalized anchors.
    """
    fields = read(
        node,
        {
            "min_level": Int(default=3),
            "max_level": Int(default=7),
            "anchor_scale": Float(default=4.0),
            "aspect_ratios": Repeated(Float(), required=True),
            "scales_per_octave": Int(default=2, minimum=1),
            "normalize_coordinates": Fixed(Bool(default=True), normalize_coordinates, frame),
        },
    )
    return construct(
        node,
        MultiscaleGridAnchorGenerator,
        min_level=fields["min_level"],
        max_level=fields["max_level"],
        anchor_scale=fields["anchor_scale"],
        aspect_ratios=fields["aspect_ratios"],
        scales_per_octave=fields["scales_per_octave"],
    )


def _build_grid_anchor_generator(node):
    """Reads a TF OD API `GridAnchorGenerator` → `kdet.layers.GridAnchorGenerator`."""
    fields = read(
        node,
        {
            "height": Int(default=256),
            "width": Int(default=256),
            "height_stride": Int(default=16),
            "width_stride": Int(default=16),
            "height_offset": Int(default=0),
            "width_offset": Int(default=0),
            "scales": Repeated(Float(), required=True),
            "aspect_ratios": Repeated(Float(), required=True),
            # In grid_anchor_generator.proto, but the TF OD API's anchor generator builder
            # never reads it: accepted without effect.
            "octaves": Int(default=1),
        },
    )
    return construct(
        node,
        GridAnchorGenerator,
        scales=fields["scales"],
        aspect_ratios=fields["aspect_ratios"],
        base_anchor_size=(fields["height"], fields["width"]),
        anchor_stride=(fields["height_stride"], fields["width_stride"]),
        anchor_offset=(fields["height_offset"], fields["width_offset"]),
    )


SSD_ANCHOR_GENERATORS = {
    "ssd_anchor_generator": _build_ssd_anchor_generator,
    "multiscale_anchor_generator": functools.partial(
        _build_multiscale_anchor_generator,
        normalize_coordinates=True,
        frame="the TF OD API SSD takes normalized anchors",
    ),
}
FASTER_RCNN_ANCHOR_GENERATORS = {
    "grid_anchor_generator": _build_grid_anchor_generator,
    "multiscale_anchor_generator": functools.partial(
        _build_multiscale_anchor_generator,
        normalize_coordinates=False,
        frame="the TF OD API Faster R-CNN takes anchors in pixels (kdet normalizes them itself)",
    ),
}


def build_anchor_generator(node, builders):
    """Reads a TF OD API `AnchorGenerator` (a oneof) with one of `builders`.

    Returns:
        `(name of the chosen generator, the kdet anchor generator)`.
    """
    chosen = read_one_of(node, tuple(builders))
    return chosen, builders[chosen.name](chosen)

# -- SSD components -------------------------------------------------------------------------


def build_box_coder(node):
    """Reads a TF OD API `BoxCoder` (`faster_rcnn_box_coder` only) → `FasterRcnnBoxCoder`."""
    chosen = read_one_of(node, ("faster_rcnn_box_coder",))
    fields = read(
        chosen,
        {
            "y_scale": Float(default=10.0),
            "x_scale": Float(default=10.0),
            "height_scale": Float(default=5.0),
            "width_scale": Float(default=5.0),
        },
    )
    scales = tuple(fields[name] for name in ("y_scale", "x_scale", "height_scale", "width_scale"))
    return construct(chosen, FasterRcnnBoxCoder, scale_factors=scales)


def build_matcher(node):
    """Reads a TF OD API `Matcher` (`argmax_matcher` only) → `kdet.targets.ArgmaxMatcher`."""
    chosen = read_one_of(node, ("argmax_matcher",))
    fields = read(
        chosen,
        {
            "matched_threshold": Float(default=0.5),
            "unmatched_threshold": Float(default=0.5),
            "ignore_thresholds": Bool(default=False),
            "negatives_lower_than_unmatched": Bool(default=True),
            "force_match_for_each_row": Bool(default=False),
            "use_matmul_gather": Switch(),
        },
    )
    thresholds = (fields["matched_threshold"], fields["unmatched_threshold"])
    if fields["ignore_thresholds"]:
        thresholds = (None, None)
    return construct(
        chosen,
        ArgmaxMatcher,
        matched_threshold=thresholds[0],
        unmatched_threshold=thresholds[1],
        negatives_lower_than_unmatched=fields["negatives_lower_than_unmatched"],
        force_match_for_each_row=fields["force_match_for_each_row"],
    )


def read_similarity_calculator(node):
    """Reads a TF OD API `RegionSimilarityCalculator`: kdet matches by IoU only."""
    read(read_one_of(node, ("iou_similarity",)), {})
