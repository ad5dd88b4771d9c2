"""A user's tiny Faster R-CNN feature extractors, registered as `config_test_tiny_two_stage`
and `config_test_tiny_two_stage_fpn`, and `TINY_FASTER_RCNN_CONFIG`, a pipeline config of a
tiny Faster R-CNN with the first one (the config tests, `tests/configs/`)."""

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


# A whole `model { faster_rcnn { … } }` message with `config_test_tiny_two_stage`: 64-pixel
# images, stride-8 grid anchors, 20 proposals, 6-pixel crops, at most 10 detections.
TINY_FASTER_RCNN_CONFIG = """\
model {
  faster_rcnn {
    num_classes: 2
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor { type: 'config_test_tiny_two_stage' first_stage_features_stride: 8 }
    first_stage_anchor_generator {
      grid_anchor_generator {
        height: 32 width: 32 height_stride: 8 width_stride: 8
        scales: [0.5, 1.0] aspect_ratios: [1.0]
      }
    }
    first_stage_max_proposals: 20
    initial_crop_size: 6
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor { mask_rcnn_box_predictor { } }
    second_stage_batch_size: 8
    second_stage_post_processing {
      batch_non_max_suppression { max_total_detections: 10 }
      score_converter: SOFTMAX
    }
  }
}
"""
