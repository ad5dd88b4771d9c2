"""Faster R-CNN region proposal network head: box encodings and objectness for every anchor."""

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.models.faster_rcnn.seeds import without_drawing_seeds

# Objectness logits per anchor: background, object (the TF OD API two-class softmax).
NUM_OBJECTNESS_CLASSES = 2


@keras.saving.register_keras_serializable(package="kdet")
class RPNHead(keras.layers.Layer):
    """Box encodings and objectness logits for every anchor of one or more feature maps.

    A `kernel_size` x `kernel_size` convolution of `depth` channels, batch norm if
    `conv_hyperparams` has one, then ReLU6 (TF OD API `FirstStageRPNFeatures`), then two 1x1
    convolutions with a bias: `num_anchors_per_location * 4` box
    encodings and `num_anchors_per_location * 2` objectness logits, background first. Given a
    list of feature maps (an FPN pyramid), the same three convolutions run on every map, as in
    FPN; with `per_level_predictors` the RPN convolution is shared but every map has its own
    two 1x1 predictors, as the TF OD API's `ConvolutionalBoxPredictor` builds them (one head
    per feature map). Predictions of one map are ordered row-major over `(y, x)`, then by
    anchor within the location, and maps follow each other finest first: the order of
    `kdet.layers.GridAnchorGenerator` and `kdet.layers.MultiscaleGridAnchorGenerator`. The head
    does not decode boxes or pick proposals (see `kdet.layers.ProposalGenerator`).

    Layer names follow the TF OD API (`RPNConv`, `BoxEncodingPredictor`, `ClassPredictor`), so
    weight converters can match them by name.

    Args:
        num_anchors_per_location: int, or a list of equal ints, one per feature map (what
            `anchor_generator.num_anchors_per_location()` returns).
        depth: int. Channels of the RPN convolution (TF OD API
            `first_stage_box_predictor_depth`). Defaults to `512`.
        kernel_size: int. Kernel size of the RPN convolution (TF OD API
            `first_stage_box_predictor_kernel_size`). Defaults to `3`.
        dilation_rate: int. Dilation of the RPN convolution (TF OD API
            `first_stage_atrous_rate`). Defaults to `1`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the three
            convolutions: the TF OD API `first_stage_box_predictor_conv_hyperparams`. Its
            initializer and regularizer go to all three kernels (biases are not regularized),
            its batch norm (`RPNBatchNorm`) follows the RPN convolution only, which then has
            a bias only with `force_use_bias`; the two predictors always keep their bias. As in
            the TF OD API, its `activation` is not used: the RPN convolution is always
            followed by ReLU6, the predictors by nothing. `None`: the default
            `RPNHead.default_conv_hyperparams()`, truncated normal kernels of stddev 0.01 (the
            value of every TF OD API Faster R-CNN sample config), no regularizer, no batch
            norm.
        per_level_predictors: bool. One pair of 1x1 predictors per feature map (the TF OD
            API's first stage; `extra_box_predictors` / `extra_class_predictors` hold those
            of maps 1..), else one pair shared by every map (FPN; heads saved before
            2026-12). Defaults to `False`.
        kernel_regularizer: a regularizer replacing the one of `conv_hyperparams` (the
            argument of `.keras` files written before `conv_hyperparams` existed). Defaults
            to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        feature_maps: float tensor `[batch, height, width, channels]`, or a list of them,
            finest first, all with the same channels.

    Returns:
        `(box_encodings, objectness_logits)`: float32 `[batch, num_anchors, 4]` and float32
        `[batch, num_anchors, 2]` (column 0 background, column 1 object), where
        `num_anchors = sum(height_i * width_i) * num_anchors_per_location`.

    Example:
    ```python
    anchor_generator = kdet.layers.GridAnchorGenerator()
    head = kdet.models.faster_rcnn.RPNHead(anchor_generator.num_anchors_per_location())
    box_encodings, objectness_logits = head(tf.zeros([2, 38, 50, 1024]))
    box_encodings.shape, objectness_logits.shape  # (2, 17100, 4), (2, 17100, 2)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `object_detection/meta_architectures/faster_rcnn_meta_arch.py`.
    """

    def __init__(
        self,
        num_anchors_per_location,
        depth=512,
        kernel_size=3,
        dilation_rate=1,
        conv_hyperparams=None,
        per_level_predictors=False,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_anchors_per_location, int):
            num_anchors_per_location = [int(n) for n in num_anchors_per_location]
            if len(set(num_anchors_per_location)) != 1:
                raise ValueError(
                    "RPNHead shares its convolutions across feature maps, so every map needs "
                    "the same number of anchors per location; got "
                    f"num_anchors_per_location={num_anchors_per_location}."
                )
        self.num_anchors_per_location = num_anchors_per_location
        self.depth = depth
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.per_level_predictors = bool(per_level_predictors)
        self.conv_hyperparams = conv_hyperparams_lib.with_legacy_regularization(
            conv_hyperparams_lib.get(conv_hyperparams) or self.default_conv_hyperparams(),
            kernel_regularizer=kernel_regularizer,
        )
        hyperparams = self.conv_hyperparams
        self._anchors = (
            num_anchors_per_location
            if isinstance(num_anchors_per_location, int)
            else num_anchors_per_location[0]
        )
        self.rpn_batch_norm = hyperparams.batch_norm_layer(name="RPNBatchNorm")
        # ReLU6 always (the TF OD API's `RPNActivation`): in the convolution when no batch
        # norm follows it, else after the batch norm.
        self.rpn_conv = keras.layers.Conv2D(
            depth,
            kernel_size,
            padding="same",
            dilation_rate=dilation_rate,
            activation="relu6" if self.rpn_batch_norm is None else None,
            name="RPNConv",
            **hyperparams.conv_kwargs(),
        )
        self.box_predictor, self.class_predictor = self._predictors("")
        num_maps = 1 if isinstance(num_anchors_per_location, int) else len(num_anchors_per_location)
        extra = [
            self._predictors(f"_{level}")
            for level in range(1, num_maps if self.per_level_predictors else 1)
        ]
        self.extra_box_predictors = [box for box, _ in extra]
        self.extra_class_predictors = [objectness for _, objectness in extra]

    def _predictors(self, suffix):
        """The 1x1 box encoding and objectness convolutions of one feature map."""
        return tuple(
            keras.layers.Conv2D(
                self._anchors * code_size,
                1,
                name=f"{name}{suffix}",
                **self.conv_hyperparams.conv_kwargs(use_bias=True),
            )
            for name, code_size in (
                ("BoxEncodingPredictor", 4),
                ("ClassPredictor", NUM_OBJECTNESS_CLASSES),
            )
        )

    @property
    def box_predictors(self):
        """The box encoding predictor of each feature map (one shared, or one per map)."""
        return [self.box_predictor, *self.extra_box_predictors]

    @property
    def class_predictors(self):
        """The objectness predictor of each feature map (one shared, or one per map)."""
        return [self.class_predictor, *self.extra_class_predictors]

    @staticmethod
    def default_conv_hyperparams():
        """The `conv_hyperparams` of an `RPNHead` built without them: truncated normal
        kernels of stddev 0.01, no regularizer, no batch norm (activation unused: ReLU6)."""
        return without_drawing_seeds(
            lambda: ConvHyperparams(
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
                activation="relu6",
            )
        )

    @property
    def kernel_regularizer(self):
        """The regularizer of the three kernels (`conv_hyperparams.kernel_regularizer`)."""
        return self.conv_hyperparams.kernel_regularizer

    def build(self, input_shape):
        shapes = _as_shape_list(input_shape)
        self._check_num_feature_maps(len(shapes))
        channels = {shape[-1] for shape in shapes}
        if len(channels) != 1 or None in channels:
            raise ValueError(
                "RPNHead shares its convolutions across feature maps, so every map needs the "
                f"same, known number of channels; got shapes {shapes}."
            )
        self.rpn_conv.build((None, None, None, channels.pop()))
        if self.rpn_batch_norm is not None:
            self.rpn_batch_norm.build((None, None, None, self.depth))
        for predictor in self.box_predictors + self.class_predictors:
            predictor.build((None, None, None, self.depth))

    def call(self, feature_maps, training=None):
        if not isinstance(feature_maps, (list, tuple)):
            feature_maps = [feature_maps]
        self._check_num_feature_maps(len(feature_maps))
        box_encodings = []
        objectness_logits = []
        box_predictors, class_predictors = self.box_predictors, self.class_predictors
        for index, features in enumerate(feature_maps):
            features = self.rpn_conv(features)
            if self.rpn_batch_norm is not None:
                features = tf.nn.relu6(self.rpn_batch_norm(features, training=training))
            level = index if self.per_level_predictors else 0
            box_encodings.append(_flatten_anchors(box_predictors[level](features), 4))
            objectness_logits.append(
                _flatten_anchors(class_predictors[level](features), NUM_OBJECTNESS_CLASSES)
            )
        return (
            tf.cast(tf.concat(box_encodings, axis=1), tf.float32),
            tf.cast(tf.concat(objectness_logits, axis=1), tf.float32),
        )

    def _check_num_feature_maps(self, num_feature_maps):
        if (
            not isinstance(self.num_anchors_per_location, int)
            and len(self.num_anchors_per_location) != num_feature_maps
        ):
            raise ValueError(
                f"RPNHead got {num_feature_maps} feature map(s) but num_anchors_per_location="
                f"{self.num_anchors_per_location} has one entry per feature map."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_anchors_per_location": self.num_anchors_per_location,
                "depth": self.depth,
                "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate,
                "per_level_predictors": self.per_level_predictors,
                "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
            }
        )
        return config


def _as_shape_list(input_shape):
    """One `[batch, h, w, c]` shape, or a list of them → a list of shapes."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(shape) for shape in input_shape]
    return [tuple(input_shape)]


def _flatten_anchors(predictions, code_size):
    """`[batch, h, w, anchors * code_size]` → `[batch, h * w * anchors, code_size]`."""
    return tf.reshape(predictions, [tf.shape(predictions)[0], -1, code_size])
