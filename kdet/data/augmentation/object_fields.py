"""Per-object fields that move with the boxes through augmentation (keypoints, and the like).

Every augmentation op takes `(image, boxes, labels)`. For box-only examples `labels` is the
label tensor `[num_boxes]`. Examples with more per-object ground truth pass, in its place, a
dict of tensors whose first axis is the box axis: `"labels"` and, for keypoints,
`"keypoints"` float32 `[num_boxes, num_keypoints, 2]` (y, x) in `rel_yxyx` coordinates of the
image, and `"keypoint_visibilities"` int32 `[num_boxes, num_keypoints]` (COCO `v`: 0 not
labelled, 1 labelled not visible, 2 visible), and for instance masks `"masks"` `[num_boxes,
height, width]` (uint8 or float, in pixels of the image). The op returns the same structure.

The ops keep every field aligned with the boxes through a few primitives:
- `select`: boxes dropped (crops, label drops) drop their row of every field;
- `concat`: boxes repeated (self-concatenation) repeat their rows;
- `change_frame`, `resize`, `flip_left_right`, `flip_up_down`, `rot90`: the geometric moves,
  which each `FieldGroup` in `FIELD_GROUPS` applies to its own fields. Keypoints leaving the
  image in a crop become not labelled (visibility 0); masks are cropped, padded with zeros and
  resized (nearest neighbour) with the image, as the TF OD API preprocessor moves `masks`.

A new kind of per-object field is one more `FieldGroup` in `FIELD_GROUPS`: the ops need no
change.
"""

import tensorflow as tf

LABELS = "labels"
KEYPOINTS = "keypoints"
KEYPOINT_VISIBILITIES = "keypoint_visibilities"
MASKS = "masks"


def class_labels(objects):
    """The label tensor `[num_boxes]` of `objects` (a label tensor or a dict of fields)."""
    return objects[LABELS] if isinstance(objects, dict) else objects


def with_class_labels(objects, labels):
    """`objects` with its label tensor replaced by `labels`."""
    return {**objects, LABELS: labels} if isinstance(objects, dict) else labels


def select(objects, keep):
    """Keeps the rows of every field where the bool `[num_boxes]` `keep` is true."""
    return tf.nest.map_structure(lambda field: tf.boolean_mask(field, keep), objects)


def concat(parts):
    """Concatenates the rows of several `objects` of one structure (boxes concatenated alike)."""
    return tf.nest.map_structure(lambda *fields: tf.concat(fields, 0), *parts)


class FieldGroup:
    """How a group of per-object fields moves when the image moves.

    Subclasses name their fields in `keys` and implement each move on a dict holding exactly
    those fields (every field of the group must be present), returning the moved dict.
    """

    keys = ()

    def change_frame(self, fields, window, image_size, prune):
        """The image becomes `window` (`rel_yxyx` `[4]` of the old image; may reach outside
        it: padding) of int32 `[2]` size `image_size`; `prune`: parts outside it are lost."""
        raise NotImplementedError

    def resize(self, fields, image_size):
        """The image is resized (stretched) to int32 `[2]` `image_size`."""
        raise NotImplementedError

    def flip_left_right(self, fields, keypoint_permutation):
        raise NotImplementedError

    def flip_up_down(self, fields, keypoint_permutation):
        raise NotImplementedError

    def rot90(self, fields, keypoint_permutation):
        """The image is rotated 90° counter-clockwise."""
        raise NotImplementedError


def _permuted(values, permutation, what):
    """`values[:, permutation]`, checking that `permutation` has one entry per keypoint."""
    if permutation is None:
        return values
    permutation = tf.constant(permutation, tf.int32)
    num_keypoints = values.shape[1]
    if num_keypoints is not None:
        if num_keypoints != permutation.shape[0]:
            raise ValueError(
                f"{what} has {permutation.shape[0]} entries but the examples have "
                f"{num_keypoints} keypoints per object"
            )
        return tf.gather(values, permutation, axis=1)
    check = tf.debugging.assert_equal(
        tf.shape(values)[1],
        tf.shape(permutation)[0],
        message=f"{what}: one entry per keypoint expected",
    )
    with tf.control_dependencies([check]):
        return tf.gather(values, permutation, axis=1)


