"""Builds an augmentation function from TF OD API `data_augmentation_options`.

A TF OD API `train_config` lists its augmentation as `PreprocessingStep`s
(`data_augmentation_options { random_horizontal_flip { } }`); `build_augmentation` takes the same
steps as Python data — the step names and parameter names of `protos/preprocessor.proto` — and
returns one function that applies them in order to a decoded example.
"""

import difflib
import inspect

import tensorflow as tf

from kdet.data.augmentation import _common
from kdet.data.augmentation import crops
from kdet.data.augmentation import geometric
from kdet.data.augmentation import labels
from kdet.data.augmentation import object_fields
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
        geometric.random_absolute_pad_image,
        geometric.random_image_scale,
        geometric.random_resize_method,
        geometric.resize_image,
        geometric.random_downscale_to_target_pixels,
        geometric.random_self_concat_image,
        geometric.random_jitter_boxes,
        crops.random_crop_image,
        crops.random_crop_pad_image,
        crops.random_crop_to_aspect_ratio,
        crops.ssd_random_crop,
        crops.ssd_random_crop_pad,
        crops.ssd_random_crop_fixed_aspect_ratio,
        crops.ssd_random_crop_pad_fixed_aspect_ratio,
        crops.random_square_crop_by_scale,
        crops.random_scale_crop_and_pad_to_square,
        photometric.random_pixel_value_scale,
        photometric.random_adjust_brightness,
        photometric.random_adjust_contrast,
        photometric.random_adjust_hue,
        photometric.random_adjust_saturation,
        photometric.random_distort_color,
        photometric.random_rgb_to_gray,
        photometric.random_jpeg_quality,
        photometric.random_black_patches,
        photometric.random_patch_gaussian,
        photometric.adjust_gamma,
        labels.drop_label_probabilistically,
        labels.remap_labels,
    )
}

# `preprocessor.proto` steps kdet refuses, and why: each would break the data contract of
# kdet's input pipeline (raw 0..255 RGB images, normalized `rel_yxyx` boxes, labels) or needs
# data kdet examples do not carry.
REFUSED_STEPS = {
    "normalize_image": (
        "kdet models normalize raw 0..255 images in their own preprocess (the feature "
        "extractor's normalization), so normalizing in the data pipeline would normalize twice; "
        "remove the step"
    ),
    "subtract_channel_mean": (
        "kdet models normalize raw 0..255 images in their own preprocess (the feature "
        "extractor's normalization), so subtracting a mean in the data pipeline would shift "
        "the values twice; remove the step"
    ),
    "scale_boxes_to_pixel_coordinates": (
        "augmentation works on normalized rel_yxyx boxes, and kdet's input pipeline converts "
        "them to the model's bounding_box_format in pixels itself; remove the step"
    ),
    "rgb_to_gray": (
        "it makes a 1-channel image and kdet models take 3-channel RGB images; for the same "
        "look use random_rgb_to_gray { probability: 1.0 }, which keeps 3 equal channels"
    ),
    "convert_class_logits_to_softmax": (
        "it converts multiclass_scores (distillation soft labels), which kdet examples do not carry"
    ),
    "autoaugment_image": (
        "kdet does not implement the AutoAugment detection policies (v0..v3) yet"
    ),
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
    if name in REFUSED_STEPS:
        raise ValueError(f"kdet does not support the augmentation {name!r}: {REFUSED_STEPS[name]}")
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


def _frozen(value):
    """A hashable stand-in for a parameter value (lists and dicts of scalars)."""
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


def _trace(name, params, num_keypoints):
    """Traces one step on symbolic inputs, so that bad values fail now, not in `tf.data`."""
    op = AUGMENTATION_OPS[name]
    traced = tf.function(
        lambda image, boxes, labels: op(image, boxes, labels, **params), autograph=False
    )
    labels = tf.TensorSpec([None], tf.int32)
    if num_keypoints:
        labels = {
            object_fields.LABELS: labels,
            object_fields.KEYPOINTS: tf.TensorSpec([None, num_keypoints, 2], tf.float32),
            object_fields.KEYPOINT_VISIBILITIES: tf.TensorSpec([None, num_keypoints], tf.int32),
        }
    traced.get_concrete_function(
        tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, 4], tf.float32), labels
    )


# Steps already traced, by `(name, _frozen(params), num_keypoints)`: building the same step
# again is free.
_TRACED = set()


def _check_values(name, params, num_keypoints):
    try:
        key = (name, _frozen(params), num_keypoints)
        hash(key)
    except TypeError:  # e.g. a tensor parameter: trace without remembering it
        key = None
    if key is not None and key in _TRACED:
        return
    try:
        _trace(name, params, num_keypoints)
    except (ValueError, TypeError) as error:
        message = str(error)
        raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
    if key is not None:
        _TRACED.add(key)


def build_augmentation(options, num_keypoints=0):
    """Builds one augmentation function from a list of TF OD API augmentation steps.

    Args:
        options: list of steps, each `{name: params}`, `(name, params)` or `name`, with the step
            and parameter names of the TF OD API `preprocessor.proto` (see `AUGMENTATION_OPS`).
        num_keypoints: int. Keypoints per object of the examples it will get (0: box-only);
            the steps are checked against them (a flip needs `keypoint_flip_permutation` of
            that length). Defaults to `0`.

    Returns:
        A function `(image, boxes, labels, seed=None) -> (image, boxes, labels)` for one decoded
        example (image `[height, width, 3]` uint8 or float 0..255, boxes float32
        `[num_boxes, 4]` `rel_yxyx`, labels `[num_boxes]` or, with keypoints or masks, a dict
        of per-object fields `{"labels", "keypoints", "keypoint_visibilities", "masks"}` — see
        `kdet.data.augmentation.object_fields`), usable in `tf.data.Dataset.map`.
        With an int `[2]` `seed` every step is stateless and the result reproducible.

    Raises:
        ValueError: for an unknown step or parameter name (with the valid names), a step of
            `REFUSED_STEPS` (with the reason), or a parameter value the op refuses (every step
            is traced once on symbolic inputs, so this happens here, not inside `tf.data`).

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
        _check_values(name, params, num_keypoints)

    # The ops are written with explicit tf.cond / tf.switch_case: AutoGraph has nothing to
    # convert, and skipping it makes tracing inside `tf.data.Dataset.map` several times faster.
    @tf.autograph.experimental.do_not_convert
    def augment(image, boxes, labels, seed=None):
        for index, (name, params) in enumerate(steps):
            image, boxes, labels = AUGMENTATION_OPS[name](
                image, boxes, labels, seed=_common.sub_seed(seed, index), **params
            )
        return image, boxes, labels

    return augment
