"""`export_saved_model`: a detector as a SavedModel with the TF OD API exporter's signature."""

import functools

import numpy as np
import tensorflow as tf

from kdet.data.tf_example import IMAGE_ENCODED
from kdet.export.frozen_graph import FrozenGraph
from kdet.models.faster_rcnn.context_rcnn import ContextRCNN
from kdet.utils.progress import stage_log

#: The `input_type`s of the TF OD API's `exporter_main_v2.py`, with what `input_tensor` holds.
INPUT_TYPES = {
    "image_tensor": tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor"),
    "encoded_image_string_tensor": tf.TensorSpec([None], tf.string, name="input_tensor"),
    "tf_example": tf.TensorSpec([None], tf.string, name="input_tensor"),
}
#: The default `max_image_pixels`: Pillow's `Image.MAX_IMAGE_PIXELS` (its decompression-bomb
#: warning), about 1.4 GB of serving memory for one image (~15 bytes per pixel, measured).
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def export_saved_model(
    model,
    output_directory,
    input_type="image_tensor",
    progress=True,
    max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
):
    """Writes a detector as a SavedModel that serves like a TF OD API exported model.

    The `serving_default` signature (also the loaded object's `__call__`) takes `input_tensor`
    and returns the TF OD API exporter's detection outputs, non-max suppression included:

    | input_type | `input_tensor` |
    | --- | --- |
    | `"image_tensor"` | uint8 `[batch, height, width, 3]`, any size |
    | `"encoded_image_string_tensor"` | string `[batch]`, JPEG/PNG/GIF/BMP; sizes may differ |
    | `"tf_example"` | string `[batch]`, serialized `tf.train.Example`s with the TF OD API keys |

    | output | |
    | --- | --- |
    | `detection_boxes` | float32 `[batch, max_detections, 4]`, `[ymin, xmin, ymax, xmax]` in 0..1 |
    | `detection_scores` | float32 `[batch, max_detections]` |
    | `detection_classes` | float32 `[batch, max_detections]`, label-map ids (1-based) |
    | `num_detections` | float32 `[batch]` |
    | `detection_keypoints` | float32 `[batch, max_detections, num_keypoints, 2]`, `(y, x)` in 0..1 |
    | `detection_keypoint_scores` | float32 `[batch, max_detections, num_keypoints]` |
    | `detection_masks` | float32 `[batch, max_detections, mask_height, mask_width]`, 0..1 |

    The keypoint outputs are those of a `kdet.CenterNet` with keypoint tasks (the TF OD API
    exporter's names and shapes); `detection_masks` those of a `kdet.MaskRCNN`: as the TF OD
    API exports them, each detection's mask probabilities in the frame of its box (`predict`'s
    `"box_masks"`), not pasted into the image; `kdet.models.faster_rcnn.mask_head.paste_masks`
    (or the TF OD API's `reframe_box_masks_to_image_masks`) pastes them. Other models have the
    first four outputs only. Rows past `num_detections` are zeros (class 0 is the background
    id, never a detection; masks too, where the TF OD API leaves the mask head's output for
    the zero box), and so are the keypoints (coordinates and scores) a detection's class has
    none of, as in the TF OD API.

    The string input types read each image's width and height from its header (JPEG, PNG,
    GIF, BMP, WebP) before decoding it, and refuse an image of more than `max_image_pixels`
    pixels with an `InvalidArgumentError` ("input_tensor: image of 12000x12000 pixels (width x
    height) is over the limit of 89478485 pixels this model was exported with
    (max_image_pixels)"): a 17.6 KB PNG of 12000×12000 pixels would otherwise cost 2.2 GB to
    serve. A batch of 0 images is refused at the input
    for `image_tensor` ("input_tensor: a batch of 0 images").

    The weights are stored as constants of the serving graph (kdet's `FrozenGraph`, as in
    `FrozenDetector`), not as variables: the graph is then a snapshot that runs without Keras,
    kdet or a checkpoint; batch norms are folded into the convolutions; and on CPU TensorFlow's
    oneDNN kernels keep pre-arranged copies of constant filters, which made kdet's frozen SSD
    0.87–0.96× the time of the TF OD API's own frozen graph where `tf.function(model.detect)`
    took 1.04–1.34× (`benchmarks/README.md`). The size on disk is the same either way (one
    float32 per weight, fewer with batch norms folded); constants only cap a model at
    protobuf's 2 GiB, far above kdet's largest. To fine-tune, use the Keras model or the
    checkpoint, not the SavedModel.

    Args:
        model: a built `kdet.models.ObjectDetector` (`kdet.SSD`, `kdet.FasterRCNN`,
            `kdet.MaskRCNN`, `kdet.CenterNet`).
        output_directory: where the SavedModel is written (created if needed).
        input_type: one of `"image_tensor"`, `"encoded_image_string_tensor"`, `"tf_example"`.
            Defaults to `"image_tensor"`.
        progress: bool, or the `kdet.utils.progress.StageLog` of a larger task: report the
            stages (tracing, weights to constants, folding batch norms, writing; seconds each
            for a detector) on stderr. Defaults to `True`.
        max_image_pixels: int, the most pixels (width × height) an image given as a file
            (`"encoded_image_string_tensor"`, `"tf_example"`) may have; `None` for no limit.
            Defaults to `DEFAULT_MAX_IMAGE_PIXELS` (89 478 485, Pillow's limit).

    Raises:
        ValueError: for an unknown `input_type` or a `max_image_pixels` below 1.

    Example:
    ```python
    kdet.export.export_saved_model(model, "exported/saved_model")
    detect = tf.saved_model.load("exported/saved_model")   # no kdet needed from here on
    detections = detect(tf.constant(images, tf.uint8))     # images: uint8 [B, H, W, 3]
    detections["detection_boxes"], detections["detection_classes"]
    ```
    """
    check_serves_images_alone(model)
    if input_type not in INPUT_TYPES:
        raise ValueError(f"input_type must be one of {sorted(INPUT_TYPES)}; got {input_type!r}")
    if max_image_pixels is not None and not (
        isinstance(max_image_pixels, int) and max_image_pixels >= 1
    ):
        raise ValueError(
            f"max_image_pixels must be a positive int or None; got {max_image_pixels!r}"
        )
    log = stage_log(progress, "Exporting a SavedModel")
    frozen = FrozenGraph(
        lambda images: served_detections(model, images),
        [INPUT_TYPES["image_tensor"]],
        progress=log,
    )
    log("writing")
    outputs = functools.partial(tf_od_api_outputs, model=model)
    if input_type == "image_tensor":
        serve = _serving_function_of_images(frozen, outputs)
    else:
        encoded_image = _encoded_image_of_tf_example if input_type == "tf_example" else None
        serve = _serving_function_of_strings(
            frozen, lambda serialized: _decode_image(serialized, max_image_pixels, encoded_image),
            outputs,
        )
    spec = INPUT_TYPES[input_type]
    module = tf.Module()
    # A concrete function, not a `tf.function`: saving would trace a `tf.function` once more.
    module.__call__ = tf.function(_with_shape_check(serve, spec)).get_concrete_function(spec)
    tf.saved_model.save(module, str(output_directory), signatures=module.__call__)
    log.done()