class KeypointFields(FieldGroup):
    """`"keypoints"` `[num_boxes, K, 2]` (y, x) relative and `"keypoint_visibilities"`
    `[num_boxes, K]` int32 (TF OD API `keypoint_ops` semantics: flips and rotations reorder
    the keypoints by a permutation, crops prune those outside)."""

    keys = (KEYPOINTS, KEYPOINT_VISIBILITIES)

    def change_frame(self, fields, window, image_size, prune):
        keypoints, visibilities = fields[KEYPOINTS], fields[KEYPOINT_VISIBILITIES]
        origin = tf.stack([window[0], window[1]])
        extent = tf.stack([window[2] - window[0], window[3] - window[1]])
        keypoints = (keypoints - origin) / extent
        if prune:
            inside = tf.reduce_all((keypoints >= 0.0) & (keypoints <= 1.0), axis=-1)
            visibilities = tf.where(inside, visibilities, tf.zeros_like(visibilities))
        return {KEYPOINTS: keypoints, KEYPOINT_VISIBILITIES: visibilities}

    def resize(self, fields, image_size):
        return fields  # relative coordinates do not change

    def _reflect(self, fields, permutation, axis, what):
        keypoints = _permuted(fields[KEYPOINTS], permutation, what)
        coordinates = tf.unstack(keypoints, axis=-1)
        coordinates[axis] = 1.0 - coordinates[axis]
        return {
            KEYPOINTS: tf.stack(coordinates, axis=-1),
            KEYPOINT_VISIBILITIES: _permuted(fields[KEYPOINT_VISIBILITIES], permutation, what),
        }

    def flip_left_right(self, fields, keypoint_permutation):
        return self._reflect(fields, keypoint_permutation, 1, "keypoint_flip_permutation")

    def flip_up_down(self, fields, keypoint_permutation):
        return self._reflect(fields, keypoint_permutation, 0, "keypoint_flip_permutation")

    def rot90(self, fields, keypoint_permutation):
        what = "keypoint_rot_permutation"
        y, x = tf.unstack(_permuted(fields[KEYPOINTS], keypoint_permutation, what), axis=-1)
        return {
            KEYPOINTS: tf.stack([1.0 - x, y], axis=-1),
            # The TF OD API leaves the visibilities unpermuted here; they belong to their points.
            KEYPOINT_VISIBILITIES: _permuted(
                fields[KEYPOINT_VISIBILITIES], keypoint_permutation, what
            ),
        }


def _source_indices(window_low, window_high, old_size, new_size):
    """For each of `new_size` output pixels along one axis, the input pixel (of `old_size`)
    under its center, and whether it lies inside the input; the output spans `[window_low,
    window_high]` in relative coordinates of the input."""
    centers = (tf.range(new_size, dtype=tf.float32) + 0.5) / tf.cast(new_size, tf.float32)
    relative = window_low + centers * (window_high - window_low)
    indices = tf.cast(tf.floor(relative * tf.cast(old_size, tf.float32)), tf.int32)
    inside = (indices >= 0) & (indices < old_size)
    return tf.clip_by_value(indices, 0, tf.maximum(old_size - 1, 0)), inside


def resample_masks(masks, window, image_size):
    """Masks of an image that becomes `window` (`rel_yxyx` `[4]` of it), resized to `image_size`.

    Each output pixel takes the input pixel under its center (nearest neighbour, the sampling
    of `tf.image.resize(method="nearest")`), 0 outside the input: a crop or a pad of whole
    pixels (window edges on pixel edges, output size the window's size) copies the pixels
    exactly; a window of another size also resizes.

    Args:
        masks: `[num_boxes, height, width]`, any dtype.
        window: float32 `[4]`, the output's extent in `rel_yxyx` of the input (may reach outside
            [0, 1]: padding).
        image_size: int32 `[2]`, the output size.

    Returns:
        `[num_boxes, image_size[0], image_size[1]]` of the dtype of `masks`.
    """
    old_size = tf.shape(masks)[1:3]
    image_size = tf.cast(image_size, tf.int32)
    window = tf.cast(window, tf.float32)
    rows, rows_inside = _source_indices(window[0], window[2], old_size[0], image_size[0])
    cols, cols_inside = _source_indices(window[1], window[3], old_size[1], image_size[1])
    sampled = tf.gather(tf.gather(masks, rows, axis=1), cols, axis=2)
    inside = rows_inside[:, tf.newaxis] & cols_inside[tf.newaxis, :]
    return tf.where(inside[tf.newaxis], sampled, tf.zeros_like(sampled))


