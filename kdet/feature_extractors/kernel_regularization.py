"""Kernel regularization and `override_base_feature_extractor_hyperparams` of the
convolutions in kdet's feature extractors and their bodies."""

import keras

from kdet.layers.conv_hyperparams import ConvHyperparamsProperties
from kdet.layers.fused_batch_normalization import FusedBatchNormalization
from kdet.layers.fused_batch_normalization import clone_with_fused_batch_norm
from kdet.layers.fused_batch_normalization import copy_layer_weights


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


@keras.saving.register_keras_serializable(package="kdet")
class NoBatchNorm(keras.layers.Layer):
    """The identity, standing in for a body's batch norm when the hyperparams it is set up
    with have no `batch_norm` (the TF OD API builds an identity there too). Takes the batch
    norm's call arguments.

    Call args:
        inputs: any tensor; returned unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _is_relu(layer):
    """Whether `layer` is a body activation layer: a `ReLU` or an `Activation("relu")`."""
    if isinstance(layer, keras.layers.ReLU):
        return True
    return isinstance(layer, keras.layers.Activation) and layer.get_config().get(
        "activation"
    ) in ("relu", "relu6")


def hyperparams_clone(layer, hyperparams, clone_function=None):
    """The copy of one body layer under `override_base_feature_extractor_hyperparams`.

    As the TF OD API's Keras bodies (`keras_models/mobilenet_v1.py`, `mobilenet_v2.py`,
    `resnet_v1.py`) build their layers when given `conv_hyperparams`: each batch norm becomes
    `hyperparams.batch_norm_layer` (a `NoBatchNorm` identity without `batch_norm`), each
    ReLU / ReLU6 / `Activation("relu")` becomes `hyperparams.activation_layer` (an identity
    for `NONE`), and convolutions take the initializer and regularizer of `hyperparams`
    (`ConvHyperparams.layer_config_overrides`). Layer names are kept; a convolution keeps its
    `use_bias`, as the bodies pass their own.

    Args:
        layer: a Keras layer of the body being cloned.
        hyperparams: a `kdet.layers.ConvHyperparams`.
        clone_function: optional function from `layer` to its copy (padding changes, ...),
            applied before the hyperparams. Defaults to rebuilding it from its config.

    Returns:
        A new, unbuilt layer.
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        return hyperparams.batch_norm_layer(name=layer.name) or NoBatchNorm(name=layer.name)
    if _is_relu(layer):
        return hyperparams.activation_layer(name=layer.name) or keras.layers.Identity(
            name=layer.name
        )
    copy = clone_function(layer) if clone_function else layer.__class__.from_config(
        layer.get_config()
    )
    if isinstance(copy, keras.layers.ZeroPadding2D | keras.layers.Identity):
        return copy
    return copy.__class__.from_config(hyperparams.layer_config_overrides(copy.get_config()))


def clone_body(model, clone_function=None, hyperparams=None, keep_weights=False):
    """The body made of a `keras.applications` model just built for it, with `hyperparams` set
    up in it if given. `model` is used up: the body may be `model` itself.

    Without `hyperparams` the body keeps the weights of `model`. When `clone_function` (if
    any) copies every layer unchanged (same class and config), the body is `model` with its
    `keras.layers.BatchNormalization` layers turned into `FusedBatchNormalization` in place,
    so it is built once (a ResNet50 copy would cost another ~1 s of variable creation and
    weight copying); otherwise it is `kdet.layers.clone_with_fused_batch_norm(model,
    clone_function)`. With `hyperparams` every layer goes through `hyperparams_clone`; the
    copy keeps the weights of `model` (layer by layer, where the shapes agree) only with
    `keep_weights` (ImageNet weights), else its kernels are drawn anew from the hyperparams'
    initializer.

    Args:
        model: a functional `keras.Model` nothing else uses.
        clone_function: optional per-layer copy function (see `hyperparams_clone`).
        hyperparams: a `kdet.layers.ConvHyperparams`, or None.
        keep_weights: bool. Copy the weights of `model` into the hyperparams copy. Defaults
            to `False`.

    Returns:
        A functional `keras.Model` with the layer names of `model`, images
        `[batch, height, width, 3]` → the outputs of `model`.
    """
    if hyperparams is None:
        if clone_function is None or all(
            _copies_unchanged(layer, clone_function) for layer in model.layers
        ):
            return _fuse_batch_norms_in_place(model)
        return clone_with_fused_batch_norm(model, clone_function=clone_function)
    copy = keras.models.clone_model(
        model,
        clone_function=lambda layer: hyperparams_clone(layer, hyperparams, clone_function),
    )
    if keep_weights:
        copy_layer_weights(model, copy)
    return copy


def _copies_unchanged(layer, clone_function):
    """Whether `clone_function(layer)` is a layer of the same class and config as `layer`."""
    if isinstance(layer, keras.layers.InputLayer):
        return True  # `keras.models.clone_model` never passes inputs to its clone function
    copy = clone_function(layer)
    return type(copy) is type(layer) and copy.get_config() == layer.get_config()


def _fuse_batch_norms_in_place(model):
    """`model`, each of its built `keras.layers.BatchNormalization` layers made a
    `FusedBatchNormalization` with its weights, name and config (and `frozen=False`).

    `FusedBatchNormalization` only adds the `frozen` attribute and a fused `call` of the same
    signature to the Keras layer, so changing the class of the built layer is its fused copy
    without building one.
    """
    for layer in model.layers:
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
            layer.frozen = False
    return model


class ExtractorHyperparamsProperties(ConvHyperparamsProperties):
    """`ConvHyperparamsProperties` of a feature extractor with
    `override_base_feature_extractor_hyperparams`: also `body_hyperparams`."""

    @property
    def body_hyperparams(self):
        """`conv_hyperparams` with `override_base_feature_extractor_hyperparams`, else None."""
        if self.override_base_feature_extractor_hyperparams:
            return self.conv_hyperparams
        return None
