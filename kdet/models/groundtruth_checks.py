"""Checks that stop `fit` early: bad ground truth in the first steps, and NaN losses.

The usual mistakes train without a word: 0-based class indices (every object becomes
background, the localization loss is 0.0), labels above `num_classes`, normalized boxes given
to a model whose `bounding_box_format` is in pixels, boxes in another coordinate order (every
loss NaN). `check_groundtruth` finds them in a batch with a few reductions over the
`[batch, num_boxes]` ground truth; only a failing batch formats a message, which
`tf.debugging.Assert` raises from the step. `groundtruth_errors_as_value_errors` turns that
TensorFlow error into a `GroundtruthError` carrying the message alone, so `fit` fails with one
readable line.

Padding rows (boxes all -1, or label -1) are never checked.

A NaN or infinite loss stops `fit` through `with_nonfinite_loss_guard`, which adds the guard of
`kdet train` (`kdet.training.trainer.StopOnNonFiniteLoss`) to the callbacks.
"""

import contextlib
import re

import keras
import tensorflow as tf

from kdet.boxes.box_ops import convert_format
from kdet.boxes.box_ops import is_padding
from kdet.training.trainer import StopOnNonFiniteLoss

#: Training steps whose ground truth is checked (optimizer iterations 0..N-1); `evaluate`
#: checks every batch (a few reductions next to a forward pass).
CHECKED_TRAINING_STEPS = 20

# A pixel-format model given boxes whose coordinates are all within this are given normalized
# boxes (no real object in a batch of images this size lies within 1.5 px of the corner).
_NORMALIZED_LIMIT = 1.5
# Images smaller than this are too small for the normalized-boxes heuristic.
_MIN_IMAGE_SIZE_FOR_NORMALIZED_CHECK = 16
# A box reaching this far (as a fraction of the image size) outside the image is in the wrong
# unit: pixels given as `rel_*`, or pixels of images that were resized since.
_OUTSIDE_MARGIN = 0.5

# Marks the message inside TensorFlow's "assertion failed: [...]" text.
_BEGIN = "<kdet-groundtruth>"
_END = "</kdet-groundtruth>"
_MESSAGE = re.compile(re.escape(_BEGIN) + "(.*?)" + re.escape(_END), re.DOTALL)

_COORDINATES = {
    "yxyx": "[ymin, xmin, ymax, xmax]",
    "xyxy": "[xmin, ymin, xmax, ymax]",
    "xywh": "[xmin, ymin, width, height]",
    "center_xywh": "[x_center, y_center, width, height]",
    "center_yxhw": "[y_center, x_center, height, width]",
}


class GroundtruthError(ValueError):
    """The ground truth of a batch breaks the data contract (the message says how)."""


def describe_format(bounding_box_format):
    """`"'yxyx' ([ymin, xmin, ymax, xmax] in pixels)"`: a format name and what it means."""
    relative = bounding_box_format.startswith("rel_")
    base = bounding_box_format.removeprefix("rel_")
    coordinates = _COORDINATES.get(base, "")
    unit = "normalized 0..1" if relative else "in pixels"
    return f"'{bounding_box_format}' ({coordinates} {unit})".replace("( ", "(")


