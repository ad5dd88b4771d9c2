"""Faster R-CNN region proposal network head: box encodings and objectness for every anchor."""

import keras
import tensorflow as tf

# TF OD API Faster R-CNN configs: first_stage_box_predictor_conv_hyperparams use a
# truncated_normal_initializer with stddev 0.01 for the RPN convolution and both predictors.
_KERNEL_STDDEV = 0.01
# Objectness logits per anchor: background, object (the TF OD API two-class softmax).
NUM_OBJECTNESS_CLASSES = 2


@keras.saving.register_keras_serializable(package="kdet")
class RPNHead(keras.layers.Layer):
    """Box encodings and objectness logits for every anchor of one or more feature maps.

    A `kernel_size` x `kernel_size` convolution of `depth` channels with ReLU6 (TF OD API
    `FirstStageRPNFeatures`), then two 1x1 convolutions: `num_anchors_per_location * 4` box
    encodings and `num_anchors_per_location * 2` objectness logits, background first. Given a
    list of feature maps (an FPN pyramid), the same three convolutions run on every map, as in
    FPN. Predictions of one map are ordered row-major over `(y, x)`, then by anchor within the
    location, and maps follow each other finest first: the order of
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
        kernel_regularizer: `keras.regularizers.Regularizer` (or its serialized form) of the
            kernels of the three convolutions, or `None`: the regularizer of the TF OD API
            `first_stage_box_predictor_conv_hyperparams`. Biases are not regularized. Defaults
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
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._anchors = (
            num_anchors_per_location
            if isinstance(num_anchors_per_location, int)
            else num_anchors_per_location[0]
        )
        self.rpn_conv = _conv(
            depth,
            kernel_size,
            "RPNConv",
            self.kernel_regularizer,
            padding="same",
            dilation_rate=dilation_rate,
            activation="relu6",
        )
        self.box_predictor = _conv(
            self._anchors * 4, 1, "BoxEncodingPredictor", self.kernel_regularizer
        )
        self.class_predictor = _conv(
            self._anchors * NUM_OBJECTNESS_CLASSES, 1, "ClassPredictor", self.kernel_regularizer
        )

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
        self.box_predictor.build((None, None, None, self.depth))
        self.class_predictor.build((None, None, None, self.depth))

    def call(self, feature_maps, training=None):
        if not isinstance(feature_maps, (list, tuple)):
            feature_maps = [feature_maps]
        self._check_num_feature_maps(len(feature_maps))
        box_encodings = []
        objectness_logits = []
        for features in feature_maps:
            features = self.rpn_conv(features)
            box_encodings.append(_flatten_anchors(self.box_predictor(features), 4))
            objectness_logits.append(
                _flatten_anchors(self.class_predictor(features), NUM_OBJECTNESS_CLASSES)
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
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config


def _conv(filters, kernel_size, name, kernel_regularizer, **kwargs):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=_KERNEL_STDDEV),
        kernel_regularizer=kernel_regularizer,
        name=name,
        **kwargs,
    )


def _as_shape_list(input_shape):
    """One `[batch, h, w, c]` shape, or a list of them → a list of shapes."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(shape) for shape in input_shape]
    return [tuple(input_shape)]


def _flatten_anchors(predictions, code_size):
    """`[batch, h, w, anchors * code_size]` → `[batch, h * w * anchors, code_size]`."""
    return tf.reshape(predictions, [tf.shape(predictions)[0], -1, code_size])
