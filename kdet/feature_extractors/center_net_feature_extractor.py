"""Base class of CenterNet feature extractors."""

import keras
import tensorflow as tf

# Stands in for unknown spatial dimensions when a forward pass builds the weights: a multiple
# of 128, the largest input multiple a kdet CenterNet extractor needs (Hourglass-104: stride 4
# times 5 halvings).
_BUILD_IMAGE_SIZE = 128


class CenterNetFeatureExtractor(keras.layers.Layer):
    """Turns images into the stride-4 feature map(s) the CenterNet prediction heads read.

    The TF OD API `CenterNetFeatureExtractor` contract in Keras terms. A subclass implements:
    - `call(images, training=None)`: preprocessed images `[batch, height, width, 3]` → list of
      `num_feature_outputs` feature maps `[batch, height / out_stride, width / out_stride, c]`
      (one for ResNet / MobileNet; two for Hourglass-104, whose first map is the intermediate
      supervision); the model puts one set of heads on each map;
    - `out_stride` and `num_feature_outputs`;
    - `get_config()`, with every constructor argument;
    and may extend `preprocess` (the ResNets apply their `keras.applications` normalization
    after the base class's). Register it with
    `kdet.feature_extractors.register_feature_extractor(name)` so configs can name it.

    Args:
        channel_means: 3 floats subtracted from the channels (after the `bgr_ordering`
            swap). Empty or `None`: zeros, as in the TF OD API. Defaults to `(0, 0, 0)`.
        channel_stds: 3 floats the centred channels are divided by. Empty or `None`: ones.
            Defaults to `(1, 1, 1)`.
        bgr_ordering: bool; if True `preprocess` swaps the channels RGB → BGR first.
            Defaults to `False`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor(
        "mobilenet_v2_fpn", channel_means=(123.7, 116.3, 103.5), channel_stds=(58.4, 57.1, 57.4))
    images = tf.random.uniform([1, 128, 128, 3], maxval=255)
    features = extractor(extractor.preprocess(images))  # [[1, 32, 32, 24]]
    ```

    Reference: [Objects as Points](https://arxiv.org/abs/1904.07850) (Zhou et al., 2019).
    """

    def __init__(
        self, channel_means=(0.0, 0.0, 0.0), channel_stds=(1.0, 1.0, 1.0), bgr_ordering=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channel_means = _per_channel("channel_means", channel_means, 0.0)
        self.channel_stds = _per_channel("channel_stds", channel_stds, 1.0)
        if any(std == 0 for std in self.channel_stds):
            raise ValueError(f"channel_stds must be non-zero; got {self.channel_stds}")
        self.bgr_ordering = bool(bgr_ordering)

    @property
    def out_stride(self):
        """Stride of the feature maps in the input image (4 for every TF OD API extractor)."""
        raise NotImplementedError

    @property
    def num_feature_outputs(self):
        """Number of feature maps `call` returns."""
        raise NotImplementedError

    def preprocess(self, images):
        """Normalizes raw images as the `CenterNetFeatureExtractor` proto fields say.

        Args:
            images: float `[batch, height, width, 3]`, raw pixels 0..255 (RGB).

        Returns:
            float32 `[batch, height, width, 3]`: `(images[..., order] - channel_means) /
            channel_stds`, `order` BGR when `bgr_ordering`, else RGB.
        """
        images = tf.cast(images, tf.float32)
        if self.bgr_ordering:
            images = tf.reverse(images, axis=[-1])
        means = tf.constant(self.channel_means, tf.float32)
        stds = tf.constant(self.channel_stds, tf.float32)
        return (images - means) / stds

    def build(self, input_shape):
        # Sublayers create their weights on their first call, so a forward pass on zeros builds
        # all of them (also a saved user-defined extractor without its own `build`).
        shape = [1] + [dim or _BUILD_IMAGE_SIZE for dim in input_shape[1:3]] + [input_shape[3]]
        self.call(tf.zeros(shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channel_means": list(self.channel_means),
                "channel_stds": list(self.channel_stds),
                "bgr_ordering": self.bgr_ordering,
            }
        )
        return config


def _per_channel(name, values, empty_value):
    """3 floats from `values`; `None` or empty gives `empty_value` for each channel (the TF OD
    API's rule for an absent proto field)."""
    if values is None or len(values) == 0:
        return (empty_value,) * 3
    if len(values) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel); got {list(values)}")
    return tuple(float(value) for value in values)
