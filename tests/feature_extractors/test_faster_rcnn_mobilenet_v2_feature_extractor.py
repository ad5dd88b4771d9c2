import json

import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors.faster_rcnn_mobilenet_v2_feature_extractor import (
    FasterRCNNMobileNetV2FeatureExtractor,
)


@pytest.fixture(scope="module")
def extractor():
    return build_feature_extractor("faster_rcnn_mobilenet_v2")


@pytest.fixture(scope="module")
def ssd_body():
    """The MobileNetV2 body of an SSD extractor, with weights of its own (BN included)."""
    # Keras's body depths, as the Faster R-CNN MobileNetV2 body has them (the TF OD API's
    # differ below depth multiplier 1; the zoo SSD's is 1, where they agree).
    ssd = build_feature_extractor(
        "ssd_mobilenet_v2", depth_multiplier=0.35, tf_od_api_body_depths=False
    )
    rng = np.random.default_rng(0)
    for variable in ssd.body.weights:
        variable.assign(variable + rng.normal(0.0, 0.01, variable.shape).astype("float32"))
    return ssd.body


def test_stride_16_proposal_features_and_the_rest_of_the_body_on_crops(extractor):
    assert type(extractor) is FasterRCNNMobileNetV2FeatureExtractor
    features = extractor.extract_proposal_features(tf.zeros([2, 128, 128, 3]))
    assert tuple(features.shape) == (2, 8, 8, 576)
    box_features = extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 576]))
    assert tuple(box_features.shape) == (5, 4, 4, 1280)
    assert extractor.proposal_body.layers[-1].name == "block_13_expand_relu"
    weighted = [layer.name for layer in extractor.box_classifier_body.layers if layer.weights]
    assert (weighted[0], weighted[-1]) == ("block_13_depthwise", "Conv_1_bn")
    # TF "SAME" padding: ceil(100 / 16) = 7, ceil(72 / 16) = 5.
    assert extractor.extract_proposal_features(tf.zeros([1, 100, 72, 3])).shape[1:3] == (7, 5)


def test_preprocess_maps_pixels_to_minus_one_one(extractor):
    images = tf.constant([0.0, 127.5, 255.0], shape=[1, 1, 3, 1])
    np.testing.assert_allclose(
        extractor.preprocess(images)[0, 0, :, 0], [-1.0, 0.0, 1.0], atol=1e-6
    )


def test_restore_from_the_ssd_body_loads_both_stages(ssd_body):
    extractor = FasterRCNNMobileNetV2FeatureExtractor(depth_multiplier=0.35)
    images = tf.random.uniform([1, 96, 96, 3], -1.0, 1.0, seed=1)
    block_13_expansion, out_relu = ssd_body(images)
    assert not np.allclose(extractor.extract_proposal_features(images), block_13_expansion)

    restored = extractor.restore_from_classification_checkpoint(ssd_body)

    assert restored == sorted(layer.name for layer in ssd_body.layers if layer.weights)
    assert len(restored) == 104
    for ours, theirs in zip(extractor.weights, ssd_body.weights):
        np.testing.assert_array_equal(ours, theirs)
    features = extractor.extract_proposal_features(images)
    np.testing.assert_allclose(features, block_13_expansion, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        extractor.extract_box_classifier_features(features), out_relu, rtol=1e-5, atol=1e-5
    )


def test_batch_norm_stays_in_inference_mode_unless_trainable():
    crops = tf.random.normal([4, 7, 7, 192], seed=2)
    frozen = FasterRCNNMobileNetV2FeatureExtractor(depth_multiplier=0.35)
    np.testing.assert_array_equal(
        frozen.extract_box_classifier_features(crops, training=True),
        frozen.extract_box_classifier_features(crops, training=False),
    )
    # The moving averages start at 0 and stay there unless batch statistics are used.
    assert not np.any(frozen.box_classifier_body.get_layer("Conv_1_bn").moving_mean)
    trainable = FasterRCNNMobileNetV2FeatureExtractor(
        depth_multiplier=0.35, batch_norm_trainable=True
    )
    assert not np.allclose(
        trainable.extract_box_classifier_features(crops, training=True),
        trainable.extract_box_classifier_features(crops, training=False),
    )
    assert np.any(trainable.box_classifier_body.get_layer("Conv_1_bn").moving_mean)
    # Frozen statistics leave the batch norm scales and offsets trainable, as in the TF OD API.
    assert "Conv_1_bn/gamma" in [w.path for w in frozen.trainable_weights]


def test_gradients_reach_both_stages_under_tf_function(extractor):
    @tf.function
    def gradients(images):
        with tf.GradientTape() as tape:
            features = extractor.extract_proposal_features(images, training=True)
            crops = features[:, :7, :7]
            loss = tf.reduce_sum(extractor.extract_box_classifier_features(crops, training=True))
        return tape.gradient(loss, extractor.trainable_weights)

    grads = gradients(tf.random.uniform([1, 128, 128, 3], -1.0, 1.0, seed=3))
    assert not [w.path for w, g in zip(extractor.trainable_weights, grads) if g is None]


def test_config_round_trip():
    custom = FasterRCNNMobileNetV2FeatureExtractor(
        depth_multiplier=0.5, batch_norm_trainable=True, name="fe"
    )
    config = custom.get_config()
    restored = FasterRCNNMobileNetV2FeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert (restored.depth_multiplier, restored.batch_norm_trainable) == (0.5, True)
    # Block 13 expands 6 x 48 channels (96 * 0.5).
    assert restored.extract_proposal_features(tf.zeros([1, 64, 64, 3])).shape[-1] == 288
    with pytest.raises(ValueError, match="must be 16; got 32"):
        FasterRCNNMobileNetV2FeatureExtractor(first_stage_features_stride=32)
