import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v2_fpn_feature_extractor import (
    SSDMobileNetV2FPNFeatureExtractor,
)
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.models.ssd.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor,
)


@pytest.fixture(scope="module")
def fpnlite():
    return SSDMobileNetV2FPNFeatureExtractor()


def test_registered_name_builds_the_class():
    extractor = build_feature_extractor("ssd_mobilenet_v2_fpn", fpn_max_level=5)
    assert isinstance(extractor, SSDMobileNetV2FPNFeatureExtractor)


def test_preprocess_maps_pixels_to_minus_one_one(fpnlite):
    images = tf.constant([0.0, 127.5, 255.0], shape=(1, 1, 3, 1))
    np.testing.assert_allclose(fpnlite.preprocess(images)[0, 0, :, 0], [-1.0, 0.0, 1.0])


def test_fpnlite_levels_3_to_7_at_128_px(fpnlite):
    feature_maps = fpnlite(fpnlite.preprocess(tf.zeros([2, 128, 128, 3])))
    assert [tuple(f.shape) for f in feature_maps] == [
        (2, 16, 16, 128), (2, 8, 8, 128), (2, 4, 4, 128), (2, 2, 2, 128), (2, 1, 1, 128),
    ]
    # TF OD API layer_7, layer_14 and layer_19 with FPNLite's 256-filter Conv_1.
    assert [o.shape[-1] for o in fpnlite.body.outputs] == [32, 96, 256]
    assert fpnlite.body.get_layer("Conv_1").filters == 256
    assert fpnlite.feature_pyramid.use_depthwise


def test_odd_input_size(fpnlite):
    feature_maps = fpnlite(tf.zeros([1, 100, 100, 3]))
    assert [f.shape[1] for f in feature_maps] == [13, 7, 4, 2, 1]


def test_plain_fpn_keeps_the_1280_filter_conv_1_and_scales_with_depth_multiplier():
    plain = SSDMobileNetV2FPNFeatureExtractor(
        use_depthwise=False, additional_layer_depth=256, fpn_min_level=2, fpn_max_level=5
    )
    assert plain.body.get_layer("Conv_1").filters == 1280
    assert [f.shape[1:] for f in plain(tf.zeros([1, 64, 64, 3]))] == [
        (16, 16, 256), (8, 8, 256), (4, 4, 256), (2, 2, 256),
    ]
    # TF OD API: Conv_1 shrinks with a depth multiplier below 1 (Keras keeps 1280), and the
    # pyramid depth is max(128 * 0.5, min_depth).
    half = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.5, fpn_max_level=5)
    assert half.body.get_layer("Conv_1").filters == 128
    assert half.feature_pyramid.depth == 64
    narrow = SSDMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35, min_depth=48, fpn_min_level=5, fpn_max_level=5
    )
    assert narrow.feature_pyramid.depth == 48


def test_rejects_levels_without_a_backbone_map():
    with pytest.raises(ValueError, match="fpn_min_level must be one of"):
        SSDMobileNetV2FPNFeatureExtractor(fpn_min_level=1)


def test_config_round_trip(fpnlite):
    restored = SSDMobileNetV2FPNFeatureExtractor.from_config(fpnlite.get_config())
    assert restored.get_config() == fpnlite.get_config()
    assert fpnlite.get_config()["additional_layer_depth"] == 128


def test_anchor_count_matches_a_weight_shared_predictor(fpnlite):
    anchor_generator = MultiscaleGridAnchorGenerator(
        min_level=3, max_level=7, scales_per_octave=2, aspect_ratios=(1.0, 2.0, 0.5)
    )
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=2,
        num_anchors_per_location=anchor_generator.num_anchors_per_location(),
        depth=16,
        use_depthwise=True,
        share_prediction_tower=True,
    )
    feature_maps = fpnlite(tf.zeros([1, 128, 128, 3]))
    box_encodings, class_logits = predictor(feature_maps)
    anchors = anchor_generator.generate(
        [tuple(f.shape[1:3]) for f in feature_maps], image_height=128, image_width=128
    )
    assert box_encodings.shape[1] == class_logits.shape[1] == sum(a.shape[0] for a in anchors)
    assert box_encodings.shape[1] == 6 * (256 + 64 + 16 + 4 + 1)


def test_gradients_reach_body_and_pyramid():
    extractor = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.35, fpn_max_level=6)
    images = extractor.preprocess(tf.random.uniform([1, 64, 64, 3], maxval=255.0))
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(f) for f in extractor(images, training=True))
    weights = extractor.trainable_weights
    gradients = tape.gradient(loss, weights)
    missing = [w.path for w, g in zip(weights, gradients) if g is None]
    assert not missing
    assert any("feature_pyramid" in w.path for w in weights)


def test_saved_model_round_trip(tmp_path):
    extractor = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.35, fpn_max_level=6)
    images = keras.Input((64, 64, 3))
    model = keras.Model(images, extractor(images))
    path = str(tmp_path / "extractor.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    batch = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0)
    for a, b in zip(model(batch), loaded(batch)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_kernel_regularizer_reaches_body_conv_1_and_pyramid_and_round_trips():
    extractor = SSDMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35,
        fpn_max_level=6,
        kernel_regularizer=keras.regularizers.L2(2e-5),
        regularize_depthwise=True,
        name="fpnlite",
    )
    extractor.build((None, 64, 64, 3))
    pyramid = extractor.feature_pyramid
    assert pyramid.kernel_regularizer.get_config() == {"l2": 2e-5}
    assert pyramid.regularize_depthwise
    # The narrower TF OD API Conv_1, rebuilt outside the cloned Keras body, is regularized too.
    assert extractor.body.get_layer("Conv_1").kernel.regularizer.get_config() == {"l2": 2e-5}
    # With regularize_depthwise, every kernel (plain, depthwise and pointwise) and nothing else.
    regularized = [w for w in extractor.trainable_weights if w.regularizer is not None]
    assert regularized == [w for w in extractor.trainable_weights if "kernel" in w.name]
    config = extractor.get_config()
    restored = SSDMobileNetV2FPNFeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-5}
