"""Builds an augmentation function from TF OD API `data_augmentation_options`.

A TF OD API `train_config` lists its augmentation as `PreprocessingStep`s
(`data_augmentation_options { random_horizontal_flip { } }`); `build_augmentation` takes the same
steps as Python data — the step names and parameter names of `protos/preprocessor.proto` — and
returns one function that applies them in order to a decoded example.
"""

import difflib
import inspect

from kdet.data.augmentation import _common
from kdet.data.augmentation import crops
from kdet.data.augmentation import geometric
from kdet.data.augmentation import photometric

# The augmentation ops `build_augmentation` knows, by TF OD API `preprocessor.proto` step
# name: `{name: function(image, boxes, labels, ..., seed=None)}`.
AUGMENTATION_OPS = {
    op.__name__: op
    for op in (
        geometric.random_horizontal_flip,
        geometric.random_vertical_flip,
        geometric.random_rotation90,
        geometric.random_pad_image,
        crops.random_crop_image,
        crops.ssd_random_crop,
        crops.random_scale_crop_and_pad_to_square,
        photometric.random_adjust_brightness,
        photometric.random_adjust_contrast,
        photometric.random_adjust_hue,
        photometric.random_adjust_saturation,
        photometric.random_distort_color,
        photometric.random_rgb_to_gray,
        photometric.random_jpeg_quality,
    )
}
_EXAMPLE_ARGS = ("image", "boxes", "labels", "seed")


def _did_you_mean(name, choices):
    close = difflib.get_close_matches(name, choices, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _parse_step(step):
    """Returns `(name, params)` from `{name: params}`, `(name, params)` or `name`."""
    if isinstance(step, str):
        return step, {}
    if isinstance(step, dict) and len(step) == 1:
        [(name, params)] = step.items()
    elif isinstance(step, (tuple, list)) and len(step) == 2 and isinstance(step[0], str):
        name, params = step
    else:
        raise ValueError(
            f"augmentation step {step!r} is not understood; expected {{name: params}}, "
            "(name, params) or name, e.g. {'random_horizontal_flip': {}}"
        )
    return name, dict(params or {})


def _validate(name, params):
    if name not in AUGMENTATION_OPS:
        raise ValueError(
            f"unknown augmentation {name!r}.{_did_you_mean(name, AUGMENTATION_OPS)} "
            f"kdet implements these TF OD API preprocessor.proto steps: {sorted(AUGMENTATION_OPS)}"
        )
    accepted = [
        parameter
        for parameter in inspect.signature(AUGMENTATION_OPS[name]).parameters
        if parameter not in _EXAMPLE_ARGS
    ]
    for parameter in params:
        if parameter not in accepted:
            raise ValueError(
                f"{name}: unknown parameter {parameter!r}.{_did_you_mean(parameter, accepted)} "
                f"Valid parameters: {accepted}"
            )


def build_augmentation(options):
    """Builds one augmentation function from a list of TF OD API augmentation steps.

    Args:
        options: list of steps, each `{name: params}`, `(name, params)` or `name`, with the step
            and parameter names of the TF OD API `preprocessor.proto` (see `AUGMENTATION_OPS`).

    Returns:
        A function `(image, boxes, labels, seed=None) -> (image, boxes, labels)` for one decoded
        example (image `[height, width, 3]` uint8 or float 0..255, boxes float32
        `[num_boxes, 4]` `rel_yxyx`, labels `[num_boxes]`), usable in `tf.data.Dataset.map`.
        With an int `[2]` `seed` every step is stateless and the result reproducible.

    Raises:
        ValueError: for an unknown step or parameter name (with the valid names).

    Example:
    >>> augment = build_augmentation([
    ...     {"random_horizontal_flip": {}},
    ...     {"ssd_random_crop": {}},
    ...     ("random_adjust_brightness", {"max_delta": 0.2}),
    ... ])
    >>> image, boxes, labels = augment(image, boxes, labels)
    """
    if not isinstance(options, (list, tuple)):
        raise ValueError(
            f"augmentation options must be a list of steps, got {type(options).__name__}: "
            f"{options!r}"
        )
    steps = [_parse_step(step) for step in options]
    for name, params in steps:
        _validate(name, params)

    def augment(image, boxes, labels, seed=None):
        for index, (name, params) in enumerate(steps):
            image, boxes, labels = AUGMENTATION_OPS[name](
                image, boxes, labels, seed=_common.sub_seed(seed, index), **params
            )
        return image, boxes, labels

    return augment
