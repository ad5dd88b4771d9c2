"""TF OD API `graph_rewriter { quantization { … } }` → quantization-aware training of the model.

`graph_rewriter.proto`'s `Quantization` (the TF OD API's quantized SSD sample configs end with
`graph_rewriter { quantization { delay: 48000 weight_bits: 8 activation_bits: 8 } }`) becomes a
`kdet.training.quantization.QuantizationAwareTraining` applied to the built model, the Keras
counterpart of the TF OD API's TF1 `tf.contrib.quantize.experimental_create_training_graph`
(its TF2 `model_main_tf2.py` ignores the message).

- `delay` (TF OD API default 500000): training steps before fake quantization takes effect.
- `weight_bits`, `activation_bits` (default 8): bits of the simulated integers; the int8 TFLite
  export needs 8.
- `symmetric` (default false): TF1 made weight ranges asymmetric unless it was true. kdet's
  kernels are always symmetric per channel, whatever the value: that is how TFLite's int8
  convolution kernels are quantized, and simulating anything else in training would not be what
  the exported model computes.
"""

from kdet.configs.field_reader import Bool
from kdet.configs.field_reader import Int
from kdet.configs.field_reader import SubMessage
from kdet.configs.field_reader import read
from kdet.training.quantization import QuantizationAwareTraining

# `graph_rewriter.proto`.
_GRAPH_REWRITER = {"quantization": SubMessage()}
_QUANTIZATION = {
    "delay": Int(default=500000, minimum=0),
    "weight_bits": Int(default=8, minimum=2),
    "activation_bits": Int(default=8, minimum=2),
    # Read, not applied: kdet's kernels are symmetric whatever it says (see the module doc).
    "symmetric": Bool(default=False),
}
_MAX_BITS = 16


def build_graph_rewriter(node):
    """Reads a `graph_rewriter` message.

    Args:
        node: the `kdet.configs.field_reader.Node` of `graph_rewriter { … }`.

    Returns:
        A `QuantizationAwareTraining`, or None when the message has no `quantization`.

    Raises:
        kdet.configs.ConfigError: at an unknown field or a bit count outside [2, 16].
    """
    fields = read(node, _GRAPH_REWRITER)
    if not fields.has("quantization"):
        return None
    quantization = fields["quantization"]
    values = read(quantization, _QUANTIZATION)
    for name in ("weight_bits", "activation_bits"):
        if values[name] > _MAX_BITS:
            raise values.error(
                name, f"'{values.path(name)}' is {values[name]}, but fake quantization "
                      f"simulates at most {_MAX_BITS} bits (TFLite runs 8)"
            )
    return QuantizationAwareTraining(
        delay=values["delay"], weight_bits=values["weight_bits"],
        activation_bits=values["activation_bits"],
    )


def apply_graph_rewriter(node, model, input_shape):
    """Applies a config's `graph_rewriter` to its built (or buildable) model, in place.

    Args:
        node: the `Node` of `graph_rewriter { … }`.
        model: the config's `kdet.SSD` (Faster R-CNN is refused: its int8 TFLite export does
            not exist, see `kdet.export.export_tflite`).
        input_shape: `(batch, height, width, 3)` to build the model with if it is not built.

    Returns:
        The `QuantizationAwareTraining` applied, or None.

    Raises:
        kdet.configs.ConfigError: as `build_graph_rewriter`, or at `quantization` for a model
            other than SSD.
    """
    # Imported here: kdet.models imports kdet.configs' siblings.
    from kdet.models.ssd.ssd import SSD

    rewriter = build_graph_rewriter(node)
    if rewriter is None:
        return None
    if not isinstance(model, SSD):
        fields = read(node, _GRAPH_REWRITER)
        raise fields.error(
            "quantization",
            f"'{fields.path('quantization')}' asks for quantization-aware training, which "
            f"kdet gives SSD models only (it serves their int8 TFLite export); this config's "
            f"model is a {type(model).__name__}, whose proposal NMS and RoI crops have no int8 "
            "TFLite ops",
        )
    rewriter.apply(model, input_shape=input_shape)
    return rewriter