def check_groundtruth(
    boxes, labels, image_height, image_width, num_classes, bounding_box_format, step=None
):
    """Raises (in the graph) if a batch of ground truth breaks the data contract.

    Checked, in this order, on the rows that are not padding: finite coordinates; labels are
    label-map ids 1..num_classes; boxes of a pixel format are not all within 1.5 (normalized
    boxes); no box reaches half an image outside the image; no box is inverted (min > max)
    once read in `bounding_box_format`. The message names the first failing check, the box and
    its row, and what was expected.

    Args:
        boxes: float `[batch, num_boxes, 4]` in `bounding_box_format`, padded with -1 rows.
        labels: int `[batch, num_boxes]` label-map ids, -1 on padding rows.
        image_height: int or scalar tensor, height of the batch's images in pixels.
        image_width: int or scalar tensor, width of the batch's images in pixels.
        num_classes: int, the model's number of classes (background excluded).
        bounding_box_format: str, the model's Keras box format.
        step: optional int scalar tensor, the training step, named in the message.

    Returns:
        A scalar bool tensor (True); make the loss depend on it so the check runs first.
        A failing batch raises `tf.errors.InvalidArgumentError` with the message between
        markers that `groundtruth_errors_as_value_errors` extracts.
    """
    boxes = tf.cast(boxes, tf.float32)
    labels = tf.cast(labels, tf.int32)
    height = tf.cast(image_height, tf.float32)
    width = tf.cast(image_width, tf.float32)
    real = tf.logical_not(is_padding(boxes) | tf.equal(labels, -1))
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    checked = real & finite

    relative = bounding_box_format.startswith("rel_")
    corners = convert_format(
        tf.where(checked[..., None], boxes, 0.0),
        bounding_box_format,
        "rel_yxyx",
        height=image_height,
        width=image_width,
    )
    ymin, xmin, ymax, xmax = tf.unstack(corners, axis=-1)
    name = describe_format(bounding_box_format)

    # Messages are made inside the failing branch only: string ops cost nothing on good data.
    def image_size():
        return tf.strings.format("{}x{}", (tf.cast(height, tf.int32), tf.cast(width, tf.int32)))

    def row_text(index):
        b, n = index[0], index[1]
        text = tf.strings.format(
            "box {} label {} (image {} of the batch, row {})",
            (boxes[b, n], labels[b, n], b, n),
            summarize=-1,
        )
        if step is None:
            return text
        return tf.strings.join([text, tf.strings.format(" at training step {}", (step,))])

    checks = []  # (bool [batch, num_boxes] rows that fail, row index -> message)
    checks.append((
        real & tf.logical_not(finite),
        lambda i: tf.strings.join([
            row_text(i), ": box coordinates must be finite numbers; got NaN or inf."
        ]),
    ))
    ids = f"ids 1..{num_classes}" if num_classes > 1 else "id 1"
    checks.append((
        real & ((labels < 1) | (labels > num_classes)),
        lambda i: tf.strings.join([
            row_text(i),
            f": labels must be label-map {ids} (0 is background, -1 marks padding rows)",
            tf.where(
                labels[i[0], i[1]] == 0,
                "; got 0: 0-based class indices? Add 1 (objects labelled 0 are trained as "
                "background).",
                f"; got another label: is num_classes={num_classes} right?",
            ),
        ]),
    ))
    if not relative:
        looks_normalized = (
            tf.reduce_any(checked)
            & (tf.reduce_max(tf.where(checked[..., None], tf.abs(boxes), 0.0)) <= _NORMALIZED_LIMIT)
            & (tf.minimum(height, width) >= _MIN_IMAGE_SIZE_FOR_NORMALIZED_CHECK)
        )
        checks.append((
            checked & looks_normalized,
            lambda i: tf.strings.join([
                row_text(i),
                f": boxes look normalized (every coordinate of the batch is within "
                f"{_NORMALIZED_LIMIT}) but bounding_box_format is {name} and the images are ",
                image_size(),
                ": build the model with bounding_box_format='rel_"
                f"{bounding_box_format}' or multiply the boxes by the image size.",
            ]),
        ))
    outside = checked & (
        (tf.reduce_min(corners, axis=-1) < -_OUTSIDE_MARGIN)
        | (tf.reduce_max(corners, axis=-1) > 1.0 + _OUTSIDE_MARGIN)
    )
    if relative:
        checks.append((
            outside,
            lambda i: tf.strings.join([
                row_text(i),
                f": boxes look like pixels but bounding_box_format is {name}: build the model "
                f"with bounding_box_format='{bounding_box_format.removeprefix('rel_')}' or "
                "divide the boxes by the image size.",
            ]),
        ))
    else:
        checks.append((
            outside,
            lambda i: tf.strings.join([
                row_text(i),
                ": box lies far outside the ",
                image_size(),
                f" image; boxes must be {name} of the images given to the model (after any "
                "resizing).",
            ]),
        ))
    checks.append((
        checked & ((ymin > ymax) | (xmin > xmax)),
        lambda i: tf.strings.join([
            row_text(i),
            f": box is inverted (min > max) when read as {name}; are its coordinates in "
            "another order?",
        ]),
    ))

    return _first_failure(checks)


def _first_failure(checks):
    """A scalar bool tensor (True) that raises the message of the first failing check.

    Args:
        checks: list of `(rows, message)`: bool `[...]` tensors of the failing rows, and a
            function of the index of the first failing row giving the message string tensor.
    """
    failing = tf.stack([tf.reduce_any(rows) for rows, _ in checks])

    def raise_first_failure():
        first = tf.argmax(tf.cast(failing, tf.int32), output_type=tf.int32)
        branches = [
            (lambda rows=rows, message=message: message(tf.where(rows)[0]))
            for rows, message in checks
        ]
        message = tf.strings.join([_BEGIN, tf.switch_case(first, branches), _END])
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(True)

    return tf.cond(tf.reduce_any(failing), raise_first_failure, lambda: tf.constant(True))


