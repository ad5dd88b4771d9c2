"""`FrozenGraph`: a traced function with its weights as constants and batch norms folded."""

import tensorflow as tf

# TF's graph tools have no public API; both ship with TensorFlow and are what its own freezing
# (`saved_model_cli`, TFLite's converter) and `optimize_for_inference` use.
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.tools.optimize_for_inference_lib import fold_batch_norms
from tensorflow.python.util import deprecation

from kdet.utils.progress import stage_log


class FrozenGraph:
    """A function of tensors traced into one `GraphDef` with no variables left in it.

    Every variable the function reads becomes a constant and every batch norm is folded into
    the convolution before it, so the graph runs without Keras or kdet and needs no
    checkpoint. `FrozenDetector` runs one; `export_saved_model` and `export_tflite` embed one in
    what they write.

    Args:
        function: a Python function of tensors returning a nest (dict, tuple) of tensors, e.g.
            `model.detect`.
        input_signature: list of `tf.TensorSpec`, one per argument of `function`.
        progress: bool, or the `kdet.utils.progress.StageLog` of a larger task: report the
            stages (tracing, weights to constants, folding batch norms) on stderr; the latter
            two take seconds for a detector. Defaults to `False`.

    Attributes:
        graph_def: the frozen `tf.compat.v1.GraphDef`.
        input_names: names of the graph's input tensors, in argument order.
        output_names: names of the output tensors, in `tf.nest.flatten` order of the outputs.
        output_structure: the nest `function` returned (its tensors belong to the trace; use it
            for structure, shapes and dtypes).

    Example:
    ```python
    frozen = FrozenGraph(model.detect, [tf.TensorSpec([None, None, None, 3], tf.uint8)])

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def serve(images):
        return frozen.import_into_graph(images)
    ```
    """

    def __init__(self, function, input_signature, progress=False):
        log = stage_log(progress, "Freezing the graph")
        log("tracing")
        concrete = tf.function(function).get_concrete_function(*input_signature)
        log("weights to constants")
        frozen = convert_variables_to_constants_v2(concrete)
        self.input_names = [tensor.name for tensor in frozen.inputs]
        self.output_names = [tensor.name for tensor in frozen.outputs]
        log("folding batch norms")
        folded = fold_batch_norms(_inline_constant_reads(frozen.graph.as_graph_def()))
        # Inlining and folding leave the former constants unused: drop them (half the size).
        # `extract_sub_graph` is a TF1 API that warns about it; it is what pruning a GraphDef is.
        with deprecation.silence():
            self.graph_def = tf.compat.v1.graph_util.extract_sub_graph(
                folded, sorted({name.split(":")[0] for name in self.output_names})
            )
        self.output_structure = concrete.structured_outputs
        log.done()

    def import_into_graph(self, *inputs, name="frozen"):
        """Adds the frozen graph to the graph being traced, fed with `inputs`.

        Call it inside a `tf.function`: the traced function then holds the frozen nodes
        themselves (constants included), so a SavedModel or TFLite model made from it is
        self-contained.

        Args:
            *inputs: tensors matching `input_signature`.
            name: name scope of the imported nodes.

        Returns:
            The outputs, in the structure `function` returned.
        """
        outputs = tf.graph_util.import_graph_def(
            self.graph_def,
            input_map=dict(zip(self.input_names, inputs)),
            return_elements=self.output_names,
            name=name,
        )
        return tf.nest.pack_sequence_as(self.output_structure, outputs)

    def as_function(self):
        """A concrete function running the frozen graph eagerly: inputs → flat outputs."""
        wrapped = tf.compat.v1.wrap_function(
            lambda: tf.compat.v1.import_graph_def(self.graph_def, name=""), []
        )
        graph = wrapped.graph
        return wrapped.prune(
            [graph.get_tensor_by_name(name) for name in self.input_names],
            [graph.get_tensor_by_name(name) for name in self.output_names],
        )


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
