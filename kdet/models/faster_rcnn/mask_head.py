"""`MaskHead`: the mask branch of Mask R-CNN (TF OD API `mask_rcnn_box_predictor` masks), and
the mask targets, loss and pasting of `kdet.models.faster_rcnn.MaskRCNN`."""

import math

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.losses.weighted_sigmoid_classification_loss import WeightedSigmoidClassificationLoss


@keras.saving.register_keras_serializable(package="kdet")
class MaskHead(keras.layers.Layer):
    """Per-RoI instance mask logits from the box classifier features of the RoIs.

    The TF OD API `MaskRCNNMaskHead` (`predictors/heads/keras_mask_head.py`), with its layer
    names (`MaskPredictor_conv2d_0`, …, `MaskPredictor_last_conv2d`; equal outputs from equal
    weights, measured against it for both orders): the features `[N, h, w, C]` are resized to `mask_height` x `mask_width` (bilinear,
    corners aligned), then `num_conv_layers - 1` 3x3 convolutions of `conv_depth` channels
    (each followed by the batch norm and activation of `conv_hyperparams`), then a last 3x3
    convolution with a bias and one output channel per class (one for all classes with
    `masks_are_class_agnostic`). With `convolve_then_upsample` the convolutions run at the
    features' size, then a nearest-neighbour upsampling by `mask_height // h` (and width) and
    one more convolution come before the last one.

    Args:
        num_classes: int. Object classes, background excluded.
        mask_height, mask_width: ints, the size of the predicted masks (TF OD API
            `mask_height`, `mask_width`). Default to `15`.
        conv_depth: int. Channels of the convolutions (`mask_prediction_conv_depth`); `0`
            chooses them from the feature channels and `num_classes` as the TF OD API does
            (`2 ** round((2 log2 C + 3 log2 num_classes) / 5)`). Defaults to `256`.
        num_conv_layers: int >= 1. Convolutions, the last one included
            (`mask_prediction_num_conv_layers`). Defaults to `2`.
        masks_are_class_agnostic: bool. One mask per RoI for every class. Defaults to `False`.
        convolve_then_upsample: bool. TF OD API `convolve_then_upsample_masks`. Defaults to
            `False`.
        conv_hyperparams: a `kdet.layers.ConvHyperparams` (or its config) of the convolutions
            (TF OD API `conv_hyperparams` of `mask_rcnn_box_predictor`). `None`: Keras
            defaults (Glorot uniform kernels), ReLU, no batch norm.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: float `[num_rois, height, width, channels]`, the extractor's box classifier
            features of the RoI crops.

    Returns:
        float32 `[num_rois, num_masks, mask_height, mask_width]` logits, `num_masks` being
        `num_classes` (row `k` for label id `k + 1`) or 1.

    Example:
    ```python
    head = kdet.models.faster_rcnn.MaskHead(num_classes=3, mask_height=15, mask_width=15)
    head(tf.zeros([8, 7, 7, 64])).shape  # (8, 3, 15, 15)
    ```

    Reference:
        [He et al., 2017](https://arxiv.org/abs/1703.06870); TF OD API
        `predictors/heads/keras_mask_head.py` (`MaskRCNNMaskHead`).
    """

    def __init__(
        self,
        num_classes,
        mask_height=15,
        mask_width=15,
        conv_depth=256,
        num_conv_layers=2,
        masks_are_class_agnostic=False,
        convolve_then_upsample=False,
        conv_hyperparams=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_conv_layers < 1:
            raise ValueError(f"num_conv_layers must be at least 1, got {num_conv_layers}")
        self.num_classes = num_classes
        self.mask_height = mask_height
        self.mask_width = mask_width
        self.conv_depth = conv_depth
        self.num_conv_layers = num_conv_layers
        self.masks_are_class_agnostic = bool(masks_are_class_agnostic)
        self.convolve_then_upsample = bool(convolve_then_upsample)
        self.conv_hyperparams = conv_hyperparams_lib.get(conv_hyperparams) or ConvHyperparams()
        self.num_masks = 1 if self.masks_are_class_agnostic else num_classes

    def _conv_block(self, depth, prefix="", suffix=""):
        """Convolution, then the batch norm and activation of `conv_hyperparams` (if any),
        named `MaskPredictor_{prefix}{kind}{suffix}` as in the TF OD API."""

        def name(kind):
            return f"MaskPredictor_{prefix}{kind}{suffix}"

        hyperparams = self.conv_hyperparams
        block = [
            keras.layers.Conv2D(
                depth, 3, padding="same", name=name("conv2d"), **hyperparams.conv_kwargs()
            ),
            hyperparams.batch_norm_layer(name=name("batchnorm")),
            hyperparams.activation_layer(name=name("activation")),
        ]
        return [layer for layer in block if layer is not None]

    def build(self, features_shape):
        if len(features_shape) != 4:
            raise ValueError(
                "MaskHead takes box classifier features [num_rois, height, width, channels]; "
                f"got shape {tuple(features_shape)} (flat features, e.g. of an FPN box head, "
                "have no spatial layout to predict masks from)"
            )
        depth = self.conv_depth or _automatic_conv_depth(features_shape[-1], self.num_classes)
        layers = []
        for index in range(self.num_conv_layers - 1):
            layers += self._conv_block(depth, suffix=f"_{index}")
        if self.convolve_then_upsample:
            scale = (self.mask_height // features_shape[1], self.mask_width // features_shape[2])
            layers.append(keras.layers.UpSampling2D(scale, interpolation="nearest"))
            layers += self._conv_block(depth, prefix="upsample_")
        layers.append(
            keras.layers.Conv2D(
                self.num_masks, 3, padding="same", name="MaskPredictor_last_conv2d",
                **self.conv_hyperparams.conv_kwargs(use_bias=True)
            )
        )
        self.predictor_layers = layers
        shape = tuple(features_shape)
        if not self.convolve_then_upsample:
            shape = (shape[0], self.mask_height, self.mask_width, shape[3])
        for layer in self.predictor_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, features, training=None):
        if not self.convolve_then_upsample:
            features = tf.raw_ops.ResizeBilinear(
                images=features, size=[self.mask_height, self.mask_width], align_corners=True
            )
        for layer in self.predictor_layers:
            features = layer(features, training=training)
        return tf.transpose(tf.cast(features, tf.float32), [0, 3, 1, 2])

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "mask_height": self.mask_height,
            "mask_width": self.mask_width,
            "conv_depth": self.conv_depth,
            "num_conv_layers": self.num_conv_layers,
            "masks_are_class_agnostic": self.masks_are_class_agnostic,
            "convolve_then_upsample": self.convolve_then_upsample,
            "conv_hyperparams": keras.saving.serialize_keras_object(self.conv_hyperparams),
        }


