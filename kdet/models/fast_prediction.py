"""`predict`'s fast path: in-memory images straight into a traced `predict_step`.

Keras's `predict` builds a `tf.data` pipeline, an iterator and a progress bar on every call
(~50–100 ms here: 2.5x the network's own time for one 640x480 photo with SSD MobileNetV2,
benchmarks/README.md), which is what a notebook user pays for each photo. `predict_on_batch`
skips those, but its `tf.function(reduce_retracing=True)` traces twice before it settles: once
for the first image size, again with relaxed shapes for the second.

`PredictionFunctions` calls the model's `predict_step` traced once per input dtype. When the
model's image resizer makes one network input size whatever the image size
(`FixedShapeResizer`, `KeepAspectRatioResizer(pad_to_max_dimension=True)`), the trace leaves
batch, height and width unknown from the start, so no image size or batch size ever traces
again; the network inside still sees its static input shape. Other resizers feed the network
a size that follows the image's, and are traced like Keras's `predict_on_batch`
(`reduce_retracing`: exact shapes first, relaxed from the second shape on). The computation is
`predict_step`'s, so the detections are those of Keras's `predict`. The traces live as long
as Keras's own `predict_function`: whatever makes Keras trace `predict` anew (`compile`, a
quantization-aware rewrite, setting `model.predict_function = None`) makes them anew too.
"""

import numpy as np
import tensorflow as tf


def resizes_to_one_size(image_resizer):
    """Whether `image_resizer` gives one static output size for any input size.

    Args:
        image_resizer: a `kdet.layers.ImageResizer`, or None (a model without one).

    Returns:
        bool: True when `image_resizer.resize` of a `[None, None, None, 3]` batch has a static
        `(height, width)`.
    """
    if image_resizer is None:
        return False
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        resized, _ = image_resizer.resize(images)
    return resized.shape[1:3].is_fully_defined()


class PredictionFunctions:
    """A detector's `predict_step` on in-memory image batches, traced once per input dtype.

    Args:
        model: a `kdet.models.ObjectDetector`.
    """

    def __init__(self, model):
        self._model = model
        self._functions = {}
        self._one_size = None
        self._keras_predict_function = None

    def usable(self):
        """Whether the fast path gives what Keras's `predict` gives: not when the model runs
        eagerly or under a `tf.distribute` strategy (Keras splits batches over replicas)."""
        model = self._model
        return (
            not model.run_eagerly
            and getattr(model, "_distribute_strategy", None) is None
            and not tf.distribute.has_strategy()
        )

    def __call__(self, images):
        """The predictions dict of a batch, as numpy arrays.

        Args:
            images: numpy array or tensor `[batch, height, width, 3]`, raw pixel values 0..255.

        Returns:
            The predictions dict of `predict_step`, each value a numpy array.
        """
        self._model.make_predict_function()  # Keras's, made if it was reset (not traced)
        keras_predict_function = self._model.predict_function
        if keras_predict_function is not self._keras_predict_function:
            # Keras traces `predict` anew (see the module docstring): so do these.
            self._functions.clear()
            self._keras_predict_function = keras_predict_function
        images = tf.convert_to_tensor(images)
        key = (images.dtype, bool(self._model.jit_compile))
        function = self._functions.get(key)
        if function is None:
            function = self._functions[key] = self._traced(*key)
        return {name: value.numpy() for name, value in function(images).items()}

    def _traced(self, dtype, jit_compile):
        if self._one_size is None:
            self._one_size = resizes_to_one_size(getattr(self._model, "image_resizer", None))
        if self._one_size:
            return tf.function(
                self._model.predict_step,
                input_signature=[tf.TensorSpec([None, None, None, 3], dtype)],
                jit_compile=jit_compile,
            )
        return tf.function(self._model.predict_step, reduce_retracing=True, jit_compile=jit_compile)


def is_in_memory_batch(x):
    """Whether `x` is a batch the fast path takes: a numpy array or an eager tensor (not a
    dataset, generator or dict, which Keras's `predict` reads)."""
    return isinstance(x, np.ndarray) or (isinstance(x, tf.Tensor) and hasattr(x, "numpy"))
