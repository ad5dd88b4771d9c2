"""R-FCN's box predictor: position-sensitive score maps pooled over each RoI."""

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.models.faster_rcnn.position_sensitive_crop import check_bins
from kdet.models.faster_rcnn.position_sensitive_crop import position_sensitive_crop_regions


@keras.saving.register_keras_serializable(package="kdet")
class RFCNBoxPredictor(keras.layers.Layer):
    """Class logits and class box encodings of RoIs from position-sensitive score maps.

    The box classifier features of the whole image (`[B, h, w, C]`, e.g. ResNet stage 5 on
    the proposal feature map) go through a 1x1 convolution to `depth` channels (with the
    batch norm and activation of `conv_hyperparams`), then two 1x1 convolutions (with the
    batch norm, no activation): `bins_y * bins_x * (num_classes + 1)` class score maps and
    `bins_y * bins_x * num_classes * box_code_size` box maps. Each RoI is pooled from them by
    `position_sensitive_crop_regions` (`crop_size`, `num_spatial_bins`): there is no per-RoI
    network. This is the TF OD API `RfcnKerasBoxPredictor` (`rfcn_box_predictor` in pipeline
    configs), with its layer names (`reduce_depth_conv`, `refined_locations_conv`,
    `class_predictions_conv` and their `_batchnorm`s).

    Args:
        num_classes: int. Object classes, background excluded.
        depth: int. Channels of the shared 1x1 convolution. Defaults to `1024` (the TF OD
            API proto default).
        crop_size: `(height, width)` samples of each RoI, multiples of `num_spatial_bins`.
            Defaults to `(12, 12)`.
        num_spatial_bins: `(bins_y, bins_x)` position-sensitive bins. Defaults to `(3, 3)`.
        box_code_size: int. Numbers per box encoding. Defaults to `4`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the three
            convolutions (TF OD API `conv_hyperparams`). `None`: `ConvHyperparams()` (Glorot
            uniform, ReLU, no batch norm).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: float `[B, h, w, C]`, the box classifier features of the padded frame.
        rois: float32 `[B, R, 4]` `rel_yxyx` of the padded frame.

    Returns:
        `(class_logits, box_encodings)`: float32 `[B * R, num_classes + 1]` and float32
        `[B * R, num_classes, box_code_size]`, row `k` of the boxes for class id `k + 1`.

    Example:
    ```python
    predictor = kdet.models.faster_rcnn.RFCNBoxPredictor(num_classes=3, depth=64)
    rois = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]])
    class_logits, box_encodings = predictor(tf.zeros([1, 8, 8, 256]), rois)
    class_logits.shape, box_encodings.shape  # (2, 4), (2, 3, 4)
    ```

    Reference:
        [Dai et al., 2016](https://arxiv.org/abs/1605.06409); TF OD API
        `object_detection/predictors/rfcn_keras_box_predictor.py`.
    """

    # RoIHeads passes the RoIs to a predictor that crops the features itself.
    takes_rois = True

    def __init__(
        self,
        num_classes,
        depth=1024,
        crop_size=(12, 12),
        num_spatial_bins=(3, 3),
        box_code_size=4,
        conv_hyperparams=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1; got {num_classes}.")
        self.num_classes = num_classes
        self.depth = depth
        self.num_spatial_bins = check_bins(crop_size, num_spatial_bins)
        self.crop_size = tuple(int(value) for value in crop_size)
        self.box_code_size = box_code_size
        self.conv_hyperparams = conv_hyperparams_lib.get(conv_hyperparams) or ConvHyperparams()
        hyperparams = self.conv_hyperparams
        total_bins = self.num_spatial_bins[0] * self.num_spatial_bins[1]
        self.reduce_depth_conv = keras.layers.Conv2D(
            depth, 1, name="reduce_depth_conv", **hyperparams.conv_kwargs()
        )
        self.reduce_depth_batchnorm = hyperparams.batch_norm_layer(name="reduce_depth_batchnorm")
        self.reduce_depth_activation = hyperparams.activation_layer(
            name="reduce_depth_activation"
        )
        self.refined_locations_conv = keras.layers.Conv2D(
            total_bins * num_classes * box_code_size,
            1,
            name="refined_locations_conv",
            **hyperparams.conv_kwargs(),
        )
        self.refined_locations_batchnorm = hyperparams.batch_norm_layer(
            name="refined_locations_batchnorm"
        )
        self.class_predictions_conv = keras.layers.Conv2D(
            total_bins * (num_classes + 1),
            1,
            name="class_predictions_conv",
            **hyperparams.conv_kwargs(),
        )
        self.class_predictions_batchnorm = hyperparams.batch_norm_layer(
            name="class_predictions_batchnorm"
        )

    def build(self, features_shape, rois_shape=None):
        if len(features_shape) != 4 or features_shape[-1] is None:
            raise ValueError(
                "RFCNBoxPredictor expects the box classifier features of whole images "
                f"[B, h, w, channels] with known channels; got shape {tuple(features_shape)} "
                "(an extractor whose box classifier features are flat, e.g. FPN's, cannot feed "
                "R-FCN)."
            )
        self.reduce_depth_conv.build(features_shape)
        shared_shape = (*features_shape[:3], self.depth)
        for layer in (self.reduce_depth_batchnorm,):
            if layer is not None:
                layer.build(shared_shape)
        self.refined_locations_conv.build(shared_shape)
        self.class_predictions_conv.build(shared_shape)
        for conv, norm in (
            (self.refined_locations_conv, self.refined_locations_batchnorm),
            (self.class_predictions_conv, self.class_predictions_batchnorm),
        ):
            if norm is not None:
                norm.build((*features_shape[:3], conv.filters))

    @staticmethod
    def _apply(net, layers, training):
        for layer in layers:
            if layer is not None:
                net = layer(net, training=training)
        return net

    def call(self, features, rois, training=None):
        shared = self._apply(
            features,
            (self.reduce_depth_conv, self.reduce_depth_batchnorm, self.reduce_depth_activation),
            training,
        )
        box_maps = self._apply(
            shared, (self.refined_locations_conv, self.refined_locations_batchnorm), training
        )
        class_maps = self._apply(
            shared, (self.class_predictions_conv, self.class_predictions_batchnorm), training
        )
        box_encodings = position_sensitive_crop_regions(
            box_maps, rois, self.crop_size, self.num_spatial_bins
        )
        class_logits = position_sensitive_crop_regions(
            class_maps, rois, self.crop_size, self.num_spatial_bins
        )
        return (
            tf.reshape(class_logits, [-1, self.num_classes + 1]),
            tf.reshape(box_encodings, [-1, self.num_classes, self.box_code_size]),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "depth": self.depth,
            "crop_size": self.crop_size,
            "num_spatial_bins": self.num_spatial_bins,
            "box_code_size": self.box_code_size,
            "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
        }
