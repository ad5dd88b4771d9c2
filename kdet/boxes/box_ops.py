"""Pure box functions that keep kdet's `-1` padding rows intact.

kdet pads ground truth to a fixed number of rows with boxes of `-1`, so that batches keep static
shapes. Every function here treats a row whose four coordinates are all `-1` as padding:
conversions and clipping leave it `-1`, and IoU against it is `-1`, below any matching
threshold.
"""

import keras
import tensorflow as tf

# The coordinate value of padding rows: a box row whose four values are all -1.
PADDING_VALUE = -1.0


def is_padding(boxes):
    """Marks the padding rows of a box tensor.

    Args:
        boxes: float `[..., num_boxes, 4]`, any box format, padded with rows of -1.

    Returns:
        bool `[..., num_boxes]`, True where all four coordinates are -1.

    Example:
    ```python
    kdet.boxes.is_padding([[0.1, 0.1, 0.5, 0.5], [-1.0, -1.0, -1.0, -1.0]])
    # [False, True]
    ```
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    return tf.reduce_all(tf.equal(boxes, PADDING_VALUE), axis=-1)


def convert_format(boxes, source, target, height=None, width=None):
    """Converts boxes between Keras box formats, keeping padding rows at -1.

    A thin wrapper over `keras.utils.bounding_boxes.convert_format`, which would turn a `-1` row
    into an ordinary-looking box (e.g. `xywh` `[-1, -1, 0, 0]`).

    Args:
        boxes: float `[..., num_boxes, 4]` in the `source` format, padded with rows of -1.
        source: str. Keras format name of `boxes`, e.g. `"yxyx"`, `"xywh"`, `"rel_yxyx"`.
        target: str. Keras format name to convert to.
        height: int or scalar tensor. Image height in pixels; required when exactly one of
            `source` and `target` is relative (`"rel_*"`).
        width: int or scalar tensor. Image width in pixels; same rule as `height`.

    Returns:
        float32 `[..., num_boxes, 4]` in the `target` format; padding rows stay -1.

    Example:
    ```python
    boxes = [[10.0, 20.0, 50.0, 60.0], [-1.0, -1.0, -1.0, -1.0]]  # yxyx pixels
    kdet.boxes.convert_format(boxes, "yxyx", "rel_yxyx", height=100, width=200)
    # [[0.1, 0.1, 0.5, 0.3], [-1, -1, -1, -1]]
    ```
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    converted = keras.utils.bounding_boxes.convert_format(
        boxes, source=source, target=target, height=height, width=width
    )
    return tf.where(is_padding(boxes)[..., None], PADDING_VALUE, converted)


def area(boxes):
    """Area of `yxyx` boxes; inverted (max < min) and padding boxes have area 0.

    Args:
        boxes: float `[..., num_boxes, 4]`, `yxyx` (absolute or relative), padded with -1.

    Returns:
        float32 `[..., num_boxes]`, in the squared unit of `boxes`.

    Example:
    ```python
    kdet.boxes.area([[0.0, 0.0, 2.0, 3.0]])  # [6.0]
    ```
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def clip_boxes(boxes, height=None, width=None):
    """Clips `yxyx` boxes to the image, keeping padding rows at -1.

    `keras.utils.bounding_boxes.clip_to_image_size` only takes `xyxy` dicts, hence this one.

    Args:
        boxes: float `[..., num_boxes, 4]`, `yxyx`, padded with rows of -1. In pixels when
            `height` and `width` are given, else normalized (`rel_yxyx`) and clipped to [0, 1].
        height: optional int or scalar tensor. Image height in pixels.
        width: optional int or scalar tensor. Image width in pixels.

    Returns:
        float32 `[..., num_boxes, 4]`, `yxyx`, each coordinate inside the image.

    Example:
    ```python
    kdet.boxes.clip_boxes([[-5.0, 10.0, 40.0, 300.0]], height=32, width=64)
    # [[0.0, 10.0, 32.0, 64.0]]
    ```
    """
    if (height is None) != (width is None):
        raise ValueError(
            "clip_boxes() needs both `height` and `width` (pixel boxes) or neither (normalized "
            f"boxes); got height={height} and width={width}."
        )
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    if height is None:
        upper = tf.ones([4], tf.float32)
    else:
        height = tf.cast(height, tf.float32)
        width = tf.cast(width, tf.float32)
        upper = tf.stack([height, width, height, width])
    clipped = tf.clip_by_value(boxes, 0.0, upper)
    return tf.where(is_padding(boxes)[..., None], PADDING_VALUE, clipped)


def pairwise_iou(boxes1, boxes2):
    """Intersection over union of every pair of boxes from two sets.

    Leading dimensions broadcast, so `[batch, N, 4]` against `[M, 4]` gives `[batch, N, M]`.
    Pairs involving a padding row get -1, below any matching threshold; pairs of zero-area boxes
    get 0 (never NaN). Written here rather than with `keras.utils.bounding_boxes.compute_iou`
    because that one adds 1e-7 to the union, which visibly lowers the IoU of small normalized
    boxes, and it only takes rank-2 or rank-3 inputs.

    Args:
        boxes1: float `[..., N, 4]`, `yxyx` (absolute or relative), padded with rows of -1.
        boxes2: float `[..., M, 4]`, same format and unit as `boxes1`, padded with rows of -1.

    Returns:
        float32 `[..., N, M]`, IoU in [0, 1], or -1 where either box is padding.

    Example:
    ```python
    kdet.boxes.pairwise_iou([[0.0, 0.0, 2.0, 2.0]], [[1.0, 0.0, 3.0, 2.0], [-1.0] * 4])
    # [[0.3333, -1.0]]
    ```
    """
    boxes1 = tf.convert_to_tensor(boxes1, tf.float32)
    boxes2 = tf.convert_to_tensor(boxes2, tf.float32)
    ymin1, xmin1, ymax1, xmax1 = tf.unstack(boxes1[..., :, None, :], axis=-1)
    ymin2, xmin2, ymax2, xmax2 = tf.unstack(boxes2[..., None, :, :], axis=-1)
    intersection = tf.maximum(tf.minimum(ymax1, ymax2) - tf.maximum(ymin1, ymin2), 0.0) * (
        tf.maximum(tf.minimum(xmax1, xmax2) - tf.maximum(xmin1, xmin2), 0.0)
    )
    union = area(boxes1)[..., :, None] + area(boxes2)[..., None, :] - intersection
    iou = tf.math.divide_no_nan(intersection, union)
    padded_pair = tf.logical_or(is_padding(boxes1)[..., :, None], is_padding(boxes2)[..., None, :])
    return tf.where(padded_pair, PADDING_VALUE, iou)
