import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet50FeatureExtractor,
)
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet101FeatureExtractor,
)
from kdet.layers import FusedBatchNormalization


@pytest.fixture(scope="module")
def resnet50():
    return build_feature_extractor("faster_rcnn_resnet50")


@pytest.fixture(scope="module")
def reference():
    """A keras.applications ResNet50 with weights of its own, BN statistics included."""
    model = keras.applications.ResNet50(
        input_shape=(None, None, 3), include_top=False, weights=None
    )
    rng = np.random.default_rng(0)
    for variable in model.weights:
        variable.assign(variable + rng.normal(0.0, 0.01, variable.shape).astype("float32"))
    return model


def test_registered_names_build_the_classes(resnet50):
    assert type(resnet50) is FasterRCNNResNet50FeatureExtractor
    assert not resnet50.is_fpn
    assert resnet50.first_stage_features_stride == 16
    batch_norms = [
        layer
        for body in (resnet50.proposal_body, resnet50.box_classifier_body)
        for layer in body.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batch_norms) == 53
    assert all(type(layer) is FusedBatchNormalization for layer in batch_norms)


def test_preprocess_subtracts_rgb_channel_means(resnet50):
    images = tf.constant([[[[123.68, 116.779, 103.939], [0.0, 0.0, 255.0]]]])
    np.testing.assert_allclose(
        resnet50.preprocess(images)[0, 0],
        [[0.0, 0.0, 0.0], [-123.68, -116.779, 151.061]],
        atol=1e-4,
    )
    assert resnet50.preprocess(tf.zeros([1, 2, 2, 3], tf.uint8)).dtype == tf.float32


def test_stage_4_proposal_features_and_stage_5_on_crops(resnet50):
    features = resnet50.extract_proposal_features(tf.zeros([2, 64, 96, 3]))
    assert tuple(features.shape) == (2, 4, 6, 1024)
    box_features = resnet50.extract_box_classifier_features(tf.zeros([5, 7, 7, 1024]))
    assert tuple(box_features.shape) == (5, 4, 4, 2048)
    assert resnet50.proposal_body.layers[-1].name == "conv4_block6_out"
    assert resnet50.box_classifier_body.layers[1].name == "conv5_block1_1_conv"
    assert resnet50.box_classifier_body.layers[-1].name == "conv5_block3_out"
    # Every layer of the body sits in exactly one of the two stages.
    first = {layer.name for layer in resnet50.proposal_body.layers if layer.weights}
    second = {layer.name for layer in resnet50.box_classifier_body.layers if layer.weights}
    assert not first & second
    assert all(name.startswith("conv5_") for name in second)


def test_restore_from_classification_model_loads_both_stages(reference):
    # The keras.applications body (extractors saved before 2026-12) is the classification
    # model's, layer for layer.
    extractor = FasterRCNNResNet50FeatureExtractor(tf_od_api_body=False)
    images = extractor.preprocess(tf.random.uniform([1, 64, 64, 3], maxval=255.0, seed=1))
    conv4, conv5 = keras.Model(
        reference.input,
        [reference.get_layer(name).output for name in ("conv4_block6_out", "conv5_block3_out")],
    )(images)
    assert not np.allclose(extractor.extract_proposal_features(images), conv4)

    restored = extractor.restore_from_classification_checkpoint(reference)

    assert restored == sorted(layer.name for layer in reference.layers if layer.weights)
    assert len(restored) == 106
    features = extractor.extract_proposal_features(images)
    np.testing.assert_allclose(features, conv4, rtol=1e-4, atol=1e-4)
    # Stage 5 on the whole stage-4 map (one "crop" per image) is the full model's stage 5.
    np.testing.assert_allclose(
        extractor.extract_box_classifier_features(features), conv5, rtol=1e-4, atol=1e-4
    )


