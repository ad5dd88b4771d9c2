"""Your own data from Python: images and box arrays → TF OD API `tf.train.Example`s → TFRecords.

Example:
>>> label_map = {1: "cat", 2: "dog"}
>>> examples = (
...     kdet.data.create_example_from_arrays(image, boxes, labels, label_map)
...     for image, boxes, labels in my_samples  # uint8 [h, w, 3], xyxy pixels, ["cat", …]
... )
>>> kdet.data.write_tfrecord(examples, "out/train.record", num_shards=2)
['out/train.record-00000-of-00002', 'out/train.record-00001-of-00002']
>>> kdet.data.write_label_map(label_map, "out/label_map.pbtxt")
"""

import os

import numpy as np
from keras.utils import bounding_boxes
from tqdm import tqdm

from kdet.data.converters._common import check_encoded_image
from kdet.data.converters._common import lookup_labels
from kdet.data.converters._common import make_example
from kdet.data.converters._common import read_image
from kdet.data.errors import DataError
from kdet.data.label_map import name_to_id
from kdet.data.label_map import read_label_map
from kdet.data.label_map import validate_label_map
from kdet.data.sharded_tfrecord_writer import ShardedTFRecordWriter
from kdet.data.tf_example import encode_image
from kdet.data.tf_example import keypoint_array


def create_example_from_arrays(
    image,
    boxes,
    labels,
    label_map,
    box_format="xyxy",
    filename="",
    source_id=None,
    image_format="jpeg",
    keypoints=None,
    keypoint_visibilities=None,
    masks=None,
    mask_type="png",
):
    """Builds a TF OD API `tf.train.Example` from one image and its boxes (and keypoints, and
    instance masks).

    The image and boxes get the same checks as in the converters: the image must decode
    completely, boxes must lie inside it (at most 1 px out, which is clipped) with
    `xmin < xmax` and `ymin < ymax`, and every label must be in the label map. The record holds
    both the label-map id and the class name of each box, like TF OD API records.

    Args:
        image: one of: a uint8 array `[height, width, 3]` or `[height, width]` (RGB), encoded
            with `image_format`; encoded JPEG/PNG/GIF/BMP bytes, stored as they are; or the
            path of such a file (str or path-like), stored as it is.
        boxes: float array `[num_boxes, 4]` in `box_format`, in pixels of `image` (or
            normalized for the `rel_*` formats). `num_boxes` may be 0.
        labels: `[num_boxes]` class names (str) or label-map ids (int).
        label_map: dict `{id: name}` or a `.pbtxt` path (a dict is faster for many images).
        box_format: str. A Keras box format: `"xyxy"`, `"yxyx"`, `"xywh"`, `"center_xywh"`,
            `"center_yxhw"`, `"rel_xyxy"`, `"rel_yxyx"`, … Defaults to `"xyxy"`.
        filename: str. Stored as `image/filename`; defaults to the basename of a path `image`.
        source_id: str. Stored as `image/source_id`; defaults to `filename`.
        image_format: `"jpeg"` or `"png"`: how an array `image` is encoded. Defaults to `"jpeg"`.
        keypoints: optional float array `[num_boxes, num_keypoints, 2]`, (y, x) of each box's
            keypoints in the unit of the boxes (pixels, or normalized for `rel_*` formats);
            NaN for a keypoint that is not labelled. Labelled keypoints must lie in the image
            (at most 1 px out, clipped).
        keypoint_visibilities: optional int array `[num_boxes, num_keypoints]`, COCO `v` (0 not
            labelled, 1 labelled not visible, 2 visible); defaults to 2 for finite keypoints,
            0 for NaN.
        masks: optional array `[num_boxes, height, width]` (uint8, bool or float), each box's
            instance mask in pixels of `image` (nonzero: the object), stored as
            `image/object/mask`.
        mask_type: `"png"` (one PNG per object, TF OD API `PNG_MASKS`) or `"numerical"`
            (`NUMERICAL_MASKS`): how masks are stored. Defaults to `"png"`.

    Returns:
        A `tf.train.Example`.

    Raises:
        DataError: for an undecodable image, bad boxes or an unknown label.

    Example:
    >>> image = np.zeros((64, 96, 3), dtype="uint8")
    >>> example = kdet.data.create_example_from_arrays(
    ...     image, [[10, 20, 50, 60]], ["cat"], {1: "cat", 2: "dog"}, filename="cat.jpg")
    """
    if isinstance(image, (str, os.PathLike)):
        filename = filename or os.path.basename(os.fspath(image))
        encoded, encoded_format, height, width = read_image(os.fspath(image), filename)
    elif isinstance(image, (bytes, bytearray)):
        encoded = bytes(image)
        encoded_format, height, width = check_encoded_image(encoded, filename or "image bytes")
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise DataError(
                f"{filename or 'image'}: got an array of shape {array.shape} and dtype "
                f"{array.dtype}; expected uint8 [height, width, 3] or [height, width]"
            )
        encoded = encode_image(array, image_format)
        encoded_format = b"png" if image_format.lower() == "png" else b"jpeg"
        height, width = array.shape[:2]
    what = filename or "image"
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"{what}: boxes have shape {boxes.shape}; expected [num_boxes, 4]")
    # The converters check boxes as xyxy pixels; Keras converts from any of its formats.
    boxes = np.asarray(
        bounding_boxes.convert_format(boxes, box_format, "xyxy", height=height, width=width)
    )
    labels = list(labels)
    if len(labels) != len(boxes):
        raise DataError(f"{what}: got {len(boxes)} boxes and {len(labels)} labels")
    label_map = (
        validate_label_map(label_map) if isinstance(label_map, dict) else read_label_map(label_map)
    )
    box_sources = [f"{what} box {index}" for index in range(len(boxes))]
    extras = {}
    if keypoints is not None:
        extras = _pixel_keypoints(
            keypoints, keypoint_visibilities, len(boxes), box_format, height, width, what
        )
    if masks is not None:
        extras.update(masks=masks, mask_type=mask_type)
    names = [_class_name(label, label_map, where) for label, where in zip(labels, box_sources)]
    ids = lookup_labels(names, label_map, name_to_id(label_map), box_sources)
    example, _ = make_example(
        encoded,
        encoded_format,
        height,
        width,
        boxes,
        ids,
        names,
        box_sources,
        filename=filename,
        source_id=source_id,
        **extras,
    )
    return example


