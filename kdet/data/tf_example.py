"""`tf.train.Example` codec with exactly the TF Object Detection API keys.

Records written here decode with the TF OD API's `TfExampleDecoder`, and records written by the
TF OD API's dataset tools (`create_pascal_tf_record.py`, `create_coco_tf_record.py`, the
"using your own dataset" guide) decode here. Boxes on disk are normalized to [0, 1] and stored as
four separate lists (`image/object/bbox/xmin|ymin|xmax|ymax`); kdet hands them out as one
`[num_boxes, 4]` tensor in `rel_yxyx`. Keypoints (`image/object/keypoint/y|x`, normalized,
object-major `num_boxes * num_keypoints` floats, and `image/object/keypoint/visibility`, COCO's
0 not labelled / 1 labelled not visible / 2 visible) come out as `[num_boxes, num_keypoints, 2]`
in (y, x) order, the TF OD API order. Instance masks (`image/object/mask`) are either one
PNG per object (`PNG_MASKS`, what `create_coco_tf_record.py --include_masks` writes) or
`num_boxes * height * width` floats (`NUMERICAL_MASKS`, the TF OD API default); both come out
as uint8 `[num_boxes, height, width]` of 0/1 in image pixels. Context R-CNN's context features
(`image/context_features`, `num_context_features * context_feature_length` floats, feature-major,
and `image/context_feature_length`) come out as float32 `[num_context_features,
context_feature_length]`.
"""

import hashlib
import io

import numpy as np
import tensorflow as tf

