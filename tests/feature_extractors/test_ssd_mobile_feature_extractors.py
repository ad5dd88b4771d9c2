import keras
import numpy as np
import pytest
import tensorflow as tf
from extractor_battery import assert_keras_round_trip
from extractor_battery import assert_ssd_extractor_learns
from extractor_battery import tiny_ssd

from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.mobiledet_body import scale_filters
from kdet.feature_extractors.ssd_mobile_feature_extractors import SSDMobileDetCPUFeatureExtractor
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileDetEdgeTPUFeatureExtractor,
)
from kdet.feature_extractors.ssd_mobile_feature_extractors import (
    SSDMobileNetV3LargeFeatureExtractor,
)
from kdet.layers.conv_hyperparams import ConvHyperparams

# Channels of the two body maps at depth multiplier 0.125 and min_depth 8 (the TF OD API's
# layouts at 0.125 and min_depth 16 are checked against its own TF1 models in
# tests/checkpoints/test_tfod_parity_mobile.py).
CHANNELS = {
    "ssd_mobilenet_v3_large": (96, 64),
    "ssd_mobilenet_v3_small": (48, 40),
    "ssd_mobilenet_edgetpu": (64, 24),
    "ssd_mobiledet_cpu": (8, 16),
    "ssd_mobiledet_dsp": (16, 32),
    "ssd_mobiledet_edgetpu": (16, 48),
    "ssd_mobiledet_gpu": (16, 48),
}
TINY = {"depth_multiplier": 0.125, "min_depth": 8}


def test_mobilenet_v3_large_at_320_follows_slim():
    extractor = SSDMobileNetV3LargeFeatureExtractor()
    feature_maps = extractor(extractor.preprocess(tf.zeros([1, 320, 320, 3])))
    assert [tuple(f.shape) for f in feature_maps] == [
        (1, size, size, channels)
        for size, channels in zip((20, 10, 5, 3, 2, 1), (672, 480, 512, 256, 256, 128))
    ]
    body = extractor.body
    # `expanded_conv` (expansion factor 1 of 16 channels) has no expansion; squeeze-excite
    # of `expanded_conv_3` has make_divisible(72 / 4) = 24 channels; hard-swish after layer 7.
    assert body.get_layer("expanded_conv").expand is None
    assert body.get_layer("expanded_conv_3").squeeze_excite.squeeze.filters == 24
    assert body.get_layer("expanded_conv_6").activation == "hard_swish"
    assert body.get_layer("expanded_conv_5").activation == "relu"
    assert body.get_layer("Conv_1").filters == 480


def test_mobiledet_depth_rule_and_min_depth():
    assert [scale_filters(f, 0.5) for f in (8, 16, 72, 144)] == [8, 8, 40, 72]
    extractor = SSDMobileDetCPUFeatureExtractor(depth_multiplier=0.5, min_depth=16)
    feature_maps = extractor(tf.zeros([1, 64, 64, 3]))
    # The body has no min_depth (MobileDet); the extra maps do.
    assert [f.shape[-1] for f in feature_maps] == [40, 72, 256, 128, 128, 64]
    extractor = SSDMobileDetCPUFeatureExtractor(depth_multiplier=0.125, min_depth=16)
    assert [f.shape[-1] for f in extractor(tf.zeros([1, 64, 64, 3]))][2:] == [64, 32, 32, 16]


def test_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="use_explicit_padding"):
        SSDMobileDetCPUFeatureExtractor(use_explicit_padding=True)
    with pytest.raises(ValueError, match="backbone_weights"):
        SSDMobileNetV3LargeFeatureExtractor(backbone_weights="imagenet")


def test_override_base_hyperparams_reaches_the_mobilenet_body():
    hyperparams = ConvHyperparams(
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
        activation="relu6",
        batch_norm={"momentum": 0.97, "epsilon": 1e-2, "scale": True},
    )
    default, override = (
        SSDMobileNetV3LargeFeatureExtractor(
            **TINY, conv_hyperparams=hyperparams,
            override_base_feature_extractor_hyperparams=override,
        )
        for override in (False, True)
    )
    # Without the override the body keeps slim's training_scope settings.
    settings = [
        (conv.batch_norm.momentum, conv.batch_norm.epsilon, conv.conv.kernel_initializer.stddev)
        for conv in (e.body.get_layer("Conv") for e in (default, override))
    ]
    assert settings == [(0.9997, 1e-3, 0.09), (0.97, 1e-2, 0.03)]
    # The blocks keep their own activations (hard-swish here), as slim's.
    assert override.body.get_layer("Conv").activation == "hard_swish"
    # MobileDet's body always has its own (the TF OD API ignores the override there).
    mobiledet = SSDMobileDetCPUFeatureExtractor(
        **TINY, conv_hyperparams=hyperparams, override_base_feature_extractor_hyperparams=True
    )
    assert mobiledet.body.get_layer("Conv").batch_norm.epsilon == 0.01


def test_mobilenet_v3_learns():
    keras.utils.set_random_seed(0)  # the initial weights too
    assert_ssd_extractor_learns(SSDMobileNetV3LargeFeatureExtractor(**TINY), image_size=64)


def test_mobiledet_learns():
    # MobileDet's body has no min_depth: at depth multiplier 0.25 its maps C4 / C5 have 16 / 48
    # channels. Measured: loss 9.1 -> 0.81 over the 5 epochs, mAP@0.5 0.56 (MobileDet-CPU at
    # 0.5: 0.49 with learning rate 1e-2, 0.08-0.4 with 3e-3 depending on the initial weights).
    keras.utils.set_random_seed(0)
    assert_ssd_extractor_learns(
        SSDMobileDetEdgeTPUFeatureExtractor(depth_multiplier=0.25, min_depth=8), image_size=64
    )


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_builds_and_predicts_tiny(name):
    extractor = get_feature_extractor_class(name)(**TINY)
    feature_maps = extractor(extractor.preprocess(tf.zeros([1, 64, 64, 3])))
    assert [tuple(f.shape) for f in feature_maps] == [
        (1, size, size, channels)
        for size, channels in zip((4, 2, 1, 1, 1, 1), (*CHANNELS[name], 64, 32, 32, 16))
    ]
    assert all(np.all(np.isfinite(f)) for f in feature_maps)


# One per body family (the blocks and the extractor class are shared; a .keras round trip
# costs 10-20 s here).
@pytest.mark.parametrize("name", ["ssd_mobilenet_v3_small", "ssd_mobiledet_gpu"])
def test_keras_round_trip(name, tmp_path):
    model = tiny_ssd(get_feature_extractor_class(name)(**TINY), image_size=64)
    loaded = assert_keras_round_trip(model, tmp_path, image_size=64)
    assert loaded.feature_extractor.get_config() == model.feature_extractor.get_config()