def check_keypoints(keypoints, visibilities, boxes, labels, image_height, image_width,
                    bounding_box_format, step=None):
    """Raises if the keypoints of a batch break the data contract (see `check_groundtruth`).

    Shapes are checked when the step is traced (a `GroundtruthError` at once): `keypoints`
    `[batch, num_boxes, num_keypoints, 2]` with the boxes' batch and rows, `visibilities` (if
    given) `[batch, num_boxes, num_keypoints]`. Then, on the labelled keypoints (visibility not 0)
    of rows that are not padding: finite coordinates; none half an image outside the image
    (pixels given to a `rel_` model, or the other way); for a pixel format, not all within 1.5
    while some box coordinate is larger (normalized keypoints with pixel boxes).

    Args:
        keypoints: float `[batch, num_boxes, num_keypoints, 2]` `(y, x)` in the unit of the
            boxes.
        visibilities: int or bool `[batch, num_boxes, num_keypoints]`, or None (all labelled).
        boxes, labels, image_height, image_width, bounding_box_format, step: as in
            `check_groundtruth`.

    Returns:
        A scalar bool tensor (True), as `check_groundtruth`.
    """
    boxes = tf.convert_to_tensor(boxes)
    keypoints = tf.cast(keypoints, tf.float32)
    if keypoints.shape.rank != 4 or keypoints.shape[-1] != 2:
        raise GroundtruthError(
            "y['keypoints'] must be [batch, num_boxes, num_keypoints, 2] (y, x); got shape "
            f"{keypoints.shape}"
        )
    if not keypoints.shape[:2].is_compatible_with(boxes.shape[:2]):
        raise GroundtruthError(
            f"y['keypoints'] has shape {keypoints.shape} but y['boxes'] {boxes.shape}: "
            "expected one row of keypoints per box, [batch, num_boxes, num_keypoints, 2]"
        )
    if visibilities is None:
        visible = tf.ones_like(keypoints[..., 0], tf.bool)
    else:
        if not keypoints.shape[:3].is_compatible_with(visibilities.shape):
            raise GroundtruthError(
                f"y['keypoint_visibilities'] has shape {visibilities.shape} but y['keypoints'] "
                f"{keypoints.shape}: expected [batch, num_boxes, num_keypoints]"
            )
        visible = tf.cast(visibilities, tf.bool)
    labels = tf.cast(labels, tf.int32)
    real = tf.logical_not(is_padding(tf.cast(boxes, tf.float32)) | tf.equal(labels, -1))
    checked = visible & real[..., None]
    finite = tf.reduce_all(tf.math.is_finite(keypoints), axis=-1)
    relative = bounding_box_format.startswith("rel_")
    size = tf.cast(tf.stack([image_height, image_width]), tf.float32)
    points = tf.where((checked & finite)[..., None], keypoints, 0.0)
    fractions = points if relative else points / size
    name = describe_format(bounding_box_format)

    def text(index, problem):
        b, n, k = index[0], index[1], index[2]
        row = tf.strings.format(
            "keypoint {} (y, x) {} of box {} (image {} of the batch, row {})",
            (k, keypoints[b, n, k], boxes[b, n], b, n), summarize=-1,
        )
        parts = [row] if step is None else [row, tf.strings.format(" at training step {}",
                                                                    (step,))]
        return tf.strings.join(parts + [problem])

    checks = [(
        checked & tf.logical_not(finite),
        lambda i: text(i, ": a labelled keypoint must have finite coordinates; give keypoints "
                          "that are not labelled keypoint_visibilities 0."),
    ), (
        checked & finite & tf.reduce_any(
            (fractions < -_OUTSIDE_MARGIN) | (fractions > 1.0 + _OUTSIDE_MARGIN), axis=-1
        ),
        lambda i: text(i, f": keypoint lies far outside the image; keypoints must be (y, x) in "
                          f"the unit of the boxes, {name}."),
    )]
    if not relative:
        box_rows = real[..., None] & tf.reduce_all(tf.math.is_finite(boxes), -1, keepdims=True)
        largest_box = tf.reduce_max(tf.where(box_rows, tf.abs(tf.cast(boxes, tf.float32)), 0.0))
        largest_keypoint = tf.reduce_max(tf.abs(points))
        looks_normalized = (
            tf.reduce_any(checked & finite)
            & (largest_keypoint <= _NORMALIZED_LIMIT) & (largest_box > _NORMALIZED_LIMIT)
        )
        checks.append((
            checked & finite & looks_normalized,
            lambda i: text(i, f": keypoints look normalized (all within {_NORMALIZED_LIMIT}) "
                              f"but the boxes are {name}: give keypoints in pixels too."),
        ))
    return _first_failure(checks)