from kdet.data.errors import DataError

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
KEYPOINT_X = "image/object/keypoint/x"
KEYPOINT_Y = "image/object/keypoint/y"
KEYPOINT_VISIBILITY = "image/object/keypoint/visibility"
# Written for the TF OD API's tools (labelled keypoints per object, keypoint names); not decoded.
KEYPOINT_NUM = "image/object/keypoint/num"
KEYPOINT_TEXT = "image/object/keypoint/text"
MASK = "image/object/mask"
# Context R-CNN: features of other images of the same camera, flattened, and their length.
CONTEXT_FEATURES = "image/context_features"
CONTEXT_FEATURE_LENGTH = "image/context_feature_length"
# `tf.train.SequenceExample` feature lists of the TF OD API's `TfSequenceExampleDecoder` (one
# entry per frame; the context holds `image/height|width|format` and the context features).
REGION_XMIN = "region/bbox/xmin"
REGION_YMIN = "region/bbox/ymin"
REGION_XMAX = "region/bbox/xmax"
REGION_YMAX = "region/bbox/ymax"
REGION_LABEL_TEXT = "region/label/string"
REGION_IS_ANNOTATED = "region/is_annotated"
# The TF OD API `InstanceMaskType`s as `decode_tf_example`'s `mask_type` (DEFAULT reads as
# numerical there too).
PNG_MASKS = "png"
NUMERICAL_MASKS = "numerical"
MASK_TYPES = (PNG_MASKS, NUMERICAL_MASKS)
# COCO keypoint visibility `v`: 0 not labelled, 1 labelled but not visible, 2 visible.
KEYPOINT_VISIBLE = 2

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
    KEYPOINT_X: tf.float32,
    KEYPOINT_Y: tf.float32,
    KEYPOINT_VISIBILITY: tf.int64,
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
    keypoints=None,
    keypoint_visibilities=None,
    keypoint_names=None,
    masks=None,
    mask_type=PNG_MASKS,
    context_features=None,
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
        keypoints: optional float array `[num_boxes, num_keypoints, 2]`, normalized (y, x) of
            each object's keypoints (NaN for a keypoint that is not labelled); stored flattened,
            object-major, as `image/object/keypoint/y` and `/x`.
        keypoint_visibilities: optional int array `[num_boxes, num_keypoints]`, COCO `v` (0 not
            labelled, 1 labelled not visible, 2 visible), stored as
            `image/object/keypoint/visibility`; defaults to 2 for finite keypoints, 0 for NaN.
        keypoint_names: optional list of `num_keypoints` names, stored per object as
            `image/object/keypoint/text` (as the TF OD API's `create_coco_tf_record.py` does).
        masks: optional array `[num_boxes, height, width]`, each object's instance mask in
            image pixels (nonzero: the object), stored as `image/object/mask`.
        mask_type: how masks are stored: `"png"` (one PNG of 0/1 per object, as the TF OD
            API's `create_coco_tf_record.py --include_masks` writes; read with its
            `mask_type: PNG_MASKS`) or `"numerical"` (`num_boxes * height * width` floats 0/1,
            its `NUMERICAL_MASKS`). Defaults to `"png"`.
        context_features: optional float array `[num_context_features,
            context_feature_length]` (Context R-CNN's memory bank of this image's camera),
            stored flattened as `image/context_features` with `image/context_feature_length`
            (the TF OD API keys; `num_context_features` may be 0).

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
    if keypoints is not None:
        feature.update(
            _keypoint_features(
                keypoints, keypoint_visibilities, keypoint_names, num_boxes, filename or "image"
            )
        )
    elif keypoint_visibilities is not None or keypoint_names is not None:
        raise ValueError(
            f"{filename or 'image'}: keypoint_visibilities or keypoint_names given without "
            "keypoints"
        )
    if masks is not None:
        masks = mask_array(masks, num_boxes, height, width, filename or "image")
        feature[MASK] = _mask_feature(masks, mask_type)
        if num_boxes == 0:
            # Left out, so that the record reads with either mask type.
            del feature[MASK]
    if context_features is not None:
        feature.update(_context_features(context_features, filename or "image"))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _context_features(context_features, what):
    """The two context feature keys of a `[num_context_features, context_feature_length]`
    array."""
    context_features = np.asarray(context_features, dtype=np.float32)
    if context_features.ndim != 2 or context_features.shape[1] < 1:
        raise DataError(
            f"{what}: context_features has shape {context_features.shape}; expected "
            "[num_context_features, context_feature_length] with context_feature_length >= 1"
        )
    return {
        CONTEXT_FEATURES: _float_list(context_features.reshape(-1)),
        CONTEXT_FEATURE_LENGTH: _int64_list([context_features.shape[1]]),
    }


def mask_array(masks, num_boxes, height, width, what):
    """`masks` as uint8 `[num_boxes, height, width]` of 0/1 (nonzero is 1; an empty array is
    fine when there are no boxes).

    Raises:
        DataError: naming `what`, for another shape or values that are not finite.
    """
    masks = np.asarray(masks)
    if masks.size == 0 and num_boxes == 0:
        masks = masks.reshape(0, height, width)
    if masks.shape != (num_boxes, height, width):
        raise DataError(
            f"{what}: masks have shape {masks.shape}; expected [{num_boxes} boxes, {height}, "
            f"{width}] (one mask per box, in pixels of the {width}x{height} image)"
        )
    if masks.dtype.kind == "f" and not np.all(np.isfinite(masks)):
        raise DataError(f"{what}: masks hold NaN or infinite values; expected 0/1")
    return (masks != 0).astype(np.uint8)


def encode_png_mask(mask):
    """PNG bytes of one uint8 `[height, width]` 0/1 mask, as the TF OD API's dataset tools
    write it (a single-channel PNG of the 0/1 values)."""
    return encode_image(np.asarray(mask, np.uint8), "png")


def _mask_feature(masks, mask_type):
    """The `image/object/mask` feature of uint8 `[num_boxes, height, width]` 0/1 masks."""
    if mask_type == PNG_MASKS:
        return _bytes_list([encode_png_mask(mask) for mask in masks])
    if mask_type == NUMERICAL_MASKS:
        return tf.train.Feature(float_list=tf.train.FloatList(value=masks.ravel().astype(np.float32)))
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")


def keypoint_array(keypoints, num_boxes, what, dtype):
    """`keypoints` as a `dtype` array `[num_boxes, num_keypoints, 2]` (an empty one is fine
    when there are no boxes).

    Raises:
        DataError: naming `what`, for any other shape.
    """
    keypoints = np.asarray(keypoints, dtype=dtype)
    if keypoints.size == 0 and num_boxes == 0:
        keypoints = keypoints.reshape(0, keypoints.shape[1] if keypoints.ndim == 3 else 0, 2)
    if keypoints.ndim != 3 or keypoints.shape[0] != num_boxes or keypoints.shape[2] != 2:
        raise DataError(
            f"{what}: keypoints have shape {keypoints.shape}; expected [{num_boxes} boxes, "
            "num_keypoints, 2 (y, x)]"
        )
    return keypoints


def _keypoint_features(keypoints, visibilities, names, num_boxes, what):
    """The `image/object/keypoint/*` features of `[num_boxes, num_keypoints, 2]` (y, x)."""
    keypoints = keypoint_array(keypoints, num_boxes, what, np.float32)
    num_keypoints = keypoints.shape[1]
    labelled = np.all(np.isfinite(keypoints), axis=-1)
    if visibilities is None:
        visibilities = np.where(labelled, KEYPOINT_VISIBLE, 0)
    visibilities = np.asarray(visibilities, dtype=np.int64)
    if visibilities.shape != (num_boxes, num_keypoints):
        raise ValueError(
            f"{what}: keypoint_visibilities have shape {visibilities.shape}; expected "
            f"[{num_boxes}, {num_keypoints}] like the keypoints"
        )
    if not np.all((visibilities >= 0) & (visibilities <= KEYPOINT_VISIBLE)):
        raise ValueError(
            f"{what}: keypoint_visibilities hold {sorted(set(visibilities.ravel().tolist()))}; "
            "expected COCO v values 0 (not labelled), 1 (labelled, not visible), 2 (visible)"
        )
    features = {
        KEYPOINT_Y: _float_list(keypoints[..., 0].ravel()),
        KEYPOINT_X: _float_list(keypoints[..., 1].ravel()),
        KEYPOINT_VISIBILITY: _int64_list(visibilities.ravel()),
        KEYPOINT_NUM: _int64_list(np.sum(visibilities > 0, axis=1)),
    }
    if names is not None:
        names = list(names)
        if len(names) != num_keypoints:
            raise ValueError(
                f"{what}: {len(names)} keypoint_names for {num_keypoints} keypoints per object"
            )
        features[KEYPOINT_TEXT] = _bytes_list(names * num_boxes)
    return features


def _dense(parsed, key, default):
    return tf.sparse.to_dense(parsed[key], default_value=default)


def _labels_from_text(texts, label_map):
    """Maps class texts to ids with `label_map` (unknown names → -1), as the TF OD API decoder
    does when given a label map."""
    names = tf.constant(list(label_map.values()))
    ids = tf.constant(list(label_map.keys()), dtype=tf.int64)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(names, ids), -1)
    return table.lookup(texts)