def test_restore_into_the_tf_od_api_body_folds_the_conv_biases(resnet50, reference):
    images = resnet50.preprocess(tf.random.uniform([1, 64, 64, 3], maxval=255.0, seed=1))
    names = ("conv1_relu", "conv4_block6_out", "conv5_block3_out")
    conv1, conv4, conv5 = keras.Model(
        reference.input, [reference.get_layer(name).output for name in names]
    )(images)

    restored = resnet50.restore_from_classification_checkpoint(reference)

    assert restored == sorted(layer.name for layer in reference.layers if layer.weights)
    body = resnet50.proposal_body
    ours = keras.Model(body.input, body.get_layer("conv1_relu").output)(images)
    # The same function up to the batch norms' epsilon (1e-5 here, 1.001e-5 in Keras).
    np.testing.assert_allclose(ours, conv1, rtol=1e-3, atol=1e-3)
    # No max-pool in stage 5: the whole stage is the classification model's.
    np.testing.assert_allclose(
        resnet50.extract_box_classifier_features(conv4), conv5, rtol=1e-3, atol=1e-3
    )


def test_the_tf_od_api_body_layout():
    extractor = FasterRCNNResNet50FeatureExtractor(depth_multiplier=0.25)
    body = extractor.proposal_body
    convs = [layer for layer in body.layers if isinstance(layer, keras.layers.Conv2D)]
    assert not any(conv.use_bias for conv in convs)
    # max(int(filters * 0.25), 8): 64 → 16, 256 → 64, the stage-4 output 1024 → 256.
    assert body.get_layer("conv1_conv").filters == 16
    assert body.get_layer("conv2_block1_3_conv").filters == 64
    assert tuple(extractor.extract_proposal_features(tf.zeros([1, 64, 64, 3])).shape) == (
        1, 4, 4, 256
    )
    assert body.get_layer("pool1_pool").padding == "same"
    assert body.get_layer("conv1_bn").epsilon == 1e-5
    assert body.get_layer("conv1_bn").momentum == 0.997
    with pytest.raises(ValueError, match="depth multiplier 1"):
        FasterRCNNResNet50FeatureExtractor(depth_multiplier=0.25, backbone_weights="imagenet")
    with pytest.raises(ValueError, match="tf_od_api_body=True"):
        FasterRCNNResNet50FeatureExtractor(depth_multiplier=0.25, tf_od_api_body=False)


def test_extractors_saved_before_keep_the_keras_applications_body(resnet50):
    config = resnet50.get_config()
    assert config["tf_od_api_body"] and config["depth_multiplier"] == 1.0
    del config["tf_od_api_body"], config["depth_multiplier"], config["min_depth"]
    older = FasterRCNNResNet50FeatureExtractor.from_config(config)
    assert not older.tf_od_api_body
    assert older.proposal_body.get_layer("conv1_conv").use_bias
    assert older.proposal_body.get_layer("pool1_pool").padding == "valid"


def test_resnet101_cuts_after_conv4_block23():
    extractor = build_feature_extractor("faster_rcnn_resnet101")
    assert type(extractor) is FasterRCNNResNet101FeatureExtractor
    features = extractor.extract_proposal_features(tf.zeros([1, 64, 64, 3]))
    assert tuple(features.shape) == (1, 4, 4, 1024)
    assert extractor.proposal_body.layers[-1].name == "conv4_block23_out"
    box_features = extractor.extract_box_classifier_features(tf.zeros([2, 7, 7, 1024]))
    assert tuple(box_features.shape) == (2, 4, 4, 2048)


def test_config_round_trip_and_stride_check(resnet50):
    config = resnet50.get_config()
    assert (config["batch_norm_trainable"], config["first_stage_features_stride"]) == (False, 16)
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(resnet50)))
    )
    assert type(revived) is FasterRCNNResNet50FeatureExtractor
    assert revived.get_config() == config
    with pytest.raises(ValueError, match="first_stage_features_stride must be 8 or 16; got 32"):
        FasterRCNNResNet50FeatureExtractor(first_stage_features_stride=32)
    with pytest.raises(ValueError, match="backbone_weights"):
        FasterRCNNResNet50FeatureExtractor(backbone_weights="coco")


