"""Quantization-aware training: fake quantization of a built detector's weights and activations.

`QuantizationAwareTraining(delay, weight_bits, activation_bits).apply(model)` is the Keras 3
counterpart of the TF OD API's `graph_rewriter { quantization { … } }` (TF1
`tf.contrib.quantize.experimental_create_training_graph(quant_delay=delay)`). TensorFlow Model
Optimization's QAT needs Keras 2 (`tf_keras`) and Keras 3's own quantization (`model.quantize`)
is post-training and Dense-only, so kdet rewrites the model itself, from outside: each
`Conv2D`, `DepthwiseConv2D`, `SeparableConv2D` and `Dense` (and the batch norms, activations and
`Add`s after them) is switched in place to a registered subclass whose `call` adds
`keras.quantizers.fake_quant_with_min_max_vars` — on TensorFlow the very
`tf.quantization.fake_quant_with_min_max_vars*` ops the TFLite converter turns into int8
tensors. Layer names, weights and weight paths stay as they were, so checkpoints of the float
model still load (the ranges, which they lack, keep their initial values with a
`QuantizationRangesNotLoaded` warning) and zoo weights still convert.

What is quantized (TF1 `quantize.Quantize`'s placement, found by running the model once):

- kernels: per output channel (depthwise: per depthwise channel), symmetric, narrow range
  `[-(2^(b-1) - 1), 2^(b-1) - 1]`, range = the kernel's own `max |w|` at every call (TF1's
  `LastValueQuantize`). That is TFLite's int8 scheme for convolution kernels, and per-channel
  symmetric quantization commutes with batch-norm folding (`q(w·s) = s·q(w)` for a per-channel
  scale `s`), so quantizing the unfolded kernel during training gives the weights the folded
  int8 model holds; TF1 instead folds batch norms into the training graph because its
  per-tensor ranges do not commute.
- activations: asymmetric, range = exponential moving averages (decay `ema_decay`, 0.999 as in
  TF1's `MovingAvgQuantize`, starting at `[-6, 6]`) of each training batch's min and max (the
  min clipped to ≤ 0, the max to ≥ 0), at the end of each conv → batch norm → ReLU chain (not
  between a convolution and the batch norm or ReLU that fold into it), after `Add`s, and at the
  input of a convolution whose input is not already quantized (the network input).

`delay`, as in TF1: in training (`training=True`) the fake quantization is an identity until
the model's optimizer has made `delay` steps (`model.optimizer.iterations`, the step `kdet
train` numbers checkpoints with, so a resumed run continues the count); the activation ranges
are learned from step 0 on. In inference (`predict`, `evaluate`, export) the model is always
quantized, as TF1's `create_eval_graph` is. The ranges are non-trainable variables in a
`fake_quant` sublayer of each quantized layer, saved in checkpoints and `save_weights` files.
Gradients are straight-through (1 inside the range, 0 outside).

Example:
```python
model = kdet.zoo.load("ssd_mobilenet_v2_coco")
QuantizationAwareTraining(delay=1000).apply(model)
model.compile(optimizer="sgd")
model.fit(dataset, epochs=…)
kdet.export.export_tflite(model, "ssd_int8.tflite", quantization="int8")
```

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018.
"""

import inspect
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

