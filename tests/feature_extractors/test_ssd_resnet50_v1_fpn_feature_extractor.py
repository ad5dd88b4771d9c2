"""What is the ResNet50 V1 FPN extractor's own; what all SSD FPN extractors share is tested in
`test_ssd_fpn_feature_extractor.py`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.resnet_v1_body import slim_resnet_v1_body
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNet50V1FPNFeatureExtractor,
)
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import (
    SSDResNetV1FPNFeatureExtractor,
)
from kdet.layers import FusedBatchNormalization


def _conv_layers(body):
    return [layer for layer in body.layers if isinstance(layer, keras.layers.Conv2D)]


def test_body_maps_are_c2_to_c5_and_the_pyramid_is_plain():
    extractor = SSDResNet50V1FPNFeatureExtractor(fpn_min_level=2)
    assert [o.shape[-1] for o in extractor.body.outputs] == [256, 512, 1024, 2048]
    # The RetinaNet pyramid: plain (not separable) convolutions, additional_layer_depth wide.
    assert not extractor.feature_pyramid.use_depthwise
    assert extractor.feature_pyramid.depth == 256


def test_the_body_is_the_tf_od_api_resnet_scaled_by_the_depth_multiplier():
    extractor = SSDResNet50V1FPNFeatureExtractor(
        depth_multiplier=0.0625, min_depth=16, additional_layer_depth=32, fpn_max_level=5
    )
    body = extractor.body
    # max(int(filters * 0.0625), 16): conv1 64 -> 16, conv5 2048 -> 128.
    assert [o.shape[-1] for o in body.outputs] == [32, 64, 128]
    assert body.get_layer("conv1_conv").filters == 16
    assert not any(layer.use_bias for layer in _conv_layers(body))
    assert body.get_layer("pool1_pool").padding == "same"
    batch_norms = [layer for layer in body.layers if isinstance(layer, FusedBatchNormalization)]
    assert {(layer.momentum, layer.epsilon) for layer in batch_norms} == {(0.997, 1e-5)}
    # The pyramid: max(int(32 * 0.0625), 16), as the TF OD API's `_depth_fn`.
    assert extractor.pyramid_depth == extractor.feature_pyramid.depth == 16


def test_body_settings_follow_override_base_feature_extractor_hyperparams():
    override = SSDResNet50V1FPNFeatureExtractor(
        depth_multiplier=0.0625, fpn_max_level=5, override_base_feature_extractor_hyperparams=True
    )
    batch_norms = [
        layer for layer in override.body.layers if isinstance(layer, FusedBatchNormalization)
    ]
    # conv_hyperparams' batch norm (the RetinaNet default: epsilon 1e-3) and ReLU6.
    assert {(layer.momentum, layer.epsilon) for layer in batch_norms} == {(0.997, 1e-3)}
    assert override.body.get_layer("conv1_relu").get_config()["max_value"] == 6.0


def test_extractors_saved_before_the_tf_od_api_body_keep_the_keras_applications_one():
    config = SSDResNet50V1FPNFeatureExtractor(
        additional_layer_depth=8, fpn_max_level=5
    ).get_config()
    assert config.pop("tf_od_api_body") is True
    earlier = SSDResNet50V1FPNFeatureExtractor.from_config(config)
    assert not earlier.tf_od_api_body
    assert all(layer.use_bias for layer in _conv_layers(earlier.body))
    assert earlier.body.get_layer("pool1_pool").padding == "valid"
    # Its pyramid is additional_layer_depth wide, below min_depth too.
    assert earlier.feature_pyramid.depth == 8
    with pytest.raises(ValueError, match="tf_od_api_body=True"):
        SSDResNet50V1FPNFeatureExtractor(depth_multiplier=0.5, tf_od_api_body=False)


@pytest.mark.parametrize(
    "name, c3, c4",
    [
        ("ssd_resnet101_v1_fpn", "conv3_block4_out", "conv4_block23_out"),
        ("ssd_resnet152_v1_fpn", "conv3_block8_out", "conv4_block36_out"),
    ],
)
def test_resnet101_and_152_read_the_last_block_of_each_stage(name, c3, c4):
    cls = get_feature_extractor_class(name)
    assert issubclass(cls, SSDResNetV1FPNFeatureExtractor)
    extractor = cls(depth_multiplier=0.0625, additional_layer_depth=32)
    assert extractor.body.output_names == [c3, c4, "conv5_block3_out"]
    assert [o.shape[-1] for o in extractor.body.outputs] == [32, 64, 128]
    sizes = [tuple(f.shape[1:]) for f in extractor(tf.zeros([1, 128, 128, 3]))]
    assert sizes == [(16, 16, 16), (8, 8, 16), (4, 4, 16), (2, 2, 16), (1, 1, 16)]
    restored = cls.from_config(extractor.get_config())
    assert restored.get_config() == extractor.get_config()


def test_slim_layout_is_the_tf1_extractor():
    extractor = SSDResNet50V1FPNFeatureExtractor(
        depth_multiplier=0.0625,
        additional_layer_depth=32,
        override_base_feature_extractor_hyperparams=True,
        slim_layout=True,
    )
    # Each level map is its stage's output before the stride: strides 8, 16, 32.
    maps = extractor(extractor.preprocess(tf.zeros([1, 160, 160, 3])))
    assert [m.shape[1] for m in maps] == [20, 10, 5, 3, 2]
    assert extractor.feature_pyramid.slim_layout
    # Slim's root keeps 64 filters; bottlenecks max(int(d * 0.0625), 16), outputs 4x.
    assert extractor.body.get_layer("conv1_conv").filters == 64
    assert [o.shape[-1] for o in extractor.body.outputs] == [64, 64, 128]
    # Under the override, slim's resnet_arg_scope batch norms (epsilon 1e-5) with ReLU6.
    batch_norms = [
        layer for layer in extractor.body.layers if isinstance(layer, FusedBatchNormalization)
    ]
    assert {(layer.momentum, layer.epsilon) for layer in batch_norms} == {(0.997, 1e-5)}
    assert extractor.body.get_layer("conv1_relu").get_config()["max_value"] == 6.0
    config = extractor.get_config()
    assert config["slim_layout"]
    assert SSDResNet50V1FPNFeatureExtractor.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="slim_layout .* no backbone_weights"):
        SSDResNet50V1FPNFeatureExtractor(slim_layout=True, backbone_weights="imagenet")


def test_non_strided_activations_subsample_to_the_strided_body():
    # Slim's store_non_strided_activations moves a stage's stride after its last unit: the
    # same weights give the same next-stage inputs and final output, and stage outputs at
    # twice the resolution whose even pixels are the strided body's.
    strided = slim_resnet_v1_body(50, depth_multiplier=0.0625, min_depth=8)
    non_strided = slim_resnet_v1_body(
        50, depth_multiplier=0.0625, min_depth=8, store_non_strided_activations=True
    )
    for layer in strided.layers:
        if layer.weights:
            non_strided.get_layer(layer.name).set_weights(layer.get_weights())
    images = tf.random.stateless_normal([1, 64, 64, 3], seed=(1, 2))
    names = ["conv2_block3_out", "conv3_block4_out", "conv5_block3_out"]
    expected = keras.Model(strided.input, [strided.get_layer(n).output for n in names])(images)
    outputs = keras.Model(
        non_strided.input, [non_strided.get_layer(n).output for n in names]
    )(images)
    assert [o.shape[1] for o in outputs] == [16, 8, 2]
    for output, strided_output in zip(outputs[:2], expected[:2]):
        np.testing.assert_allclose(output[:, ::2, ::2], strided_output, atol=1e-4)
    np.testing.assert_allclose(outputs[2], expected[2], atol=1e-4)
    with pytest.raises(ValueError, match="store_non_strided_activations"):
        slim_resnet_v1_body(50, output_stride=16, store_non_strided_activations=True)
