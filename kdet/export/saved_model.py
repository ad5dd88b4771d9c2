"""`export_saved_model`: a detector as a SavedModel with the TF OD API exporter's signature."""

import tensorflow as tf

from kdet.data.tf_example import decode_tf_example
from kdet.export.frozen_graph import FrozenGraph
from kdet.utils.progress import stage_log

#: The `input_type`s of the TF OD API's `exporter_main_v2.py`, with what `input_tensor` holds.
INPUT_TYPES = {
    "image_tensor": tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor"),
    "encoded_image_string_tensor": tf.TensorSpec([None], tf.string, name="input_tensor"),
    "tf_example": tf.TensorSpec([None], tf.string, name="input_tensor"),
}


def export_saved_model(model, output_directory, input_type="image_tensor", progress=True):
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

    Rows past `num_detections` are zeros (class 0 is the background id, never a detection).

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
        model: a built `kdet.models.ObjectDetector` (`kdet.SSD`, `kdet.FasterRCNN`).
        output_directory: where the SavedModel is written (created if needed).
        input_type: one of `"image_tensor"`, `"encoded_image_string_tensor"`, `"tf_example"`.
            Defaults to `"image_tensor"`.
        progress: bool, or the `kdet.utils.progress.StageLog` of a larger task: report the
            stages (tracing, weights to constants, folding batch norms, writing; seconds each
            for a detector) on stderr. Defaults to `True`.

    Raises:
        ValueError: for an unknown `input_type`.

    Example:
    ```python
    kdet.export.export_saved_model(model, "exported/saved_model")
    detect = tf.saved_model.load("exported/saved_model")   # no kdet needed from here on
    detections = detect(tf.constant(images, tf.uint8))     # images: uint8 [B, H, W, 3]
    detections["detection_boxes"], detections["detection_classes"]
    ```
    """
    if input_type not in INPUT_TYPES:
        raise ValueError(f"input_type must be one of {sorted(INPUT_TYPES)}; got {input_type!r}")
    log = stage_log(progress, "Exporting a SavedModel")
    frozen = FrozenGraph(
        lambda images: model.postprocess(model(images, training=False)),
        [INPUT_TYPES["image_tensor"]],
        progress=log,
    )
    log("writing")
    if input_type == "image_tensor":
        serve = _serving_function_of_images(frozen)
    elif input_type == "encoded_image_string_tensor":
        serve = _serving_function_of_strings(frozen, _decode_image)
    else:
        serve = _serving_function_of_strings(frozen, _image_of_tf_example)
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


def _serving_function_of_images(frozen):
    """`input_tensor` uint8 `[B, H, W, 3]` → the TF OD API outputs, the batch in one run."""

    def serve(input_tensor):
        size = tf.shape(input_tensor)[1:3]
        with tf.control_dependencies(
            [
                tf.debugging.assert_positive(
                    size, message="input_tensor: images must be at least 1x1 pixels"
                )
            ]
        ):
            input_tensor = tf.identity(input_tensor)
        return _tf_od_api_outputs(frozen.import_into_graph(input_tensor))

    return serve


def _serving_function_of_strings(frozen, decode):
    """`input_tensor` string `[B]` → the TF OD API outputs, one image at a time.

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
        return _tf_od_api_outputs(detections)

    return serve


def _decode_image(encoded):
    """JPEG/PNG/GIF/BMP bytes (scalar string) → uint8 `[height, width, 3]`."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _image_of_tf_example(serialized):
    """A serialized TF OD API `tf.train.Example` → its uint8 `[height, width, 3]` image."""
    return decode_tf_example(serialized)["image"]


def _tf_od_api_outputs(detections):
    """kdet's postprocessed detections (`rel_yxyx`, -1 padding) → the TF OD API outputs.

    Args:
        detections: `{"boxes" [B, K, 4] rel_yxyx, "labels" [B, K] label-map ids, "confidences"
            [B, K], "num_detections" [B]}`, padded with -1 boxes and labels.

    Returns:
        `{"detection_boxes", "detection_scores", "detection_classes", "num_detections"}`, all
        float32, padded with zeros.
    """
    valid = detections["labels"] > 0
    return {
        "detection_boxes": tf.where(valid[..., tf.newaxis], detections["boxes"], 0.0),
        "detection_scores": tf.where(valid, detections["confidences"], 0.0),
        "detection_classes": tf.cast(tf.where(valid, detections["labels"], 0), tf.float32),
        "num_detections": tf.cast(detections["num_detections"], tf.float32),
    }