_PACKAGE = "kdet"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class QuantizationAwareTraining:
    """Turns a built Keras model into a quantization-aware one (in place).

    Args:
        delay: int ≥ 0, training steps (optimizer iterations) before the fake quantization
            takes effect in training. Defaults to 0.
        weight_bits: int in [2, 16], bits of the kernels. Defaults to 8.
        activation_bits: int in [2, 16], bits of the activations. Defaults to 8.
        ema_decay: float in [0, 1), decay of the activation ranges' moving averages.
            Defaults to 0.999 (TF1's).

    Example:
    ```python
    qat = QuantizationAwareTraining(delay=48000)
    qat.apply(model)  # model: built; its layers now fake-quantize
    QuantizationAwareTraining.of(model)  # → qat's settings
    ```
    """

    def __init__(self, delay=0, weight_bits=8, activation_bits=8, ema_decay=0.999):
        for name, bits in (("weight_bits", weight_bits), ("activation_bits", activation_bits)):
            if not 2 <= int(bits) <= 16:
                raise ValueError(f"{name} must be in [2, 16] (what fake quantization supports); "
                                 f"got {bits}")
        if int(delay) < 0:
            raise ValueError(f"delay must be ≥ 0; got {delay}")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1); got {ema_decay}")
        self.delay = int(delay)
        self.weight_bits = int(weight_bits)
        self.activation_bits = int(activation_bits)
        self.ema_decay = float(ema_decay)

    def get_config(self):
        return {"delay": self.delay, "weight_bits": self.weight_bits,
                "activation_bits": self.activation_bits, "ema_decay": self.ema_decay}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, QuantizationAwareTraining) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"QuantizationAwareTraining({args})"

    def apply(self, model, input_shape=None):
        """Switches `model`'s layers to their fake-quantizing subclasses and returns `model`.

        A kdet detector (`kdet.ObjectDetector`) also keeps `self` as its `quantization`
        argument, so that its `.keras` file loads quantization-aware (Keras rebuilds kdet
        models from their constructor arguments); a detector constructed with
        `quantization=` is rewritten when it is built.

        The model is run once in inference mode on a zero image batch to find which layer
        feeds which (where batch norms and activations fold), so it must be built, or
        `input_shape` given.

        Args:
            model: a Keras model, e.g. a `kdet.SSD`. Built, or `input_shape` given.
            input_shape: `(batch, height, width, channels)` to build it with and run it on;
                `None` for the model's own built input shape.

        Returns:
            `model`, rewritten in place.

        Raises:
            ValueError: when the model is quantization-aware already, has no layer to
                quantize, or is not built and no `input_shape` is given.
        """
        # Imported here: kdet.models imports this module.
        from kdet.models.object_detector import ObjectDetector

        if QuantizationAwareTraining.of(model) is not None:
            raise ValueError(f"{model.name} is quantization-aware already "
                             f"({QuantizationAwareTraining.of(model)})")
        shape = _input_shape(model, input_shape)
        if not model.built:
            model.build(shape)
        layers = [layer for layer in _leaf_layers(model) if type(layer) in _SUBCLASSES]
        if not any(type(layer) in _KERNEL_LAYERS for layer in layers):
            raise ValueError(f"{model.name} has no Conv2D, DepthwiseConv2D, SeparableConv2D or "
                             "Dense layer to quantize")
        calls = _record_calls(model, _leaf_layers(model), shape)
        placement = _place_quantizers(calls)
        for layer in layers:
            quantize_inputs, quantize_outputs = placement.get(id(layer), (False, False))
            if type(layer) not in _KERNEL_LAYERS and not quantize_outputs:
                continue
            _switch(layer, self, quantize_inputs, quantize_outputs, model)
        if isinstance(model, ObjectDetector):
            # Its config carries the rewrite: a `.keras` file loads quantization-aware.
            model.quantization = self
        # `fit` / `evaluate` / `predict` keep the functions they traced: trace them anew.
        for name in ("train_function", "test_function", "predict_function"):
            if getattr(model, name, None) is not None:
                setattr(model, name, None)
        return model

    @staticmethod
    def of(model):
        """The `QuantizationAwareTraining` a model was rewritten with, or None."""
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, _FakeQuantizedLayer):
                options = layer.fake_quant.get_config()
                return QuantizationAwareTraining(**{key: options[key] for key in (
                    "delay", "weight_bits", "activation_bits", "ema_decay")})
        return None


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantState(keras.layers.Layer):
    """The quantization state of one layer: activation ranges and the step gate.

    Holds the moving-average `[min, max]` of the layer's input, output and (separable
    convolutions) intermediate activations it quantizes, as non-trainable variables
    `{input,intermediate,output}_{min,max}` (scalars, initialized to -6 / 6).

    Args:
        delay, weight_bits, activation_bits, ema_decay: as in `QuantizationAwareTraining`.
        quantize_inputs, quantize_outputs, quantize_intermediate: bool, which activations
            the layer quantizes.
    """

    def __init__(self, delay=0, weight_bits=8, activation_bits=8, ema_decay=0.999,
                 quantize_inputs=False, quantize_outputs=False, quantize_intermediate=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.delay = int(delay)
        self.weight_bits = int(weight_bits)
        self.activation_bits = int(activation_bits)
        self.ema_decay = float(ema_decay)
        self.quantize_inputs = bool(quantize_inputs)
        self.quantize_outputs = bool(quantize_outputs)
        self.quantize_intermediate = bool(quantize_intermediate)
        self._model = None
        self.ranges = {}
        for where in ("input", "intermediate", "output"):
            if getattr(self, f"quantize_{where}s" if where != "intermediate"
                       else "quantize_intermediate"):
                self.ranges[where] = (
                    self._range_variable(f"{where}_min", -6.0),
                    self._range_variable(f"{where}_max", 6.0),
                )
        self.built = True

    def _range_variable(self, name, value):
        return self.add_weight(
            name=name, shape=(), initializer=keras.initializers.Constant(value),
            trainable=False, dtype="float32", autocast=False, aggregation="mean",
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "delay": self.delay, "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits, "ema_decay": self.ema_decay,
            "quantize_inputs": self.quantize_inputs, "quantize_outputs": self.quantize_outputs,
            "quantize_intermediate": self.quantize_intermediate,
        })
        return config

    def load_own_variables(self, store):
        """Loads the ranges; a store without any (a float model's weights file) leaves them
        at their initial values and warns `QuantizationRangesNotLoaded`.

        Failing there instead would make Keras revisit the layer that holds this state at
        each other path to it (a layer listed in a `Sequential` and held as an attribute),
        where the file has nothing, and report that layer as not loaded though it was.
        """
        if self.weights and not list(store.keys()):
            warnings.warn(QuantizationRangesNotLoaded(self), stacklevel=2)
            return
        super().load_own_variables(store)

    def attach_to(self, model):
        """Gates the delay on `model.optimizer.iterations` (kept as a weak reference)."""
        object.__setattr__(self, "_model", weakref.ref(model))

    def active(self, training):
        """Whether fake quantization applies: always in inference; in training once the
        optimizer has made `delay` steps. A Python bool or a scalar bool tensor."""
        if not training or self.delay == 0:
            return True
        model = self._model() if self._model is not None else None
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            # Training outside `fit` without an optimizer: nothing counts the steps.
            return True
        return ops.greater_equal(optimizer.iterations, self.delay)

    def quantize_kernel(self, kernel, active):
        """Fake-quantizes a kernel `[..., channels]` per channel (last axis), symmetric,
        narrow range, with its own `max |w|` per channel as the range."""
        reduce_axes = tuple(range(len(kernel.shape) - 1))
        limit = ops.maximum(ops.stop_gradient(ops.max(ops.abs(kernel), axis=reduce_axes)), 1e-8)
        quantized = keras.quantizers.fake_quant_with_min_max_vars(
            kernel, -limit, limit, num_bits=self.weight_bits, narrow_range=True,
            axis=len(kernel.shape) - 1,
        )
        return _select(active, quantized, kernel)

    def quantize_depthwise_kernel(self, kernel, active):
        """`quantize_kernel` for a depthwise kernel `[h, w, in, multiplier]`: per depthwise
        channel (`in × multiplier`), TFLite's depthwise channel axis."""
        height, width, channels, multiplier = kernel.shape
        flat = ops.reshape(kernel, (height, width, 1, channels * multiplier))
        return ops.reshape(self.quantize_kernel(flat, active), kernel.shape)

    def quantize_activation(self, where, inputs, training, active):
        """Fake-quantizes `inputs` (any shape) with the `where` range, after updating the
        range's moving averages with the batch's min and max when `training`."""
        if where not in self.ranges:
            return inputs
        low, high = self.ranges[where]
        if training:
            values = ops.stop_gradient(ops.cast(inputs, "float32"))
            batch_min, batch_max = _global_min_max(ops.min(values), ops.max(values))
            decay = self.ema_decay
            low.assign(decay * low + (1.0 - decay) * ops.minimum(batch_min, 0.0))
            high.assign(decay * high + (1.0 - decay) * ops.maximum(batch_max, 0.0))
        quantized = keras.quantizers.fake_quant_with_min_max_vars(
            inputs, ops.convert_to_tensor(low), ops.convert_to_tensor(high),
            num_bits=self.activation_bits, narrow_range=False,
        )
        return _select(active, quantized, inputs)


