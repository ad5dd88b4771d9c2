"""CenterNet `resnet_v1_18_fpn` / `resnet_v1_34_fpn`: built from a config, stride-4 outputs, the
TF OD API's sizes, configs, and gradients through the whole extractor. Their checkpoint layout
is checked against the TF OD API's in
tests/checkpoints/test_tfod_parity_center_net_resnet_small.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.configs.model_builder import build_model_from_text
from kdet.feature_extractors import CenterNetResNet18V1FPNFeatureExtractor
from kdet.feature_extractors import CenterNetResNet34V1FPNFeatureExtractor
from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors import get_feature_extractor_class

CONFIG = """
model {
  center_net {
    num_classes: 3
    feature_extractor {
      type: "resnet_v1_18_fpn"
      channel_means: [104.0, 114.0, 120.0]
      channel_stds: [73.6, 69.9, 70.9]
      bgr_ordering: true
    }
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    object_detection_task {
      scale_head_params { num_filters: [16] kernel_sizes: [3] }
      offset_head_params { num_filters: [16] kernel_sizes: [3] }
    }
    object_center_params {
      center_head_params { num_filters: [16] kernel_sizes: [3] }
    }
  }
}
"""
# The TF OD API's resnet_v1_18_fpn extractor (measured in its venv): 152 variables,
# 11,807,744 trainable parameters, of which its body's unread final batch norm (`post_bn`) holds
# 4 variables and 1,024 parameters, which kdet leaves out.
TF_OD_API_SIZE = (152 - 4, 11807744 - 1024)


def _num_parameters(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return build_model_from_text(CONFIG)


def test_a_center_net_config_naming_resnet_v1_18_fpn_builds_and_predicts(model):
    extractor = model.feature_extractor
    assert isinstance(extractor, CenterNetResNet18V1FPNFeatureExtractor)
    assert tuple(extractor.channel_means) == (104.0, 114.0, 120.0)
    assert extractor.bgr_ordering
    outputs = model(tf.random.uniform([1, 80, 100, 3], maxval=255, seed=3))
    assert outputs["object_center"][0].shape == (1, 16, 16, 3)
    assert outputs["box_scale"][0].shape == (1, 16, 16, 2)


def test_stride_4_features_tf_od_api_size_and_config_round_trip(model):
    extractor = model.feature_extractor
    images = extractor.preprocess(tf.random.uniform([2, 64, 96, 3], maxval=255, seed=1))
    features = extractor(images)
    assert extractor.out_stride == 4 and extractor.num_feature_outputs == 1
    assert [tuple(feature.shape) for feature in features] == [(2, 16, 24, 64)]
    assert (len(extractor.weights), _num_parameters(extractor.trainable_weights)) == (
        TF_OD_API_SIZE
    )
    copy = type(extractor).from_config(extractor.get_config())
    assert copy.get_config() == extractor.get_config()
    assert [w.shape for w in copy.weights] == [w.shape for w in extractor.weights]


def test_training_gradients_reach_every_weight_and_update_batch_norms(model):
    extractor = model.feature_extractor
    images = extractor.preprocess(tf.random.uniform([2, 64, 64, 3], maxval=255, seed=2))
    mean = extractor.body.get_layer("conv2_block1_preact_bn").moving_mean
    before = mean.numpy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(extractor(images, training=True)[0] ** 2)
    gradients = tape.gradient(loss, extractor.trainable_weights)
    assert all(
        gradient is not None and np.any(gradient.numpy()) for gradient in gradients
    ), [w.path for w, g in zip(extractor.trainable_weights, gradients) if g is None]
    assert not np.allclose(mean.numpy(), before)


def test_both_tf_od_api_types_are_registered():
    # ResNet-34's layout (names and shapes of every layer) is checked against the TF OD API's
    # checkpoint in tests/checkpoints/test_tfod_parity_center_net_resnet_small.py.
    assert get_feature_extractor_class("resnet_v1_18_fpn") is CenterNetResNet18V1FPNFeatureExtractor
    assert get_feature_extractor_class("resnet_v1_34_fpn") is CenterNetResNet34V1FPNFeatureExtractor
    assert CenterNetResNet34V1FPNFeatureExtractor.depth == 34


def test_backbone_weights_are_refused():
    with pytest.raises(ValueError, match="keras.applications has no ResNet-18"):
        build_feature_extractor("resnet_v1_18_fpn", backbone_weights="imagenet")
