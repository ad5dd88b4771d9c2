"""The layer settings of a TF OD API `Hyperparams` message as one serializable Keras object."""

import keras

from kdet.layers.fused_batch_normalization import FusedBatchNormalization

# `Hyperparams.activation` values → the Keras activation applied after the batch norm.
ACTIVATIONS = {"NONE": None, "RELU": "relu", "RELU_6": "relu6", "SWISH": "swish"}
# The TF OD API `BatchNorm` message defaults (`hyperparams.proto`), as `batch_norm` keys.
BATCH_NORM_DEFAULTS = {
    "momentum": 0.999,
    "epsilon": 1e-3,
    "center": True,
    "scale": False,
    "train": True,
    "synchronized": False,
}


@keras.saving.register_keras_serializable(package="kdet")
class ConvHyperparams:
    """Initializer, regularizer, activation and batch norm of a component's convolutions.

    The TF OD API's `KerasLayerHyperparams` (`builders/hyperparams_builder.py`) as a Keras
    object: one argument carries a `conv_hyperparams` (or `fc_hyperparams`) message of a
    pipeline config into every layer of a feature extractor, feature pyramid, box predictor,
    RPN head or box classifier, and survives `get_config` / `.keras` files. Each component
    documents its default `ConvHyperparams` (the values it was built with before this object
    existed); a config's values replace them.

    Args:
        kernel_initializer: a Keras initializer (object, name or serialized dict) of the
            kernels. Defaults to `"glorot_uniform"`.
        kernel_regularizer: a Keras regularizer of the kernels, or `None`. Use the TF OD API
            weight convention through `from_tf_od_api_regularizer`. Defaults to `None`.
        regularize_depthwise: bool. Regularize depthwise kernels too (TF OD API
            `regularize_depthwise`). Defaults to `False`.
        activation: `None`, `"relu"`, `"relu6"` or `"swish"`: applied after the batch norm
            (or the convolution). Defaults to `"relu"` (the proto default).
        batch_norm: `None` (no batch norm: convolutions keep their bias) or a dict with any
            of `momentum`, `epsilon`, `center`, `scale`, `train`, `synchronized` (missing keys
            take the TF OD API defaults 0.999, 1e-3, True, False, True, False). `momentum` is
            the TF OD API `decay`; `train: False` normalizes with the moving statistics and
            never updates them (slim `is_training=False`), while beta and gamma stay
            trainable; `synchronized: True` (TF OD API `sync_batch_norm`) computes the batch
            statistics over all replicas of a distribution strategy (the same on one device).
            Defaults to `None`.
        force_use_bias: bool. Keep the convolution bias even before a centering batch norm
            (TF OD API `force_use_bias`). Defaults to `False`.

    Example:
    ```python
    hyperparams = kdet.layers.ConvHyperparams(
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
        kernel_regularizer=keras.regularizers.L2(0.5 * 4e-5),
        activation="relu6",
        batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "scale": True},
    )
    conv = keras.layers.Conv2D(32, 3, **hyperparams.conv_kwargs())  # no bias: batch norm follows
    bn = hyperparams.batch_norm_layer(name="conv_bn")             # or None without batch norm
    act = hyperparams.activation_layer(name="conv_relu6")         # or None for NONE
    ```
    """

    def __init__(
        self,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        regularize_depthwise=False,
        activation="relu",
        batch_norm=None,
        force_use_bias=False,
    ):
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.regularize_depthwise = bool(regularize_depthwise)
        if activation not in ACTIVATIONS.values():
            raise ValueError(
                f"activation must be one of {list(ACTIVATIONS.values())}; got {activation!r}"
            )
        self.activation = activation
        if batch_norm is not None:
            unknown = set(batch_norm) - set(BATCH_NORM_DEFAULTS)
            if unknown:
                raise ValueError(
                    f"batch_norm takes the keys {list(BATCH_NORM_DEFAULTS)}; got {sorted(unknown)}"
                )
            batch_norm = {**BATCH_NORM_DEFAULTS, **batch_norm}
        self.batch_norm = batch_norm
        self.force_use_bias = bool(force_use_bias)

    @property
    def use_bias(self):
        """Whether convolutions keep a bias: without a centering batch norm after them, or
        with `force_use_bias` (the TF OD API rule)."""
        return self.force_use_bias or not (self.batch_norm and self.batch_norm["center"])

    def replace(self, **changes):
        """A copy with some arguments changed, e.g. `replace(activation=None)`."""
        return ConvHyperparams.from_config({**self.get_config(), **changes})

    def conv_kwargs(self, use_bias=None):
        """Keyword arguments of a `Conv2D` or `Dense` built with these hyperparams.

        Args:
            use_bias: bool or None. None: `self.use_bias`.

        Returns:
            dict with `kernel_initializer`, `kernel_regularizer`, `use_bias` (fresh objects:
            layers never share an initializer or regularizer instance).
        """
        return {
            "kernel_initializer": _copy(self.kernel_initializer),
            "kernel_regularizer": _copy(self.kernel_regularizer),
            "use_bias": self.use_bias if use_bias is None else use_bias,
        }

    def depthwise_conv_kwargs(self, use_bias=None):
        """Keyword arguments of a `DepthwiseConv2D`: its kernel is regularized only with
        `regularize_depthwise`."""
        return {
            "depthwise_initializer": _copy(self.kernel_initializer),
            "depthwise_regularizer": (
                _copy(self.kernel_regularizer) if self.regularize_depthwise else None
            ),
            "use_bias": self.use_bias if use_bias is None else use_bias,
        }

    def separable_conv_kwargs(self, use_bias=None):
        """Keyword arguments of a `SeparableConv2D` (depthwise and pointwise kernels)."""
        depthwise = self.depthwise_conv_kwargs(use_bias)
        return {
            **depthwise,
            "pointwise_initializer": _copy(self.kernel_initializer),
            "pointwise_regularizer": _copy(self.kernel_regularizer),
        }

    def batch_norm_layer(self, name=None, frozen=False, **overrides):
        """The batch norm after a convolution, or None when these hyperparams have none.

        Args:
            name: str, the layer name.
            frozen: bool. Freeze it whatever `train` says (the model's `freeze_batchnorm`).
            **overrides: `keras.layers.BatchNormalization` arguments that win over
                `batch_norm` (e.g. `momentum`).

        Returns:
            A `kdet.layers.FusedBatchNormalization`, or None.
        """
        if self.batch_norm is None:
            return None
        settings = self.batch_norm
        arguments = {
            "momentum": settings["momentum"],
            "epsilon": settings["epsilon"],
            "center": settings["center"],
            "scale": settings["scale"],
            "synchronized": settings["synchronized"],
            **overrides,
        }
        return FusedBatchNormalization(
            frozen=frozen or not settings["train"], name=name, **arguments
        )

    def activation_layer(self, name=None):
        """The activation after the batch norm (a Keras layer), or None for `NONE`."""
        if self.activation is None:
            return None
        if self.activation == "relu6":
            return keras.layers.ReLU(max_value=6.0, name=name)
        return keras.layers.Activation(self.activation, name=name)

    def layer_config_overrides(self, layer_config):
        """Applies these hyperparams' initializer and regularizer to the config of an existing
        convolution (or dense layer) of a body.

        For `override_base_feature_extractor_hyperparams` (batch norms and activations are
        replaced whole, see `kdet.feature_extractors.kernel_regularization.hyperparams_clone`).
        Configs without kernels come back unchanged.

        Args:
            layer_config: dict, a layer's `get_config()` (not modified).

        Returns:
            A new config dict.
        """
        config = dict(layer_config)
        serialize = keras.saving.serialize_keras_object
        initializer = serialize(self.kernel_initializer)
        regularizer = serialize(self.kernel_regularizer)
        for entry in ("kernel_initializer", "pointwise_initializer", "depthwise_initializer"):
            if entry in config:
                config[entry] = initializer
        for entry in ("kernel_regularizer", "pointwise_regularizer"):
            if entry in config:
                config[entry] = regularizer
        if "depthwise_regularizer" in config:
            config["depthwise_regularizer"] = regularizer if self.regularize_depthwise else None
        return config

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "kernel_initializer": serialize(self.kernel_initializer),
            "kernel_regularizer": serialize(self.kernel_regularizer),
            "regularize_depthwise": self.regularize_depthwise,
            "activation": self.activation,
            "batch_norm": None if self.batch_norm is None else dict(self.batch_norm),
            "force_use_bias": self.force_use_bias,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, ConvHyperparams) and self.get_config() == other.get_config()

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"ConvHyperparams({settings})"


