"""Faster R-CNN second stage head: class logits and class-specific box encodings per RoI."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class BoxClassifierHead(keras.layers.Layer):
    """Class logits and one box encoding per class for every region of interest.

    Per-RoI features `[num_rois, height, width, channels]` (e.g. ResNet stage 5 on the RoI
    crops) are averaged over height and width first; flat features `[num_rois, depth]` (e.g.
    the two fully connected layers of an FPN box head) are used as they are. Optional dropout,
    then two fully connected layers: `num_classes + 1` class logits (column 0 background) and
    `num_classes * box_code_size` box encodings, one box per object class. This is the TF OD
    API `MaskRCNNKerasBoxPredictor` without masks (`mask_rcnn_box_predictor` in pipeline
    configs), with its layer names (`ClassPredictor_dense`, `BoxEncodingPredictor_dense`) and
    the `fc_hyperparams` initializer of its configs (variance scaling, factor 1, uniform,
    fan average).

    Args:
        num_classes: int. Object classes, background excluded.
        use_dropout: bool. Apply dropout to the features before both predictions (training
            only). Defaults to `False`.
        dropout_keep_probability: float in (0, 1]. Kept fraction with `use_dropout`. Defaults
            to `0.5`, the TF OD API default.
        box_code_size: int. Numbers per box encoding. Defaults to `4`.
        kernel_regularizer: `keras.regularizers.Regularizer` (or its serialized form) of the
            kernels of both fully connected layers, or `None`: the regularizer of the TF OD
            API `fc_hyperparams`. Biases are not regularized. Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: float `[num_rois, height, width, channels]` or `[num_rois, depth]`.
        training: bool. Enables dropout.

    Returns:
        `(class_logits, box_encodings)`: float32 `[num_rois, num_classes + 1]` and float32
        `[num_rois, num_classes, box_code_size]`, row `k` of the boxes for class id `k + 1`.

    Example:
    ```python
    head = kdet.models.faster_rcnn.BoxClassifierHead(num_classes=90)
    class_logits, box_encodings = head(tf.zeros([64, 7, 7, 2048]))
    class_logits.shape, box_encodings.shape  # (64, 91), (64, 90, 4)
    ```

    Reference:
        [Ren et al., 2015](https://arxiv.org/abs/1506.01497); TF OD API
        `object_detection/predictors/mask_rcnn_keras_box_predictor.py`.
    """

    def __init__(
        self,
        num_classes,
        use_dropout=False,
        dropout_keep_probability=0.5,
        box_code_size=4,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1; got {num_classes}.")
        if not 0.0 < dropout_keep_probability <= 1.0:
            raise ValueError(
                f"dropout_keep_probability must be in (0, 1]; got {dropout_keep_probability}."
            )
        self.num_classes = num_classes
        self.use_dropout = use_dropout
        self.dropout_keep_probability = dropout_keep_probability
        self.box_code_size = box_code_size
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.dropout = (
            keras.layers.Dropout(1.0 - dropout_keep_probability) if use_dropout else None
        )
        self.class_predictor = _dense(
            num_classes + 1, "ClassPredictor_dense", self.kernel_regularizer
        )
        self.box_predictor = _dense(
            num_classes * box_code_size, "BoxEncodingPredictor_dense", self.kernel_regularizer
        )

    def build(self, input_shape):
        if len(input_shape) not in (2, 4) or input_shape[-1] is None:
            raise ValueError(
                "BoxClassifierHead expects features [num_rois, height, width, channels] or "
                f"[num_rois, depth] with known channels; got shape {tuple(input_shape)}."
            )
        self.class_predictor.build((None, input_shape[-1]))
        self.box_predictor.build((None, input_shape[-1]))

    def call(self, features, training=None):
        if len(features.shape) == 4:
            features = tf.reduce_mean(features, axis=[1, 2])
        if self.dropout is not None:
            features = self.dropout(features, training=training)
        class_logits = self.class_predictor(features)
        box_encodings = tf.reshape(
            self.box_predictor(features), [-1, self.num_classes, self.box_code_size]
        )
        return tf.cast(class_logits, tf.float32), tf.cast(box_encodings, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "use_dropout": self.use_dropout,
                "dropout_keep_probability": self.dropout_keep_probability,
                "box_code_size": self.box_code_size,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config


def _dense(units, name, kernel_regularizer):
    return keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0, mode="fan_avg", distribution="uniform"
        ),
        kernel_regularizer=kernel_regularizer,
        name=name,
    )
