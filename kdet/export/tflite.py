"""`export_tflite`: an SSD (its non-max suppression TFLite's own op) or a CenterNet as a TFLite
model."""

import contextlib
import math
import pathlib
import warnings

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.python.util import deprecation

from kdet.export.frozen_graph import FrozenGraph
from kdet.export.saved_model import tf_od_api_outputs
from kdet.inference.input_files import collect_inputs
from kdet.inference.input_files import read_image
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.models.center_net.center_net import CenterNet
from kdet.models.ssd.ssd import SSD
from kdet.training.quantization import QuantizationAwareTraining
from kdet.utils.progress import stage_log

QUANTIZATIONS = (None, "dynamic_range", "int8")
# The TFLite runtime's built-in custom op for SSD box decoding + NMS, and how many classes it
# keeps per box in fast NMS (the TF OD API's value).
DETECTION_POSTPROCESS = "TFLite_Detection_PostProcess"
_MAX_CLASSES_PER_DETECTION = 1
# Name scope of the post-processing in a TFLite graph: a CenterNet's, and an SSD's ops after
# its NMS op (kept float in int8).
_POSTPROCESSING = "postprocessing"


def export_tflite(model, path, quantization=None, input_size=None, use_regular_nms=True,
                  progress=True, representative_images=None, include_keypoints=True):
    """Writes an SSD or a CenterNet as a `.tflite` model that runs with the plain TFLite
    interpreter.

    SSD: non-max suppression is TFLite's built-in `TFLite_Detection_PostProcess` op, as in the
    TF OD API's `export_tflite_graph_tf2.py`: a `tf.function` marked
    `experimental_implements="TFLite_Detection_PostProcess …"` that the converter replaces with
    the op. No Select-TF (Flex) ops are needed, so `tf.lite.Interpreter`, `ai_edge_litert` and
    the mobile runtimes run the model as it is. The network before it is kdet's `FrozenGraph`
    (weights as constants, batch norms folded): TFLite cannot run a graph that still reads
    variables.

    Unlike the TF OD API, the graph decodes the boxes itself (the model's own
    `decode_boxes_and_scores`: box coder and padding taken out, not clipped) and hands the op
    boxes coded against unit anchors, which its decoding maps back unchanged; the boxes the op
    keeps are then clipped to the image, as the Keras model's `postprocess` does. This way the
    TFLite model's detections are the Keras model's, for any box coder and image resizer.

    CenterNet (as the TF OD API's `export_tflite_graph_tf2.py` `CenterNetModule`): the model's
    own post-processing is in the graph (max-pool peaks, top-k, boxes at the peaks and, with
    keypoint tasks, the keypoint candidates and their snapping), all of it TFLite built-in ops,
    so the TFLite model's detections are the Keras model's.

    The model has one signature, `serving_default`:

    - input `input_tensor`: uint8 `[1, height, width, 3]`, raw RGB pixels (resized and
      normalized inside, as the Keras model does);
    - outputs, as `export_saved_model`'s: `detection_boxes` float32 `[1, max_detections, 4]`
      normalized `[ymin, xmin, ymax, xmax]`, `detection_scores`, `detection_classes`
      (label-map ids, 1-based; 0 past `num_detections`) and `num_detections` `[1]`;
    - for a CenterNet with keypoint tasks and `include_keypoints`, also, as
      `export_saved_model`'s: `detection_keypoints` float32 `[1, max_detections,
      num_keypoints, 2]` normalized `(y, x)` and `detection_keypoint_scores` `[1,
      max_detections, num_keypoints]` (zeros past `num_detections` and for the keypoints a
      detection's class has none of).

    Read the outputs by name (`get_signature_runner()`): the TF OD API's CenterNet TFLite
    model has unnamed outputs in the order boxes, classes, scores, num_detections, keypoints,
    keypoint scores, where a signature orders them by name.

    The SSD op applies the model's `score_threshold`, `iou_threshold`, `max_detections_per_class`
    and `max_detections`.

    Args:
        model: a built `kdet.SSD` or `kdet.CenterNet` (Faster R-CNN and Mask R-CNN are not: their
            proposal NMS and RoI crops have no built-in TFLite ops; export them with
            `export_saved_model`).
        path: the `.tflite` file to write (its folder is created if needed).
        quantization: `None` (float32), `"dynamic_range"` (weights stored as int8 and
            dequantized on the fly or used by int8 kernels; activations stay float: about 4x
            smaller, no calibration data needed) or `"int8"` (the network in int8: weights and
            activations; the image normalization before it and the box decoding after it stay
            float). A quantization-aware model (`kdet.training.quantization`, or a config's
            `graph_rewriter { quantization { … } }`) is exported in int8 with the ranges it
            learned, for `None` or `"int8"`; for any other model `"int8"` is post-training
            quantization calibrated on `representative_images`. A CenterNet's `"int8"` model
            is int8 up to its heads, its post-processing float32 (TFLite's selective
            quantization); a quantization-aware CenterNet is refused. Defaults to `None`.
        input_size: `(height, width)` of the images the TFLite model takes. Defaults to the
            model's `FixedShapeResizer` size (required for other resizers).
        use_regular_nms: bool. `True`: non-max suppression per class, as the Keras model does.
            `False`: TFLite's fast NMS, which suppresses across classes using each box's best
            class (the TF OD API's default; faster with many classes, but a box can then hide a
            box of another class). A model with class-agnostic NMS (`use_class_agnostic_nms`)
            is exported with the fast NMS whatever this says: it is what that model computes.
            Defaults to `True`. SSD only.
        progress: bool, or the `kdet.utils.progress.StageLog` of a larger task: report the
            stages (freezing the network, converting) on stderr. Defaults to `True`.
        representative_images: for `quantization="int8"` of a model that is not
            quantization-aware: an iterable of images, each `[height, width, 3]` or
            `[1, height, width, 3]` (uint8 or 0..255 floats; resized to `input_size` if they
            differ), a few hundred typical ones (TFLite's advice), whose activations set the
            int8 ranges. A `tf.data.Dataset` of images or of `(images, y)` batches works too,
            and so do image files: `RepresentativeImages(["photos/", "more/*.jpg"])`.
        include_keypoints: bool, a CenterNet with keypoint tasks: also output its keypoints
            (the TF OD API's `--include_keypoints`, off there by default); `False` leaves the
            keypoint heads out of the TFLite model. Ignored for other models. Defaults to
            `True`.

    Raises:
        ValueError: for a model other than SSD and CenterNet, an unknown `quantization`, a
            missing `input_size`, a quantization-aware model exported with `"dynamic_range"` or with
            other than 8 bits, `"int8"` of another model without `representative_images`,
            `representative_images` with another `quantization` or a quantization-aware
            model, a model whose post-processing uses soft NMS or score calibration
            (TFLite's post-processing op has neither), or a quantization-aware CenterNet.

    Example:
    ```python
    kdet.export.export_tflite(kdet.zoo.load("ssd_mobilenet_v2_coco"), "ssd.tflite")
    detect = tf.lite.Interpreter("ssd.tflite").get_signature_runner()
    detections = detect(input_tensor=image[np.newaxis])  # image: uint8 [300, 300, 3]
    ```
    """
    _check_exportable(model, quantization)
    quantization = _int8_if_quantization_aware(model, quantization, representative_images)
    height, width = input_size or _fixed_input_size(model)
    input_spec = tf.TensorSpec([1, height, width, 3], tf.uint8, name="input_tensor")
    log = stage_log(progress, "Exporting a TFLite model")
    int8 = quantization == "int8"
    if isinstance(model, CenterNet):
        detect = _center_net_detect(model, input_spec, int8, include_keypoints, log)
    else:
        detect = _ssd_detect(model, input_spec, int8, use_regular_nms, log)
    function = tf.function(detect).get_concrete_function(input_spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    # SSD: a custom op to the converter, though every TFLite runtime has it built in. CenterNet
    # has none: an op without a built-in kernel then fails the conversion, not the runtime.
    converter.allow_custom_ops = not isinstance(model, CenterNet)
    if quantization in ("dynamic_range", "int8"):
        # With fake-quantization ops in the graph (a quantization-aware model) the converter
        # quantizes with their ranges; otherwise "int8" calibrates on the images.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8" and representative_images is not None:
        converter.representative_dataset = _representative_dataset(
            representative_images, height, width
        )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log("converting")
    if converter.representative_dataset is not None:
        path.write_bytes(_int8_with_float_postprocessing(converter, function))
    else:
        path.write_bytes(converter.convert())
    log.done()


def _frozen_network(model, function, input_spec, int8, log):
    """`FrozenGraph` of `function(images)` of `model`, ready for an int8 conversion if `int8`."""
    with _quiet_batch_norm_folding(int8), _float32_compute(model, int8):
        frozen = FrozenGraph(function, [input_spec], progress=log)
    if int8:
        frozen.graph_def = _without_16_bit_round_trips(frozen.graph_def, frozen.output_names)
    return frozen


def _ssd_detect(model, input_spec, int8, use_regular_nms, log):
    """The TFLite model's function for an SSD: the frozen network and box decoding, then
    `TFLite_Detection_PostProcess`."""
    frozen = _frozen_network(
        model, lambda images: model.decode_boxes_and_scores(model(images, training=False)),
        input_spec, int8, log,
    )
    num_anchors = frozen.output_structure[0].shape[1]
    unit_anchors = tf.constant([[0.0, 0.0, 1.0, 1.0]] * num_anchors, name="anchors")
    # Class-agnostic NMS keeps each box's best class: TFLite's fast NMS computes exactly that.
    use_regular_nms = use_regular_nms and not model.non_max_suppression.use_class_agnostic_nms
    non_max_suppression = _detection_postprocess(model, use_regular_nms)

    def detect(input_tensor):
        boxes, scores = frozen.import_into_graph(input_tensor)
        detection_boxes, classes, detection_scores, num_detections = non_max_suppression(
            _unit_anchor_codes(boxes), scores, unit_anchors
        )
        with tf.name_scope(_POSTPROCESSING):
            return _ssd_outputs(model, detection_boxes, classes, detection_scores, num_detections)

    return detect


def _ssd_outputs(model, detection_boxes, classes, detection_scores, num_detections):
    """The TFLite SSD's outputs from those of `TFLite_Detection_PostProcess`."""
    valid = tf.range(model.max_detections)[tf.newaxis] < tf.cast(num_detections, tf.int32)
    return {
        # NMS ran on the boxes as decoded; the kept ones are clipped, as in `postprocess`.
        "detection_boxes": tf.clip_by_value(detection_boxes, 0.0, 1.0),
        "detection_scores": detection_scores,
        # The op numbers classes from 0; label-map ids start at 1.
        "detection_classes": tf.where(valid, classes + 1.0, 0.0),
        "num_detections": num_detections,
    }


def _center_net_detect(model, input_spec, int8, include_keypoints, log):
    """The TFLite model's function for a CenterNet: the frozen network, then its `postprocess`
    (max-pool peaks, top-k, boxes, keypoints; every op a TFLite built-in one, in the name scope
    `_POSTPROCESSING`) and the TF OD API exporter's outputs (`tf_od_api_outputs`).
    """
    frozen = _frozen_network(model, lambda images: model(images, training=False), input_spec,
                             int8, log)

    def detect(input_tensor):
        outputs = frozen.import_into_graph(input_tensor)
        with tf.name_scope(_POSTPROCESSING):
            detections = model.postprocess(outputs)
            if not include_keypoints:  # the converter then drops the keypoint heads too
                detections = {key: value for key, value in detections.items()
                              if key not in ("keypoints", "keypoint_scores")}
            return tf_od_api_outputs(detections, model)

    return detect


def _int8_with_float_postprocessing(converter, function):
    """The int8 conversion of a TFLite `function` with its post-processing left in float32.

    Calibrated as a whole, the converter would quantize the post-processing too: in int8 a
    CenterNet's peak test (a score equal to its neighbourhood's max-pool) and top-k lose the
    detections, and an SSD's ops after its NMS op round the boxes to 1/255 and the class ids
    (1.0039 for 1). Those ops (named `_POSTPROCESSING/…`, as a float conversion shows) are kept
    float with TFLite's selective quantization (`QuantizationDebugOptions(denylisted_nodes=…)`).
    """
    float_converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tf.Module())
    float_converter.allow_custom_ops = converter.allow_custom_ops
    float_model = float_converter.convert()
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert (when it is deleted).
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=float_model)
        # The outputs lose their names to the signature's ("PartitionedCall:0", …).
        postprocessing = [
            tensor["name"] for tensor in interpreter.get_tensor_details()
            if tensor["name"].startswith(f"{_POSTPROCESSING}/")
        ] + [tensor["name"] for tensor in interpreter.get_output_details()]
        del interpreter
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=converter.representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=postprocessing,
            # Ops that pass their input's scale on are quantized whatever their names; in int8,
            # top-k would rank rounded scores and unstacking would round the boxes.
            denylisted_ops=["TOPK_V2", "UNPACK"],
        ),
    )
    return debugger.get_nondebug_quantized_model()


