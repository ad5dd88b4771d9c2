import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet50V1FPNFeatureExtractor,
)


@pytest.fixture(scope="module")
def retinanet():
    return build_feature_extractor("ssd_resnet50_v1_fpn")


def test_registered_name_builds_the_class(retinanet):
    assert isinstance(retinanet, SSDResNet50V1FPNFeatureExtractor)


def test_preprocess_subtracts_rgb_channel_means(retinanet):
    images = tf.constant([[[[123.68, 116.779, 103.939], [0.0, 0.0, 255.0]]]])
    np.testing.assert_allclose(
        retinanet.preprocess(images)[0, 0], [[0.0, 0.0, 0.0], [-123.68, -116.779, 151.061]],
        atol=1e-4,
    )


def test_levels_3_to_7_at_64_px(retinanet):
    feature_maps = retinanet(retinanet.preprocess(tf.zeros([2, 64, 64, 3])))
    assert [tuple(f.shape) for f in feature_maps] == [
        (2, 8, 8, 256), (2, 4, 4, 256), (2, 2, 2, 256), (2, 1, 1, 256), (2, 1, 1, 256),
    ]
    # C3..C5 of ResNet50 and the plain (not separable) RetinaNet pyramid.
    assert [o.shape[-1] for o in retinanet.body.outputs] == [512, 1024, 2048]
    assert not retinanet.feature_pyramid.use_depthwise


def test_gradients_reach_body_and_pyramid(retinanet):
    images = retinanet.preprocess(tf.random.uniform([1, 64, 64, 3], maxval=255.0))
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(f) for f in retinanet(images, training=True))
    weights = retinanet.trainable_weights
    gradients = tape.gradient(loss, weights)
    assert not [w.path for w, g in zip(weights, gradients) if g is None]


def test_level_2_and_config_round_trip():
    extractor = SSDResNet50V1FPNFeatureExtractor(
        fpn_min_level=2, fpn_max_level=4, additional_layer_depth=32
    )
    assert [tuple(f.shape[1:]) for f in extractor(tf.zeros([1, 64, 64, 3]))] == [
        (16, 16, 32), (8, 8, 32), (4, 4, 32),
    ]
    assert [o.shape[-1] for o in extractor.body.outputs] == [256, 512, 1024]
    restored = SSDResNet50V1FPNFeatureExtractor.from_config(extractor.get_config())
    assert restored.get_config() == extractor.get_config()


def test_kernel_regularizer_reaches_body_and_pyramid_with_names_kept():
    plain = SSDResNet50V1FPNFeatureExtractor(additional_layer_depth=16, name="retinanet")
    extractor = SSDResNet50V1FPNFeatureExtractor(
        additional_layer_depth=16,
        kernel_regularizer=keras.regularizers.L2(2e-4),
        name="retinanet",
    )
    for model in (plain, extractor):
        model.build((None, 64, 64, 3))
    assert [w.path for w in extractor.weights] == [w.path for w in plain.weights]
    regularized = [w for w in extractor.trainable_weights if w.regularizer is not None]
    kernels = [w for w in extractor.trainable_weights if w.name == "kernel"]
    assert regularized == kernels
    assert len(kernels) == 53 + 3 + 2 + 2  # ResNet50 C3..C5, projections, smoothing, P6, P7
    assert extractor.feature_pyramid.kernel_regularizer.get_config() == {"l2": 2e-4}
    config = extractor.get_config()
    restored = SSDResNet50V1FPNFeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-4}
