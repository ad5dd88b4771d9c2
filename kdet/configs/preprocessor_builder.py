"""TF OD API `data_augmentation_options { … }` (`preprocessor.proto`) → kdet augmentation steps.

One schema per `PreprocessingStep` of `preprocessor.proto`: its field names, types and the
defaults the TF OD API applies, checked with `kdet.configs.field_reader` so that a typo or a
wrong type is a `ConfigError` at its line. A step reads as `(name, params)` for
`kdet.data.augmentation.build_augmentation`, whose ops take the proto's field names as keyword
arguments; `build_augmentation` then checks the values, and its error is reported at the step's
line too. Steps kdet refuses (`REFUSED_STEPS`) fail with the reason.
"""

import difflib

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Enum
from kdet.configs.field_reader import Float
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import Node
from kdet.configs.field_reader import Repeated
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.configs.text_format import Identifier
from kdet.configs.text_format import Message
from kdet.data.augmentation import REFUSED_STEPS
from kdet.data.augmentation import build_augmentation
from kdet.data.augmentation.geometric import JITTER_MODES
from kdet.data.augmentation.geometric import RESIZE_METHODS

_FLIP = {"keypoint_flip_permutation": Repeated(Int()), "probability": Float()}
_CROP = {
    "min_object_covered": Float(),
    "min_aspect_ratio": Float(),
    "max_aspect_ratio": Float(),
    "min_area": Float(),
    "max_area": Float(),
    "overlap_thresh": Float(),
    "clip_boxes": Bool(),
    "random_coef": Float(),
}
_PADDED_SIZE_RATIOS = {
    "min_padded_size_ratio": Repeated(Float()),
    "max_padded_size_ratio": Repeated(Float()),
}

# `preprocessor.proto` step → `{field: spec}`. Unset fields are not passed: the op's Python
# defaults are the TF OD API's (see each op's docstring for the few builder quirks).
STEP_SCHEMAS = {
    "random_horizontal_flip": _FLIP,
    "random_vertical_flip": _FLIP,
    "random_rotation90": {"keypoint_rot_permutation": Repeated(Int()), "probability": Float()},
    "random_pixel_value_scale": {"minval": Float(), "maxval": Float()},
    "random_image_scale": {"min_scale_ratio": Float(), "max_scale_ratio": Float()},
    "random_rgb_to_gray": {"probability": Float()},
    "random_adjust_brightness": {"max_delta": Float()},
    "random_adjust_contrast": {"min_delta": Float(), "max_delta": Float()},
    "random_adjust_hue": {"max_delta": Float()},
    "random_adjust_saturation": {"min_delta": Float(), "max_delta": Float()},
    "random_distort_color": {"color_ordering": Int()},
    "random_jitter_boxes": {"ratio": Float(), "jitter_mode": Enum(JITTER_MODES)},
    "random_crop_image": _CROP,
    "random_pad_image": {
        "min_image_height": Int(minimum=1),
        "min_image_width": Int(minimum=1),
        "max_image_height": Int(minimum=1),
        "max_image_width": Int(minimum=1),
        "pad_color": Repeated(Float()),
    },
    "random_absolute_pad_image": {
        "max_height_padding": Int(minimum=0),
        "max_width_padding": Int(minimum=0),
        "pad_color": Repeated(Float()),
    },
    "random_crop_pad_image": {**_CROP, **_PADDED_SIZE_RATIOS, "pad_color": Repeated(Float())},
    "random_crop_to_aspect_ratio": {
        "aspect_ratio": Float(),
        "overlap_thresh": Float(),
        "clip_boxes": Bool(),
    },
    "random_black_patches": {
        "max_black_patches": Int(minimum=0),
        "probability": Float(),
        "size_to_image_ratio": Float(),
    },
    "random_resize_method": {"target_height": Int(minimum=1), "target_width": Int(minimum=1)},
    "resize_image": {
        "new_height": Int(minimum=1),
        "new_width": Int(minimum=1),
        "method": Enum(tuple(RESIZE_METHODS)),
    },
    "ssd_random_crop": {"operations": Repeated(SubMessage())},
    "ssd_random_crop_pad": {"operations": Repeated(SubMessage())},
    "ssd_random_crop_fixed_aspect_ratio": {
        "operations": Repeated(SubMessage()),
        "aspect_ratio": Float(),
    },
    "ssd_random_crop_pad_fixed_aspect_ratio": {
        "operations": Repeated(SubMessage()),
        "aspect_ratio": Float(),
        **_PADDED_SIZE_RATIOS,
    },
    "random_self_concat_image": {
        "concat_vertical_probability": Float(),
        "concat_horizontal_probability": Float(),
    },
    "drop_label_probabilistically": {"label": Int(required=True), "drop_probability": Float()},
    "remap_labels": {"original_labels": Repeated(Int(), True), "new_label": Int(required=True)},
    "random_jpeg_quality": {
        "random_coef": Float(),
        "min_jpeg_quality": Int(),
        "max_jpeg_quality": Int(),
    },
    "random_downscale_to_target_pixels": {
        "random_coef": Float(),
        "min_target_pixels": Int(),
        "max_target_pixels": Int(),
    },
    "random_patch_gaussian": {
        "random_coef": Float(),
        "min_patch_size": Int(),
        "max_patch_size": Int(),
        "min_gaussian_stddev": Float(),
        "max_gaussian_stddev": Float(),
    },
    "random_square_crop_by_scale": {
        "max_border": Int(minimum=0),
        "scale_min": Float(),
        "scale_max": Float(),
        "num_scales": Int(minimum=1),
    },
    "random_scale_crop_and_pad_to_square": {
        "output_size": Int(minimum=1),
        "scale_min": Float(),
        "scale_max": Float(),
    },
    "adjust_gamma": {"gamma": Float(), "gain": Float()},
}