def _pixel_keypoints(keypoints, visibilities, num_boxes, box_format, height, width, what):
    """`make_example` keyword arguments for keypoints given in the unit of the boxes."""
    keypoints = keypoint_array(keypoints, num_boxes, what, np.float64)
    if box_format.startswith("rel_"):
        keypoints = keypoints * [height, width]
    if visibilities is None:
        visibilities = np.where(np.all(np.isfinite(keypoints), axis=-1), 2, 0)
    visibilities = np.asarray(visibilities, dtype=np.int64)
    if visibilities.shape != keypoints.shape[:2]:
        raise DataError(
            f"{what}: keypoint_visibilities have shape {visibilities.shape}; expected "
            f"{list(keypoints.shape[:2])} like the keypoints"
        )
    return {"keypoints": list(keypoints), "keypoint_visibilities": list(visibilities)}


def _class_name(label, label_map, where):
    if isinstance(label, (str, bytes, np.str_, np.bytes_)):
        return label.decode("utf8") if isinstance(label, bytes) else str(label)
    if int(label) not in label_map:
        raise DataError(f"{where}: label id {label} is not in the label map {label_map}")
    return label_map[int(label)]


def write_tfrecord(examples, output_path, num_shards=1, progress=False):
    """Writes examples to a TFRecord file or `num_shards` shards, atomically.

    Nothing appears at `output_path` unless every example was written: an exception while
    iterating `examples` leaves no partial file (see `ShardedTFRecordWriter`).

    Args:
        examples: iterable of `tf.train.Example` or serialized bytes.
        output_path: str or path-like. The file, or the shard prefix when `num_shards > 1`.
        num_shards: int. Number of output files. Defaults to `1`.
        progress: bool. Show a progress bar. Defaults to `False`.

    Returns:
        list of str. The files written.

    Example:
    >>> kdet.data.write_tfrecord([example], "out/one.record")
    ['out/one.record']
    """
    with ShardedTFRecordWriter(output_path, num_shards) as writer:
        for example in tqdm(examples, disable=not progress, unit="example", desc="write"):
            writer.write(example)
    return writer.paths
