"""Faster R-CNN second stage head: class logits and class-specific box encodings per RoI."""

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.models.faster_rcnn.seeds import without_drawing_seeds


@keras.saving.register_keras_serializable(package="kdet")
class BoxClassifierHead(keras.layers.Layer):
    """Class logits and one box encoding per class for every region of interest.

    Per-RoI features `[num_rois, height, width, channels]` (e.g. ResNet stage 5 on the RoI
    crops) are averaged over height and width first; flat features `[num_rois, depth]` (e.g.
    the two fully connected layers of an FPN box head) are used as they are. Optional dropout,
    then two fully connected layers: `num_classes + 1` class logits (column 0 background) and
    `num_classes * box_code_size` box encodings, one box per object class (or one box for all
    classes with `share_box_across_classes`), each followed by a batch norm when
    `fc_hyperparams` has one. This is the TF OD API `MaskRCNNKerasBoxPredictor` without masks
    (`mask_rcnn_box_predictor` in pipeline configs), with its layer names
    (`ClassPredictor_dense`, `BoxEncodingPredictor_dense`, `ClassPredictor_batchnorm`,
    `BoxEncodingPredictor_batchnorm`).

    Args:
        num_classes: int. Object classes, background excluded.
        use_dropout: bool. Apply dropout to the features before both predictions (training
            only). Defaults to `False`.
        dropout_keep_probability: float in (0, 1]. Kept fraction with `use_dropout`. Defaults
            to `0.5`, the TF OD API default.
        box_code_size: int. Numbers per box encoding. Defaults to `4`.
        share_box_across_classes: bool. Predict one box encoding per RoI, used for every
            class (TF OD API `share_box_across_classes`). Defaults to `False`.
        fc_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of both fully
            connected layers: the TF OD API `fc_hyperparams`. Its initializer and regularizer
            go to both kernels (biases are not regularized; as the TF OD API's slim predictor
            does; its Keras predictor leaves its dense layers at Keras defaults), its batch
            norm follows each dense layer (which then has a bias only with
            `force_use_bias`). Its `activation` is not used: the predictions are linear, as in
            the TF OD API. `None`: `BoxClassifierHead.default_fc_hyperparams()`, variance
            scaling (factor 1, uniform, fan average: the value of every TF OD API sample
            config), no regularizer, no batch norm.
        kernel_regularizer: a regularizer replacing the one of `fc_hyperparams` (the argument
            of `.keras` files written before `fc_hyperparams` existed). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: float `[num_rois, height, width, channels]` or `[num_rois, depth]`.
        training: bool. Enables dropout.

    Returns:
        `(class_logits, box_encodings)`: float32 `[num_rois, num_classes + 1]` and float32
        `[num_rois, num_boxes, box_code_size]`, row `k` of the boxes for class id `k + 1`
        (`num_boxes` is `num_classes`, or 1 with `share_box_across_classes`).

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
        share_box_across_classes=False,
        fc_hyperparams=None,
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
        self.share_box_across_classes = bool(share_box_across_classes)
        self.num_boxes = 1 if self.share_box_across_classes else num_classes
        self.fc_hyperparams = conv_hyperparams_lib.with_legacy_regularization(
            conv_hyperparams_lib.get(fc_hyperparams) or self.default_fc_hyperparams(),
            kernel_regularizer=kernel_regularizer,
        )
        hyperparams = self.fc_hyperparams
        self.dropout = (
            keras.layers.Dropout(1.0 - dropout_keep_probability) if use_dropout else None
        )
        self.class_predictor = keras.layers.Dense(
            num_classes + 1, name="ClassPredictor_dense", **hyperparams.conv_kwargs()
        )
        self.class_batch_norm = hyperparams.batch_norm_layer(name="ClassPredictor_batchnorm")
        self.box_predictor = keras.layers.Dense(
            self.num_boxes * box_code_size,
            name="BoxEncodingPredictor_dense",
            **hyperparams.conv_kwargs(),
        )
        self.box_batch_norm = hyperparams.batch_norm_layer(
            name="BoxEncodingPredictor_batchnorm"
        )

    @staticmethod
    def default_fc_hyperparams():
        """The `fc_hyperparams` of a `BoxClassifierHead` built without them: variance
        scaling (factor 1, uniform, fan average), no regularizer, no batch norm."""
        return without_drawing_seeds(
            lambda: ConvHyperparams(
                kernel_initializer=keras.initializers.VarianceScaling(
                    scale=1.0, mode="fan_avg", distribution="uniform"
                ),
                activation=None,
            )
        )

    @property
    def kernel_regularizer(self):
        """The regularizer of both kernels (`fc_hyperparams.kernel_regularizer`)."""
        return self.fc_hyperparams.kernel_regularizer

    def build(self, input_shape):
        if len(input_shape) not in (2, 4) or input_shape[-1] is None:
            raise ValueError(
                "BoxClassifierHead expects features [num_rois, height, width, channels] or "
                f"[num_rois, depth] with known channels; got shape {tuple(input_shape)}."
            )
        self.class_predictor.build((None, input_shape[-1]))
        self.box_predictor.build((None, input_shape[-1]))
        if self.class_batch_norm is not None:
            self.class_batch_norm.build((None, self.num_classes + 1))
            self.box_batch_norm.build((None, self.num_boxes * self.box_code_size))

    def call(self, features, training=None):
        if len(features.shape) == 4:
            features = tf.reduce_mean(features, axis=[1, 2])
        if self.dropout is not None:
            features = self.dropout(features, training=training)
        class_logits = self.class_predictor(features)
        box_encodings = self.box_predictor(features)
        if self.class_batch_norm is not None:
            class_logits = self.class_batch_norm(class_logits, training=training)
            box_encodings = self.box_batch_norm(box_encodings, training=training)
        box_encodings = tf.reshape(box_encodings, [-1, self.num_boxes, self.box_code_size])
        return tf.cast(class_logits, tf.float32), tf.cast(box_encodings, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "use_dropout": self.use_dropout,
                "dropout_keep_probability": self.dropout_keep_probability,
                "box_code_size": self.box_code_size,
                "share_box_across_classes": self.share_box_across_classes,
                "fc_hyperparams": keras.saving.serialize_keras_object(self.fc_hyperparams),
            }
        )
        return config