# The `operations { … }` messages of the SSD crops, with the proto2 defaults the TF OD API reads
# for unset fields (0 for numbers, `clip_boxes` true): when a config lists operations, each one
# means exactly what it means to the TF OD API (a degenerate range is then an error).
_SSD_OPERATION = {
    **{name: Float(default=0.0) for name in _CROP if name != "clip_boxes"},
    "clip_boxes": Bool(default=True),
}
_OPERATION_SCHEMAS = {
    "ssd_random_crop": _SSD_OPERATION,
    "ssd_random_crop_pad_fixed_aspect_ratio": _SSD_OPERATION,
    "ssd_random_crop_fixed_aspect_ratio": {
        name: spec
        for name, spec in _SSD_OPERATION.items()
        if name not in ("min_aspect_ratio", "max_aspect_ratio")
    },
    "ssd_random_crop_pad": {
        **_SSD_OPERATION,
        **_PADDED_SIZE_RATIOS,
        "pad_color_r": Float(default=0.0),
        "pad_color_g": Float(default=0.0),
        "pad_color_b": Float(default=0.0),
    },
}


def _operation(node, schema):
    """The keyword arguments of one SSD crop operation, proto defaults filled in."""
    fields = read(node, schema)
    params = {}
    for name, spec in schema.items():
        if spec.repeated:
            # An unset ratio pair keeps the op's default (1, 1) / (2, 2).
            if fields.has(name):
                params[name] = fields[name]
        else:
            params[name] = fields[name]
    return params


def read_augmentation_step(node):
    """`(name, params)` from one `data_augmentation_options { step { … } }` message.

    Args:
        node: the `Node` of a `data_augmentation_options` message.

    Returns:
        `(name, params)` for `kdet.data.augmentation.build_augmentation` (already checked by it).

    Raises:
        ConfigError: at the offending line for anything but exactly one known step, a field
            `preprocessor.proto` does not have or of the wrong type, a refused step (with the
            reason) or a value the op refuses.
    """
    fields = node.message.fields
    if len(fields) != 1 or not isinstance(fields[0].value, Message):
        raise node.error(f"'{node.path}' needs exactly one augmentation step {{ ... }}")
    step = fields[0]
    path = f"{node.path}.{step.name}"
    if step.name in REFUSED_STEPS:
        raise node.error(
            f"'{path}': kdet does not support this step: {REFUSED_STEPS[step.name]}", step
        )
    if step.name not in STEP_SCHEMAS:
        close = difflib.get_close_matches(step.name, list(STEP_SCHEMAS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise node.error(
            f"'{path}': not a preprocessor.proto step kdet supports{hint}; kdet supports "
            f"{', '.join(sorted(STEP_SCHEMAS))}",
            step,
        )
    schema = STEP_SCHEMAS[step.name]
    step_node = Node(step.value, path)
    values = read(step_node, schema)
    params = {}
    for name in schema:
        if not values.has(name):
            continue
        if name == "operations":
            params[name] = [
                _operation(Node(message, values.path(name)), _OPERATION_SCHEMAS[step.name])
                for message in values[name]
            ]
        elif isinstance(values[name], Identifier):  # an enum name: plain text for the op
            params[name] = str(values[name])
        else:
            params[name] = values[name]
    try:
        build_augmentation([(step.name, params)])
    except ValueError as error:
        raise node.error(f"'{path}': {error}", step) from None
    return step.name, params


__all__ = ["STEP_SCHEMAS", "read_augmentation_step"]