def range_variables(model):
    """The quantization ranges of a model: the variables of its `FakeQuantState`s (none for
    a float model)."""
    return [weight for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, FakeQuantState) for weight in layer.weights]


class QuantizationRangesNotLoaded(UserWarning):
    """Warned when a weights file has no ranges for a quantization-aware layer (it is a float
    model's): they keep their initial values. `state` is the layer's `FakeQuantState`."""

    def __init__(self, state):
        super().__init__(
            "the weights file has no quantization ranges (it is a float model's): they keep "
            "their initial values [-6, 6] until training learns them"
        )
        self.state = state


def _global_min_max(batch_min, batch_max):
    """The min and max over the whole global batch: under `tf.distribute` each replica sees
    part of it, so the ranges (and the model) would otherwise depend on the replica count."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return batch_min, batch_max
    gathered = context.all_gather(ops.stack([batch_min, -batch_max])[None], axis=0)
    reduced = ops.min(gathered, axis=0)
    return reduced[0], -reduced[1]


def _select(active, quantized, original):
    if active is True:
        return quantized
    return ops.where(active, quantized, original)


class _FakeQuantizedLayer:
    """Mixin of the fake-quantizing layer subclasses: a `fake_quant` (`FakeQuantState`)
    sublayer, given to the constructor as its config dict."""

    def __init__(self, *args, fake_quant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fake_quant = FakeQuantState(**(fake_quant or {}))

    def get_config(self):
        config = super().get_config()
        state = self.fake_quant.get_config()
        config["fake_quant"] = {key: state[key] for key in _STATE_KEYS}
        return config

    def _begin(self, inputs, training):
        active = self.fake_quant.active(training)
        return self.fake_quant.quantize_activation("input", inputs, training, active), active

    def _end(self, outputs, training, active):
        return self.fake_quant.quantize_activation("output", outputs, training, active)


_STATE_KEYS = ("delay", "weight_bits", "activation_bits", "ema_decay", "quantize_inputs",
               "quantize_outputs", "quantize_intermediate")


def _add_bias_and_activate(layer, outputs, channels):
    if layer.use_bias:
        if layer.data_format == "channels_last":
            shape = (1,) * (len(outputs.shape) - 1) + (channels,)
        else:
            shape = (1, channels) + (1,) * (len(outputs.shape) - 2)
        outputs = ops.add(outputs, ops.reshape(layer.bias, shape))
    return layer.activation(outputs) if layer.activation is not None else outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantConv2D(_FakeQuantizedLayer, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with fake-quantized kernel and activations (`FakeQuantState`)."""

    def call(self, inputs, training=None):
        inputs, active = self._begin(inputs, training)
        outputs = self.convolution_op(inputs, self.fake_quant.quantize_kernel(self.kernel, active))
        return self._end(_add_bias_and_activate(self, outputs, self.filters), training, active)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantDepthwiseConv2D(_FakeQuantizedLayer, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with fake-quantized kernel and activations."""

    def call(self, inputs, training=None):
        inputs, active = self._begin(inputs, training)
        outputs = ops.depthwise_conv(
            inputs, self.fake_quant.quantize_depthwise_kernel(self.kernel, active),
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        channels = self.kernel.shape[2] * self.kernel.shape[3]
        return self._end(_add_bias_and_activate(self, outputs, channels), training, active)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantSeparableConv2D(_FakeQuantizedLayer, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with fake-quantized kernels and activations; computed
    as depthwise then pointwise convolution (what TFLite runs), the tensor between them
    quantized too."""

    def call(self, inputs, training=None):
        inputs, active = self._begin(inputs, training)
        state = self.fake_quant
        outputs = ops.depthwise_conv(
            inputs, state.quantize_depthwise_kernel(self.depthwise_kernel, active),
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        outputs = state.quantize_activation("intermediate", outputs, training, active)
        outputs = ops.conv(
            outputs, state.quantize_kernel(self.pointwise_kernel, active), strides=1,
            padding="valid", data_format=self.data_format,
        )
        return self._end(_add_bias_and_activate(self, outputs, self.filters), training, active)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantDense(_FakeQuantizedLayer, keras.layers.Dense):
    """`keras.layers.Dense` with fake-quantized kernel and activations."""

    def call(self, inputs, training=None):
        inputs, active = self._begin(inputs, training)
        outputs = ops.matmul(inputs, self.fake_quant.quantize_kernel(self.kernel, active))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        outputs = self.activation(outputs) if self.activation is not None else outputs
        return self._end(outputs, training, active)


class _OutputFakeQuantized(_FakeQuantizedLayer):
    """A layer whose output is fake-quantized (batch norm, activation, `Add`, …)."""

    def call(self, inputs, training=None, **kwargs):
        active = self.fake_quant.active(training)
        if "training" in inspect.signature(super().call).parameters:
            kwargs["training"] = training
        return self._end(super().call(inputs, **kwargs), training, active)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantBatchNormalization(_OutputFakeQuantized, keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fake-quantized output."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantFusedBatchNormalization(_OutputFakeQuantized, FusedBatchNormalization):
    """`kdet.layers.FusedBatchNormalization` with a fake-quantized output."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantReLU(_OutputFakeQuantized, keras.layers.ReLU):
    """`keras.layers.ReLU` with a fake-quantized output."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantActivation(_OutputFakeQuantized, keras.layers.Activation):
    """`keras.layers.Activation` with a fake-quantized output."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantAdd(_OutputFakeQuantized, keras.layers.Add):
    """`keras.layers.Add` with a fake-quantized output."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FakeQuantConcatenate(_OutputFakeQuantized, keras.layers.Concatenate):
    """`keras.layers.Concatenate` with a fake-quantized output."""


_KERNEL_LAYERS = {
    keras.layers.Conv2D: FakeQuantConv2D,
    keras.layers.DepthwiseConv2D: FakeQuantDepthwiseConv2D,
    keras.layers.SeparableConv2D: FakeQuantSeparableConv2D,
    keras.layers.Dense: FakeQuantDense,
}
_SUBCLASSES = {
    **_KERNEL_LAYERS,
    keras.layers.BatchNormalization: FakeQuantBatchNormalization,
    FusedBatchNormalization: FakeQuantFusedBatchNormalization,
    keras.layers.ReLU: FakeQuantReLU,
    keras.layers.Activation: FakeQuantActivation,
    keras.layers.Add: FakeQuantAdd,
    keras.layers.Concatenate: FakeQuantConcatenate,
}
# Keras names the weights of layers held in lists (`Sequential`, functional models) by their
# class name (`conv2d`, `conv2d_1`, …). Each subclass takes its base's name, so that a float
# model's weights load into a quantization-aware one and back; the Keras registration keeps
# the `FakeQuant…` name for serialization.
for _base, _subclass in _SUBCLASSES.items():
    _subclass.__name__ = _base.__name__

# Layers that keep their input's quantization (a quantized input gives a quantized output).
_PASS_THROUGH = (keras.layers.ZeroPadding2D, keras.layers.MaxPooling2D, keras.layers.Reshape,
                 keras.layers.UpSampling2D, keras.layers.Cropping2D, keras.layers.Dropout,
                 keras.layers.Identity)
# Activations TFLite fuses into the convolution, batch norm or addition before them.
_FUSED_ACTIVATIONS = ("relu", "relu6", "linear")


def _input_shape(model, input_shape):
    """The `(1, height, width, channels)` batch to run the model on once."""
    if input_shape is None:
        shape = getattr(model, "_build_shapes_dict", None) or {}
        input_shape = next(iter(shape.values()), None)
    if input_shape is None:
        raise ValueError(f"{model.name} is not built: pass input_shape=(batch, height, width, 3)")
    height, width, channels = input_shape[1:]
    if height is None or width is None:
        # A detector built for any image size resizes images itself: run it at its size.
        resizer = getattr(model, "image_resizer", None)
        size = getattr(resizer, "height", None) or getattr(resizer, "max_dimension", None)
        if size is None:
            raise ValueError(f"{model.name} takes images of any size: pass "
                             "input_shape=(batch, height, width, channels) to run it on")
        height, width = height or size, width or getattr(resizer, "width", size)
    return (1, height, width, channels)


def _leaf_layers(model):
    # `_flatten_layers` is Keras's own walk over nested layers (models, lists, attributes).
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if not layer._flatten_layers(include_self=False, recursive=False)]


def _record_calls(model, layers, shape):
    """Runs `model` once on zeros of `shape`, recording every leaf layer call as
    `(layer, input tensors, output tensors)` (eager tensors, compared by identity)."""
    calls = []

    def recording(layer, call):
        def record(*args, **kwargs):
            outputs = call(*args, **kwargs)
            inputs = [x for x in keras.tree.flatten(args) if keras.ops.is_tensor(x)]
            calls.append((layer, inputs, keras.tree.flatten(outputs)))
            return outputs
        return record

    for layer in layers:
        # An instance attribute shadows the class's `call`, which `Layer.__call__` looks up.
        object.__setattr__(layer, "call", recording(layer, layer.call))
    try:
        model(np.zeros(shape, "float32"), training=False)
    finally:
        for layer in layers:
            object.__delattr__(layer, "call")
    return calls


def _is_fused_activation(layer):
    if isinstance(layer, keras.layers.ReLU):
        return layer.negative_slope == 0 and layer.threshold == 0
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in _FUSED_ACTIVATIONS
    return False


def _place_quantizers(calls):
    """`{id(layer): (quantize_inputs, quantize_outputs)}` from the recorded calls.

    A layer's output is quantized unless every layer reading it folds into it (a batch norm
    or ReLU after a kernel layer, a ReLU after a batch norm or `Add`); a kernel layer's input
    is quantized unless it comes from a quantized output (through padding or pooling)."""
    consumers = {}
    for layer, inputs, _ in calls:
        for tensor in inputs:
            consumers.setdefault(id(tensor), []).append(layer)
    placement, quantized = {}, set()
    for layer, inputs, outputs in calls:
        kind = type(layer)
        if isinstance(layer, _PASS_THROUGH):
            if all(id(x) in quantized for x in inputs):
                quantized.update(id(x) for x in outputs)
            continue
        if kind not in _SUBCLASSES:
            continue
        readers = [reader for x in outputs for reader in consumers.get(id(x), [])]

        def folds(reader):
            if kind in _KERNEL_LAYERS and isinstance(reader, keras.layers.BatchNormalization):
                return True
            return _is_fused_activation(reader) and not _is_fused_activation(layer)

        quantize_outputs = not readers or not all(folds(reader) for reader in readers)
        if kind is keras.layers.Activation and not _is_fused_activation(layer):
            quantize_outputs = True
        quantize_inputs = kind in _KERNEL_LAYERS and not all(id(x) in quantized for x in inputs)
        previous = placement.get(id(layer), (False, False))
        placement[id(layer)] = (previous[0] or quantize_inputs, previous[1] or quantize_outputs)
        if quantize_outputs:
            quantized.update(id(x) for x in outputs)
    return placement


def _switch(layer, qat, quantize_inputs, quantize_outputs, model):
    """Makes `layer` an instance of its fake-quantizing subclass, with a `fake_quant` state."""
    layer.__class__ = _SUBCLASSES[type(layer)]
    state = FakeQuantState(
        **qat.get_config(), quantize_inputs=quantize_inputs, quantize_outputs=quantize_outputs,
        quantize_intermediate=isinstance(layer, keras.layers.SeparableConv2D),
        name="fake_quant",
    )
    state.attach_to(model)
    # A built layer refuses new state; this is the one place kdet adds some.
    layer._tracker.unlock()
    layer.fake_quant = state
    layer._tracker.lock()
    # `Layer.__init__` recorded whether `call` takes `training`; the subclass's does.
    layer._call_signature = inspect.signature(layer.call)
    layer.call_signature_parameters = list(layer._call_signature.parameters)
    layer._call_has_training_arg = True
    layer._call_has_context_arg = {
        arg: arg in layer.call_signature_parameters for arg in layer._call_context_args
    }
