"""What is the MobileNetV2 FPN (FPNLite) extractor's own; what all SSD FPN extractors share is
tested in `test_ssd_fpn_feature_extractor.py`."""

import keras
import pytest
import tensorflow as tf

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


def test_fpnlite_defaults(fpnlite):
    # TF OD API layer_7, layer_14 and layer_19: its FPNLite keeps the 1280-filter Conv_1
    # (the configs' conv_defs of 256 are never applied; its checkpoints have 1280).
    assert [o.shape[-1] for o in fpnlite.body.outputs] == [32, 96, 1280]
    assert fpnlite.body.get_layer("Conv_1").filters == 1280
    # The FPNLite configs' separable pyramid of 128 channels.
    assert fpnlite.feature_pyramid.use_depthwise
    assert fpnlite.feature_pyramid.depth == 128


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
    assert half.body.get_layer("Conv_1").filters == 640
    assert half.feature_pyramid.depth == 64
    narrow = SSDMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35, min_depth=48, fpn_min_level=5, fpn_max_level=5
    )
    assert narrow.feature_pyramid.depth == 48


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


def test_kernel_regularizer_reaches_the_rebuilt_conv_1():
    extractor = SSDMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.35, fpn_max_level=6, kernel_regularizer=keras.regularizers.L2(2e-5)
    )
    # The narrower TF OD API Conv_1 (1280 * 0.35 = 448 filters; Keras keeps 1280) is
    # regularized too.
    assert extractor.body.get_layer("Conv_1").filters == 448
    assert extractor.body.get_layer("Conv_1").kernel.regularizer.get_config() == {"l2": 2e-5}


def test_extractors_saved_before_the_tf_od_api_depths_keep_theirs():
    # A config without tf_od_api_body_depths (saved before 2026-12) builds kdet's earlier
    # body: FPNLite's Conv_1 of 256 × the depth multiplier, no min_depth in the body.
    config = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.25, fpn_max_level=5).get_config()
    assert config.pop("tf_od_api_body_depths") is True
    earlier = SSDMobileNetV2FPNFeatureExtractor.from_config(config)
    assert earlier.body.get_layer("Conv_1").filters == 64
    assert earlier.body.get_layer("Conv1").filters == 8
    current = SSDMobileNetV2FPNFeatureExtractor.from_config(
        {**config, "tf_od_api_body_depths": True}
    )
    assert current.body.get_layer("Conv_1").filters == 320
    assert current.body.get_layer("Conv1").filters == 16


def test_slim_layout_applies_the_tf1_fpnlite_conv_1():
    # TF1 FPNLite (`ssd_mobilenet_v2_fpn`): the conv_defs' Conv_1 of 256 x 0.75; TF2 (Keras)
    # keeps MobileNetV2's 1280 x 0.75.
    tf1 = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.75, fpn_max_level=5, slim_layout=True)
    tf2 = SSDMobileNetV2FPNFeatureExtractor(depth_multiplier=0.75, fpn_max_level=5)
    assert tf1.body.get_layer("Conv_1").filters == 192
    assert tf2.body.get_layer("Conv_1").filters == 960
    assert tf1.get_config()["slim_layout"] and not tf2.get_config()["slim_layout"]
    # ... and the TF1 top-down pathway (the sum carried down, not the smoothed map).
    assert tf1.feature_pyramid.slim_layout and not tf2.feature_pyramid.slim_layout
    restored = SSDMobileNetV2FPNFeatureExtractor.from_config(tf1.get_config())
    assert restored.feature_pyramid.slim_layout
    plain = SSDMobileNetV2FPNFeatureExtractor(
        depth_multiplier=0.75, fpn_max_level=5, use_depthwise=False, slim_layout=True
    )
    assert plain.body.get_layer("Conv_1").filters == 960