def test_stride_8_makes_stage_4_atrous_with_the_same_weights():
    from kdet.feature_extractors import FasterRCNNResNet50FeatureExtractor

    atrous = FasterRCNNResNet50FeatureExtractor(first_stage_features_stride=8)
    features = atrous.extract_proposal_features(tf.zeros([1, 64, 64, 3]))
    assert tuple(features.shape) == (1, 8, 8, 1024)  # stride 8, not 16
    body = atrous.proposal_body
    assert body.get_layer("conv4_block1_1_conv").strides == (1, 1)
    assert body.get_layer("conv4_block3_2_conv").dilation_rate == (2, 2)
    assert body.get_layer("conv3_block1_1_conv").strides == (2, 2)  # stages 1-3 unchanged
    assert body.get_layer("conv3_block2_2_conv").dilation_rate == (1, 1)
    plain = FasterRCNNResNet50FeatureExtractor()
    assert [w.shape for w in atrous.weights] == [w.shape for w in plain.weights]
    assert atrous.get_config()["first_stage_features_stride"] == 8
    with pytest.raises(ValueError, match="must be 8 or 16; got 4"):
        FasterRCNNResNet50FeatureExtractor(first_stage_features_stride=4)


def test_the_slim_layout_strides_where_tf_slim_does():
    # TF-Slim resnet_v1 (the TF1 extractors): each block strides in its LAST unit's 3x3
    # convolution, padded explicitly; equal-depth shortcuts are subsampled; the root keeps 64.
    extractor = FasterRCNNResNet50FeatureExtractor(depth_multiplier=0.25, slim_layout=True)
    body = extractor.proposal_body
    assert body.get_layer("conv1_conv").filters == 64
    assert body.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert body.get_layer("conv2_block1_3_conv").filters == 4 * 16  # 4 * max(int(64 * .25), 8)
    assert body.get_layer("conv2_block1_1_conv").strides == (1, 1)
    last = body.get_layer("conv2_block3_2_conv")
    assert (last.strides, last.padding) == ((2, 2), "valid")
    assert body.get_layer("conv2_block3_2_pad").padding == ((1, 1), (1, 1))
    assert body.get_layer("conv2_block3_0_pool").strides == (2, 2)
    assert body.get_layer("conv3_block1_0_conv").strides == (1, 1)
    # Output stride 16: block3 (stage 4) no longer strides.
    assert body.get_layer("conv4_block6_2_conv").strides == (1, 1)
    assert body.layers[-1].name == "conv4_block6_out"
    features = extractor.extract_proposal_features(tf.zeros([1, 64, 64, 3]))
    assert tuple(features.shape) == (1, 4, 4, 256)
    # The second stage (slim block4 as the TF1 extractor builds it) keeps the crops' size.
    box_features = extractor.extract_box_classifier_features(tf.zeros([2, 7, 7, 256]))
    assert tuple(box_features.shape) == (2, 7, 7, 512)
    assert not any(
        conv.use_bias
        for conv in extractor.box_classifier_body.layers
        if isinstance(conv, keras.layers.Conv2D)
    )


def test_the_slim_layout_at_stride_8_is_atrous_from_block3():
    extractor = FasterRCNNResNet50FeatureExtractor(
        depth_multiplier=0.25, slim_layout=True, first_stage_features_stride=8
    )
    body = extractor.proposal_body
    assert body.get_layer("conv3_block4_2_conv").strides == (1, 1)  # block2 stops striding
    assert body.get_layer("conv3_block4_2_conv").dilation_rate == (1, 1)
    assert body.get_layer("conv4_block1_2_conv").dilation_rate == (2, 2)
    assert extractor.box_classifier_body.get_layer("conv5_block1_2_conv").dilation_rate == (1, 1)
    features = extractor.extract_proposal_features(tf.zeros([1, 64, 64, 3]))
    assert tuple(features.shape) == (1, 8, 8, 256)


def test_slim_layout_config_and_what_it_refuses():
    extractor = FasterRCNNResNet50FeatureExtractor(depth_multiplier=0.25, slim_layout=True)
    config = extractor.get_config()
    assert config["slim_layout"]
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(extractor)))
    )
    assert revived.slim_layout and revived.get_config() == config
    # Extractors saved before slim_layout existed keep the TF2 layout.
    del config["slim_layout"]
    assert not FasterRCNNResNet50FeatureExtractor.from_config(config).slim_layout
    with pytest.raises(ValueError, match="no backbone_weights"):
        FasterRCNNResNet50FeatureExtractor(slim_layout=True, backbone_weights="imagenet")
    with pytest.raises(ValueError, match="strides where the TF1"):
        extractor.restore_from_classification_checkpoint(keras.Model())
