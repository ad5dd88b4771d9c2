"""`tf.train.Example` codec with exactly the TF Object Detection API keys.

Records written here decode with the TF OD API's `TfExampleDecoder`, and records written by the
TF OD API's dataset tools (`create_pascal_tf_record.py`, `create_coco_tf_record.py`, the
"using your own dataset" guide) decode here. Boxes on disk are normalized to [0, 1] and stored as
four separate lists (`image/object/bbox/xmin|ymin|xmax|ymax`); kdet hands them out as one
`[num_boxes, 4]` tensor in `rel_yxyx`.
"""

import hashlib
import io

import numpy as np
import tensorflow as tf

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_FILENAME = "image/filename"
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_KEY_SHA256 = "image/key/sha256"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
CLASS_TEXT = "image/object/class/text"
CLASS_LABEL = "image/object/class/label"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
VIEW = "image/object/view"
IS_CROWD = "image/object/is_crowd"
GROUP_OF = "image/object/group_of"
# The verified image-level labels of an image (Open Images: classes checked present or absent).
IMAGE_CLASS_LABEL = "image/class/label"
IMAGE_CLASS_TEXT = "image/class/text"
AREA = "image/object/area"
WEIGHT = "image/object/weight"

# The same defaults as the TF OD API `TfExampleDecoder`, so records missing optional scalar
# keys decode identically in both libraries.
_SCALAR_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_SOURCE_ID: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_KEY_SHA256: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=1),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=1),
}
_LIST_FEATURES = {
    BBOX_XMIN: tf.float32,
    BBOX_YMIN: tf.float32,
    BBOX_XMAX: tf.float32,
    BBOX_YMAX: tf.float32,
    CLASS_TEXT: tf.string,
    CLASS_LABEL: tf.int64,
    DIFFICULT: tf.int64,
    TRUNCATED: tf.int64,
    VIEW: tf.string,
    IS_CROWD: tf.int64,
    GROUP_OF: tf.int64,
    IMAGE_CLASS_LABEL: tf.int64,
    IMAGE_CLASS_TEXT: tf.string,
    AREA: tf.float32,
    WEIGHT: tf.float32,
}
FEATURE_SPEC = {
    **_SCALAR_FEATURES,
    **{key: tf.io.VarLenFeature(dtype) for key, dtype in _LIST_FEATURES.items()},
}

_FORMATS = {"JPEG": b"jpeg", "PNG": b"png", "GIF": b"gif", "BMP": b"bmp"}


def _bytes_list(values):
    return tf.train.Feature(
        bytes_list=tf.train.BytesList(
            value=[v.encode("utf8") if isinstance(v, str) else bytes(v) for v in values]
        )
    )


