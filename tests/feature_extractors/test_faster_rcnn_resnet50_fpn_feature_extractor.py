import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from extractor_battery import assert_keras_round_trip
from extractor_battery import tiny_faster_rcnn

from kdet.configs.field_reader import Node
from kdet.configs.model_builder.feature_extractor import FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA
from kdet.configs.model_builder.feature_extractor import (
    build_feature_extractor as build_from_config,
)
from kdet.configs.text_format import parse
from kdet.feature_extractors import FasterRCNNFeatureExtractor
from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet50FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet101FPNFeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet50_fpn_feature_extractor import (
    FasterRCNNResNet152FPNFeatureExtractor,
)


@pytest.fixture(scope="module")
def extractor():
    return build_feature_extractor("faster_rcnn_resnet50_fpn")


def test_tf_od_api_defaults_levels_2_to_6_of_depth_256(extractor):
    assert type(extractor) is FasterRCNNResNet50FPNFeatureExtractor
    assert extractor.is_fpn
    assert (extractor.fpn_min_level, extractor.fpn_max_level) == (2, 6)
    assert extractor.additional_layer_depth == 256
    feature_maps = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([2, 64, 64, 3]))
    )
    assert [tuple(f.shape) for f in feature_maps] == [
        (2, 16, 16, 256), (2, 8, 8, 256), (2, 4, 4, 256), (2, 2, 2, 256), (2, 1, 1, 256),
    ]
    # C2..C5 feed a plain (not separable) pyramid; P6 is one stride-2 layer on P5.
    assert [o.shape[-1] for o in extractor.body.outputs] == [256, 512, 1024, 2048]
    assert not extractor.feature_pyramid.use_depthwise
    assert len(extractor.feature_pyramid.extra_blocks) == 1


def test_box_classifier_is_two_relu_fc_layers_of_1024_with_a_batch_norm_between(extractor):
    # The TF OD API's: dense, its conv_hyperparams' batch norm (inference mode), dense.
    crops = tf.random.normal([3, 7, 7, 256], seed=1)
    fc1, batch_norm, fc2 = extractor.box_classifier.layers[1:]
    rng = np.random.default_rng(0)
    for variable in batch_norm.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    box_features = extractor.extract_box_classifier_features(crops, training=True)
    assert tuple(box_features.shape) == (3, 1024)
    assert tuple(fc1.kernel.shape) == (7 * 7 * 256, 1024)
    assert tuple(fc2.kernel.shape) == (1024, 1024)
    expected = np.maximum(np.reshape(crops, [3, -1]) @ fc1.kernel + fc1.bias, 0.0)
    expected = (expected - batch_norm.moving_mean) / np.sqrt(
        batch_norm.moving_variance + batch_norm.epsilon
    ) * batch_norm.gamma + batch_norm.beta
    expected = np.maximum(expected @ fc2.kernel + fc2.bias, 0.0)
    np.testing.assert_allclose(box_features, expected, rtol=1e-4, atol=1e-4)


def test_box_classifier_width_and_extractors_saved_before_without_batch_norm():
    extractor = FasterRCNNResNet50FPNFeatureExtractor(
        additional_layer_depth=16, depth_multiplier=0.0625, box_classifier_units=32
    )
    config = extractor.get_config()
    assert config["box_classifier_units"] == 32 and config["box_classifier_batch_norm"]
    restored = FasterRCNNResNet50FPNFeatureExtractor.from_config(config)
    assert [layer.name for layer in restored.box_classifier.layers] == [
        layer.name for layer in extractor.box_classifier.layers
    ]
    assert restored.extract_box_classifier_features(tf.zeros([2, 7, 7, 16])).shape == (2, 32)
    # A config written before the field: the two dense layers only.
    del config["box_classifier_batch_norm"], config["box_classifier_units"]
    older = FasterRCNNResNet50FPNFeatureExtractor.from_config(config)
    assert [type(layer).__name__ for layer in older.box_classifier.layers] == [
        "Flatten", "Dense", "Dense"
    ]
    assert older.box_classifier.layers[-1].units == 1024


@pytest.mark.parametrize("tf_od_api_body", [False, True])
def test_restore_from_resnet50_loads_the_body_only(tf_od_api_body):
    extractor = FasterRCNNResNet50FPNFeatureExtractor(tf_od_api_body=tf_od_api_body)
    reference = keras.applications.ResNet50(
        input_shape=(None, None, 3), include_top=False, weights=None
    )
    rng = np.random.default_rng(0)
    for variable in reference.weights:
        variable.assign(variable + rng.normal(0.0, 0.01, variable.shape).astype("float32"))
    restored = extractor.restore_from_classification_checkpoint(reference)
    assert restored == sorted(layer.name for layer in reference.layers if layer.weights)
    images = tf.random.uniform([1, 64, 64, 3], -100.0, 100.0, seed=2)
    endpoints = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")
    got = extractor.body(images)
    if tf_od_api_body:
        # Its first max-pool pads otherwise: compare up to it (epsilon 1e-5 vs 1.001e-5).
        endpoints = ("conv1_relu",)
        body = extractor.body
        got = [keras.Model(body.input, body.get_layer("conv1_relu").output)(images)]
    expected = [
        keras.Model(reference.input, reference.get_layer(name).output)(images)
        for name in endpoints
    ]
    for ours, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-3)


