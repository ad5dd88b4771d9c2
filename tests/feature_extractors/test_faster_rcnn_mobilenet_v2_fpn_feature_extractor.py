import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors.faster_rcnn_mobilenet_v2_fpn_feature_extractor import (
    FasterRCNNMobileNetV2FPNFeatureExtractor,
)


@pytest.fixture(scope="module")
def extractor():
    return build_feature_extractor("faster_rcnn_mobilenet_v2_fpn")


def test_fpnlite_levels_3_to_6_of_depth_128(extractor):
    assert type(extractor) is FasterRCNNMobileNetV2FPNFeatureExtractor
    assert extractor.is_fpn
    feature_maps = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([2, 128, 128, 3]))
    )
    assert [tuple(f.shape) for f in feature_maps] == [
        (2, 16, 16, 128), (2, 8, 8, 128), (2, 4, 4, 128), (2, 2, 2, 128),
    ]
    # block_5_add, block_12_add and the full-width out_relu of keras.applications.
    assert [o.shape[-1] for o in extractor.body.outputs] == [32, 96, 1280]
    pyramid_convs = [
        layer
        for block in extractor.feature_pyramid.smoothing_blocks
        + extractor.feature_pyramid.extra_blocks
        for layer in block.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D))
    ]
    assert len(pyramid_convs) == 3
    assert all(isinstance(conv, keras.layers.SeparableConv2D) for conv in pyramid_convs)
    box_features = extractor.extract_box_classifier_features(tf.ones([3, 7, 7, 128]))
    assert tuple(box_features.shape) == (3, 1024)
    assert tuple(extractor.box_classifier.layers[1].kernel.shape) == (7 * 7 * 128, 1024)


def test_torchvision_like_levels_4_to_6_and_plain_convolutions():
    extractor = FasterRCNNMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35, fpn_min_level=4, additional_layer_depth=64, use_depthwise=False
    )
    feature_maps = extractor(tf.zeros([1, 320, 320, 3]))
    assert [tuple(f.shape[1:]) for f in feature_maps] == [(20, 20, 64), (10, 10, 64), (5, 5, 64)]
    assert not any(
        isinstance(layer, keras.layers.SeparableConv2D)
        for block in extractor.feature_pyramid.smoothing_blocks
        for layer in block.layers
    )
    config = extractor.get_config()
    restored = FasterRCNNMobileNetV2FPNFeatureExtractor.from_config(
        json.loads(json.dumps(config))
    )
    assert restored.get_config() == config
    assert (restored.depth_multiplier, restored.use_depthwise) == (0.35, False)


def test_restore_from_the_ssd_body_loads_the_whole_body():
    # Keras's body depths, as the Faster R-CNN MobileNetV2 body has them (the TF OD API's
    # differ below depth multiplier 1; the zoo SSD's is 1, where they agree).
    ssd = build_feature_extractor(
        "ssd_mobilenet_v2", depth_multiplier=0.35, tf_od_api_body_depths=False
    )
    rng = np.random.default_rng(0)
    for variable in ssd.body.weights:
        variable.assign(variable + rng.normal(0.0, 0.01, variable.shape).astype("float32"))
    extractor = FasterRCNNMobileNetV2FPNFeatureExtractor(depth_multiplier=0.35)
    restored = extractor.restore_from_classification_checkpoint(ssd.body)
    assert restored == sorted(layer.name for layer in ssd.body.layers if layer.weights)
    images = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=1)
    np.testing.assert_allclose(extractor.body(images)[-1], ssd.body(images)[1], atol=1e-5)


def test_gradients_reach_body_pyramid_and_box_classifier_under_tf_function(extractor):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def gradients(images):
        with tf.GradientTape() as tape:
            feature_maps = extractor.extract_proposal_features(images, training=True)
            # The fully connected layers need a static crop size, as RoIAlign gives.
            crops = tf.reshape(feature_maps[0][:, :7, :7], [-1, 7, 7, 128])
            box_features = extractor.extract_box_classifier_features(crops, training=True)
            loss = tf.reduce_sum(box_features) + sum(tf.reduce_sum(f) for f in feature_maps)
        return tape.gradient(loss, extractor.trainable_weights)

    grads = gradients(tf.random.uniform([1, 128, 96, 3], -1.0, 1.0, seed=2))
    paths = [w.path for w in extractor.trainable_weights]
    assert not [path for path, g in zip(paths, grads) if g is None]
    assert "box_classifier/box_classifier_fc2/kernel" in paths


def test_kernel_regularizer_reaches_the_pyramid_only_and_round_trips():
    extractor = FasterRCNNMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35,
        additional_layer_depth=16,
        kernel_regularizer=keras.regularizers.L2(2e-4),
        regularize_depthwise=True,
    )
    extractor.extract_proposal_features(tf.zeros([1, 64, 64, 3]))
    extractor.extract_box_classifier_features(tf.zeros([1, 7, 7, 16]))
    pyramid = extractor.feature_pyramid
    assert pyramid.kernel_regularizer.get_config() == {"l2": 2e-4}
    assert pyramid.regularize_depthwise and pyramid.use_depthwise
    # As in the TF OD API FPN extractors: neither the body nor the box classifier.
    regularized = [w for w in extractor.trainable_weights if w.regularizer is not None]
    assert regularized == [w for w in pyramid.trainable_weights if "kernel" in w.name]
    config = extractor.get_config()
    restored = FasterRCNNMobileNetV2FPNFeatureExtractor.from_config(
        json.loads(json.dumps(config))
    )
    assert restored.get_config() == config
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-4}
    assert restored.regularize_depthwise
