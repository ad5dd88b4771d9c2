"""A `tf.data` input pipeline over TF OD API TFRecords, with the TF OD API `InputReader` options.

`read_tfrecords` follows `protos/input_reader.proto` and `builders/dataset_builder.py`: shards
matched by glob patterns, file-name shuffle, parallel interleaved readers, a record shuffle
buffer, `sample_1_of_n_examples`, `num_epochs` (0 repeats forever), parallel decoding,
augmentation, resizing, ground truth padded to `max_num_boxes`, batching and prefetching. The
elements are `(images, {"boxes", "labels"})`, the `fit` data contract of kdet detectors, with
`"keypoints"` and `"keypoint_visibilities"` for records with keypoints and `"masks"` with
`load_instance_masks`.
"""

import os

import tensorflow as tf

from kdet.boxes import convert_format
from kdet.data.augmentation import build_augmentation
from kdet.data.augmentation import object_fields
from kdet.data.errors import DataError
from kdet.data.label_map import num_keypoints_of
from kdet.data.label_map import read_label_map
from kdet.data.label_map import read_label_map_keypoints
from kdet.data.service import as_data_service
from kdet.data.service import distribute
from kdet.data.tf_example import BBOX_XMIN
from kdet.data.tf_example import KEYPOINT_X
from kdet.data.tf_example import MASK
from kdet.data.tf_example import MASK_TYPES
from kdet.data.tf_example import NUMERICAL_MASKS
from kdet.data.tf_example import PNG_MASKS
from kdet.data.tf_example import decode_tf_example
from kdet.data.tf_example import decode_tf_sequence_example
from kdet.layers.image_resizer import RESIZED_IMAGES
from kdet.layers.image_resizer import TRUE_IMAGE_SHAPE

#: `read_tfrecords` `input_type`s (TF OD API `InputType` TF_EXAMPLE, TF_SEQUENCE_EXAMPLE).
INPUT_TYPES = ("tf_example", "tf_sequence_example")
#: The keys of the context features in the images dict (TF OD API `InputDataFields`).
CONTEXT_FEATURES = "context_features"
VALID_CONTEXT_SIZE = "valid_context_size"

# The TF OD API reads each shard through an 8 MB buffer.
_READ_BUFFER_BYTES = 8 * 1000 * 1000


def list_input_files(input_paths):
    """Expands paths and glob patterns into a sorted list of files.

    Args:
        input_paths: a path or glob pattern (str or path-like), or a list of them.

    Returns:
        list of str, sorted, without duplicates.

    Raises:
        ValueError: if a pattern matches no file (the message names it).

    Example:
    >>> list_input_files("data/train-?????-of-00010.tfrecord")
    """
    patterns = [input_paths] if isinstance(input_paths, (str, os.PathLike)) else input_paths
    files = set()
    for pattern in map(os.fspath, patterns):
        matched = tf.io.gfile.glob(pattern)
        if not matched:
            raise ValueError(f"no input file matches {pattern!r}; expected TFRecord files")
        files.update(matched)
    if not files:
        raise ValueError("input_paths is empty; expected a TFRecord path or glob pattern")
    return sorted(files)


def check_has_records(files):
    """Raises a `DataError` naming `files` unless they hold at least one record.

    Reads at most one record (empty files are skipped at no cost), so it is cheap; without it,
    a dataset over empty files that repeats forever waits for its first element forever.

    Args:
        files: list of str, TFRecord files (from `list_input_files`).

    Raises:
        DataError: if every file is empty, or the first record cannot be read.
    """
    shown = ", ".join(files[:5]) + (f" … ({len(files)} files)" if len(files) > 5 else "")
    try:
        for _ in tf.data.TFRecordDataset(files).take(1):
            return
    except tf.errors.OpError as error:
        raise DataError(
            f"{shown}: cannot read the first record ({error.message}); expected TFRecord files"
        ) from None
    raise DataError(
        f"{shown}: no record in {'this file' if len(files) == 1 else 'these files'}; expected "
        "TFRecord files of tf.train.Example (was it written by a conversion that wrote no "
        "image?)"
    )


