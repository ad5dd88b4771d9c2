"""Detection on images larger than a model sees well: overlapping tiles, merged by NMS.

Aerial and satellite scenes are thousands of pixels across while a detector resizes its input
to a few hundred, so small objects vanish. `predict_tiled` cuts the image into overlapping
tiles at the model's scale, detects on each, maps the boxes back and merges the tiles'
detections class by class with non-maximum suppression (as DeepForest's `predict_tile` does;
Keras and the TF OD API have no tiled inference).
"""

import numpy as np
import tensorflow as tf

from kdet.boxes.box_ops import convert_format


def predict_tiled(model, image, tile_size, stride=None, iou_threshold=0.5, batch_size=8):
    """Detects objects in one large image from overlapping tiles.

    Tiles of `tile_size` start every `stride` pixels; the last row and column of tiles are
    moved flush with the image's bottom and right edges, so every pixel is covered (an image
    smaller than a tile is one tile). With the default stride of half a tile, every object at
    most half a tile across lies whole in some tile. The detections of all tiles are merged per
    class by non-maximum suppression at `iou_threshold`.

    Args:
        model: a `kdet.ObjectDetector` (`kdet.SSD`, `kdet.FasterRCNN`).
        image: `[height, width, 3]` array, raw pixel values 0..255 (uint8 or float).
        tile_size: int or `(height, width)`, tile size in pixels.
        stride: optional int or `(height, width)`, pixels between tile starts, at most the
            tile size. Defaults to half the tile size.
        iou_threshold: float. Detections of one class overlapping more than this are merged
            into the highest-scoring one. Defaults to `0.5`.
        batch_size: int. Tiles per `model.predict` batch. Defaults to `8`.

    Returns:
        The predictions dict for a batch of one image, every merged detection kept, sorted by
        confidence: `{"boxes": float32 [1, K, 4] in the model's bounding_box_format for
        `image` (pixels of `image`, or fractions of its size for a `rel_` format),
        "labels": int32 [1, K], "confidences": float32 [1, K], "num_detections": int32 [1]}`
        (no padding: `K` is `num_detections[0]`).

    Raises:
        ValueError: for an image that is not `[height, width, 3]`, or a stride larger than
            the tile.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"predict_tiled takes one image [height, width, 3]; got shape {image.shape}"
        )
    tile_h, tile_w = _pair(tile_size, "tile_size")
    stride_h, stride_w = _pair(stride, "stride") if stride is not None else (
        max(tile_h // 2, 1),
        max(tile_w // 2, 1),
    )
    if stride_h > tile_h or stride_w > tile_w:
        raise ValueError(
            f"stride {stride!r} is larger than tile_size {tile_size!r}: pixels between the "
            "tiles would never be seen"
        )
    height, width = image.shape[:2]
    corners = [
        (top, left)
        for top in _tile_starts(height, tile_h, stride_h)
        for left in _tile_starts(width, tile_w, stride_w)
    ]
    # Tiles are cut a batch at a time: a large scene would not fit in memory as one stack.
    boxes, labels, confidences = [], [], []
    for first in range(0, len(corners), batch_size):
        batch_corners = corners[first : first + batch_size]
        tiles = np.stack(
            [image[top : top + tile_h, left : left + tile_w] for top, left in batch_corners]
        )
        predictions = model.predict_on_batch(tiles)
        for index, (top, left) in enumerate(batch_corners):
            count = predictions["num_detections"][index]
            tile_boxes = convert_format(
                predictions["boxes"][index, :count],
                model.bounding_box_format,
                "yxyx",
                height=tiles.shape[1],
                width=tiles.shape[2],
            ).numpy()
            boxes.append(tile_boxes + np.array([top, left, top, left], np.float32))
            labels.append(np.asarray(predictions["labels"][index, :count]))
            confidences.append(np.asarray(predictions["confidences"][index, :count]))
    boxes, labels = np.concatenate(boxes), np.concatenate(labels).astype(np.int32)
    confidences = np.concatenate(confidences).astype(np.float32)

    # Class-wise NMS in one call: each class's boxes are shifted clear of the others'.
    shift = (labels.astype(np.float32) * (max(height, width) + 1))[:, None]
    keep = tf.image.non_max_suppression(
        boxes + shift, confidences, max_output_size=len(boxes), iou_threshold=iou_threshold
    ).numpy()
    merged = convert_format(
        boxes[keep], "yxyx", model.bounding_box_format, height=height, width=width
    )
    return {
        "boxes": merged.numpy()[None],
        "labels": labels[keep][None],
        "confidences": confidences[keep][None],
        "num_detections": np.array([len(keep)], np.int32),
    }


def _pair(value, name):
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width); got {value!r}")
    return int(pair[0]), int(pair[1])


def _tile_starts(size, tile, stride):
    """Tile starts along one axis: every `stride`, the last one flush with the far edge."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts
