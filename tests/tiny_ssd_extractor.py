"""A tiny SSD feature extractor for training-machinery tests, written with the public API.

Registered as `"test_tiny_two_map_ssd"`: three stride-2 convolutions, then one more, giving
maps at 1/8 and 1/16 of the input (8 channels). Import this module to register it; the
multi-worker test's worker processes import it too (with `tests/` on their `PYTHONPATH`).
"""

import keras

import kdet

NAME = "test_tiny_two_map_ssd"


@kdet.feature_extractors.register_feature_extractor(NAME)
class TinyTwoMapSSDExtractor(kdet.feature_extractors.SSDFeatureExtractor):
    """Maps at 1/8 and 1/16 of the input: `[B, H/8, W/8, 8]` and `[B, H/16, W/16, 8]`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.Sequential(
            [keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")
             for _ in range(3)]
        )
        self.top = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def call(self, images, training=None):
        features = self.stem(images)
        return [features, self.top(features)]


def tiny_ssd(num_classes=2, image_size=64, **kwargs):
    """An SSD of this extractor for `image_size` images (two anchor layers), not built;
    `kwargs` go to `kdet.SSD`."""
    return kdet.SSD(
        num_classes=num_classes,
        feature_extractor=NAME,
        image_resizer=kdet.layers.FixedShapeResizer(image_size, image_size),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        **kwargs,
    )
