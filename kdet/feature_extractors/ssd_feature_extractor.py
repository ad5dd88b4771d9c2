"""Base class of SSD feature extractors."""

import keras
import tensorflow as tf

from kdet.layers import conv_hyperparams as conv_hyperparams_lib

# Stands in for unknown spatial dimensions when a forward pass builds the weights.
_BUILD_IMAGE_SIZE = 64


class SSDFeatureExtractor(keras.layers.Layer):
    """Turns preprocessed images into the list of feature maps an SSD box predictor reads.

    The TF OD API `SSDKerasFeatureExtractor` contract in Keras terms. A subclass implements:
    - `preprocess(images)`: float32 `[batch, height, width, 3]` raw pixels in 0..255 → the
      normalized input its body expects (MobileNet: `x * 2 / 255 - 1`);
    - `call(images, training=None)`: preprocessed images → list of feature maps
      `[batch, h_i, w_i, c_i]`, finest first, one per anchor-generator layer;
    - `get_config()`, with every constructor argument.
    Register it with `kdet.feature_extractors.register_feature_extractor(name)` so configs and
    the zoo can name it.

    Args:
        backbone_weights: `None` (random init) or `"imagenet"` (the `keras.applications`
            ImageNet classification weights of the body; downloaded on first use, so online
            only). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, backbone_weights=None, **kwargs):
        super().__init__(**kwargs)
        check_backbone_weights(backbone_weights)
        self.backbone_weights = backbone_weights

    def preprocess(self, images):
        """float32 `[batch, height, width, 3]` raw pixels 0..255 → the body's normalized input."""
        raise NotImplementedError

    def build(self, input_shape):
        # Sublayers create their weights on their first call, so a forward pass on zeros builds
        # all of them; this also rebuilds a saved user-defined extractor without a `build`.
        # Subclasses that know their sublayers' shapes override it with explicit builds.
        shape = [1] + [dim or _BUILD_IMAGE_SIZE for dim in input_shape[1:3]] + [input_shape[3]]
        self.call(tf.zeros(shape))

    def get_config(self):
        config = super().get_config()
        config["backbone_weights"] = self.backbone_weights
        return config


def check_backbone_weights(backbone_weights):
    """Rejects `backbone_weights` other than `None` and `"imagenet"`."""
    if backbone_weights not in (None, "imagenet"):
        raise ValueError(f"backbone_weights must be None or 'imagenet', got {backbone_weights!r}")


def extractor_hyperparams(
    conv_hyperparams, default, kernel_regularizer=None, regularize_depthwise=None
):
    """The `ConvHyperparams` of an extractor: `conv_hyperparams` (a `ConvHyperparams`, its
    config or Keras serialization) or `default` when None, with the `kernel_regularizer` /
    `regularize_depthwise` arguments of extractors saved before `conv_hyperparams` existed
    folded in (None: absent)."""
    hyperparams = conv_hyperparams_lib.get(conv_hyperparams) or default
    return conv_hyperparams_lib.with_legacy_regularization(
        hyperparams, kernel_regularizer, regularize_depthwise
    )


def pad_to_multiple(images, multiple):
    """Zero-pads images bottom/right so height and width are multiples of `multiple`.

    The TF OD API `pad_to_multiple` of SSD feature extractors (`ops.pad_to_multiple` on the
    preprocessed images, inside the extractor): the feature maps then cover the padded image,
    while the SSD model still lays its anchors out over the resized image, as the TF OD API
    does.

    Args:
        images: float tensor `[batch, height, width, channels]`.
        multiple: int >= 1. 1 returns `images` unchanged.

    Returns:
        float tensor `[batch, ceil(height / multiple) * multiple, ceil(width / multiple) *
        multiple, channels]`.
    """
    if multiple == 1:
        return images
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    pad_height = (multiple - height % multiple) % multiple
    pad_width = (multiple - width % multiple) % multiple
    return tf.pad(images, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]])


def check_pad_to_multiple(value):
    """Rejects a `pad_to_multiple` below 1."""
    if int(value) != value or value < 1:
        raise ValueError(f"pad_to_multiple must be a positive integer; got {value!r}")
    return int(value)