def pad_groundtruth(boxes, labels, max_num_boxes):
    """Pads (or truncates) one image's ground truth to a fixed number of rows of -1.

    Args:
        boxes: float32 `[num_boxes, 4]`, any box format.
        labels: int `[num_boxes]`.
        max_num_boxes: int. Number of rows to return; boxes past it are dropped.

    Returns:
        `(boxes, labels)`: float32 `[max_num_boxes, 4]` and int32 `[max_num_boxes]`, the first
        `min(num_boxes, max_num_boxes)` rows real, the rest -1.

    Example:
    >>> boxes, labels = pad_groundtruth([[0.1, 0.1, 0.5, 0.5]], [3], max_num_boxes=2)
    >>> labels  # [3, -1]
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)[:max_num_boxes]
    labels = tf.cast(labels, tf.int32)[:max_num_boxes]
    padding = max_num_boxes - tf.shape(boxes)[0]
    boxes = tf.pad(boxes, [[0, padding], [0, 0]], constant_values=-1.0)
    labels = tf.pad(labels, [[0, padding]], constant_values=-1)
    return tf.ensure_shape(boxes, [max_num_boxes, 4]), tf.ensure_shape(labels, [max_num_boxes])


def pad_keypoints(keypoints, visibilities, max_num_boxes):
    """Pads (or truncates) one image's keypoints as `pad_groundtruth` pads its boxes.

    Args:
        keypoints: float32 `[num_boxes, num_keypoints, 2]` (y, x), any unit.
        visibilities: int `[num_boxes, num_keypoints]`, 0 for keypoints not labelled.
        max_num_boxes: int. Number of rows to return.

    Returns:
        `(keypoints, visibilities)`: float32 `[max_num_boxes, num_keypoints, 2]` with the
        not-labelled keypoints and the padding rows at -1 (never NaN, so that losses weighted
        by visibility stay finite), and int32 `[max_num_boxes, num_keypoints]` padded with 0.
    """
    visibilities = tf.cast(visibilities, tf.int32)[:max_num_boxes]
    keypoints = tf.where(
        (visibilities > 0)[..., tf.newaxis], tf.cast(keypoints, tf.float32)[:max_num_boxes], -1.0
    )
    padding = max_num_boxes - tf.shape(keypoints)[0]
    keypoints = tf.pad(keypoints, [[0, padding], [0, 0], [0, 0]], constant_values=-1.0)
    visibilities = tf.pad(visibilities, [[0, padding], [0, 0]])
    num_keypoints = visibilities.shape[1]
    return (
        tf.ensure_shape(keypoints, [max_num_boxes, num_keypoints, 2]),
        tf.ensure_shape(visibilities, [max_num_boxes, num_keypoints]),
    )


def pad_masks(masks, max_num_boxes):
    """Pads (or truncates) one image's instance masks as `pad_groundtruth` pads its boxes.

    Args:
        masks: `[num_boxes, height, width]`, any dtype.
        max_num_boxes: int. Number of masks to return.

    Returns:
        `[max_num_boxes, height, width]`, the padding masks all zeros.
    """
    masks = masks[:max_num_boxes]
    masks = tf.pad(masks, [[0, max_num_boxes - tf.shape(masks)[0]], [0, 0], [0, 0]])
    return tf.ensure_shape(masks, [max_num_boxes, None, None])


def pad_context_features(context_features, max_num_context_features):
    """Context features zero-padded or clipped to `max_num_context_features` rows, and their
    count before (TF OD API `inputs.pad_input_data_to_static_shapes`).

    Args:
        context_features: float32 `[..., num_context_features, context_feature_length]`
            (one image's, or a batch's of one count).
        max_num_context_features: int.

    Returns:
        `{"context_features": float32 [..., max_num_context_features,
        context_feature_length], "valid_context_size": int32 scalar num_context_features}`
        (not clipped: a count above `max_num_context_features` makes every row valid).
    """
    context_features = tf.convert_to_tensor(context_features, tf.float32)
    leading = [[0, 0]] * (context_features.shape.rank - 2)
    count = tf.shape(context_features)[-2]
    kept = context_features[..., :max_num_context_features, :]
    padded = tf.pad(kept, [*leading, [0, max_num_context_features - tf.shape(kept)[-2]], [0, 0]])
    return {
        CONTEXT_FEATURES: tf.ensure_shape(
            padded, [None] * len(leading) + [max_num_context_features, None]
        ),
        VALID_CONTEXT_SIZE: count,
    }


def _is_sequence_input(input_type, num_keypoints, load_instance_masks):
    """Whether `read_tfrecords` reads sequence examples (`input_type`), checked."""
    if input_type not in INPUT_TYPES:
        raise ValueError(
            f"read_tfrecords: input_type must be one of {INPUT_TYPES}; got {input_type!r}"
        )
    sequences = input_type == "tf_sequence_example"
    if sequences and (num_keypoints or load_instance_masks):
        raise ValueError(
            "read_tfrecords: input_type='tf_sequence_example' records hold boxes and labels "
            "only (the TF OD API's TfSequenceExampleDecoder reads no keypoints or masks); set "
            "num_keypoints=0 and load_instance_masks=False"
        )
    return sequences


def sequence_frames(serialized, label_map, load_context_features, context_feature_length,
                    one_frame=False, seed=None):
    """The annotated frames of one serialized `tf.train.SequenceExample`, as a dataset of
    dicts `{"encoded", "source_id", "format", "boxes" [max_boxes, 4], "labels" [max_boxes],
    "num_boxes"}` (boxes and labels padded with -1 past `num_boxes`; and
    `"context_features"`, the sequence's); see `decode_tf_sequence_example`. With `one_frame`,
    one of them drawn at random, as the TF OD API trains on sequences: by the stateless seed
    `seed` (int64 `[2]`, e.g. the run's seed and the record's position) when given."""
    decoded = decode_tf_sequence_example(
        serialized, label_map, load_context_features, context_feature_length
    )
    shared = {
        key: decoded[key] for key in ("format", "context_features") if key in decoded
    }
    # Dense rows and their lengths: slicing ragged tensors into a dataset logs type warnings.
    frames = tf.data.Dataset.from_tensor_slices({
        "encoded": decoded["encoded"],
        "source_id": decoded["source_id"],
        "is_annotated": decoded["is_annotated"],
        "boxes": decoded["boxes"].to_tensor(-1.0, shape=[None, None, 4]),
        "labels": decoded["labels"].to_tensor(-1),
        "num_boxes": decoded["labels"].row_lengths(),
    })
    frames = frames.filter(lambda frame: frame["is_annotated"])
    if one_frame:
        count = tf.maximum(tf.math.count_nonzero(decoded["is_annotated"]), 1)
        if seed is None:
            index = tf.random.uniform([], maxval=count, dtype=tf.int64)
        else:
            index = tf.random.stateless_uniform([], seed, maxval=count, dtype=tf.int64)
        frames = frames.skip(index).take(1)
    return frames.map(lambda frame: {**frame, **shared})


def frame_example(frame):
    """One frame of `sequence_frames` → the dict `decode_tf_example` gives (image decoded,
    per-box flags 0, no image-level labels)."""
    image = tf.io.decode_image(frame["encoded"], channels=3, expand_animations=False)
    num_boxes = frame["num_boxes"]
    zeros = tf.zeros([num_boxes], tf.int32)
    example = {
        "image": tf.ensure_shape(image, [None, None, 3]),
        "boxes": frame["boxes"][:num_boxes],
        "labels": frame["labels"][:num_boxes],
        "difficult": zeros,
        "group_of": zeros,
        "image_labels": tf.zeros([0], tf.int32),
        "source_id": frame["source_id"],
        "filename": frame["source_id"],
    }
    if "context_features" in frame:
        example["context_features"] = frame["context_features"]
    return example


def _check_context_arguments(load, max_num_context_features, context_feature_length, resized):
    """`read_tfrecords`'s context feature arguments, or a `ValueError` saying what is missing."""
    if not load:
        if max_num_context_features is not None or context_feature_length is not None:
            raise ValueError(
                "read_tfrecords: max_num_context_features / context_feature_length are given "
                "without load_context_features=True"
            )
        return
    for name, value in (
        ("max_num_context_features", max_num_context_features),
        ("context_feature_length", context_feature_length),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"read_tfrecords: load_context_features=True needs {name}, a positive int (the "
                f"model's context_config field, e.g. ContextRCNN.{name}); got {value!r}"
            )
    if not resized:
        raise ValueError(
            "read_tfrecords: load_context_features=True gives the images as the dict of resized "
            "images ContextRCNN takes: pass image_resizer=model.image_resizer (or the model's "
            "fixed image_size)"
        )


def records_mask_type(files, max_records=20):
    """How the first of the first `max_records` records with `image/object/mask` stores it:
    `"png"` (a bytes list) or `"numerical"` (a float list); None when none has masks."""
    for serialized in tf.data.TFRecordDataset(files).take(max_records):
        features = tf.train.Example.FromString(serialized.numpy()).features.feature
        if MASK in features:
            kind = features[MASK].WhichOneof("kind")
            if kind == "bytes_list" and features[MASK].bytes_list.value:
                return PNG_MASKS
            if kind == "float_list" and features[MASK].float_list.value:
                return NUMERICAL_MASKS
    return None


def _resolve_mask_type(load_instance_masks, mask_type, files):
    """`mask_type` of `read_tfrecords`: None without masks; as given (checked against the
    first records, eagerly), else read from the first records (PNG when none has masks)."""
    if not load_instance_masks:
        return None
    if mask_type is not None and mask_type not in MASK_TYPES:
        raise ValueError(
            f"read_tfrecords: mask_type must be one of {MASK_TYPES} or None, got {mask_type!r}"
        )
    found = records_mask_type(files) if tf.executing_eagerly() else None
    if mask_type is not None and found is not None and found != mask_type:
        names = {PNG_MASKS: "PNG_MASKS", NUMERICAL_MASKS: "NUMERICAL_MASKS"}
        raise DataError(
            f"{', '.join(files[:3])}: the records store {MASK} as {names[found]} "
            f"({found!r}) but mask_type is {names[mask_type]} ({mask_type!r}); set mask_type: "
            f"{names[found]} in the input reader (mask_type={found!r} in Python)"
        )
    return mask_type or found or PNG_MASKS


def records_num_keypoints(files, max_records=20):
    """The keypoints per object of TFRecords, read from their first records.

    Args:
        files: list of str, TFRecord files.
        max_records: int. How many records to look at for one with boxes and keypoints.

    Returns:
        int: `image/object/keypoint/x` values per box of the first record with both, 0 when
        none of the first `max_records` has keypoints.

    Raises:
        DataError: naming the record, when its keypoint count is not a multiple of its boxes.
    """
    for serialized in tf.data.TFRecordDataset(files).take(max_records):
        features = tf.train.Example.FromString(serialized.numpy()).features.feature
        num_boxes = len(features[BBOX_XMIN].float_list.value) if BBOX_XMIN in features else 0
        num_values = len(features[KEYPOINT_X].float_list.value) if KEYPOINT_X in features else 0
        if num_boxes and num_values:
            if num_values % num_boxes:
                raise DataError(
                    f"{', '.join(files[:3])}: a record has {num_values} {KEYPOINT_X} values for "
                    f"{num_boxes} boxes; expected the same number of keypoints for every box"
                )
            return num_values // num_boxes
    return 0


def _resolve_num_keypoints(num_keypoints, label_map_path, files):
    """`num_keypoints` of `read_tfrecords`: as given, else from the label map's keypoint
    classes, else from the first records (eagerly only; 0 otherwise)."""
    if num_keypoints is not None:
        if num_keypoints < 0:
            raise ValueError(f"read_tfrecords: num_keypoints must be >= 0, got {num_keypoints}")
        return num_keypoints
    if label_map_path is not None:
        from_label_map = num_keypoints_of(read_label_map_keypoints(label_map_path))
        if from_label_map:
            return from_label_map
    return records_num_keypoints(files) if tf.executing_eagerly() else 0


def _output_keypoints(keypoints, bounding_box_format, image_shape):
    """Relative (y, x) keypoints in the unit of `bounding_box_format` boxes of an image of
    int32 `[2]` `image_shape`: pixels, or relative for `rel_*` formats."""
    if bounding_box_format.startswith("rel_"):
        return keypoints
    return keypoints * tf.cast(image_shape, tf.float32)


# Verified image-level labels kept per image for evaluation (Open Images lists a few dozen).
MAX_IMAGE_LABELS = 500


def _pad_image_labels(image_labels):
    """int32 `[MAX_IMAGE_LABELS]`: an image's verified labels, the unknown (-1) dropped,
    padded with -1."""
    image_labels = tf.boolean_mask(image_labels, image_labels >= 0)[:MAX_IMAGE_LABELS]
    image_labels = tf.pad(image_labels, [[0, MAX_IMAGE_LABELS - tf.shape(image_labels)[0]]],
                          constant_values=-1)
    return tf.ensure_shape(image_labels, [MAX_IMAGE_LABELS])


def _pad_flags(flags, max_num_boxes):
    """int32 `[max_num_boxes]`: per-box flags as `pad_groundtruth` pads their boxes, with 0."""
    flags = tf.cast(flags, tf.int32)[:max_num_boxes]
    flags = tf.pad(flags, [[0, max_num_boxes - tf.shape(flags)[0]]])
    return tf.ensure_shape(flags, [max_num_boxes])


def resize_image_and_boxes(image, boxes, image_size, pad_to_aspect_ratio=False, method="bilinear"):
    """Resizes one image to `image_size`; `rel_yxyx` boxes follow.

    Args:
        image: `[height, width, 3]`, uint8 or float 0..255.
        boxes: float32 `[num_boxes, 4]`, `rel_yxyx` of `image`.
        image_size: `(height, width)` of the output.
        pad_to_aspect_ratio: bool. Keep the aspect ratio: resize to fit inside `image_size` and
            pad the bottom/right with zeros (the TF OD API `keep_aspect_ratio_resizer` with
            `pad_to_max_dimension` places the image the same way). Otherwise stretch.
        method: str. A `tf.image.resize` method (`"bilinear"`, `"nearest"`, `"bicubic"`,
            `"area"`, …).

    Returns:
        `(image, boxes, true_image_shape)`: float32 `[height, width, 3]` (values 0..255), boxes
        in `rel_yxyx` of the output image, and int32 `[2]`, the size of the image content
        without the padding.

    Example:
    >>> image, boxes, true_shape = resize_image_and_boxes(image, boxes, (320, 320), True)
    """
    target = tf.constant(image_size, tf.int32)
    # tf.image.resize ran up to 2x faster on float32 than on uint8 input here.
    image = tf.cast(image, tf.float32)
    if not pad_to_aspect_ratio:
        return tf.image.resize(image, target, method=method), boxes, target
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_min(tf.cast(target, tf.float32) / size)
    content = tf.minimum(tf.cast(tf.round(size * scale), tf.int32), target)
    resized = tf.image.resize(image, content, method=method)
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, image_size[0], image_size[1])
    fraction = tf.cast(content, tf.float32) / tf.cast(target, tf.float32)
    return padded, boxes * tf.tile(fraction, [2]), content


