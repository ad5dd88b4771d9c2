"""RetinaNet-style SSD box predictor: one convolutional tower shared by every pyramid level."""

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.conv_hyperparams import ConvHyperparamsProperties

CLASS_SCORE_CONVERTERS = ("identity", "sigmoid")


def default_conv_hyperparams():
    """The `WeightSharedConvolutionalBoxPredictor` default: the predictor `conv_hyperparams`
    of the TF OD API RetinaNet and FPNLite configs (random normal stddev 0.01, batch norm
    decay 0.997, epsilon 0.001, scale true, ReLU6), no regularizer."""
    return ConvHyperparams(
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        activation="relu6",
        batch_norm={"momentum": 0.997, "epsilon": 1e-3, "scale": True},
    )


@keras.saving.register_keras_serializable(package="kdet")
class WeightSharedConvolutionalBoxPredictor(ConvHyperparamsProperties, keras.layers.Layer):
    """Box and class predictions from every feature map with one set of convolution weights.

    A box tower and a class tower (one shared tower with `share_prediction_tower`) of
    `num_layers_before_predictor` 3x3 convolutions of `depth` channels, each followed by the
    batch norm of `conv_hyperparams` (when it has one) and the tower activation (ReLU6, or
    that of `conv_hyperparams` with `use_conv_hyperparams_activation`), then a box convolution
    (`num_anchors_per_location * box_code_size` outputs) and a class convolution
    (`num_anchors_per_location * num_class_slots` outputs, bias initialised to
    `class_prediction_bias_init`, optional dropout before it). The
    convolutions are the same layers on every feature map; only the batch norms are per map,
    since activation statistics differ between levels (TF OD API
    `WeightSharedConvolutionalBoxPredictor`). Every feature map must therefore have the same
    channels and the same number of anchors per location, as with
    `kdet.layers.MultiscaleGridAnchorGenerator`.

    Predictions of one map are ordered row-major over `(y, x)`, then by anchor within the
    location, and maps follow each other finest first: the order of the anchor generators.

    `conv_hyperparams` as the TF OD API applies it here: every kernel takes its initializer
    and regularizer (depthwise kernels the regularizer with `regularize_depthwise`); the tower
    activation is ReLU6 whatever `activation` says, as in the TF OD API's TF1 (slim)
    predictor, or with `use_conv_hyperparams_activation` their `activation` (none for `NONE`),
    as in its TF2 (Keras) one, which the `*_keras` extractors' configs build; tower
    convolutions have a bias when there is no batch norm or with `force_use_bias` (set by the
    EfficientDet configs: the TF OD API's TF2 predictor reads it, its TF1 one refuses it);
    predictor convolutions always have one. Two details of the TF
    OD API's Keras version are not copied: with `use_depthwise` it gives the pointwise kernels
    the Keras defaults (glorot uniform, no regularizer) and always regularizes the depthwise
    ones, a side effect of how it passes keyword arguments to `SeparableConv2D`; kdet applies
    `conv_hyperparams` to both kernels as described above.

    Args:
        num_classes: int. Object classes, background excluded.
        num_anchors_per_location: int, or a list of equal ints, one per feature map (what
            `anchor_generator.num_anchors_per_location()` returns).
        depth: int. Channels of the tower convolutions. Defaults to `256`.
        num_layers_before_predictor: int. Convolutions in each tower. Defaults to `4`.
        kernel_size: int. Kernel size of the tower and predictor convolutions. Defaults to `3`.
        use_depthwise: bool. Separable (depthwise + pointwise) convolutions everywhere, as in
            FPNLite. Defaults to `False`.
        apply_batch_norm: bool or None. Batch norm (per feature map) after each tower
            convolution, with the settings of `conv_hyperparams`; without it the convolutions
            get a bias. `None`: exactly when `conv_hyperparams` has a batch norm (the TF OD
            API rule); `False` drops the batch norm of `conv_hyperparams`. Defaults to
            `None`.
        share_prediction_tower: bool. One tower feeds both predictor convolutions. Defaults to
            `False`.
        class_prediction_bias_init: float. Initial bias of the class logits; -4.6 makes the
            initial foreground probability about 0.01, the focal-loss prior. Defaults to `-4.6`.
        use_dropout: bool. Dropout before the class convolution. Defaults to `False`.
        dropout_keep_probability: float in (0, 1]. Kept fraction with `use_dropout`. Defaults
            to `0.8`.
        box_code_size: int. Numbers per box encoding. Defaults to `4`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (the TF OD API `conv_hyperparams`
            of the predictor), or `None` for `default_conv_hyperparams()`: random normal
            stddev 0.01, batch norm momentum 0.997, epsilon 0.001 with scale, no regularizer.
            Biases are never regularized.
        box_encodings_clip_range: `(min, max)` or None. Clip the box encodings to this range
            (TF OD API `box_encodings_clip_range`). Defaults to `None`.
        class_score_converter: `"identity"` or `"sigmoid"`: applied to the class predictions
            inside the predictor (TF OD API `WeightSharedConvolutionalBoxPredictor
            .score_converter`; the model's own score converter then acts on its output).
            Defaults to `"identity"`.
        add_background_class: bool. Predict a background column first (`num_classes + 1`
            class outputs), or only the object columns (TF OD API
            `add_background_class: false`). Defaults to `True`.
        use_conv_hyperparams_activation: bool. The towers' activation is that of
            `conv_hyperparams` (the TF OD API's TF2 Keras predictor), not ReLU6 (its TF1 one).
            Defaults to `False`.
        kernel_regularizer, regularize_depthwise: older arguments, folded into
            `conv_hyperparams`; `.keras` files saved with them still load.
        **kwargs: passed to `keras.layers.Layer`.

    Call args:
        feature_maps: list of float tensors `[batch, h_i, w_i, channels]`, finest first.

    Returns:
        `(box_encodings, class_logits)`: float32 `[batch, num_anchors, box_code_size]` and
        float32 `[batch, num_anchors, num_class_slots]` with background in column 0 (no
        background column without `add_background_class`), where
        `num_anchors = sum(h_i * w_i) * num_anchors_per_location`.

    Example:
    ```python
    predictor = kdet.models.ssd.WeightSharedConvolutionalBoxPredictor(
        num_classes=3, num_anchors_per_location=6, depth=32
    )
    feature_maps = [tf.zeros([2, s, s, 64]) for s in (16, 8, 4, 2, 1)]
    box_encodings, class_logits = predictor(feature_maps)
    box_encodings.shape, class_logits.shape  # (2, 2046, 4), (2, 2046, 4)
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1708.02002); TF OD API
        `object_detection/predictors/convolutional_keras_box_predictor.py`.
    """

    def __init__(
        self,
        num_classes,
        num_anchors_per_location,
        depth=256,
        num_layers_before_predictor=4,
        kernel_size=3,
        use_depthwise=False,
        apply_batch_norm=None,
        share_prediction_tower=False,
        class_prediction_bias_init=-4.6,
        use_dropout=False,
        dropout_keep_probability=0.8,
        box_code_size=4,
        conv_hyperparams=None,
        box_encodings_clip_range=None,
        class_score_converter="identity",
        add_background_class=True,
        use_conv_hyperparams_activation=False,
        kernel_regularizer=None,
        regularize_depthwise=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_anchors_per_location, int):
            num_anchors_per_location = [int(n) for n in num_anchors_per_location]
            if len(set(num_anchors_per_location)) != 1:
                raise ValueError(
                    "WeightSharedConvolutionalBoxPredictor shares its predictor convolutions "
                    "across feature maps, so every map needs the same number of anchors per "
                    f"location; got num_anchors_per_location={num_anchors_per_location}."
                )
        if use_depthwise and kernel_size == 1:
            raise ValueError("use_depthwise needs kernel_size > 1; got kernel_size=1.")
        if not 0.0 < dropout_keep_probability <= 1.0:
            raise ValueError(
                f"dropout_keep_probability must be in (0, 1]; got {dropout_keep_probability}."
            )
        if class_score_converter not in CLASS_SCORE_CONVERTERS:
            raise ValueError(
                f"class_score_converter must be one of {CLASS_SCORE_CONVERTERS}; got "
                f"{class_score_converter!r}"
            )
        if box_encodings_clip_range is not None:
            box_encodings_clip_range = tuple(float(v) for v in box_encodings_clip_range)
            if len(box_encodings_clip_range) != 2 or not (
                box_encodings_clip_range[0] < box_encodings_clip_range[1]
            ):
                raise ValueError(
                    "box_encodings_clip_range must be (min, max) with min < max; got "
                    f"{box_encodings_clip_range}"
                )
        hyperparams = conv_hyperparams_lib.with_legacy_regularization(
            conv_hyperparams_lib.get(conv_hyperparams) or default_conv_hyperparams(),
            kernel_regularizer,
            regularize_depthwise,
        )
        if apply_batch_norm is False:
            hyperparams = hyperparams.replace(batch_norm=None)
        elif apply_batch_norm and hyperparams.batch_norm is None:
            raise ValueError(
                "apply_batch_norm=True needs conv_hyperparams with a batch_norm; got "
                f"{hyperparams}"
            )
        self.conv_hyperparams = hyperparams
        self.box_encodings_clip_range = box_encodings_clip_range
        self.class_score_converter = class_score_converter
        self.add_background_class = bool(add_background_class)
        self.use_conv_hyperparams_activation = bool(use_conv_hyperparams_activation)
        self.num_class_slots = num_classes + int(self.add_background_class)
        self.num_classes = num_classes
        self.num_anchors_per_location = num_anchors_per_location
        self.depth = depth
        self.num_layers_before_predictor = num_layers_before_predictor
        self.kernel_size = kernel_size
        self.use_depthwise = use_depthwise
        self.share_prediction_tower = share_prediction_tower
        self.class_prediction_bias_init = class_prediction_bias_init
        self.use_dropout = use_dropout
        self.dropout_keep_probability = dropout_keep_probability
        self.box_code_size = box_code_size

        self._anchors = (
            num_anchors_per_location
            if isinstance(num_anchors_per_location, int)
            else num_anchors_per_location[0]
        )
        tower_names = ["prediction"] if share_prediction_tower else ["box", "class"]
        self.tower_convs = {
            name: [
                self._conv(depth, f"{name}_tower_conv_{index}", use_bias=self._tower_use_bias)
                for index in range(num_layers_before_predictor)
            ]
            for name in tower_names
        }
        self.box_predictor_conv = self._conv(
            self._anchors * box_code_size, "box_predictor", use_bias=True
        )
        self.class_predictor_conv = self._conv(
            self._anchors * self.num_class_slots,
            "class_predictor",
            use_bias=True,
            bias_initializer=keras.initializers.Constant(class_prediction_bias_init),
        )
        self.dropout = (
            keras.layers.Dropout(1.0 - dropout_keep_probability) if use_dropout else None
        )
        self.tower_activation = (
            hyperparams.activation_layer(name="tower_activation")
            if self.use_conv_hyperparams_activation
            else keras.layers.ReLU(max_value=6.0, name="tower_activation")
        )

    def build(self, feature_maps_shape):
        shapes = list(feature_maps_shape)
        if not shapes or any(not isinstance(s, (tuple, list)) or len(s) != 4 for s in shapes):
            raise ValueError(
                f"{type(self).__name__} expects a non-empty list of 4-D feature maps "
                f"[batch, height, width, channels]; got shapes {shapes}."
            )
        channels = [shape[-1] for shape in shapes]
        if len(set(channels)) != 1 or channels[0] is None:
            raise ValueError(
                f"{type(self).__name__} shares its convolutions across feature maps, so every "
                f"map needs the same, known number of channels; got channels {channels}."
            )
        if not isinstance(self.num_anchors_per_location, int) and len(
            self.num_anchors_per_location
        ) != len(shapes):
            raise ValueError(
                f"{type(self).__name__} got {len(shapes)} feature maps but "
                f"num_anchors_per_location has {len(self.num_anchors_per_location)} entries."
            )
        # One batch norm per tower layer and feature map: statistics differ between levels.
        self.tower_batch_norms = {}
        if self.apply_batch_norm:
            self.tower_batch_norms = {
                name: [self._batch_norms(name, level) for level in range(len(shapes))]
                for name in self.tower_convs
            }
        input_shape = (None, None, None, channels[0])
        tower_shape = (
            (None, None, None, self.depth) if self.num_layers_before_predictor else input_shape
        )
        for name, convs in self.tower_convs.items():
            shape = input_shape
            for conv in convs:
                conv.build(shape)
                shape = tower_shape
            for batch_norms in self.tower_batch_norms.get(name, []):
                for batch_norm in batch_norms:
                    batch_norm.build(tower_shape)
        self.box_predictor_conv.build(tower_shape)
        self.class_predictor_conv.build(tower_shape)

    def call(self, feature_maps, training=None):
        box_encodings = []
        class_logits = []
        for level, features in enumerate(feature_maps):
            if self.share_prediction_tower:
                box_features = self._tower("prediction", level, features, training)
                class_features = box_features
            else:
                box_features = self._tower("box", level, features, training)
                class_features = self._tower("class", level, features, training)
            if self.dropout is not None:
                class_features = self.dropout(class_features, training=training)
            box_encodings.append(
                _flatten_anchors(self.box_predictor_conv(box_features), self.box_code_size)
            )
            class_logits.append(
                _flatten_anchors(self.class_predictor_conv(class_features), self.num_class_slots)
            )
        box_encodings = tf.cast(tf.concat(box_encodings, axis=1), tf.float32)
        class_logits = tf.cast(tf.concat(class_logits, axis=1), tf.float32)
        if self.box_encodings_clip_range is not None:
            box_encodings = tf.clip_by_value(box_encodings, *self.box_encodings_clip_range)
        if self.class_score_converter == "sigmoid":
            class_logits = tf.sigmoid(class_logits)
        return box_encodings, class_logits

    def _tower(self, name, level, features, training):
        for index, conv in enumerate(self.tower_convs[name]):
            features = conv(features)
            if self.apply_batch_norm:
                features = self.tower_batch_norms[name][level][index](features, training=training)
            if self.tower_activation is not None:
                features = self.tower_activation(features)
        return features

    @property
    def _tower_use_bias(self):
        """Whether the tower convolutions have a bias: without batch norm, or with
        `force_use_bias` (TF OD API `_compute_base_tower`)."""
        return self.conv_hyperparams.force_use_bias or not self.apply_batch_norm

    @property
    def apply_batch_norm(self):
        """Whether the towers have batch norm (`conv_hyperparams` has one)."""
        return self.conv_hyperparams.batch_norm is not None

    def _batch_norms(self, tower_name, level):
        return [
            self.conv_hyperparams.batch_norm_layer(
                name=f"{tower_name}_tower_batchnorm_{index}_level_{level}"
            )
            for index in range(self.num_layers_before_predictor)
        ]

    def _conv(self, filters, name, use_bias, bias_initializer="zeros"):
        """A "same"-padded convolution, separable with `use_depthwise`."""
        if self.use_depthwise:
            return keras.layers.SeparableConv2D(
                filters,
                self.kernel_size,
                padding="same",
                bias_initializer=bias_initializer,
                name=name,
                **self.conv_hyperparams.separable_conv_kwargs(use_bias=use_bias),
            )
        return keras.layers.Conv2D(
            filters,
            self.kernel_size,
            padding="same",
            bias_initializer=bias_initializer,
            name=name,
            **self.conv_hyperparams.conv_kwargs(use_bias=use_bias),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_anchors_per_location": self.num_anchors_per_location,
                "depth": self.depth,
                "num_layers_before_predictor": self.num_layers_before_predictor,
                "kernel_size": self.kernel_size,
                "use_depthwise": self.use_depthwise,
                "share_prediction_tower": self.share_prediction_tower,
                "class_prediction_bias_init": self.class_prediction_bias_init,
                "use_dropout": self.use_dropout,
                "dropout_keep_probability": self.dropout_keep_probability,
                "box_code_size": self.box_code_size,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "box_encodings_clip_range": (
                    None
                    if self.box_encodings_clip_range is None
                    else list(self.box_encodings_clip_range)
                ),
                "class_score_converter": self.class_score_converter,
                "add_background_class": self.add_background_class,
                "use_conv_hyperparams_activation": self.use_conv_hyperparams_activation,
            }
        )
        return config


def _flatten_anchors(predictions, code_size):
    """`[batch, h, w, anchors * code_size]` → `[batch, h * w * anchors, code_size]`."""
    return tf.reshape(predictions, [tf.shape(predictions)[0], -1, code_size])