class ConvHyperparamsProperties:
    """Read-only views of `self.conv_hyperparams` under the argument names components had
    before it existed (`kernel_regularizer`, `regularize_depthwise`, `kernel_initializer`,
    `activation`), for a class that stores a `ConvHyperparams` as `conv_hyperparams`."""

    @property
    def kernel_initializer(self):
        """The kernel initializer of `conv_hyperparams`."""
        return self.conv_hyperparams.kernel_initializer

    @property
    def kernel_regularizer(self):
        """The kernel regularizer of `conv_hyperparams` (or None)."""
        return self.conv_hyperparams.kernel_regularizer

    @property
    def regularize_depthwise(self):
        """Whether depthwise kernels are regularized too (`conv_hyperparams`)."""
        return self.conv_hyperparams.regularize_depthwise

    @property
    def activation(self):
        """The activation of `conv_hyperparams` (`None`, `"relu"`, `"relu6"`, `"swish"`)."""
        return self.conv_hyperparams.activation


def get(identifier):
    """A `ConvHyperparams` from itself, its `get_config()` dict or Keras serialization.

    Args:
        identifier: a `ConvHyperparams`, a dict (config or `keras.saving` serialization), or
            None.

    Returns:
        A `ConvHyperparams`, or None for None.
    """
    if identifier is None or isinstance(identifier, ConvHyperparams):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        return ConvHyperparams.from_config(identifier)
    raise ValueError(f"expected a ConvHyperparams or its config; got {identifier!r}")


def with_legacy_regularization(hyperparams, kernel_regularizer=None, regularize_depthwise=None):
    """Folds the `kernel_regularizer` / `regularize_depthwise` arguments of components saved
    before `conv_hyperparams` existed (`.keras` files, zoo `config.json`) into
    `hyperparams`.

    Args:
        hyperparams: a `ConvHyperparams`.
        kernel_regularizer: the old argument's value, or None.
        regularize_depthwise: the old argument's value, or None (absent).

    Returns:
        `hyperparams`, or a copy with the old arguments applied.
    """
    changes = {}
    if kernel_regularizer is not None:
        changes["kernel_regularizer"] = keras.regularizers.get(kernel_regularizer)
    if regularize_depthwise is not None:
        changes["regularize_depthwise"] = regularize_depthwise
    return hyperparams.replace(**changes) if changes else hyperparams


def _copy(obj):
    """A fresh instance of a Keras initializer or regularizer (None stays None)."""
    if obj is None:
        return None
    return obj.__class__.from_config(obj.get_config())
