"""A detector's inference as one constant graph with batch norms folded: kdet's "frozen graph"."""

import tensorflow as tf

# TF's graph tools have no public API; both ship with TensorFlow and are what its own freezing
# (`saved_model_cli`, TFLite's converter) and `optimize_for_inference` use.
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.tools.optimize_for_inference_lib import fold_batch_norms


class FrozenDetector:
    """`model.detect` with every weight a constant and batch norms folded into convolutions.

    The TF OD API exported its models as frozen graphs; this is kdet's equivalent, for serving
    and for latency. On CPU, TensorFlow's oneDNN kernels keep pre-arranged copies of constant
    convolution filters, where variables are re-read every call, and folding removes the batch
    norms: `benchmarks/ssd_speed.py` measured kdet's SSD MobileNetV2 this way at 0.91–0.96× the
    TF OD API frozen graph's time per image, against 1.04–1.34× for `tf.function(model.detect)`
    (`benchmarks/README.md`). The detector is a snapshot: later changes to the model's weights
    do not reach it.

    Call it like `model.predict_on_batch`: `frozen(images)` with `images` `[B, H, W, 3]` (any
    size, cast to the dtype it was frozen for) returns the predictions dict as numpy arrays:
    `{"boxes" [B, K, 4], "labels" [B, K], "confidences" [B, K], "num_detections" [B]}`.

    Args:
        model: a built `kdet.models.ObjectDetector` (`kdet.SSD`, `kdet.FasterRCNN`).
        dtype: the image dtype the graph takes. Defaults to `"uint8"` (photos).

    Example:
    ```python
    frozen = kdet.export.FrozenDetector(kdet.zoo.load("ssd_mobilenet_v2_coco"))
    detections = frozen(images)  # images: uint8 [B, H, W, 3]
    ```
    """

    def __init__(self, model, dtype="uint8"):
        self.dtype = tf.dtypes.as_dtype(dtype)
        concrete = tf.function(model.detect).get_concrete_function(
            tf.TensorSpec([None, None, None, 3], self.dtype, name="images")
        )
        frozen = convert_variables_to_constants_v2(concrete)
        self.graph_def = fold_batch_norms(_inline_constant_reads(frozen.graph.as_graph_def()))
        self._output_structure = concrete.structured_outputs
        self._function = _function_of(
            self.graph_def,
            [tensor.name for tensor in frozen.inputs],
            [tensor.name for tensor in frozen.outputs],
        )

    def __call__(self, images):
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"FrozenDetector expects images of shape [batch, height, width, 3]; got "
                f"shape {images.shape.as_list()}."
            )
        outputs = self._function(tf.cast(images, self.dtype))
        return {
            key: value.numpy()
            for key, value in tf.nest.pack_sequence_as(self._output_structure, outputs).items()
        }


def _inline_constant_reads(graph_def):
    """A copy of `graph_def` where every `Identity` of a `Const` is that constant itself.

    `convert_variables_to_constants_v2` leaves each former variable read as `Identity(Const)`,
    and `fold_batch_norms` only folds a batch norm whose convolution filter and statistics are
    `Const` nodes.
    """
    nodes = {node.name: node for node in graph_def.node}
    inlined = graph_pb2.GraphDef()
    inlined.CopyFrom(graph_def)
    for node in inlined.node:
        source = nodes.get(node.input[0].split(":")[0]) if node.input else None
        if node.op == "Identity" and source is not None and source.op == "Const":
            name, inputs = node.name, [name for name in node.input if name.startswith("^")]
            node.CopyFrom(source)
            node.name = name
            node.input.extend(inputs)
    return inlined


def _function_of(graph_def, input_names, output_names):
    """A callable concrete function running `graph_def` from `input_names` to `output_names`."""
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), []
    )
    graph = wrapped.graph
    return wrapped.prune(
        [graph.get_tensor_by_name(name) for name in input_names],
        [graph.get_tensor_by_name(name) for name in output_names],
    )