def _check_exportable(model, quantization):
    if not isinstance(model, (SSD, CenterNet)):
        raise ValueError(
            f"TFLite export supports SSD and CenterNet models only; got "
            f"{type(model).__name__}, whose proposal NMS and RoI crops have no built-in TFLite "
            "ops (the TF OD API has no TFLite export for Faster R-CNN or Mask R-CNN either). "
            "Export it as a SavedModel with kdet.export.export_saved_model instead."
        )
    if isinstance(model, CenterNet) and model.mask_task is not None:
        raise ValueError(
            f"{model.name} predicts DeepMAC masks, whose per-box feature crops "
            "(CropAndResize) have no built-in TFLite op. Export it as a SavedModel with "
            "kdet.export.export_saved_model (detection_masks), or export a CenterNet without "
            "its mask task."
        )
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}")
    if isinstance(model, CenterNet) and QuantizationAwareTraining.of(model) is not None:
        raise ValueError(
            f"{model.name} is a quantization-aware CenterNet: its TFLite model would be int8 "
            "with the learned ranges, and the converter would quantize the post-processing "
            "too (max-pool peaks, top-k), for which no ranges were learned. Export a "
            "SavedModel (kdet.export.export_saved_model), or a CenterNet trained without "
            'quantization with quantization="int8" and representative_images'
        )
    nms = getattr(model, "non_max_suppression", None)  # CenterNet has none
    if nms is not None and (nms.soft_nms_sigma > 0.0 or nms.calibration is not None):
        setting = "soft NMS (soft_nms_sigma)" if nms.soft_nms_sigma > 0.0 else "score calibration"
        raise ValueError(
            f"the model's post-processing uses {setting}, which TFLite's "
            f"{DETECTION_POSTPROCESS} op cannot compute; export a SavedModel "
            "(kdet.export.export_saved_model), or give the model hard NMS without calibration"
        )


