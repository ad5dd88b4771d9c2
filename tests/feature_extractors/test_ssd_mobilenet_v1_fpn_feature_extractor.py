"""What is the MobileNetV1 FPN extractor's own; what all SSD FPN extractors share is tested in
`test_ssd_fpn_feature_extractor.py`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet.datasets
from kdet.feature_extractors import SSDMobileNetV1FPNFeatureExtractor
from kdet.feature_extractors.mobilenet_v1_body import FILTER_RULES
from kdet.feature_extractors.mobilenet_v1_body import mobilenet_v1_filters
from kdet.layers import FixedShapeResizer
from kdet.layers import FusedBatchNormalization
from kdet.layers import MultiscaleGridAnchorGenerator
from kdet.losses import SigmoidFocalClassificationLoss
from kdet.models.ssd import SSD
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor

IMAGE_SIZE = 128


def _kernels(model):
    return [w for w in model.weights if w.name == "kernel"]


def _batch_norms(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, FusedBatchNormalization)
    ]


def test_default_body_maps_and_plain_pyramid():
    extractor = SSDMobileNetV1FPNFeatureExtractor()
    # TF OD API Conv2d_5, 11 and 13_pointwise, the plain (not separable) pyramid.
    assert [o.shape[-1] for o in extractor.body.outputs] == [256, 512, 1024]
    assert not extractor.feature_pyramid.use_depthwise
    assert extractor.feature_pyramid.depth == 256


def test_level_2_reads_conv_pw_3():
    extractor = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, fpn_min_level=2, fpn_max_level=6, additional_layer_depth=32
    )
    assert extractor.body.output_names[0] == "conv_pw_3_relu"
    # The TF OD API's depths: max(int(int(filters * 0.25) * 0.25), 16).
    assert [o.shape[-1] for o in extractor.body.outputs] == [16, 16, 32, 64]
    assert extractor.feature_pyramid.depth == 16  # max(32 * 0.25, min_depth)


def test_depth_multiplier_scales_body_and_pyramid_bounded_by_min_depth():
    quarter = SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.25, fpn_max_level=5)
    # The TF OD API's Keras body scales Keras's MobileNet(alpha=0.25) by 0.25 again and
    # bounds it by min_depth (its TF2 checkpoints have these shapes).
    assert [o.shape[-1] for o in quarter.body.outputs] == [16, 32, 64]
    assert quarter.body.get_layer("conv1").filters == 16  # int(int(32 * 0.25) * 0.25) = 2
    assert quarter.body.get_layer("conv_pw_1").filters == 16
    assert quarter.feature_pyramid.depth == 64  # max(256 * 0.25, 16)
    bounded = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, min_depth=96, fpn_max_level=5
    )
    assert bounded.feature_pyramid.depth == 96
    assert [o.shape[-1] for o in bounded.body.outputs] == [96, 96, 96]
    full = SSDMobileNetV1FPNFeatureExtractor(fpn_max_level=5)
    assert [o.shape[-1] for o in full.body.outputs] == [256, 512, 1024]  # Keras's


def test_extractors_saved_before_the_tf_od_api_depths_keep_keras_depths():
    # A config without tf_od_api_body_depths (saved before 2026-12) builds Keras's depths:
    # the multiplier once, no min_depth in the body.
    config = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, fpn_max_level=5, use_depthwise=True
    ).get_config()
    assert config.pop("tf_od_api_body_depths") is True
    earlier = SSDMobileNetV1FPNFeatureExtractor.from_config(config)
    assert not earlier.tf_od_api_body_depths
    assert [o.shape[-1] for o in earlier.body.outputs] == [64, 128, 64]
    assert earlier.body.get_layer("conv1").filters == 8
    assert earlier.body.get_layer("conv_pw_12").filters == 128
    rebuilt = SSDMobileNetV1FPNFeatureExtractor.from_config(earlier.get_config())
    assert [o.shape[-1] for o in rebuilt.body.outputs] == [64, 128, 64]


def test_mobilenet_v1_filters_rules():
    conv_defs = {"conv_pw_13": 256}
    keras_rule = mobilenet_v1_filters(0.25, conv_defs, 16, rule="keras")
    tf2 = mobilenet_v1_filters(0.25, conv_defs, 16, rule="tf_od_api_tf2")
    tf1 = mobilenet_v1_filters(0.25, conv_defs, 16, rule="tf_od_api_tf1")
    assert [keras_rule[n] for n in ("conv1", "conv_pw_11", "conv_pw_13")] == [8, 128, 64]
    assert [tf2[n] for n in ("conv1", "conv_pw_11", "conv_pw_13")] == [16, 32, 64]
    assert [tf1[n] for n in ("conv1", "conv_pw_11", "conv_pw_13")] == [16, 128, 64]
    full = {rule: mobilenet_v1_filters(1.0, None, 16, rule) for rule in FILTER_RULES}
    assert full["keras"] == full["tf_od_api_tf1"] == full["tf_od_api_tf2"]
    with pytest.raises(ValueError, match="rule must be one of"):
        mobilenet_v1_filters(0.5, rule="slim")


def test_imagenet_weights_need_keras_depths():
    with pytest.raises(ValueError, match="tf_od_api_body_depths=False"):
        SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.5, backbone_weights="imagenet")


def test_use_depthwise_narrows_the_last_blocks_and_separates_the_pyramid():
    extractor = SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.5, use_depthwise=True)
    # TF OD API `_create_modified_mobilenet_config`: 512 and 256 filters, times 0.5 (once:
    # the TF OD API's conv_defs replace the filters Keras's MobileNet has already scaled).
    assert extractor.body.get_layer("conv_pw_12").filters == 256
    assert extractor.body.get_layer("conv_pw_13").filters == 128
    assert extractor.body.get_layer("conv_dw_13").kernel.shape == (3, 3, 256, 1)
    assert [o.shape[-1] for o in extractor.body.outputs] == [64, 128, 128]
    assert extractor.feature_pyramid.use_depthwise
    assert [f.shape[1:] for f in extractor(tf.zeros([1, 64, 64, 3]))] == [
        (8, 8, 128), (4, 4, 128), (2, 2, 128), (1, 1, 128), (1, 1, 128),
    ]


def _corner_windows(stem, conv):
    """Image pixels (x 3 channels) under the first and last 3x3 window of a stride-2 `conv`
    on a 6x6 image: all-ones kernel and image, so each output sums the unpadded pixels."""
    conv.kernel.assign(tf.ones_like(conv.kernel))
    outputs = stem(tf.ones([1, 6, 6, 3]))
    return float(outputs[0, 0, 0, 0]), float(outputs[0, -1, -1, 0])


def test_explicit_padding_pads_both_sides_of_the_stride_2_convolutions():
    extractor = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, use_explicit_padding=True
    )
    padding = extractor.body.get_layer("conv1_pad")
    assert padding.padding == ((1, 1), (1, 1))
    body = extractor.body.get_layer("MobilenetV1")
    conv1 = body.get_layer("conv1")
    assert conv1.padding == "valid"
    for block in (2, 4, 6, 12):
        assert body.get_layer(f"conv_pad_{block}").padding == ((1, 1), (1, 1))
        assert body.get_layer(f"conv_dw_{block}").padding == "valid"
    assert extractor.feature_pyramid.use_explicit_padding
    # Same map sizes as "same" padding, odd input sizes included.
    assert [f.shape[1] for f in extractor(tf.zeros([1, 100, 100, 3]))] == [13, 7, 4, 2, 1]
    # TF OD API fixed_padding: one pixel on every side, so the first window has 2x2 image
    # pixels and the last 3x3; TF "SAME" pads the bottom and right only on even sizes.
    assert _corner_windows(lambda images: conv1(padding(images)), conv1) == (12.0, 27.0)
    same = SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.25).body.get_layer("conv1")
    assert _corner_windows(same, same) == (27.0, 12.0)


def test_body_settings_follow_override_base_feature_extractor_hyperparams():
    default = SSDMobileNetV1FPNFeatureExtractor(depth_multiplier=0.25, fpn_max_level=5)
    override = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, fpn_max_level=5, override_base_feature_extractor_hyperparams=True
    )
    # The TF OD API MobileNetV1's own batch norm decay, or conv_hyperparams' (the pyramid's).
    assert {layer.momentum for layer in _batch_norms(default.body)} == {0.9997}
    assert {layer.momentum for layer in _batch_norms(override.body)} == {0.997}
    # Kernels drawn from TruncatedNormal(0.09) (std ~0.08), or RandomNormal(0.01).
    default_std = np.std(default.body.get_layer("conv_pw_11").kernel.numpy())
    override_std = np.std(override.body.get_layer("conv_pw_11").kernel.numpy())
    assert 0.07 < default_std < 0.09
    assert 0.009 < override_std < 0.011
    first, second = (override.body.get_layer(f"conv_pw_{i}").kernel.numpy() for i in (8, 9))
    assert not np.allclose(first, second)  # each layer its own draw


def test_body_depthwise_kernels_are_regularized_without_regularize_depthwise():
    extractor = SSDMobileNetV1FPNFeatureExtractor(
        depth_multiplier=0.25, fpn_max_level=6, kernel_regularizer=keras.regularizers.L2(2e-5)
    )
    extractor.build((None, 64, 64, 3))
    regularized = [w for w in extractor.trainable_weights if w.regularizer is not None]
    # Body convolutions and depthwise convolutions (as the TF OD API's body), projections,
    # smoothing and P6.
    assert regularized == _kernels(extractor)
    assert len(regularized) == 27 + 3 + 2 + 1
    assert extractor.body.get_layer("conv_dw_3").kernel.regularizer.get_config() == {"l2": 2e-5}


def test_a_retinanet_style_ssd_trains_a_step_without_nan():
    keras.utils.set_random_seed(0)
    anchor_generator = MultiscaleGridAnchorGenerator(
        min_level=3, max_level=7, aspect_ratios=(1.0, 2.0, 0.5), scales_per_octave=2
    )
    model = SSD(
        num_classes=3,
        feature_extractor=SSDMobileNetV1FPNFeatureExtractor(
            depth_multiplier=0.25,
            additional_layer_depth=64,
            override_base_feature_extractor_hyperparams=True,
            kernel_regularizer=keras.regularizers.L2(2e-5),
        ),
        image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=anchor_generator,
        box_predictor=WeightSharedConvolutionalBoxPredictor(
            num_classes=3,
            num_anchors_per_location=anchor_generator.num_anchors_per_location(),
            depth=16,
            num_layers_before_predictor=2,
            class_prediction_bias_init=-4.6,
        ),
        classification_loss=SigmoidFocalClassificationLoss(gamma=2.0, alpha=0.25),
        normalize_loc_loss_by_codesize=True,
        encode_background_as_zeros=True,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images, y = kdet.datasets.shapes(4, IMAGE_SIZE, seed=0, max_boxes=3)
    history = model.fit(images, y, batch_size=4, epochs=2, verbose=0).history
    for name in ("loss", "classification_loss", "localization_loss", "regularization_loss"):
        assert np.all(np.isfinite(history[name])), name
    assert history["localization_loss"][0] > 0.0
    predictions = model.predict_on_batch(images[:1])
    assert predictions["boxes"].shape == (1, 100, 4)
    assert np.all(np.isfinite(predictions["confidences"]))
