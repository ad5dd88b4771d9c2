"""Kernel regularization of the convolutions in kdet's feature extractors and their bodies."""

import keras


def regularize_kernels(config, kernel_regularizer, regularize_depthwise=False):
    """A Keras layer config whose convolution (or dense) kernels get `kernel_regularizer`.

    The regularizer goes to the `kernel_regularizer` entry (`Conv2D`, `Dense`) and the
    `pointwise_regularizer` entry (`SeparableConv2D`); depthwise kernels
    (`depthwise_regularizer` of `DepthwiseConv2D` and `SeparableConv2D`) get it only with
    `regularize_depthwise`, the TF OD API `Hyperparams.regularize_depthwise`. Biases are never
    regularized. Configs without those entries (batch norms, activations, ...) come back
    unchanged, as does every config when `kernel_regularizer` is `None`.

    Args:
        config: dict. A layer's `get_config()`; it is not modified.
        kernel_regularizer: a `keras.regularizers.Regularizer`, or `None`.
        regularize_depthwise: bool. Also regularize depthwise kernels. Defaults to `False`.

    Returns:
        A new config dict, the regularizer serialized in it.

    Example:
    ```python
    conv = keras.layers.Conv2D(8, 3)
    config = regularize_kernels(conv.get_config(), keras.regularizers.L2(2e-5))
    keras.layers.Conv2D.from_config(config).kernel_regularizer  # L2(2e-5)
    ```
    """
    config = dict(config)
    if kernel_regularizer is None:
        return config
    serialized = keras.regularizers.serialize(kernel_regularizer)
    entries = ["kernel_regularizer", "pointwise_regularizer"]
    if regularize_depthwise:
        entries.append("depthwise_regularizer")
    for entry in entries:
        if entry in config:
            config[entry] = serialized
    return config


def regularized_clone(layer, kernel_regularizer, regularize_depthwise=False):
    """A new, unbuilt copy of `layer` with `regularize_kernels` applied to its config.

    A `clone_function` for `kdet.layers.clone_with_fused_batch_norm`; layer names are kept.

    Args:
        layer: a Keras layer.
        kernel_regularizer: a `keras.regularizers.Regularizer`, or `None` (a plain copy).
        regularize_depthwise: bool. Also regularize depthwise kernels. Defaults to `False`.

    Returns:
        A layer of the same class.
    """
    config = regularize_kernels(layer.get_config(), kernel_regularizer, regularize_depthwise)
    return layer.__class__.from_config(config)