def _with_shape_check(serve, spec):
    """`serve` checking at run time that `input_tensor` has the shape of `spec`.

    A loaded SavedModel function checks the dtype it is given but not the shape, and a wrong
    shape would fail deep inside the network (e.g. "input must be 4-dimensional" at a resize);
    `EnsureShape` fails at the input, naming `input_tensor` and the expected shape.
    """

    def serve_checked(input_tensor):
        return serve(tf.ensure_shape(input_tensor, spec.shape, name="check_input_tensor"))

    return serve_checked


def _serving_function_of_images(frozen, outputs):
    """`input_tensor` uint8 `[B, H, W, 3]` → `outputs` of the detections, the batch in one
    run."""

    def serve(input_tensor):
        shape = tf.shape(input_tensor)
        with tf.name_scope("check_input_tensor"):
            checks = [
                tf.debugging.assert_positive(
                    shape[:1],
                    message="input_tensor: a batch of 0 images; expected at least 1 image",
                ),
                tf.debugging.assert_positive(
                    shape[1:3], message="input_tensor: images must be at least 1x1 pixels"
                ),
            ]
        with tf.control_dependencies(checks):
            input_tensor = tf.identity(input_tensor)
        return outputs(frozen.import_into_graph(input_tensor))

    return serve


def _serving_function_of_strings(frozen, decode, outputs):
    """`input_tensor` string `[B]` → `outputs` of the detections, one image at a time.

    Each decoded image runs on its own, so one batch may hold images of different sizes (as a
    batch of JPEG files does); the outputs have the same shape for every image.
    """
    per_image = tf.nest.map_structure(
        lambda tensor: tf.TensorSpec(tensor.shape[1:], tensor.dtype), frozen.output_structure
    )

    def detect_one(serialized):
        detections = frozen.import_into_graph(decode(serialized)[tf.newaxis])
        return tf.nest.map_structure(lambda tensor: tensor[0], detections)

    def serve(input_tensor):
        detections = tf.map_fn(detect_one, input_tensor, fn_output_signature=per_image)
        return outputs(detections)

    return serve


