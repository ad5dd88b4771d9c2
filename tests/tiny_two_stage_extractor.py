"""A user's tiny Faster R-CNN feature extractor, registered as `config_test_tiny_two_stage`
for the config tests (`tests/configs/`)."""

import keras

import kdet


@kdet.feature_extractors.register_feature_extractor("config_test_tiny_two_stage")
class ConfigTestTinyTwoStageExtractor(kdet.feature_extractors.FasterRCNNFeatureExtractor):
    """A user's Faster R-CNN extractor: stride-8 proposal features, one conv per RoI."""

    def __init__(self, depth=8, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.body = [
            keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu")
            for _ in range(3)
        ]
        self.head = keras.layers.Conv2D(2 * depth, 3, padding="same", activation="relu")

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def extract_proposal_features(self, images, training=None):
        for layer in self.body:
            images = layer(images)
        return images

    def extract_box_classifier_features(self, crops, training=None):
        return self.head(crops)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


@kdet.feature_extractors.register_feature_extractor("config_test_tiny_two_stage_fpn")
class ConfigTestTinyFPNExtractor(kdet.feature_extractors.FasterRCNNFeatureExtractor):
    """A user's FPN Faster R-CNN extractor: pyramid levels 3 and 4 (strides 8 and 16), then
    two dense layers per RoI."""

    is_fpn = True

    def __init__(self, depth=8, fpn_min_level=3, fpn_max_level=4, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.fpn_min_level = fpn_min_level
        self.fpn_max_level = fpn_max_level
        self.body = [
            keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu")
            for _ in range(fpn_max_level)
        ]
        self.head = [keras.layers.Flatten(), keras.layers.Dense(2 * depth, activation="relu")]

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def extract_proposal_features(self, images, training=None):
        levels = []
        for level, layer in enumerate(self.body, start=1):
            images = layer(images)
            if level >= self.fpn_min_level:
                levels.append(images)
        return levels

    def extract_box_classifier_features(self, crops, training=None):
        for layer in self.head:
            crops = layer(crops)
        return crops

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "fpn_min_level": self.fpn_min_level,
            "fpn_max_level": self.fpn_max_level,
        }