def test_the_tf_od_api_body_and_extractors_saved_before(extractor):
    body = extractor.body
    assert not body.get_layer("conv1_conv").use_bias
    assert body.get_layer("pool1_pool").padding == "same"
    # The TF OD API's default weight decay of its ResNet bodies (no override here).
    assert body.get_layer("conv1_conv").kernel_regularizer.get_config() == pytest.approx(
        {"l2": 1e-4}
    )
    config = extractor.get_config()
    del config["tf_od_api_body"]
    older = FasterRCNNResNet50FPNFeatureExtractor.from_config(config)
    assert older.body.get_layer("conv1_conv").use_bias
    narrow = FasterRCNNResNet50FPNFeatureExtractor(depth_multiplier=0.25)
    assert [o.shape[-1] for o in narrow.body.outputs] == [64, 128, 256, 512]


def test_config_round_trip_and_stride_check():
    custom = FasterRCNNResNet50FPNFeatureExtractor(
        fpn_min_level=3, fpn_max_level=5, additional_layer_depth=32,
        batch_norm_trainable=True, first_stage_features_stride=8,
        kernel_regularizer=keras.regularizers.L1(1e-4),
    )
    assert [tuple(f.shape[1:]) for f in custom(tf.zeros([1, 64, 64, 3]))] == [
        (8, 8, 32), (4, 4, 32), (2, 2, 32),
    ]
    config = custom.get_config()
    restored = FasterRCNNResNet50FPNFeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.feature_pyramid.kernel_regularizer.get_config() == pytest.approx({"l1": 1e-4})
    with pytest.raises(ValueError, match="must be 8 or 16"):
        FasterRCNNResNet50FPNFeatureExtractor(first_stage_features_stride=32)


def _assert_resnet_stages(body, blocks, endpoints):
    """`body` has `blocks` bottleneck blocks in its stages 2..5 and reads C2..C5 at
    `endpoints` (the TF OD API's `_RESNET_MODEL_OUTPUT_LAYERS` of its depth)."""
    counts = [
        len([layer for layer in body.layers
             if layer.name.startswith(f"conv{stage}_block") and layer.name.endswith("_out")])
        for stage in (2, 3, 4, 5)
    ]
    assert counts == list(blocks)
    for output, name in zip(body.outputs, endpoints, strict=True):
        assert output is body.get_layer(name).output, name


def test_resnet152_fpn_of_a_tf2_config_has_its_blocks_and_levels():
    # The TF OD API's `faster_rcnn_resnet152_fpn_keras`: no depth multiplier in the Faster
    # R-CNN message, so the body has its full width (built, not run on an image).
    text = """type: 'faster_rcnn_resnet152_fpn_keras'
      batch_norm_trainable: true
      fpn { min_level: 2 max_level: 6 additional_layer_depth: 16 }"""
    node = Node(parse(text, "fe.config"), "model.faster_rcnn.feature_extractor")
    extractor = build_from_config(
        node, FasterRCNNFeatureExtractor, FASTER_RCNN_FEATURE_EXTRACTOR_SCHEMA
    )
    assert type(extractor) is FasterRCNNResNet152FPNFeatureExtractor and extractor.depth == 152
    assert extractor.batch_norm_trainable
    assert (extractor.fpn_min_level, extractor.fpn_max_level) == (2, 6)
    assert extractor.additional_layer_depth == 16
    _assert_resnet_stages(
        extractor.body,
        (3, 8, 36, 3),
        ("conv2_block3_out", "conv3_block8_out", "conv4_block36_out", "conv5_block3_out"),
    )
    assert [output.shape[-1] for output in extractor.body.outputs] == [256, 512, 1024, 2048]
    assert not extractor.body.get_layer("conv1_conv").use_bias  # the TF OD API body


def test_tiny_resnet101_fpn_faster_rcnn_round_trips_through_keras_files(tmp_path):
    # The TF2 name `faster_rcnn_resnet101_fpn_keras` finds it as the 152 one above.
    assert get_feature_extractor_class("faster_rcnn_resnet101_fpn") is (
        FasterRCNNResNet101FPNFeatureExtractor
    )
    extractor = FasterRCNNResNet101FPNFeatureExtractor(
        depth_multiplier=0.0625, additional_layer_depth=16, box_classifier_units=16
    )
    endpoints = ("conv2_block3_out", "conv3_block4_out", "conv4_block23_out", "conv5_block3_out")
    _assert_resnet_stages(extractor.body, (3, 4, 23, 3), endpoints)
    assert [output.shape[-1] for output in extractor.body.outputs] == [16, 32, 64, 128]
    loaded = assert_keras_round_trip(tiny_faster_rcnn(extractor), tmp_path, image_size=64)
    assert loaded.feature_extractor.get_config() == extractor.get_config()
    _assert_resnet_stages(loaded.feature_extractor.body, (3, 4, 23, 3), endpoints)