@contextlib.contextmanager
def _float32_compute(model, int8):
    """Computes in float32 while `model` is traced for an int8 conversion.

    A mixed-precision model (`mixed_bfloat16`, `mixed_float16`) casts around each fake
    quantization, which the converter's int8 passes reject ("binary op operands have same
    element type"); its variables are float32 already, so only the compute dtype changes.
    """
    layers = [layer for layer in model._flatten_layers(include_self=True)
              if int8 and layer.dtype_policy.compute_dtype != "float32"]
    policies = [layer.dtype_policy for layer in layers]
    for layer in layers:
        layer.dtype_policy = "float32"
    try:
        yield
    finally:
        for layer, policy in zip(layers, policies):
            layer.dtype_policy = policy


def _without_16_bit_round_trips(graph_def, output_names):
    """`graph_def` with each float32 → bfloat16/float16 → float32 pair of `Cast`s bypassed,
    pruned to the nodes `output_names` need.

    Computing in float32 (`_float32_compute`) leaves the casts of a mixed-precision model's
    functional sub-models (`Sequential` heads): they cast their inputs to the dtype of their
    `keras.Input`, which was the compute dtype when they were made, and the next layer casts
    back. The converter cannot carry an int8 tensor's quantization through such a pair, so
    the convolution after it would stay float32; without the pair it reads the int8 tensor.
    """
    float32, half = types_pb2.DT_FLOAT, (types_pb2.DT_BFLOAT16, types_pb2.DT_HALF)
    nodes = {node.name: node for node in graph_def.node}

    def is_cast(node, source, target):
        return (node is not None and node.op == "Cast" and node.attr["SrcT"].type in source
                and node.attr["DstT"].type in target)

    # The output ("name" or "name:0") of each casting-back node → the float32 tensor the
    # pair started from. (Control inputs, "^name", keep their node.)
    bypass = {}
    for node in graph_def.node:
        first = nodes.get(node.input[0].split(":")[0]) if node.input else None
        if is_cast(node, half, (float32,)) and is_cast(first, (float32,), half):
            bypass[node.name] = bypass[f"{node.name}:0"] = first.input[0]
    rewired = graph_pb2.GraphDef()
    rewired.CopyFrom(graph_def)
    for node in rewired.node:
        for index, name in enumerate(node.input):
            while name in bypass:  # pairs in a row
                name = bypass[name]
            node.input[index] = name
    with deprecation.silence():
        return tf.compat.v1.graph_util.extract_sub_graph(
            rewired, sorted({name.split(":")[0] for name in output_names})
        )