def _check_keypoint_count(parsed, key, expected, what):
    """An assertion that `key` holds `expected` values; its message names the record."""
    count = tf.size(parsed[key].values)
    return tf.debugging.Assert(
        tf.equal(count, expected),
        [
            *_record_names(parsed),
            f"{key} has",
            count,
            f"values; expected {what}:",
            expected,
        ],
    )


def _decode_keypoints(parsed, num_boxes, num_keypoints):
    """`(keypoints [num_boxes, K, 2] (y, x), visibilities int32 [num_boxes, K])` of a record.

    K is `num_keypoints`, or read from the record (values / boxes) when None. A record without
    keypoints gets K not-labelled keypoints per box. As the TF OD API decoder does: without
    `image/object/keypoint/visibility`, a keypoint is visible (2) unless its coordinates are
    NaN (kdet: or negative), and not-labelled keypoints get NaN coordinates.
    """
    y = _dense(parsed, KEYPOINT_Y, 0.0)
    x = _dense(parsed, KEYPOINT_X, 0.0)
    size = tf.size(x)
    if num_keypoints is None:
        count = size // tf.maximum(num_boxes, 1)
    else:
        count = tf.constant(num_keypoints, tf.int32)
    checks = [
        _check_keypoint_count(parsed, KEYPOINT_Y, size, f"the {KEYPOINT_X} count"),
        _check_keypoint_count(
            parsed,
            KEYPOINT_X,
            tf.where(size > 0, num_boxes * count, 0),
            "boxes * keypoints per box" + ("" if num_keypoints is None else f" ({num_keypoints})"),
        ),
    ]
    with tf.control_dependencies(checks):
        total = num_boxes * count
        coordinates = tf.cond(
            size > 0,
            lambda: tf.stack([y, x], axis=-1),
            lambda: tf.fill([total, 2], float("nan")),
        )
    given = tf.cast(_dense(parsed, KEYPOINT_VISIBILITY, 0), tf.int32)
    finite = tf.reduce_all(tf.math.is_finite(coordinates), axis=-1)
    default = tf.where(finite & tf.reduce_all(coordinates >= 0.0, axis=-1), KEYPOINT_VISIBLE, 0)
    visibilities = tf.cond(
        (tf.size(given) == total) & (size > 0), lambda: tf.where(finite, given, 0), lambda: default
    )
    coordinates = tf.where((visibilities > 0)[:, tf.newaxis], coordinates, float("nan"))
    keypoints = tf.reshape(coordinates, tf.stack([num_boxes, count, 2]))
    visibilities = tf.reshape(visibilities, tf.stack([num_boxes, count]))
    return (
        tf.ensure_shape(keypoints, [None, num_keypoints, 2]),
        tf.ensure_shape(visibilities, [None, num_keypoints]),
    )