def _automatic_conv_depth(num_feature_channels, num_classes):
    """The TF OD API's depth for `mask_prediction_conv_depth: 0`: a weighted mean of the
    feature channels (weight 2) and the classes (weight 3) in log2 space."""
    log_depth = (2.0 * math.log2(num_feature_channels) + 3.0 * math.log2(num_classes)) / 5.0
    return int(2.0 ** round(log_depth))


def class_masks(mask_logits, class_indices):
    """The mask of each RoI's class.

    Args:
        mask_logits: float `[..., num_masks, height, width]`.
        class_indices: int `[...]`, 0-based classes (label id - 1; clipped to 0 for
            background and padding). Ignored when `num_masks` is 1 (class-agnostic masks).

    Returns:
        float `[..., height, width]`.
    """
    if mask_logits.shape[-3] == 1:
        return mask_logits[..., 0, :, :]
    indices = tf.maximum(class_indices, 0)
    return tf.gather(mask_logits, indices, batch_dims=indices.shape.rank)


def mask_targets(gt_masks, boxes, matched_gt, mask_size):
    """Groundtruth masks cropped by boxes and resized to the mask size (TF OD API: the matched
    groundtruth mask, `crop_and_resize` on the proposal box).

    Args:
        gt_masks: `[B, N, H, W]` 0/1 masks (uint8 or float).
        boxes: float32 `[B, S, 4]` `rel_yxyx` of the masks' `H` x `W` frame.
        matched_gt: int32 `[B, S]`, the groundtruth row of each box (negative: none; its
            target is then any row's and must be weighted 0).
        mask_size: `(height, width)`.

    Returns:
        float32 `[B, S, height, width]` in [0, 1], no gradient.
    """
    shape = tf.shape(gt_masks)
    batch, num_gt = shape[0], shape[1]
    images = tf.reshape(gt_masks, [batch * num_gt, shape[2], shape[3], 1])
    rows = tf.range(batch)[:, None] * num_gt + tf.maximum(matched_gt, 0)
    crops = tf.image.crop_and_resize(
        images, tf.reshape(boxes, [-1, 4]), tf.reshape(rows, [-1]), list(mask_size)
    )
    crops = tf.reshape(crops, [batch, -1, *mask_size])
    return tf.stop_gradient(tf.cast(crops, tf.float32))


def mask_loss(mask_logits, targets, weights):
    """Sigmoid cross-entropy of the masks, summed and divided by the weighted pixels (TF OD API
    `second_stage_mask_loss`: its sum over `weights * mask_height * mask_width`).

    Args:
        mask_logits: float32 `[B, S, height, width]`, each RoI's mask of its class.
        targets: float32 `[B, S, height, width]` in [0, 1].
        weights: float32 `[B, S]`, 1 for the RoIs that count (sampled positives).

    Returns:
        `(loss sum, weighted pixel count)`: float32 scalars; their ratio is the loss.
    """
    pixels = mask_logits.shape[-2] * mask_logits.shape[-1]
    flat_logits = tf.reshape(mask_logits, [tf.shape(mask_logits)[0], -1, pixels])
    flat_targets = tf.reshape(targets, tf.shape(flat_logits))
    losses = WeightedSigmoidClassificationLoss()(flat_logits, flat_targets, weights)
    return tf.reduce_sum(losses), tf.reduce_sum(weights) * float(pixels)


def paste_masks(box_masks, boxes, height, width):
    """Masks in box coordinates → masks in image coordinates (TF OD API
    `reframe_box_masks_to_image_masks`: bilinear, 0 outside the box).

    Args:
        box_masks: float32 `[B, D, mask_height, mask_width]`.
        boxes: float32 `[B, D, 4]` `rel_yxyx` of the image.
        height, width: the image size in pixels (ints or scalar tensors).

    Returns:
        float32 `[B, D, height, width]`.
    """
    shape = tf.shape(box_masks)
    flat_boxes = tf.reshape(boxes, [-1, 4])
    ymin, xmin, ymax, xmax = tf.unstack(flat_boxes, axis=1)
    box_height = tf.maximum(ymax - ymin, 1e-4)
    box_width = tf.maximum(xmax - xmin, 1e-4)
    image_in_box = tf.stack(
        [-ymin / box_height, -xmin / box_width, (1.0 - ymin) / box_height,
         (1.0 - xmin) / box_width],
        axis=1,
    )
    count = shape[0] * shape[1]
    pasted = tf.image.crop_and_resize(
        tf.reshape(box_masks, [count, shape[2], shape[3], 1]),
        image_in_box,
        tf.range(count),
        tf.stack([height, width]),
        extrapolation_value=0.0,
    )
    return tf.reshape(pasted, [shape[0], shape[1], height, width])
