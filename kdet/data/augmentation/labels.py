"""Label-only steps of the TF OD API `preprocessor.proto`: drop or remap ground-truth classes.

Every op takes one decoded example `(image, boxes, labels)` — image `[height, width, 3]`, boxes
float32 `[num_boxes, 4]` `rel_yxyx`, labels int `[num_boxes]` (1-based label-map ids) or a dict
of per-object fields with them (`object_fields`) — and returns it with the image untouched.

Reference: TF OD API `object_detection/core/preprocessor.py` and `protos/preprocessor.proto`.
"""

import tensorflow as tf

from kdet.data.augmentation import _common
from kdet.data.augmentation import object_fields


def drop_label_probabilistically(image, boxes, labels, label=None, drop_probability=1.0, seed=None):
    """Drops each box of class `label` (with its label) with probability `drop_probability`.

    TF OD API `drop_label_probabilistically`: one draw per box, so some boxes of the class may
    stay; boxes of other classes always stay.

    Args:
        image: `[height, width, 3]`, returned as is.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx`.
        labels: int `[num_boxes]`.
        label: int, required. The label-map id to drop.
        drop_probability: float. Chance of dropping each such box. Defaults to `1.0`.
        seed: optional int `[2]` stateless seed; None uses the global generator.

    Returns:
        `(image, boxes, labels)` without the dropped boxes (and their other per-object fields).

    Example:
    >>> image, boxes, labels = drop_label_probabilistically(image, boxes, labels, label=3,
    ...                                                     drop_probability=0.5)
    """
    if label is None:
        raise ValueError("drop_label_probabilistically: set `label`, the class id to drop")
    ids = object_fields.class_labels(labels)
    draws = _common.uniform_tensor(seed, 0, tf.shape(ids))
    keep = (draws > drop_probability) | tf.not_equal(ids, tf.cast(label, ids.dtype))
    return image, tf.boolean_mask(boxes, keep), object_fields.select(labels, keep)


def remap_labels(image, boxes, labels, original_labels=(), new_label=None, seed=None):
    """Replaces every label in `original_labels` by `new_label` (TF OD API `remap_labels`).

    Args:
        image: `[height, width, 3]`, returned as is.
        boxes: float32 `[num_boxes, 4]`, returned as is.
        labels: int `[num_boxes]`.
        original_labels: list of ints, the label-map ids to replace.
        new_label: int, required. The id they become.
        seed: unused (the op is deterministic); accepted like every op's.

    Returns:
        `(image, boxes, labels)`.

    Example:
    >>> image, boxes, labels = remap_labels(image, boxes, labels, original_labels=[3, 4],
    ...                                     new_label=2)
    """
    if new_label is None:
        raise ValueError("remap_labels: set `new_label`, the class id the labels become")
    ids = object_fields.class_labels(labels)
    original = tf.constant(list(original_labels), ids.dtype)
    matches = tf.reduce_any(tf.equal(ids[:, tf.newaxis], original[tf.newaxis]), axis=1)
    remapped = tf.where(matches, tf.cast(new_label, ids.dtype), ids)
    return image, boxes, object_fields.with_class_labels(labels, remapped)