def _check_mask_count(parsed, count, num_boxes):
    """An assertion that a record has one mask per box; its message names the record."""
    return tf.debugging.Assert(
        tf.equal(count, num_boxes),
        [
            *_record_names(parsed),
            f"has {MASK} of",
            count,
            "objects; expected one mask per box:",
            num_boxes,
        ],
    )


def _decode_masks(parsed, mask_type, num_boxes, image_shape):
    """uint8 `[num_boxes, height, width]` 0/1 masks of a record (TF OD API `TfExampleDecoder`
    `_decode_png_instance_masks` / `_reshape_instance_masks`: nonzero is 1, the size from
    `image/height|width`), checked against the boxes and the decoded image size."""
    height = tf.cast(parsed[IMAGE_HEIGHT], tf.int32)
    width = tf.cast(parsed[IMAGE_WIDTH], tf.int32)
    if mask_type == PNG_MASKS:
        encoded = _dense(parsed, MASK, "")

        def decode_png(buffer):
            mask = tf.io.decode_image(buffer, channels=1, expand_animations=False)[..., 0]
            return tf.cast(mask > 0, tf.uint8)

        masks = tf.cond(
            tf.size(encoded) > 0,
            lambda: tf.map_fn(
                decode_png, encoded, fn_output_signature=tf.TensorSpec([None, None], tf.uint8)
            ),
            lambda: tf.zeros(tf.stack([0, height, width]), tf.uint8),
        )
    else:
        values = _dense(parsed, MASK, 0.0)
        masks = tf.reshape(tf.cast(values > 0.0, tf.uint8), tf.stack([-1, height, width]))
    mask_shape = tf.shape(masks)
    checks = [
        _check_mask_count(parsed, mask_shape[0], num_boxes),
        tf.debugging.Assert(
            tf.reduce_all(tf.equal(mask_shape[1:], image_shape)),
            [
                *_record_names(parsed),
                f"has {MASK} of height and width",
                mask_shape[1:],
                "; expected the decoded image's",
                image_shape,
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.ensure_shape(tf.identity(masks), [None, None, None])


def _record_names(parsed):
    """The start of an assertion message naming the record (its filename and source id)."""
    return ["record (image/filename, image/source_id):", parsed[IMAGE_FILENAME],
            parsed[IMAGE_SOURCE_ID]]


def _decode_context_features(parsed, context_feature_length):
    """float32 `[num_context_features, length]` context features of a record (TF OD API
    `TfExampleDecoder._reshape_context_features`), checked: `image/context_feature_length` is
    present (and `context_feature_length` when given) and divides the feature count."""
    values = _dense(parsed, CONTEXT_FEATURES, 0.0)
    length = tf.cast(parsed[CONTEXT_FEATURE_LENGTH], tf.int32)
    checks = [
        tf.debugging.Assert(
            length > 0,
            [*_record_names(parsed), (
                f"has no {CONTEXT_FEATURE_LENGTH} (or one below 1); records read with "
                f"load_context_features need it with {CONTEXT_FEATURES}"
            )],
        ),
        tf.debugging.Assert(
            tf.equal(tf.size(values) % tf.maximum(length, 1), 0),
            [*_record_names(parsed), f"has {CONTEXT_FEATURES} of", tf.size(values),
             f"floats, not a multiple of its {CONTEXT_FEATURE_LENGTH}", length],
        ),
    ]
    if context_feature_length is not None:
        checks.append(tf.debugging.Assert(
            tf.equal(length, context_feature_length),
            [*_record_names(parsed), f"has {CONTEXT_FEATURE_LENGTH}", length,
             f"; expected {context_feature_length} (the model's context_feature_length)"],
        ))
    with tf.control_dependencies(checks):
        features = tf.reshape(values, tf.stack([-1, tf.maximum(length, 1)]))
    return tf.ensure_shape(features, [None, context_feature_length])


def decode_tf_example(serialized, label_map=None, num_keypoints=None, mask_type=None,
                      load_context_features=False, context_feature_length=None):
    """Decodes one serialized TF OD API `tf.train.Example`.

    Graph-friendly: works eagerly and inside `tf.data` / `tf.function`.

    Args:
        serialized: scalar string tensor (or bytes) holding a serialized `tf.train.Example`.
        label_map: optional dict `{id: name}`. When given and the record has class texts, the
            labels come from the texts (unknown names → -1), like the TF OD API decoder with a
            `label_map_path`; otherwise from `image/object/class/label`.
        num_keypoints: optional int, the keypoints per object (TF OD API `num_keypoints` of the
            input reader): fixes K (a record with another count fails, naming it; a record
            without keypoints gets K not-labelled ones per box). None reads K from the record.
        mask_type: optional str, decode `image/object/mask` (TF OD API `load_instance_masks`
            with `mask_type`): `"png"` (`PNG_MASKS`, one PNG per object) or `"numerical"`
            (`NUMERICAL_MASKS`, `num_boxes * height * width` floats). None: no masks.
        load_context_features: bool. Decode Context R-CNN's `image/context_features` with
            `image/context_feature_length` (TF OD API `load_context_features`). Defaults to
            `False`.
        context_feature_length: optional int, the length every record must have (the
            model's `context_feature_length`).

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
        - `"keypoints"`: float32 `[num_boxes, num_keypoints, 2]`, normalized (y, x); NaN for
          keypoints not labelled (num_keypoints 0 for a record without keypoints, unless
          `num_keypoints` is given).
        - `"keypoint_visibilities"`: int32 `[num_boxes, num_keypoints]`, COCO `v` (0 not
          labelled, 1 labelled not visible, 2 visible); see `_decode_keypoints` for the
          defaults when the record has no visibilities.
        - with `mask_type`, `"masks"`: uint8 `[num_boxes, height, width]`, 1 on the object's
          pixels (the TF OD API decoder's float32 0/1 values; nonzero on disk is 1). A record
          must have one mask per box (none when it has no boxes) at the image's size; another
          count or size fails, naming the record.
        - with `load_context_features`, `"context_features"`: float32
          `[num_context_features, context_feature_length]` (0 rows when the record has a
          length and no features). A record without `image/context_feature_length`, with a
          feature count it does not divide or with another length than
          `context_feature_length` fails, naming the record and the key.
        - `"filename"`, `"source_id"`, `"key"`, `"format"`: string scalars.
        - `"height"`, `"width"`: int32 scalars from the record.
    """
    spec = FEATURE_SPEC
    if mask_type is not None:
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES} or None, got {mask_type!r}")
        dtype = tf.string if mask_type == PNG_MASKS else tf.float32
        spec = {**FEATURE_SPEC, MASK: tf.io.VarLenFeature(dtype)}
    if load_context_features:
        spec = {
            **spec,
            CONTEXT_FEATURES: tf.io.VarLenFeature(tf.float32),
            CONTEXT_FEATURE_LENGTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
        }
    parsed = tf.io.parse_single_example(serialized, spec)
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

    keypoints, keypoint_visibilities = _decode_keypoints(parsed, num_boxes, num_keypoints)
    masks = {}
    if mask_type is not None:
        masks["masks"] = _decode_masks(parsed, mask_type, num_boxes, tf.shape(image)[:2])
    if load_context_features:
        masks["context_features"] = _decode_context_features(parsed, context_feature_length)
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
        "keypoints": keypoints,
        "keypoint_visibilities": keypoint_visibilities,
        **masks,
        "filename": parsed[IMAGE_FILENAME],
        "source_id": parsed[IMAGE_SOURCE_ID],
        "key": parsed[IMAGE_KEY_SHA256],
        "format": parsed[IMAGE_FORMAT],
        "height": tf.cast(parsed[IMAGE_HEIGHT], tf.int32),
        "width": tf.cast(parsed[IMAGE_WIDTH], tf.int32),
    }


def create_tf_sequence_example(
    encoded_images, height, width, boxes, texts, source_ids, is_annotated=None,
    context_features=None, image_format=None,
):
    """Builds a `tf.train.SequenceExample` of frames of one camera, with the keys of the TF OD
    API's `TfSequenceExampleDecoder` (its `dataset_tools/seq_example_util.py` layout).

    Args:
        encoded_images: list of F encoded JPEG/PNG images of one size (`image/encoded`).
        height, width: ints, their size (`image/height`, `image/width`).
        boxes: list of F float arrays `[num_boxes_f, 4]`, `rel_yxyx` (`region/bbox/*`).
        texts: list of F lists of class names (`region/label/string`; labels come from the
            label map, as in the TF OD API).
        source_ids: list of F strings (`image/source_id`).
        is_annotated: optional list of F 0/1 (`region/is_annotated`). Defaults to all 1.
        context_features: optional float array `[num_context_features,
            context_feature_length]`, shared by the frames (`image/context_features`,
            `image/context_feature_length` in the context).
        image_format: `image/format`; detected from the first image when None.

    Returns:
        A `tf.train.SequenceExample`.
    """
    frames = len(encoded_images)
    if not (len(boxes) == len(texts) == len(source_ids) == frames):
        raise DataError(
            f"sequence of {frames} images: got {len(boxes)} box lists, {len(texts)} text lists "
            f"and {len(source_ids)} source ids; expected one of each per image"
        )
    boxes = [np.asarray(frame, np.float32).reshape(-1, 4) for frame in boxes]
    for index, (frame_boxes, frame_texts) in enumerate(zip(boxes, texts)):
        if len(frame_texts) != len(frame_boxes):
            raise DataError(
                f"sequence frame {index} ({source_ids[index]}): {len(frame_boxes)} boxes and "
                f"{len(frame_texts)} class texts; expected one text per box"
            )
    context = {
        IMAGE_HEIGHT: _int64_list([height]),
        IMAGE_WIDTH: _int64_list([width]),
        IMAGE_FORMAT: _bytes_list([image_format or image_format_of(encoded_images[0])]),
    }
    if context_features is not None:
        context.update(_context_features(context_features, f"sequence {source_ids[:1]}"))
    lists = {
        IMAGE_ENCODED: [_bytes_list([image]) for image in encoded_images],
        IMAGE_SOURCE_ID: [_bytes_list([source_id]) for source_id in source_ids],
        REGION_LABEL_TEXT: [_bytes_list(list(frame)) for frame in texts],
        REGION_IS_ANNOTATED: [
            _int64_list([flag]) for flag in (is_annotated or [1] * frames)
        ],
    }
    for key, column in ((REGION_YMIN, 0), (REGION_XMIN, 1), (REGION_YMAX, 2), (REGION_XMAX, 3)):
        lists[key] = [_float_list(frame[:, column]) for frame in boxes]
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list={
            key: tf.train.FeatureList(feature=features) for key, features in lists.items()
        }),
    )


