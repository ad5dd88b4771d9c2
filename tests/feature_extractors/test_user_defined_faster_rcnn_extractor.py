"""A Faster R-CNN feature extractor written by a user, through the public API only."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet


@kdet.feature_extractors.register_feature_extractor("tiny_faster_rcnn_test")
class TinyFasterRCNNFeatureExtractor(kdet.feature_extractors.FasterRCNNFeatureExtractor):
    """Four stride-2 convolutions to stride 16 for the RPN; one more on the RoI crops."""

    def __init__(self, filters=8, first_stage_features_stride=16, backbone_weights=None, **kwargs):
        super().__init__(
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.filters = filters
        self.body = keras.Sequential(
            [
                keras.layers.Conv2D(
                    filters, 3, strides=2, padding="same", activation="relu", name=f"tiny_conv{i}"
                )
                for i in range(1, 5)
            ],
            name="tiny_body",
        )
        self.second_stage = keras.layers.Conv2D(
            2 * filters, 3, strides=2, padding="same", activation="relu", name="tiny_conv5"
        )

    def preprocess(self, images):
        return keras.ops.cast(images, "float32") / 255.0

    def extract_proposal_features(self, images, training=None):
        return self.body(images, training=training)

    def extract_box_classifier_features(self, crops, training=None):
        return self.second_stage(crops, training=training)

    def restore_from_classification_checkpoint(self, source):
        # Builds every weight first, so all layers of the same name can take the source's.
        self.extract_box_classifier_features(
            self.extract_proposal_features(tf.zeros([1, 112, 112, 3]))
        )
        return super().restore_from_classification_checkpoint(source)

    def get_config(self):
        config = super().get_config()
        config["filters"] = self.filters
        return config


def test_builds_by_name_and_runs_both_stages():
    assert "tiny_faster_rcnn_test" in kdet.feature_extractors.available_feature_extractors()
    extractor = kdet.feature_extractors.build_feature_extractor("tiny_faster_rcnn_test", filters=4)
    assert type(extractor) is TinyFasterRCNNFeatureExtractor
    assert not extractor.is_fpn
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.fill([2, 64, 96, 3], 255.0))
    )
    assert tuple(features.shape) == (2, 4, 6, 4)
    box_features = extractor.extract_box_classifier_features(tf.ones([3, 7, 7, 4]))
    assert tuple(box_features.shape) == (3, 4, 4, 8)


def _classifier(filters):
    """A classification model whose convolutions carry the extractor's body names."""
    return keras.Sequential(
        [keras.Input([None, None, 3])]
        + [
            keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"tiny_conv{i}")
            for i in range(1, 5)
        ]
        + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="logits")]
    )


def test_restores_from_a_classification_model_by_layer_name():
    extractor = TinyFasterRCNNFeatureExtractor(filters=4)
    classifier = _classifier(4)
    restored = extractor.restore_from_classification_checkpoint(classifier)
    assert restored == ["tiny_conv1", "tiny_conv2", "tiny_conv3", "tiny_conv4"]
    for ours, theirs in zip(extractor.body.layers, classifier.layers[:4]):
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"layer 'tiny_conv\d'.*same architecture"):
        extractor.restore_from_classification_checkpoint(_classifier(5))


def test_config_round_trip():
    extractor = TinyFasterRCNNFeatureExtractor(filters=6, name="tiny")
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(extractor)))
    revived = keras.saving.deserialize_keras_object(config)
    assert type(revived) is TinyFasterRCNNFeatureExtractor
    assert revived.get_config() == extractor.get_config()
    assert revived.filters == 6


# A TF OD API pipeline.config naming the user's extractor by its registered type.
PIPELINE_CONFIG = """
model {
  faster_rcnn {
    num_classes: 2
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor { type: 'tiny_faster_rcnn_test' first_stage_features_stride: 16 }
    first_stage_anchor_generator {
      grid_anchor_generator {
        scales: [0.5, 1.0] aspect_ratios: [0.5, 1.0, 2.0] height_stride: 16 width_stride: 16
      }
    }
    first_stage_box_predictor_conv_hyperparams {
      op: CONV
      regularizer { l2_regularizer { weight: 0.0 } }
      initializer { truncated_normal_initializer { stddev: 0.01 } }
    }
    first_stage_nms_iou_threshold: 0.7
    first_stage_max_proposals: 20
    initial_crop_size: 8
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_batch_size: 16
    second_stage_box_predictor {
      mask_rcnn_box_predictor {
        use_dropout: false
        fc_hyperparams {
          op: FC
          regularizer { l2_regularizer { weight: 0.0 } }
          initializer { variance_scaling_initializer { factor: 1.0 uniform: true mode: FAN_AVG } }
        }
      }
    }
    second_stage_post_processing {
      batch_non_max_suppression {
        score_threshold: 0.0 iou_threshold: 0.6 max_detections_per_class: 20
        max_total_detections: 20
      }
      score_converter: SOFTMAX
    }
  }
}
"""


def test_a_pipeline_config_builds_and_trains_the_user_extractor_by_type():
    model = kdet.configs.model_builder.build_model_from_text(PIPELINE_CONFIG, "user.config")
    assert isinstance(model, kdet.FasterRCNN)
    assert type(model.feature_extractor) is TinyFasterRCNNFeatureExtractor
    images, y = kdet.datasets.shapes(4, 64, num_classes=2, max_boxes=3, seed=5)
    model.compile()
    history = model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(images[:1], verbose=0)["boxes"].shape == (1, 20, 4)