@contextlib.contextmanager
def _quiet_batch_norm_folding(quiet):
    """Silences TF's batch-norm folding warnings while freezing a fake-quantized network.

    `FrozenGraph` folds a batch norm into the convolution before it when the convolution's
    kernel is a constant; a fake-quantized kernel is not, so TF warns at every batch norm
    ("Didn't find expected conv Constant input"). The TFLite converter folds those batch
    norms into the int8 kernels itself.
    """
    if not quiet:
        yield
        return
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _int8_if_quantization_aware(model, quantization, representative_images):
    """The quantization to convert with: `"int8"` for a quantization-aware model."""
    trained = QuantizationAwareTraining.of(model)
    if trained is None:
        if quantization == "int8" and representative_images is None:
            raise ValueError(
                'quantization="int8" needs representative_images (kdet export: '
                "--representative_images) to calibrate the activation ranges of a model that "
                "was not trained quantization-aware (or train it with "
                "kdet.training.quantization.QuantizationAwareTraining, a config's "
                "graph_rewriter { quantization { … } })"
            )
        if quantization != "int8" and representative_images is not None:
            raise ValueError(
                "representative_images calibrate an int8 model: they need "
                f'quantization="int8"; got quantization={quantization!r}'
            )
        return quantization
    if quantization not in (None, "int8"):
        raise ValueError(
            f"{model.name} is quantization-aware ({trained}): export it with "
            f'quantization="int8" (or None), which uses its learned ranges; got {quantization!r}'
        )
    if (trained.weight_bits, trained.activation_bits) != (8, 8):
        raise ValueError(
            f"TFLite runs 8-bit integer models; {model.name} was trained for "
            f"weight_bits={trained.weight_bits}, activation_bits={trained.activation_bits}"
        )
    if representative_images is not None:
        raise ValueError(
            f"{model.name} is quantization-aware: its int8 ranges are the learned ones, so "
            "representative_images would not be used; leave them out"
        )
    for layer in model._flatten_layers(include_self=False):
        state = getattr(layer, "fake_quant", None)
        values = [float(weight) for weight in state.weights] if state is not None else []
        if not all(math.isfinite(value) for value in values):
            raise ValueError(
                f"the learned int8 ranges of layer {layer.name!r} are not finite ({values}): "
                "training diverged; export an earlier checkpoint"
            )
    return "int8"