def _decode_image(serialized, max_image_pixels, encoded_image=None):
    """JPEG/PNG/GIF/BMP/WebP bytes (scalar string) → uint8 `[height, width, 3]`.

    The size is read from the header first; an image over `max_image_pixels` fails before
    any pixel is decoded. `encoded_image(serialized)` gives the bytes (default: `serialized`).
    """
    encoded = serialized if encoded_image is None else encoded_image(serialized)
    checks = []
    if max_image_pixels is not None:
        height, width = tf.unstack(encoded_image_size(encoded))
        checks.append(
            tf.debugging.Assert(
                height * width <= max_image_pixels,
                [
                    tf.strings.format(
                        "input_tensor: image of {}x{} pixels (width x height) is over the limit "
                        "of {} pixels this model was exported with (max_image_pixels)",
                        (width, height, tf.constant(max_image_pixels, tf.int64)),
                    )
                ],
            )
        )
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _encoded_image_of_tf_example(serialized):
    """The `image/encoded` bytes of a serialized TF OD API `tf.train.Example`."""
    feature = {IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)}
    return tf.io.parse_single_example(serialized, feature)[IMAGE_ENCODED]


def encoded_image_size(encoded):
    """`[height, width]` (int64) of a JPEG, PNG, GIF, BMP or WebP file, from its header only.

    Graph-friendly; reads no pixel data, so a crafted file cannot make it allocate. What
    `tf.io.decode_image` would decode to is this size (GIF: the logical screen; BMP: the
    absolute height of a top-down bitmap).

    Args:
        encoded: scalar string tensor, the file's bytes.

    Returns:
        int64 `[2]`.

    Raises:
        tf.errors.InvalidArgumentError: when run on bytes of another format ("input_tensor:
            Unknown image file format …") or a JPEG without a readable frame header.
    """
    # 32 bytes cover every header read below; zero padding keeps short inputs sliceable (a
    # truncated header reads as a small size, and the decoder then rejects the file).
    header = tf.io.decode_raw(tf.strings.substr(encoded + b"\0" * 32, 0, 32), tf.uint8)
    header = tf.cast(header, tf.int64)

    def number(start, length, big_endian=False):
        places = range(length - 1, -1, -1) if big_endian else range(length)
        return tf.add_n(
            [header[start + index] * (256**place) for index, place in enumerate(places)]
        )

    def starts_with(magic, at=0):
        return tf.reduce_all(header[at : at + len(magic)] == list(magic))

    def webp():
        chunk = tf.strings.substr(encoded + b"\0" * 32, 12, 4)
        vp8l = number(21, 4)
        return tf.case(
            [
                (tf.equal(chunk, b"VP8L"),
                 lambda: tf.stack([(vp8l // 2**14) % 2**14 + 1, vp8l % 2**14 + 1])),
                (tf.equal(chunk, b"VP8X"), lambda: tf.stack([number(27, 3) + 1,
                                                             number(24, 3) + 1])),
            ],
            default=lambda: tf.stack([number(28, 2) % 2**14, number(26, 2) % 2**14]),
        )

    def unknown():
        with tf.control_dependencies(
            [
                tf.debugging.Assert(
                    False,
                    ["input_tensor: Unknown image file format: one of JPEG, PNG, GIF, BMP, "
                     "WebP required (the export reads the image size from the header)"],
                )
            ]
        ):
            return tf.zeros([2], tf.int64)

    return tf.case(
        [
            (starts_with(b"\xff\xd8\xff"),
             lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)),
            (starts_with(b"\x89PNG\r\n\x1a\n"),
             lambda: tf.stack([number(20, 4, True), number(16, 4, True)])),
            (starts_with(b"GIF8"), lambda: tf.stack([number(8, 2), number(6, 2)])),
            # BMP: signed 32-bit width and height; a negative height is a top-down bitmap.
            (starts_with(b"BM"),
             lambda: tf.abs(tf.stack([number(22, 4), number(18, 4)]) - tf.cast(
                 tf.stack([header[25], header[21]]) >= 128, tf.int64) * 2**32)),
            (starts_with(b"RIFF") & starts_with(b"WEBP", at=8), webp),
        ],
        default=unknown,
        exclusive=False,
    )


def check_serves_images_alone(model):
    """Raises ValueError for a model that needs more than images to detect: a Context R-CNN
    takes each image's context features, which an image-only export cannot serve."""
    if isinstance(model, ContextRCNN):
        raise ValueError(
            f"{model.name} is a Context R-CNN: it detects from images and their context "
            "features, and kdet's exports serve images only (the TF OD API serves context "
            "features as side inputs, exporter_main_v2 --use_side_inputs, which kdet does not "
            "have yet). Predict in Python: model.predict(model.context_inputs(images, "
            "context_features))."
        )


def served_detections(model, images):
    """`model`'s postprocessed detections of raw `images`, less what the export does not serve:
    a `kdet.MaskRCNN`'s `"masks"` pasted into the image (`[B, D, H, W]`, 400 MB for 100
    detections on a 1024 x 1024 photo; the export serves the box-frame `"box_masks"`)."""
    detections = model.postprocess(model(images, training=False))
    return {key: value for key, value in detections.items() if key != "masks"}


def tf_od_api_outputs(detections, model):
    """kdet's postprocessed detections (`rel_yxyx`, -1 padding) → the TF OD API outputs.

    Args:
        detections: `{"boxes" [B, D, 4] rel_yxyx, "labels" [B, D] label-map ids, "confidences"
            [B, D], "num_detections" [B]}`, padded with -1 boxes and labels; with keypoints
            (`kdet.CenterNet`) also `"keypoints"` `[B, D, K, 2]` rel `(y, x)` and
            `"keypoint_scores"` `[B, D, K]`; with masks (`kdet.MaskRCNN`) `"box_masks"`
            `[B, D, mask_height, mask_width]`.
        model: the detector that made them (its keypoint tasks say which keypoints each
            class has).

    Returns:
        `{"detection_boxes", "detection_scores", "detection_classes", "num_detections"}`, all
        float32, padded with zeros; with keypoints also `"detection_keypoints"` and
        `"detection_keypoint_scores"`, zeros for padding rows and for the keypoints a
        detection's class has none of; with masks also `"detection_masks"`, zeros for padding
        rows.
    """
    valid = detections["labels"] > 0
    outputs = {
        "detection_boxes": tf.where(valid[..., tf.newaxis], detections["boxes"], 0.0),
        "detection_scores": tf.where(valid, detections["confidences"], 0.0),
        "detection_classes": tf.cast(tf.where(valid, detections["labels"], 0), tf.float32),
        "num_detections": tf.cast(detections["num_detections"], tf.float32),
    }
    if "keypoints" in detections:
        # [B, D, K]: the detection's class has this keypoint (padding: class 0, none).
        has_keypoint = tf.gather(
            keypoint_columns_of_classes(model), tf.where(valid, detections["labels"], 0)
        )
        outputs["detection_keypoints"] = tf.where(
            has_keypoint[..., tf.newaxis], detections["keypoints"], 0.0
        )
        outputs["detection_keypoint_scores"] = tf.where(
            has_keypoint, detections["keypoint_scores"], 0.0
        )
    if "box_masks" in detections:
        outputs["detection_masks"] = tf.where(
            valid[..., tf.newaxis, tf.newaxis], detections["box_masks"], 0.0
        )
    # The signature then shows `max_detections` (top-k of CenterNet leaves it unknown).
    per_detection = tf.TensorShape([None, getattr(model, "max_detections", None)])
    for name, value in outputs.items():
        if name != "num_detections":
            value.set_shape(per_detection.concatenate(value.shape[2:]))
    return outputs


def keypoint_columns_of_classes(model):
    """bool numpy `[num_classes + 1, num_keypoints]`: row `c` marks the keypoint columns the
    detections of label-map id `c` have (those of its keypoint task; row 0, the background,
    none)."""
    columns = np.zeros([model.num_classes + 1, model.num_keypoints], bool)
    for task in model.keypoint_tasks:
        columns[task.class_id, task.keypoint_indices] = True
    return columns
