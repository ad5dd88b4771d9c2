"""Batch normalization on TensorFlow's fused kernel, for the conv nets of kdet's extractors."""

import keras
import tensorflow as tf

# Dtypes `FusedBatchNormV3` takes for its input (statistics and parameters stay float32).
_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="kdet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs TF's fused kernel on `[B, H, W, C]` inputs.

    Keras 3 computes batch norm from element-wise ops (`tf.nn.moments`, then a multiply and an
    add), where tf.keras 2 and the TF OD API used the fused `FusedBatchNormV3` kernel. On CPU
    that costs kdet's MobileNet SSD about half its training step and ~8% of its inference time
    (`benchmarks/ssd_speed.py`, `benchmarks/README.md`); the fused kernel also lets Grappler's
    remapper fuse `Conv2D` + batch norm + ReLU at inference. Keras offers no fused path, so kdet
    keeps this subclass: same arguments, weights, names and checkpoints as the Keras layer.

    Differences from `keras.layers.BatchNormalization`, both as in tf.keras 2:
    - in training the moving variance is updated with the unbiased batch variance
      (`× n / (n − 1)`, `n = B·H·W`); the normalization itself uses the biased one, as Keras;
    - only 4-D channels-last inputs without `mask`, `renorm` or `synchronized` take the fused
      kernel; everything else falls back to the Keras computation.

    Args:
        frozen: bool. Always normalize with the moving statistics and never update them, even
            when called with `training=True`, while `gamma` and `beta` stay trainable (the TF
            OD API's `freeze_batchnorm`). Defaults to `False`.
        **kwargs: the arguments of `keras.layers.BatchNormalization`.

    Example:
    ```python
    bn = kdet.layers.FusedBatchNormalization(momentum=0.997, epsilon=1e-3)
    y = bn(x, training=True)  # x: [B, H, W, C] → y: [B, H, W, C]
    ```
    """

    def __init__(self, frozen=False, **kwargs):
        super().__init__(**kwargs)
        self.frozen = frozen

    def _uses_fused_kernel(self, inputs, mask):
        return (
            len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and mask is None
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        training = training and not self.frozen
        if not self._uses_fused_kernel(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma.value if self.scale else tf.ones((channels,), "float32")
        beta = self.beta.value if self.center else tf.zeros((channels,), "float32")
        update_statistics = bool(training) and self.trainable
        # In training, with `exponential_avg_factor` the kernel takes the moving statistics and
        # returns them updated: moving * momentum + batch * (1 - momentum).
        outputs, moving_mean, moving_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            gamma,
            beta,
            mean=self.moving_mean.value,
            variance=self.moving_variance.value,
            epsilon=self.epsilon,
            is_training=update_statistics,
            exponential_avg_factor=1.0 - self.momentum if update_statistics else 1.0,
        )
        if update_statistics:
            self.moving_mean.assign(moving_mean)
            self.moving_variance.assign(moving_variance)
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "frozen": self.frozen}


def clone_with_fused_batch_norm(model, clone_function=None):
    """A copy of a functional model whose `keras.layers.BatchNormalization` layers are fused.

    Layer names and weights are kept, so checkpoints and `keras.applications` weights load into
    the copy as into the original; a layer whose weight shapes `clone_function` changed (e.g.
    more filters) keeps its own new initial weights.

    Args:
        model: a functional `keras.Model`, e.g. a `keras.applications` body.
        clone_function: optional function from each other layer to its replacement (as in
            `keras.models.clone_model`). Defaults to rebuilding the layer from its config.

    Returns:
        A new `keras.Model` with the same inputs, outputs, layer names and weights.

    Example:
    ```python
    body = clone_with_fused_batch_norm(keras.applications.ResNet50(include_top=False))
    ```
    """

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        if clone_function is not None:
            return clone_function(layer)
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone)
    copy_layer_weights(model, fused)
    return fused


def copy_layer_weights(source, target):
    """Copies the weights of each layer of `source` into the layer of `target` with its name,
    where all their shapes agree (the others keep theirs).

    Args:
        source: a `keras.Model`.
        target: a `keras.Model` whose layer names are those of `source` (a clone of it).
    """
    for layer in target.layers:
        weights = source.get_layer(layer.name).get_weights() if layer.weights else []
        if weights and [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