def decode_tf_sequence_example(serialized, label_map, load_context_features=False,
                               context_feature_length=None):
    """Decodes one serialized TF OD API `tf.train.SequenceExample` into its frames.

    Graph-friendly. As the TF OD API's `TfSequenceExampleDecoder` (with `fully_annotated`
    False, the default its decoder builder uses): labels from `region/label/string` through
    the label map (unknown names -1), `region/is_annotated` per frame.

    Args:
        serialized: scalar string tensor.
        label_map: dict `{id: name}`.
        load_context_features, context_feature_length: as in `decode_tf_example`; the
            sequence's context features are every frame's.

    Returns:
        A dict of tensors with a leading frame axis F: `"encoded"` string `[F]`,
        `"source_id"` string `[F]`, `"boxes"` float32 ragged `[F, None, 4]` `rel_yxyx`,
        `"labels"` int32 ragged `[F, None]`, `"is_annotated"` bool `[F]`, `"format"` string
        scalar and, with `load_context_features`, `"context_features"` float32
        `[num_context_features, context_feature_length]`.
    """
    if not label_map:
        raise ValueError(
            "decode_tf_sequence_example needs a label map: sequence examples name their "
            f"classes ({REGION_LABEL_TEXT}) only"
        )
    context_spec = {
        IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
        IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64),
        IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64),
    }
    if load_context_features:
        context_spec[CONTEXT_FEATURES] = tf.io.VarLenFeature(tf.float32)
        context_spec[CONTEXT_FEATURE_LENGTH] = tf.io.FixedLenFeature(
            (), tf.int64, default_value=0
        )
    sequence_spec = {
        IMAGE_ENCODED: tf.io.FixedLenSequenceFeature([], tf.string),
        IMAGE_SOURCE_ID: tf.io.FixedLenSequenceFeature([], tf.string),
        REGION_IS_ANNOTATED: tf.io.FixedLenSequenceFeature([], tf.int64),
        REGION_LABEL_TEXT: tf.io.VarLenFeature(tf.string),
        **{key: tf.io.VarLenFeature(tf.float32)
           for key in (REGION_YMIN, REGION_XMIN, REGION_YMAX, REGION_XMAX)},
    }
    context, frames = tf.io.parse_single_sequence_example(
        serialized, context_spec, sequence_spec
    )
    coordinates = [
        tf.RaggedTensor.from_sparse(frames[key])
        for key in (REGION_YMIN, REGION_XMIN, REGION_YMAX, REGION_XMAX)
    ]
    texts = tf.RaggedTensor.from_sparse(frames[REGION_LABEL_TEXT])
    decoded = {
        "encoded": frames[IMAGE_ENCODED],
        "source_id": frames[IMAGE_SOURCE_ID],
        "boxes": tf.stack(coordinates, axis=-1),
        "labels": tf.cast(tf.ragged.map_flat_values(_labels_from_text, texts, label_map),
                          tf.int32),
        "is_annotated": frames[REGION_IS_ANNOTATED] > 0,
        "format": context[IMAGE_FORMAT],
    }
    if load_context_features:
        names = {IMAGE_FILENAME: frames[IMAGE_SOURCE_ID][0],
                 IMAGE_SOURCE_ID: frames[IMAGE_SOURCE_ID][0]}
        decoded["context_features"] = _decode_context_features(
            {**context, **names}, context_feature_length
        )
    return decoded