def _as_augmentation(augmentation, num_keypoints):
    if augmentation is None or callable(augmentation):
        return augmentation
    return build_augmentation(augmentation, num_keypoints)


def _check_equal_sizes(reference, element):
    """`Dataset.scan` step: fails with a clear message when image sizes differ."""
    image = element[0]
    size = tf.shape(image)[:2]
    reference = tf.where(reference < 0, size, reference)
    check = tf.debugging.assert_equal(
        size,
        reference,
        message=(
            "read_tfrecords: batching without image_size needs images of one size, but the "
            "sizes differ (this one, then the first one); pass image_size=(height, width)"
        ),
    )
    with tf.control_dependencies([check]):
        image = tf.identity(image)
    return reference, (image, *element[1:])


def read_tfrecords(
    input_paths,
    batch_size=None,
    image_size=None,
    max_num_boxes=100,
    shuffle=True,
    shuffle_buffer_size=2048,
    filenames_shuffle_buffer_size=100,
    num_epochs=1,
    num_readers=4,
    read_block_length=32,
    sample_1_of_n_examples=1,
    num_parallel_calls=tf.data.AUTOTUNE,
    num_prefetch_batches=tf.data.AUTOTUNE,
    augmentation=None,
    label_map=None,
    bounding_box_format="yxyx",
    pad_to_aspect_ratio=False,
    resize_method="bilinear",
    drop_remainder=False,
    seed=None,
    return_metadata=False,
    include_difficult=False,
    image_resizer=None,
    num_keypoints=None,
    load_instance_masks=False,
    mask_type=None,
    load_context_features=False,
    max_num_context_features=None,
    context_feature_length=None,
    input_type="tf_example",
    one_frame_per_sequence=False,
    data_service=None,
):
    """Reads TF OD API TFRecords into `(images, {"boxes", "labels"})` for `fit`/`evaluate`.

    Per record: decode (`decode_tf_example`), drop boxes whose label is unknown (-1, as the TF OD
    API does), augment, resize, convert the boxes from `rel_yxyx` to `bounding_box_format` in
    pixels of the output image, pad the ground truth to `max_num_boxes` with -1 rows.

    Args:
        input_paths: a TFRecord path or glob pattern, or a list of them
            (TF OD API `input_path`).
        batch_size: int or None. Batch the elements; without `image_size` all images must have
            one size (an error says so otherwise).
        image_size: `(height, width)`, an int (square) or None. Resize every image; None keeps
            each image's size.
        max_num_boxes: int. Ground-truth rows per image (TF OD API `max_number_of_boxes`);
            extra boxes are dropped. Defaults to `100`.
        shuffle: bool. Shuffle file names and records, and read shards in a non-deterministic
            interleave order (unless `seed` is given). Defaults to `True`.
        shuffle_buffer_size: int. Record shuffle buffer. Defaults to `2048`.
        filenames_shuffle_buffer_size: int. File-name shuffle buffer. Defaults to `100`.
        num_epochs: int. Passes over the data; 0 repeats forever (TF OD API convention).
            Defaults to `1`.
        num_readers: int. Shards read in parallel (capped at the number of files).
            Defaults to `4`.
        read_block_length: int. Consecutive records taken from one shard. Defaults to `32`.
        sample_1_of_n_examples: int. Keep every n-th record (after shuffling). Defaults to `1`.
        num_parallel_calls: int. Parallel decode/augment calls. Defaults to `tf.data.AUTOTUNE`.
        num_prefetch_batches: int. Elements prefetched at the end. Defaults to
            `tf.data.AUTOTUNE` (-1, which the TF OD API also reads as "autotune").
        augmentation: None, a function `(image, boxes, labels) -> (image, boxes, labels)` on one
            decoded example (image uint8, boxes `rel_yxyx`), or a list of TF OD API augmentation
            steps for `kdet.data.augmentation.build_augmentation`.
        label_map: None, a dict `{id: name}` or the path of a `.pbtxt` label map. When given,
            labels come from the class texts (see `decode_tf_example`).
        bounding_box_format: str. Keras box format of the output boxes, in pixels of the output
            image (or normalized for `"rel_*"` formats). Defaults to `"yxyx"`.
        pad_to_aspect_ratio: bool. With `image_size`: keep the aspect ratio and pad bottom/right.
        resize_method: str. `tf.image.resize` method. Defaults to `"bilinear"`.
        drop_remainder: bool. Drop a last, smaller batch. Defaults to `False`.
        seed: int or None. Seeds the shuffles and makes augmentation stateless (each element gets
            the seed `[seed, position]`), so the pipeline is reproducible; it also makes the
            interleave deterministic. A callable `augmentation` must then accept `seed=`.
        return_metadata: bool. Also return a dict with `"source_id"`, `"filename"` (strings),
            `"original_image_shape"` (int32 `[2]`, decoded size) and `"true_image_shape"` (int32
            `[2]`, the image content inside the output, without padding), as a third element.

        include_difficult: bool. Also return, for evaluation, `"difficult"` and `"group_of"`:
            int32 `[batch, max_num_boxes]`, 1 for boxes marked `image/object/difficult` (which
            the Pascal VOC metrics ignore, as the TF OD API's do) or `image/object/group_of`
            (Open Images group-of boxes, see `compute_open_images_metrics`), padded with 0;
            and `"image_labels"`: int32 `[batch, MAX_IMAGE_LABELS]`, the verified image-level
            labels (`image/class/label`, or `image/class/text` with a `label_map`; the Open
            Images challenge metric reads them), padded with -1. Needs
            `augmentation=None`. Defaults to `False`.
        image_resizer: a `kdet.layers.ImageResizer`, usually the model's own
            `model.image_resizer`, instead of `image_size`: each image is resized with its
            `resize` (the very function the model's `preprocess` runs on raw images, so `fit`,
            `evaluate` and `predict` feed the network the same pixels) after augmentation, and
            the images become a dict `{"resized_images": float32 [batch, H, W, 3],
            "true_image_shape": int32 [batch, 2]}` that detectors take as already resized
            (`ObjectDetector.resize_inputs`; the TF OD API's `true_image_shape`). Images
            padded by the resizer (`pad_to_max_dimension`) batch as they are; others are
            zero-padded bottom/right to the largest of their batch, the model clipping to each
            true shape. Boxes are in pixels of each image's content (which the padding does
            not move), or relative to it for `rel_*` formats.
        num_keypoints: int or None. Keypoints per object (TF OD API `num_keypoints` of the
            input reader). With K > 0, `y` also holds `"keypoints"` and
            `"keypoint_visibilities"` (below), and augmentation moves them with the boxes
            (a callable `augmentation` then gets a dict `{"labels", "keypoints",
            "keypoint_visibilities"}` as its third argument and returns one, see
            `kdet.data.augmentation.object_fields`); 0 reads boxes only. None: the largest
            keypoint id + 1 of a `label_map` path's keypoint classes, else the count in the
            first records with boxes and keypoints (0 when they have none).
        load_instance_masks: bool. Also read the instance masks `image/object/mask` (TF OD API
            `load_instance_masks`) into `y["masks"]` (below); augmentation moves them with
            the boxes and resizing resizes them with the image (nearest neighbour). A callable
            `augmentation` then gets a dict of per-object fields with `"labels"` and
            `"masks"` (`object_fields`). Defaults to `False`.
        mask_type: `"png"` (TF OD API `PNG_MASKS`: one PNG per object), `"numerical"`
            (`NUMERICAL_MASKS`: `num_boxes * height * width` floats) or None: what the first
            records hold. A given type the records do not have is a `DataError`.
        load_context_features: bool. Also read Context R-CNN's context features
            (`image/context_features` with `image/context_feature_length`; TF OD API
            `load_context_features`): the images become a dict of the resized images (below)
            with `"context_features"` float32 `[batch, max_num_context_features,
            context_feature_length]`, each image's features zero-padded (or clipped) to
            `max_num_context_features` rows, and `"valid_context_size"` int32 `[batch]`, the
            record's feature count before padding (as the TF OD API's inputs keep it).
            Needs `image_resizer` or `image_size` (the model's fixed size), and both sizes
            below. Defaults to `False`.
        max_num_context_features, context_feature_length: ints, the TF OD API
            `context_config` fields of the model (`kdet.models.faster_rcnn.ContextRCNN` has
            both). A record with another feature length fails, naming it.
        input_type: `"tf_example"` (records of `tf.train.Example`) or
            `"tf_sequence_example"` (TF OD API `TF_SEQUENCE_EXAMPLE`: records of
            `tf.train.SequenceExample`, frames of one camera as `create_tf_sequence_example`
            writes them; see `decode_tf_sequence_example`). Each annotated frame
            (`region/is_annotated`) of a sequence is one element, with the sequence's context
            features; frames not annotated are skipped. Sequence records need a `label_map`
            and hold boxes and labels only (no keypoints or masks). Defaults to
            `"tf_example"`.
        one_frame_per_sequence: bool, with `"tf_sequence_example"`: one annotated frame of
            each sequence, drawn at random each epoch, instead of all of them, as the TF OD
            API's `train_input` reduces sequences (its `eval_input` keeps every frame):
            batches do not fill with runs of one camera's frames, and long sequences do not
            weigh more. `kdet.configs.train_dataset` sets it. Defaults to `False`.
        data_service: None, a tf.data service dispatcher address (`"grpc://host:port"`) or a
            `kdet.data.service.DataService` (address, `processing_mode`, `job_name`). The whole
            pipeline above, batching included, then runs on the service's workers (TF's
            `tf.data.experimental.service.distribute`); this process only receives the
            batches and prefetches them. The dispatcher must answer (else a `DataError` naming
            the address, after at most `kdet.data.service.CONNECT_TIMEOUT_SECONDS`), and the
            workers must see `input_paths`. With the default `"parallel_epochs"` every worker
            reads all the records, so each element comes once per worker and epoch, and a
            `seed` is refused (every worker would give the same batches). See
            `kdet.data.service`. Defaults to None: all in this process.
    Returns:
        A `tf.data.Dataset` of `(images, {"boxes": boxes, "labels": labels})`:
        - `images`: `[batch, height, width, 3]` float32 0..255 when `image_size` is given
          (resizing makes floats), else uint8 as decoded (the batch axis only with `batch_size`).
          Detectors normalize raw 0..255 values in their own `preprocess`.
        - `boxes`: float32 `[batch, max_num_boxes, 4]` in `bounding_box_format`, padded with -1.
        - `labels`: int32 `[batch, max_num_boxes]`, 1-based label-map ids, padded with -1.
        - with keypoints, `keypoints`: float32 `[batch, max_num_boxes, K, 2]` (y, x) in the
          unit of the boxes (pixels of the output image; relative for `rel_*` formats), -1 for
          padding rows and keypoints not labelled (or moved out of the image by augmentation);
          `keypoint_visibilities`: int32 `[batch, max_num_boxes, K]`, COCO `v` (0 not
          labelled, 1 labelled not visible, 2 visible), 0 for padding rows.
        - with `load_instance_masks`, `masks`: uint8 `[batch, max_num_boxes, height, width]`,
          1 on each object's pixels in the output image (the image's own pixels, padding
          included: a `pad_to_aspect_ratio` or `image_resizer` pad is 0), all 0 for padding
          rows; batches of an `image_resizer` pad them like the images.
        - with `load_context_features`, `images` is `{"resized_images", "true_image_shape",
          "context_features", "valid_context_size"}` (with `image_size`, the resized images
          and their content size), what `ContextRCNN` takes.

    Raises:
        ValueError: if a path or pattern matches no file.
        DataError: if the files hold no record (a dataset of them would never yield one; one
            repeated forever would wait forever).

    Example:
    >>> dataset = read_tfrecords("train-*.tfrecord", batch_size=32, image_size=(320, 320),
    ...                          augmentation=[{"random_horizontal_flip": {}},
    ...                                        {"ssd_random_crop": {}}])
    >>> model.fit(dataset, epochs=10)
    """
    if image_resizer is not None and (image_size is not None or pad_to_aspect_ratio):
        raise ValueError(
            "read_tfrecords: pass image_resizer or image_size (with pad_to_aspect_ratio), not both"
        )
    data_service = as_data_service(data_service)
    if seed is not None and data_service and data_service.processing_mode == "parallel_epochs":
        raise ValueError(
            f"read_tfrecords: seed={seed} with the parallel_epochs data service "
            f"{data_service.address}: every worker would give the same batches; pass "
            "seed=None, or processing_mode='distributed_epoch'"
        )
    _check_context_arguments(
        load_context_features, max_num_context_features, context_feature_length,
        image_resizer is not None or image_size is not None,
    )
    sequences = _is_sequence_input(input_type, num_keypoints, load_instance_masks)
    files = list_input_files(input_paths)
    if tf.executing_eagerly():  # not inside a tf.function, where reading a record cannot run
        check_has_records(files)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    label_map_path = label_map if isinstance(label_map, (str, os.PathLike)) else None
    num_keypoints = _resolve_num_keypoints(num_keypoints, label_map_path, files)
    mask_type = _resolve_mask_type(load_instance_masks, mask_type, files)
    if label_map_path is not None:
        label_map = read_label_map(label_map_path)
    augment = _as_augmentation(augmentation, num_keypoints)
    if include_difficult and augment is not None:
        raise ValueError(
            "include_difficult=True is for evaluation data: augmentation would have to carry "
            "the flags through crops; pass augmentation=None"
        )
    deterministic = not shuffle or seed is not None

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(filenames_shuffle_buffer_size, seed=seed)
    dataset = dataset.repeat(num_epochs or None)
    cycle_length = min(num_readers, len(files))
    parallel_reads = dict(num_parallel_calls=cycle_length, deterministic=deterministic)
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=_READ_BUFFER_BYTES),
        cycle_length=cycle_length,
        block_length=read_block_length,
        **(parallel_reads if cycle_length > 1 else {}),
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    if sample_1_of_n_examples > 1:
        dataset = dataset.shard(sample_1_of_n_examples, 0)
    if sequences:
        # Each record's position in the stream: with `seed`, the seed of its frame's draw.
        dataset = dataset.enumerate().flat_map(
            lambda position, serialized: sequence_frames(
                serialized, label_map, load_context_features, context_feature_length,
                one_frame_per_sequence,
                None if seed is None else tf.stack([tf.constant(seed, tf.int64), position]),
            )
        )
    # Each element carries its position, the second half of its stateless augmentation seed.
    dataset = dataset.enumerate()

    def parse(position, serialized):
        if sequences:
            example = frame_example(serialized)
        else:
            example = decode_tf_example(
                serialized, label_map, num_keypoints or None, mask_type,
                load_context_features=load_context_features,
                context_feature_length=context_feature_length,
            )
        image, boxes, labels = example["image"], example["boxes"], example["labels"]
        original_image_shape = tf.shape(image)[:2]
        known = labels >= 0
        objects = labels
        if num_keypoints or mask_type:
            objects = {object_fields.LABELS: labels}
        if num_keypoints:
            objects[object_fields.KEYPOINTS] = example["keypoints"]
            objects[object_fields.KEYPOINT_VISIBILITIES] = example["keypoint_visibilities"]
        if mask_type:
            objects[object_fields.MASKS] = example["masks"]
        boxes, objects = tf.boolean_mask(boxes, known), object_fields.select(objects, known)
        difficult = tf.boolean_mask(example["difficult"], known)
        group_of = tf.boolean_mask(example["group_of"], known)
        if augment is not None:
            if seed is None:
                image, boxes, objects = augment(image, boxes, objects)
            else:
                element_seed = tf.stack([tf.constant(seed, tf.int64), position])
                image, boxes, objects = augment(image, boxes, objects, seed=element_seed)
        if image_resizer is not None:
            image, true_image_shape = image_resizer.resize_one(image)
            if mask_type:
                # Masks cover the whole output, the resizer's padding (bottom/right) included.
                content = tf.cast(true_image_shape, tf.float32)
                extent = tf.cast(tf.shape(image)[:2], tf.float32) / content
                objects[object_fields.MASKS] = object_fields.resample_masks(
                    objects[object_fields.MASKS],
                    tf.concat([tf.zeros([2]), extent], 0),
                    tf.shape(image)[:2],
                )
        elif image_size is None:
            true_image_shape = tf.shape(image)[:2]
        else:
            image, boxes, true_image_shape = resize_image_and_boxes(
                image, boxes, image_size, pad_to_aspect_ratio, resize_method
            )
            # The content fills the top-left `true_image_shape` of the image.
            content = tf.cast(true_image_shape, tf.float32) / tf.cast(image_size, tf.float32)
            window = tf.concat([tf.zeros([2]), 1.0 / content], 0)
            objects = object_fields.change_frame(
                objects, window, tf.shape(image)[:2], prune=False
            )
        # Pixels of the content: padding lies bottom/right, so it moves no box.
        output_shape = true_image_shape if image_resizer is not None else tf.shape(image)[:2]
        boxes = convert_format(
            boxes, "rel_yxyx", bounding_box_format, height=output_shape[0], width=output_shape[1]
        )
        labels = object_fields.class_labels(objects)
        y = {}
        if num_keypoints:
            keypoints = _output_keypoints(
                objects[object_fields.KEYPOINTS], bounding_box_format, output_shape
            )
            y["keypoints"], y["keypoint_visibilities"] = pad_keypoints(
                keypoints, objects[object_fields.KEYPOINT_VISIBILITIES], max_num_boxes
            )
        if mask_type:
            y["masks"] = pad_masks(objects[object_fields.MASKS], max_num_boxes)
        boxes, labels = pad_groundtruth(boxes, labels, max_num_boxes)
        metadata = {
            "source_id": example["source_id"],
            "filename": example["filename"],
            "original_image_shape": original_image_shape,
            "true_image_shape": true_image_shape,
        }
        y = {"boxes": boxes, "labels": labels, **y}
        if include_difficult:
            y["difficult"] = _pad_flags(difficult, max_num_boxes)
            y["group_of"] = _pad_flags(group_of, max_num_boxes)
            y["image_labels"] = _pad_image_labels(example["image_labels"])
        if load_context_features:
            image = {
                RESIZED_IMAGES: tf.cast(image, tf.float32),
                TRUE_IMAGE_SHAPE: true_image_shape,
                **pad_context_features(example["context_features"], max_num_context_features),
            }
        elif image_resizer is not None:
            image = {RESIZED_IMAGES: image, TRUE_IMAGE_SHAPE: true_image_shape}
        return (image, y, metadata) if return_metadata else (image, y)

    dataset = dataset.map(parse, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if batch_size and image_resizer is not None:
        # Each image to the largest of its batch (a no-op for resizers that pad to one size).
        dataset = dataset.padded_batch(batch_size, drop_remainder=drop_remainder)
    elif batch_size:
        if image_size is None:
            dataset = dataset.scan(tf.constant([-1, -1]), _check_equal_sizes)
        dataset = dataset.batch(
            batch_size,
            drop_remainder=drop_remainder,
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
    if data_service is not None:
        # The batches are made on the workers: one message per batch, nothing left to do here.
        dataset = distribute(dataset, data_service)
    return dataset.prefetch(num_prefetch_batches)