class RepresentativeImages:
    """Image files as `export_tflite`'s `representative_images`: read one at a time, as the
    converter calibrates, each a uint8 `[height, width, 3]` RGB array (Pillow decodes it).

    What `kdet export --representative_images` gives `export_inference_graph`.

    Args:
        paths: str or path, or a list of them, as `kdet predict` takes its inputs: image
            files, folders (their image files, not their subfolders') and glob patterns (`**`
            for any depth).

    Attributes:
        files: the image files, `pathlib.Path`s, in order (folders and patterns sorted).

    Raises:
        FileNotFoundError: naming every path that names nothing.
        ValueError: naming a folder or pattern without an image file, or video files.

    Example:
    ```python
    images = RepresentativeImages(["calibration/", "photos/*.jpg"])  # len(images) files
    kdet.export.export_tflite(model, "ssd_int8.tflite", quantization="int8",
                              representative_images=images)
    ```
    """

    def __init__(self, paths):
        paths = [paths] if isinstance(paths, (str, pathlib.PurePath)) else list(paths)
        try:
            files = collect_inputs([str(path) for path in paths])
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"representative images: {error}") from None
        videos = [str(file.path) for file in files if file.is_video]
        if videos:
            raise ValueError(f"representative images: videos are not images: "
                             f"{', '.join(videos)}")
        self.files = [file.path for file in files]

    def __len__(self):
        return len(self.files)

    def __iter__(self):
        for path in self.files:
            yield read_image(path)


