"""SSD box predictor: separate convolutional box and class heads on every feature map."""

import keras

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.conv_hyperparams import ConvHyperparamsProperties


def default_conv_hyperparams():
    """The `ConvolutionalBoxPredictor` default: the box predictor `conv_hyperparams` of the TF
    OD API `ssd_mobilenet_v2_coco` config (truncated normal stddev 0.03, batch norm decay
    0.9997, epsilon 0.001, scale true, ReLU6), no regularizer."""
    return ConvHyperparams(
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
        activation="relu6",
        batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "scale": True},
    )


@keras.saving.register_keras_serializable(package="kdet")
class ConvolutionalBoxPredictor(ConvHyperparamsProperties, keras.layers.Layer):
    """Box encodings and class logits for every anchor of every feature map, no weight sharing.

    Feature map `i` gets its own optional tower of `num_layers_before_predictor` 1x1
    convolutions of `depth` channels (each followed by the batch norm and activation of
    `conv_hyperparams`), then two parallel heads: a box convolution with
    `num_anchors_per_location[i] * box_code_size` outputs and a class convolution with
    `num_anchors_per_location[i] * num_class_slots` outputs, both `kernel_size` x
    `kernel_size` with bias (or, with `use_depthwise`, a depthwise `kernel_size` convolution +
    batch norm + activation followed by a 1x1 convolution). As in the TF OD API, every kernel
    takes the initializer and regularizer of `conv_hyperparams` (depthwise kernels its
    regularizer only with `regularize_depthwise`); the head convolutions always have a bias and
    no activation; the tower and depthwise convolutions have a bias only without a centering
    batch norm (or with `force_use_bias`). The outputs
    are flattened row-major over `(y, x)` and then by anchor within a location, and concatenated
    over the feature maps, the order of `kdet.layers.SSDAnchorGenerator`. This is the TF OD API
    `ConvolutionalBoxPredictor` (`convolutional_box_predictor` in pipeline configs).

    Layers carry the TF OD API variable scopes with `/` replaced by `_`
    (`BoxPredictor_0_BoxEncodingPredictor`, `BoxPredictor_0_ClassPredictor`,
    `BoxPredictor_0_Conv2d_0_1x1_256`, and `_batchnorm` for batch norms), so
    `kdet.zoo.tf_od_api_converter` loads TF OD API weights by name.

    Args:
        num_classes: int. Number of object classes, background excluded.
        num_anchors_per_location: list of ints, the anchors per location of every feature map,
            finest first (`anchor_generator.num_anchors_per_location()`).
        kernel_size: int. Kernel size of the head convolutions. Defaults to `3`.
        num_layers_before_predictor: int. 1x1 convolutions in the tower before the heads.
            Defaults to `0`.
        depth: int. Channels of the tower convolutions; `0` leaves the tower out (TF OD API
            `min_depth = max_depth = depth`). Defaults to `0`.
        use_depthwise: bool. Build each head as depthwise + 1x1 convolutions. Defaults to
            `False`.
        use_dropout: bool. Apply dropout before the class head. Defaults to `False`.
        dropout_keep_probability: float. Keep probability of that dropout. Defaults to `0.8`.
        box_code_size: int. Size of a box encoding. Defaults to `4`.
        class_prediction_bias_init: float. Initial bias of the class convolution; e.g.
            `-log((1 - p) / p)` starts every class at probability `p`. Defaults to `0.0`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (the TF OD API `conv_hyperparams`
            of the predictor: initializer, regularizer, `regularize_depthwise`, activation and
            batch norm of the towers and depthwise heads, `force_use_bias`), or `None` for
            `default_conv_hyperparams()`: truncated normal stddev 0.03, batch norm momentum
            0.9997, epsilon 0.001 with scale, ReLU6, no regularizer. Biases are never
            regularized.
        add_background_class: bool. Predict a background column first (`num_classes + 1`
            class outputs per anchor), or only the `num_classes` object columns (TF OD API
            `add_background_class: false`). Defaults to `True`.
        kernel_regularizer, regularize_depthwise: older arguments, folded into
            `conv_hyperparams` (`kdet.layers.conv_hyperparams.with_legacy_regularization`);
            `.keras` files and zoo configs saved with them still load.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        feature_maps: list of float tensors `[batch, height_i, width_i, channels_i]`, one per
            entry of `num_anchors_per_location`.

    Returns:
        `(box_encodings, class_logits)`: float32 `[batch, num_anchors, box_code_size]` and
        float32 `[batch, num_anchors, num_classes + 1]`, column 0 the background (only
        `num_classes` columns without `add_background_class`), where
        `num_anchors = sum(height_i * width_i * num_anchors_per_location[i])`.

    Example:
    ```python
    predictor = kdet.models.ssd.ConvolutionalBoxPredictor(
        num_classes=90, num_anchors_per_location=[3, 6])
    feature_maps = [tf.zeros([1, 19, 19, 576]), tf.zeros([1, 10, 10, 1280])]
    box_encodings, class_logits = predictor(feature_maps)  # [1, 1683, 4], [1, 1683, 91]
    ```

    Reference:
        [Liu et al., 2016](https://arxiv.org/abs/1512.02325); TF OD API
        `object_detection/predictors/convolutional_keras_box_predictor.py`.
    """

    def __init__(
        self,
        num_classes,
        num_anchors_per_location,
        kernel_size=3,
        num_layers_before_predictor=0,
        depth=0,
        use_depthwise=False,
        use_dropout=False,
        dropout_keep_probability=0.8,
        box_code_size=4,
        class_prediction_bias_init=0.0,
        conv_hyperparams=None,
        add_background_class=True,
        kernel_regularizer=None,
        regularize_depthwise=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if use_depthwise and kernel_size == 1:
            raise ValueError(
                "use_depthwise=True needs kernel_size > 1: a depthwise 1x1 convolution followed "
                "by a 1x1 convolution adds nothing; got kernel_size=1."
            )
        self.num_classes = num_classes
        self.num_anchors_per_location = [int(k) for k in num_anchors_per_location]
        self.kernel_size = kernel_size
        self.num_layers_before_predictor = num_layers_before_predictor
        self.depth = depth
        self.use_depthwise = use_depthwise
        self.use_dropout = use_dropout
        self.dropout_keep_probability = dropout_keep_probability
        self.box_code_size = box_code_size
        self.class_prediction_bias_init = class_prediction_bias_init
        self.conv_hyperparams = conv_hyperparams_lib.with_legacy_regularization(
            conv_hyperparams_lib.get(conv_hyperparams) or default_conv_hyperparams(),
            kernel_regularizer,
            regularize_depthwise,
        )
        self.add_background_class = bool(add_background_class)
        self.num_class_slots = num_classes + int(self.add_background_class)
        use_tower = depth > 0 and num_layers_before_predictor > 0
        self.towers = []
        self.box_heads = []
        self.class_heads = []
        for index, num_anchors in enumerate(self.num_anchors_per_location):
            scope = f"BoxPredictor_{index}"
            if use_tower:
                self.towers.append(keras.Sequential(self._tower(scope), name=f"{scope}_tower"))
            self.box_heads.append(
                keras.Sequential(
                    self._head(f"{scope}_BoxEncodingPredictor", num_anchors * box_code_size),
                    name=f"{scope}_box_head",
                )
            )
            class_head = []
            if use_dropout:
                class_head.append(keras.layers.Dropout(1.0 - dropout_keep_probability))
            class_head += self._head(
                f"{scope}_ClassPredictor",
                num_anchors * self.num_class_slots,
                keras.initializers.Constant(class_prediction_bias_init),
            )
            self.class_heads.append(keras.Sequential(class_head, name=f"{scope}_class_head"))

    def _normalized(self, name):
        """The batch norm and activation layers after a tower or depthwise convolution (the
        ones `conv_hyperparams` has)."""
        hyperparams = self.conv_hyperparams
        layers = [
            hyperparams.batch_norm_layer(name=f"{name}_batchnorm"),
            hyperparams.activation_layer(name=f"{name}_activation"),
        ]
        return [layer for layer in layers if layer is not None]

    def _tower(self, scope):
        layers = []
        for index in range(self.num_layers_before_predictor):
            name = f"{scope}_Conv2d_{index}_1x1_{self.depth}"
            layers.append(
                keras.layers.Conv2D(
                    self.depth, 1, name=name, **self.conv_hyperparams.conv_kwargs()
                )
            )
            layers += self._normalized(name)
        return layers

    def _head(self, name, filters, bias_initializer="zeros"):
        """The prediction convolution, preceded by depthwise conv + batch norm + activation
        with `use_depthwise`."""
        prediction = keras.layers.Conv2D(
            filters,
            self.kernel_size if not self.use_depthwise else 1,
            padding="same",
            bias_initializer=bias_initializer,
            name=name,
            **self.conv_hyperparams.conv_kwargs(use_bias=True),
        )
        if not self.use_depthwise:
            return [prediction]
        depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            padding="same",
            name=f"{name}_depthwise",
            **self.conv_hyperparams.depthwise_conv_kwargs(),
        )
        return [depthwise, *self._normalized(f"{name}_depthwise"), prediction]

    def _check_num_feature_maps(self, num_feature_maps):
        if num_feature_maps != len(self.num_anchors_per_location):
            raise ValueError(
                f"ConvolutionalBoxPredictor was built for {len(self.num_anchors_per_location)} "
                f"feature maps (num_anchors_per_location={self.num_anchors_per_location}); got "
                f"{num_feature_maps}."
            )

    def build(self, input_shape):
        self._check_num_feature_maps(len(input_shape))
        for index, shape in enumerate(input_shape):
            if self.towers:
                self.towers[index].build(shape)
                shape = self.towers[index].compute_output_shape(shape)
            self.box_heads[index].build(shape)
            self.class_heads[index].build(shape)

    def call(self, feature_maps, training=None):
        self._check_num_feature_maps(len(feature_maps))
        box_encodings = []
        class_logits = []
        for index, features in enumerate(feature_maps):
            if self.towers:
                features = self.towers[index](features, training=training)
            box_encodings.append(
                _flatten_anchors(self.box_heads[index](features), self.box_code_size)
            )
            class_logits.append(
                _flatten_anchors(
                    self.class_heads[index](features, training=training), self.num_class_slots
                )
            )
        return (
            keras.ops.cast(keras.ops.concatenate(box_encodings, axis=1), "float32"),
            keras.ops.cast(keras.ops.concatenate(class_logits, axis=1), "float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_anchors_per_location": self.num_anchors_per_location,
                "kernel_size": self.kernel_size,
                "num_layers_before_predictor": self.num_layers_before_predictor,
                "depth": self.depth,
                "use_depthwise": self.use_depthwise,
                "use_dropout": self.use_dropout,
                "dropout_keep_probability": self.dropout_keep_probability,
                "box_code_size": self.box_code_size,
                "class_prediction_bias_init": self.class_prediction_bias_init,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
                "add_background_class": self.add_background_class,
            }
        )
        return config


def _flatten_anchors(predictions, code_size):
    """`[batch, h, w, k * code_size]` → `[batch, h * w * k, code_size]`, anchors row-major."""
    return keras.ops.reshape(predictions, (keras.ops.shape(predictions)[0], -1, code_size))

