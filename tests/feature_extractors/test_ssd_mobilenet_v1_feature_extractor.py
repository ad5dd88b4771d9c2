"""The plain SSD MobileNetV1 extractors: `ssd_mobilenet_v1` (and SSDLite), `ssd_mobilenet_v1_ppn`,
`embedded_ssd_mobilenet_v1`."""

import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from extractor_battery import assert_keras_round_trip
from extractor_battery import assert_ssd_extractor_learns
from extractor_battery import tiny_ssd

from kdet.feature_extractors import EmbeddedSSDMobileNetV1FeatureExtractor
from kdet.feature_extractors import SSDMobileNetV1FeatureExtractor
from kdet.feature_extractors import SSDMobileNetV1PPNFeatureExtractor
from kdet.feature_extractors import get_feature_extractor_class
from kdet.layers import ConvHyperparams


def _shapes(feature_maps):
    return [tuple(f.shape) for f in feature_maps]


@pytest.fixture(scope="module")
def ssdlite():
    """An SSDLite MobileNetV1 with the TF1 (slim) layout, a quarter wide, built at 300²."""
    extractor = SSDMobileNetV1FeatureExtractor(
        depth_multiplier=0.25, use_depthwise=True, slim_layout=True
    )
    extractor.build((None, 300, 300, 3))
    return extractor


def test_feature_maps_at_300_read_conv2d_11_and_13(ssdlite):
    feature_maps = ssdlite(ssdlite.preprocess(tf.zeros([1, 300, 300, 3])))
    # Slim depths: Conv2d_11 512 / 4, Conv2d_13 1024 / 4; extras 512, 256, 256, 128 / 4.
    channels = [128, 256, 128, 64, 64, 32]
    sizes = [19, 10, 5, 3, 2, 1]
    assert _shapes(feature_maps) == [(1, s, s, c) for s, c in zip(sizes, channels)]
    # The body's batch norms: the TF OD API's MobileNetV1 settings, not the extra layers'.
    assert ssdlite.body.get_layer("conv_pw_5_bn").momentum == 0.9997
    assert ssdlite.body.get_layer("conv_pw_5_bn").scale


def test_extra_layers_carry_the_tf_od_api_names(ssdlite):
    names = [layer.name for layer in ssdlite.extra_layers[0].layers if layer.weights]
    assert names == [
        "Conv2d_13_pointwise_1_Conv2d_2_1x1_64_conv",
        "Conv2d_13_pointwise_1_Conv2d_2_1x1_64_batchnorm",
        "Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_128_depthwise_conv",
        "Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_128_depthwise_batchnorm",
        "Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_128_conv",
        "Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_128_batchnorm",
    ]
    assert ssdlite.extra_layers[-1].layers[-1].name == "Conv2d_13_pointwise_2_Conv2d_5_3x3_s2_32"


def test_tf2_layout_scales_the_body_twice_slim_once():
    # The TF OD API's Keras body (ssd_mobilenet_v1_keras) scales Keras's MobileNet by the
    # multiplier again: Conv2d_11 512 * 0.25 * 0.25 = 32; slim: 128. Extras agree. num_layers
    # keeps the first maps.
    keras_layout = SSDMobileNetV1FeatureExtractor(depth_multiplier=0.25, num_layers=3)
    feature_maps = keras_layout(tf.zeros([1, 64, 64, 3]))
    assert _shapes(feature_maps) == [(1, 4, 4, 32), (1, 2, 2, 64), (1, 1, 1, 128)]
    assert len(keras_layout.extra_layers) == 1
    conv = keras_layout.extra_layers[0].get_layer("Conv2d_13_pointwise_2_Conv2d_2_3x3_s2_128_conv")
    assert tuple(conv.kernel.shape) == (3, 3, 64, 128)  # plain 3x3 without use_depthwise
    with pytest.raises(ValueError, match="num_layers must be an integer in 1..6"):
        SSDMobileNetV1FeatureExtractor(num_layers=7)