def _representative_dataset(images, height, width):
    """A TFLite `representative_dataset`: a generator of `[uint8 [1, height, width, 3]]`."""

    def generate():
        for item in images:
            if isinstance(item, (tuple, list)):  # (images, y) batches of a dataset
                item = item[0]
            batch = tf.convert_to_tensor(item)
            batch = batch if batch.shape.rank == 4 else batch[tf.newaxis]
            for image in tf.unstack(batch):
                if tuple(image.shape[:2]) != (height, width):
                    image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
                pixels = tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0, 255),
                                 tf.uint8)
                yield [pixels[tf.newaxis].numpy()]

    return generate


def _fixed_input_size(model):
    resizer = model.image_resizer
    if not isinstance(resizer, FixedShapeResizer):
        raise ValueError(
            f"TFLite models take one image size; the model's {type(resizer).__name__} has "
            "none, so pass input_size=(height, width)"
        )
    return resizer.height, resizer.width


def _unit_anchor_codes(boxes):
    """`yxyx` boxes `[..., 4]` → the codes `TFLite_Detection_PostProcess` decodes back into
    them against anchors `(y, x, h, w) = (0, 0, 1, 1)` with scales 1:
    `[y_center, x_center, log(height), log(width)]` (an empty box's `-inf` decodes to 0)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack(
        [(ymin + ymax) / 2, (xmin + xmax) / 2, tf.math.log(ymax - ymin), tf.math.log(xmax - xmin)],
        axis=-1,
    )


def _detection_postprocess(model, use_regular_nms):
    """A `tf.function` that the TFLite converter replaces with `TFLite_Detection_PostProcess`.

    It takes `(box_codes [1, A, 4], scores [1, A, num_classes], anchors [A, 4])`, codes and
    anchors as `_unit_anchor_codes` makes them. `experimental_implements` names the op and its
    attributes; the body is never run (TF has no such op), it only fixes the outputs: boxes,
    classes, scores, num_detections, in the op's order.
    """
    attributes = {
        "max_detections": model.max_detections,
        "max_classes_per_detection": _MAX_CLASSES_PER_DETECTION,
        "detections_per_class": model.max_detections_per_class,
        "use_regular_nms": bool(use_regular_nms),
        "nms_score_threshold": float(model.score_threshold),
        "nms_iou_threshold": float(model.iou_threshold),
        # Unit scales: the codes are the boxes' centres and log sizes themselves.
        "y_scale": 1.0,
        "x_scale": 1.0,
        "h_scale": 1.0,
        "w_scale": 1.0,
        "num_classes": model.num_classes,
    }
    signature = " ".join(
        [f'name: "{DETECTION_POSTPROCESS}"']
        + [f'attr {{ key: "{key}" value {{ {_attr_value(value)} }} }}'
           for key, value in attributes.items()]
    )

    @tf.function(experimental_implements=signature)
    def postprocess(box_codes, scores, anchors):
        del box_codes, scores, anchors
        return tuple(tf.constant(0.0, name=name)
                     for name in ("boxes", "classes", "scores", "num_detections"))

    return postprocess


def _attr_value(value):
    """A Python value as the `AttrValue` text of `experimental_implements`."""
    if isinstance(value, bool):
        return f"b: {str(value).lower()}"
    if isinstance(value, int):
        return f"i: {value}"
    return f"f: {value!r}"