def _int64_list(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float_list(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def encode_image(image, image_format="jpeg", quality=95):
    """Encodes an image array as JPEG or PNG bytes.

    Args:
        image: uint8 array `[height, width, 3]` (RGB) or `[height, width]`.
        image_format: `"jpeg"` or `"png"`.
        quality: JPEG quality, 1..100.

    Returns:
        The encoded bytes.
    """
    from PIL import Image

    fmt = image_format.lower()
    if fmt not in ("jpeg", "jpg", "png"):
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {array.dtype}")
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(array).save(buffer, format="PNG")
    else:
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def image_format_of(encoded):
    """Returns the TF OD API `image/format` value (`b"jpeg"`, `b"png"`, …) of encoded bytes.

    Raises:
        ValueError: if the bytes are not an image Pillow can identify, or a format TensorFlow
            cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        pil_format = Image.open(io.BytesIO(encoded)).format
    except UnidentifiedImageError as error:
        raise ValueError("the bytes are not a readable image") from error
    if pil_format not in _FORMATS:
        raise ValueError(
            f"image format {pil_format} is not supported; expected one of {sorted(_FORMATS)}"
        )
    return _FORMATS[pil_format]


def create_tf_example(
    encoded_image,
    height,
    width,
    boxes,
    labels,
    texts,
    filename="",
    source_id=None,
    image_format=None,
    difficult=None,
    truncated=None,
    view=None,
    is_crowd=None,
    area=None,
    group_of=None,
    image_class_labels=None,
    image_class_texts=None,
):
    """Builds a `tf.train.Example` with the TF OD API detection keys.

    Args:
        encoded_image: bytes. The encoded JPEG/PNG image, stored as is (no re-encoding).
        height: int. Image height in pixels.
        width: int. Image width in pixels.
        boxes: float array `[num_boxes, 4]`, `rel_yxyx` (normalized ymin, xmin, ymax, xmax).
        labels: int array `[num_boxes]`. Label-map ids, 1-based.
        texts: list of `num_boxes` class names.
        filename: str. Stored as `image/filename`.
        source_id: str. Stored as `image/source_id`; defaults to `filename`.
        image_format: `image/format` value; detected from the bytes when None.
        difficult, truncated, is_crowd: optional int arrays `[num_boxes]`.
        view: optional list of `num_boxes` strings (Pascal VOC `pose`).
        area: optional float array `[num_boxes]`, object area in pixels (COCO).
        group_of: optional int array `[num_boxes]`, 1 for an Open Images group-of box.
        image_class_labels: optional int array `[num_image_labels]`, the image's verified
            image-level label ids (`image/class/label`).
        image_class_texts: optional list of their class names (`image/class/text`).

    Returns:
        A `tf.train.Example`.

    Example:
    >>> example = create_tf_example(jpeg_bytes, 480, 640, [[0.1, 0.2, 0.5, 0.6]], [1], ["cat"])
    >>> serialized = example.SerializeToString()
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    num_boxes = boxes.shape[0]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    texts = list(texts)
    if len(labels) != num_boxes or len(texts) != num_boxes:
        raise ValueError(
            f"{filename or 'image'}: got {num_boxes} boxes, {len(labels)} labels and "
            f"{len(texts)} class texts; expected one label and one text per box"
        )
    if image_format is None:
        image_format = image_format_of(encoded_image)
    feature = {
        IMAGE_HEIGHT: _int64_list([height]),
        IMAGE_WIDTH: _int64_list([width]),
        IMAGE_FILENAME: _bytes_list([filename]),
        IMAGE_SOURCE_ID: _bytes_list([filename if source_id is None else source_id]),
        IMAGE_KEY_SHA256: _bytes_list([hashlib.sha256(encoded_image).hexdigest()]),
        IMAGE_ENCODED: _bytes_list([encoded_image]),
        IMAGE_FORMAT: _bytes_list([image_format]),
        BBOX_YMIN: _float_list(boxes[:, 0]),
        BBOX_XMIN: _float_list(boxes[:, 1]),
        BBOX_YMAX: _float_list(boxes[:, 2]),
        BBOX_XMAX: _float_list(boxes[:, 3]),
        CLASS_TEXT: _bytes_list(texts),
        CLASS_LABEL: _int64_list(labels),
    }
    optional = {
        DIFFICULT: (difficult, _int64_list),
        TRUNCATED: (truncated, _int64_list),
        VIEW: (view, _bytes_list),
        IS_CROWD: (is_crowd, _int64_list),
        AREA: (area, _float_list),
        GROUP_OF: (group_of, _int64_list),
    }
    for key, (values, make_feature) in optional.items():
        if values is None:
            continue
        values = list(values) if make_feature is _bytes_list else np.asarray(values).reshape(-1)
        if len(values) != num_boxes:
            raise ValueError(
                f"{filename or 'image'}: {key} has {len(values)} values for {num_boxes} boxes"
            )
        feature[key] = make_feature(values)
    if image_class_labels is not None:
        feature[IMAGE_CLASS_LABEL] = _int64_list(np.asarray(image_class_labels).reshape(-1))
    if image_class_texts is not None:
        feature[IMAGE_CLASS_TEXT] = _bytes_list(list(image_class_texts))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _dense(parsed, key, default):
    return tf.sparse.to_dense(parsed[key], default_value=default)


def _labels_from_text(texts, label_map):
    """Maps class texts to ids with `label_map` (unknown names → -1), as the TF OD API decoder
    does when given a label map."""
    names = tf.constant(list(label_map.values()))
    ids = tf.constant(list(label_map.keys()), dtype=tf.int64)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(names, ids), -1)
    return table.lookup(texts)


def decode_tf_example(serialized, label_map=None):
    """Decodes one serialized TF OD API `tf.train.Example`.

    Graph-friendly: works eagerly and inside `tf.data` / `tf.function`.

    Args:
        serialized: scalar string tensor (or bytes) holding a serialized `tf.train.Example`.
        label_map: optional dict `{id: name}`. When given and the record has class texts, the
            labels come from the texts (unknown names → -1), like the TF OD API decoder with a
            `label_map_path`; otherwise from `image/object/class/label`.

    Returns:
        A dict of tensors:
        - `"image"`: uint8 `[height, width, 3]`.
        - `"boxes"`: float32 `[num_boxes, 4]`, `rel_yxyx`.
        - `"labels"`: int32 `[num_boxes]`, 1-based label-map ids.
        - `"texts"`: string `[num_boxes]` (empty when the record has no class texts).
        - `"difficult"`, `"truncated"`, `"is_crowd"`, `"group_of"`: int32 `[num_boxes]` (0
          when absent).
        - `"image_labels"`: int32 `[num_image_labels]`, the verified image-level labels
          (`image/class/label`; from `image/class/text` with a `label_map`, as for boxes).
        - `"area"`: float32 `[num_boxes]` (-1 when absent).
        - `"weights"`: float32 `[num_boxes]` (1 when absent).
        - `"filename"`, `"source_id"`, `"key"`, `"format"`: string scalars.
        - `"height"`, `"width"`: int32 scalars from the record.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    boxes = tf.stack(
        [_dense(parsed, key, 0.0) for key in (BBOX_YMIN, BBOX_XMIN, BBOX_YMAX, BBOX_XMAX)],
        axis=-1,
    )
    num_boxes = tf.shape(boxes)[0]

    def per_box(key, default, dtype):
        values = tf.cast(_dense(parsed, key, default), dtype)
        # Optional per-box lists may be absent (empty); fill them with the default then.
        return tf.cond(
            tf.size(values) == num_boxes,
            lambda: values,
            lambda: tf.fill([num_boxes], tf.cast(default, dtype)),
        )

    texts = _dense(parsed, CLASS_TEXT, "")
    labels = per_box(CLASS_LABEL, -1, tf.int32)
    if label_map:
        labels = tf.cond(
            tf.size(texts) > 0,
            lambda: tf.cast(_labels_from_text(texts, label_map), tf.int32),
            lambda: labels,
        )

    image_labels = tf.cast(_dense(parsed, IMAGE_CLASS_LABEL, -1), tf.int32)
    if label_map:
        image_texts = _dense(parsed, IMAGE_CLASS_TEXT, "")
        image_labels = tf.cond(
            tf.size(image_texts) > 0,
            lambda: tf.cast(_labels_from_text(image_texts, label_map), tf.int32),
            lambda: image_labels,
        )

    return {
        "image": image,
        "boxes": tf.cast(boxes, tf.float32),
        "labels": labels,
        "texts": texts,
        "difficult": per_box(DIFFICULT, 0, tf.int32),
        "truncated": per_box(TRUNCATED, 0, tf.int32),
        "is_crowd": per_box(IS_CROWD, 0, tf.int32),
        "group_of": per_box(GROUP_OF, 0, tf.int32),
        "image_labels": image_labels,
        "area": per_box(AREA, -1.0, tf.float32),
        "weights": per_box(WEIGHT, 1.0, tf.float32),
        "filename": parsed[IMAGE_FILENAME],
        "source_id": parsed[IMAGE_SOURCE_ID],
        "key": parsed[IMAGE_KEY_SHA256],
        "format": parsed[IMAGE_FORMAT],
        "height": tf.cast(parsed[IMAGE_HEIGHT], tf.int32),
        "width": tf.cast(parsed[IMAGE_WIDTH], tf.int32),
    }