def test_config_round_trip_and_registry(ssdlite):
    assert get_feature_extractor_class("ssd_mobilenet_v1") is SSDMobileNetV1FeatureExtractor
    config = ssdlite.get_config()
    assert config["use_depthwise"] and config["slim_layout"] and config["num_layers"] == 6
    revived = SSDMobileNetV1FeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert revived.get_config() == config


def test_override_sets_up_the_body_with_conv_hyperparams():
    hyperparams = ConvHyperparams(
        kernel_regularizer=keras.regularizers.L2(2e-5),
        activation="relu",
        batch_norm={"momentum": 0.97, "scale": False},
    )
    extractor = SSDMobileNetV1FeatureExtractor(
        depth_multiplier=0.25, num_layers=2, conv_hyperparams=hyperparams,
        override_base_feature_extractor_hyperparams=True, use_explicit_padding=True,
    )
    body = extractor.body.get_layer("MobilenetV1")
    batch_norm = body.get_layer("conv_pw_5_bn")
    assert batch_norm.momentum == 0.97 and not batch_norm.scale
    assert body.get_layer("conv_dw_5").depthwise_regularizer.get_config() == {"l2": 2e-5}
    assert body.get_layer("conv1").padding == "valid"


def test_learns_shapes():
    # Measured for seeds 0/1/2: last/first epoch loss 0.08/0.13/0.06, mAP@0.5 0.72/0.69/0.76
    # (at depth multiplier 0.25: 0.11/0.14/0.12 and 0.83/0.72/0.52, 20% more CPU).
    keras.utils.set_random_seed(0)
    assert_ssd_extractor_learns(
        SSDMobileNetV1FeatureExtractor(depth_multiplier=0.125, slim_layout=True)
    )


def test_ppn_learns_shapes():
    keras.utils.set_random_seed(0)
    assert_ssd_extractor_learns(
        SSDMobileNetV1PPNFeatureExtractor(depth_multiplier=0.125, slim_layout=True)
    )


def test_embedded_learns_shapes():
    # It takes 256x256 images only.
    keras.utils.set_random_seed(0)
    assert_ssd_extractor_learns(
        EmbeddedSSDMobileNetV1FeatureExtractor(depth_multiplier=0.125), image_size=256
    )


def test_ppn_pools_conv2d_11_five_times(tmp_path):
    extractor = SSDMobileNetV1PPNFeatureExtractor(depth_multiplier=0.25, slim_layout=True)
    images = tf.random.uniform([1, 96, 96, 3], -1.0, 1.0, seed=2)
    feature_maps = extractor(images)
    assert _shapes(feature_maps) == [(1, s, s, 128) for s in (6, 3, 2, 1, 1, 1)]
    # Each map is the 2x2 stride-2 "same" max pooling of the previous one.
    for finer, coarser in itertools.pairwise(feature_maps):
        np.testing.assert_array_equal(coarser, tf.nn.max_pool2d(finer, 2, 2, "SAME"))
    assert not any("conv_pw_12" in layer.name for layer in extractor.body.layers)
    assert "num_layers" not in extractor.get_config()
    model = tiny_ssd(extractor)
    assert_keras_round_trip(model, tmp_path)


def test_embedded_takes_256_pixels_and_ends_with_a_2x2_convolution():
    # Its .keras round trip: test_tfod_parity_mobilenet_v1.py (the TF1 reference model).
    extractor = EmbeddedSSDMobileNetV1FeatureExtractor(depth_multiplier=0.125)
    feature_maps = extractor(tf.zeros([1, 256, 256, 3]))
    assert [f.shape[1] for f in feature_maps] == [16, 8, 4, 2, 1]
    last = extractor.extra_layers[-1].get_layer("Conv2d_13_pointwise_2_Conv2d_4_2x2_s2_32_conv")
    assert tuple(last.kernel.shape)[:2] == (2, 2)
    with pytest.raises(ValueError, match="256x256 images only"):
        extractor(tf.zeros([1, 128, 128, 3]))
    with pytest.raises(ValueError, match="pad_to_multiple must be 1"):
        EmbeddedSSDMobileNetV1FeatureExtractor(pad_to_multiple=32)