def checked_before(images, groundtruth, num_classes, bounding_box_format, step=None):
    """`images`, made to depend on `check_groundtruth` of the batch's ground truth.

    Everything computed from the returned images runs after the check, so a bad batch fails
    before it changes any weight. With `step` (the optimizer's iterations) only the first
    `CHECKED_TRAINING_STEPS` training steps are checked: later steps pay one comparison.

    Args:
        images: `[batch, height, width, channels]` tensor.
        groundtruth: the `y` of the data contract, `{"boxes": [batch, num_boxes, 4],
            "labels" (or "classes"): [batch, num_boxes]}`, with `"keypoints"` (and
            `"keypoint_visibilities"`) checked by `check_keypoints`; anything else is left to
            `ObjectDetector.groundtruth_to_relative` to refuse.
        num_classes: int, the model's number of classes.
        bounding_box_format: str, the model's Keras box format.
        step: optional int scalar tensor, the training step.

    Returns:
        `images`, unchanged.
    """
    if not isinstance(groundtruth, dict) or "boxes" not in groundtruth:
        return images
    labels = groundtruth.get("labels", groundtruth.get("classes"))
    if labels is None:
        return images
    shape = tf.shape(images)

    def check():
        done = check_groundtruth(
            groundtruth["boxes"], labels, shape[1], shape[2], num_classes,
            bounding_box_format, step,
        )
        if "keypoints" not in groundtruth:
            return done
        with tf.control_dependencies([done]):
            return check_keypoints(
                groundtruth["keypoints"], groundtruth.get("keypoint_visibilities"),
                groundtruth["boxes"], labels, shape[1], shape[2], bounding_box_format, step,
            )

    if step is None:
        done = check()
    else:
        done = tf.cond(step < CHECKED_TRAINING_STEPS, check, lambda: tf.constant(True))
    with tf.control_dependencies([done]):
        return tf.identity(images)


def with_nonfinite_loss_guard(callbacks):
    """`callbacks` with `StopOnNonFiniteLoss` first, unless a NaN callback is already there.

    The guard of `kdet train` (`kdet.training.trainer.StopOnNonFiniteLoss`), so that `fit`
    stops on a NaN or infinite loss with an error naming the step and the losses. Callbacks
    that already have one (`kdet.training.train`'s own, or Keras's `TerminateOnNaN`, which
    stops quietly, or any callback with a true `stops_on_nonfinite_loss` attribute, such as
    `kdet.training.lr_sweep`'s) are left as they are.

    Args:
        callbacks: `None`, a list of Keras callbacks or a `keras.callbacks.CallbackList`.

    Returns:
        A list of callbacks (or the given `CallbackList`, unchanged).
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if any(
        isinstance(callback, (StopOnNonFiniteLoss, keras.callbacks.TerminateOnNaN))
        or getattr(callback, "stops_on_nonfinite_loss", False)
        for callback in callbacks
    ):
        return callbacks
    return [StopOnNonFiniteLoss(), *callbacks]


def message_of(error):
    """The message `check_groundtruth` put in a TensorFlow error, or `None` if it has none."""
    match = _MESSAGE.search(str(getattr(error, "message", error)))
    if match is None:
        return None
    # TensorFlow prints the string tensor escaped.
    return match.group(1).replace("\\'", "'").replace('\\"', '"')


@contextlib.contextmanager
def groundtruth_errors_as_value_errors():
    """Re-raises a failed `check_groundtruth` as `GroundtruthError` with its message alone.

    TensorFlow reports the assertion with the op's graph context and a long traceback; the
    message is all a user needs. Other errors pass through unchanged.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = message_of(error)
        if message is None:
            raise
        raise GroundtruthError(message) from None