class MaskFields(FieldGroup):
    """`"masks"` `[num_boxes, height, width]` in pixels of the image (TF OD API preprocessor
    `masks`: cropped, padded with zeros, resized nearest neighbour, flipped and rotated with
    the image)."""

    keys = (MASKS,)

    def change_frame(self, fields, window, image_size, prune):
        return {MASKS: resample_masks(fields[MASKS], window, image_size)}

    def resize(self, fields, image_size):
        unit = tf.constant([0.0, 0.0, 1.0, 1.0])
        return {MASKS: resample_masks(fields[MASKS], unit, image_size)}

    def flip_left_right(self, fields, keypoint_permutation):
        return {MASKS: tf.reverse(fields[MASKS], axis=[2])}

    def flip_up_down(self, fields, keypoint_permutation):
        return {MASKS: tf.reverse(fields[MASKS], axis=[1])}

    def rot90(self, fields, keypoint_permutation):
        # As tf.image.rot90: output (i, j) is input (j, width - 1 - i).
        return {MASKS: tf.reverse(tf.transpose(fields[MASKS], [0, 2, 1]), axis=[1])}


# Every kind of per-object field that moves with the boxes.
FIELD_GROUPS = (KeypointFields(), MaskFields())


def _move(objects, method, *args):
    if not isinstance(objects, dict):
        return objects
    moved = dict(objects)
    for group in FIELD_GROUPS:
        present = [key for key in group.keys if key in objects]
        if not present:
            continue
        if len(present) != len(group.keys):
            missing = sorted(set(group.keys) - set(present))
            raise ValueError(
                f"per-object fields {present} come without {missing}; expected all of "
                f"{list(group.keys)}"
            )
        moved.update(getattr(group, method)({key: objects[key] for key in group.keys}, *args))
    return moved


def has_keypoints(objects):
    """Whether `objects` is a dict of fields with keypoints."""
    return isinstance(objects, dict) and KEYPOINTS in objects


def change_frame(objects, window, image_size, prune=True):
    """Moves the geometric fields into `window` (`rel_yxyx` `[4]` of the image), the image the
    op returns (int32 `[2]` `image_size`); with `prune`, keypoints outside it become not
    labelled (crops), without it they keep their visibility (pads). Masks are cut to the
    window, padded with zeros where it reaches outside, and resized to `image_size`."""
    return _move(objects, "change_frame", window, image_size, prune)


def resize(objects, image_size):
    """The geometric fields of an image resized to int32 `[2]` `image_size`."""
    return _move(objects, "resize", image_size)


def check_flip_permutation(objects, op, keypoint_flip_permutation):
    """Raises a `ValueError` naming `op` when `objects` have keypoints and no flip permutation."""
    if has_keypoints(objects) and not keypoint_flip_permutation:
        raise ValueError(
            f"{op}: the examples have keypoints but keypoint_flip_permutation is not set (as in "
            "the TF OD API, a flip needs it): set the keypoint order after the flip, e.g. "
            "[0, 2, 1] to swap keypoints 1 and 2 (left and right), or [0, 1, 2] to keep it"
        )


def flip_left_right(objects, keypoint_flip_permutation):
    """The geometric fields of an image flipped left-right (see `check_flip_permutation`)."""
    return _move(objects, "flip_left_right", keypoint_flip_permutation)


def flip_up_down(objects, keypoint_flip_permutation):
    """The geometric fields of an image flipped up-down (see `check_flip_permutation`)."""
    return _move(objects, "flip_up_down", keypoint_flip_permutation)


def rot90(objects, keypoint_rot_permutation=None):
    """The geometric fields of an image rotated 90° counter-clockwise (keypoints keep their
    order unless `keypoint_rot_permutation` is given, as in the TF OD API)."""
    return _move(objects, "rot90", list(keypoint_rot_permutation or []) or None)
