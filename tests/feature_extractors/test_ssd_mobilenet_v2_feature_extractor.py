import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.ssd_mobilenet_v2_feature_extractor import (
    SSDMobileNetV2FeatureExtractor,
)

CHANNELS = [576, 1280, 512, 256, 256, 128]


@pytest.fixture(scope="module")
def extractor():
    return SSDMobileNetV2FeatureExtractor()


def _shapes(feature_maps):
    return [tuple(f.shape) for f in feature_maps]


def test_ssd_mobilenet_v2_coco_feature_maps_at_300(extractor):
    feature_maps = extractor(extractor.preprocess(tf.zeros([1, 300, 300, 3])))
    sizes = [19, 10, 5, 3, 2, 1]
    assert _shapes(feature_maps) == [(1, s, s, c) for s, c in zip(sizes, CHANNELS)]


def test_feature_maps_at_128_and_on_odd_sizes_use_same_padding(extractor):
    feature_maps = extractor(tf.zeros([2, 128, 128, 3]))
    sizes = [8, 4, 2, 1, 1, 1]
    assert _shapes(feature_maps) == [(2, s, s, c) for s, c in zip(sizes, CHANNELS)]
    # TF "SAME" gives ceil(n / stride): 100 → 50 → 25 → 13 → 7 → 4 → 2 → 1 → 1 → 1. The
    # keras.applications (0, 1) padding would give 25 → 12 instead.
    feature_maps = extractor(tf.zeros([1, 100, 72, 3]))
    assert [f.shape[1:3] for f in feature_maps] == [
        (7, 5), (4, 3), (2, 2), (1, 1), (1, 1), (1, 1),
    ]


def test_preprocess_maps_pixels_to_minus_one_one(extractor):
    images = tf.constant([0.0, 127.5, 255.0], shape=[1, 1, 3, 1])
    np.testing.assert_allclose(
        extractor.preprocess(images)[0, 0, :, 0], [-1.0, 0.0, 1.0], atol=1e-6
    )
    assert extractor.preprocess(tf.zeros([1, 2, 2, 3], tf.uint8)).dtype == tf.float32


def test_extra_layers_carry_tf_od_api_names(extractor):
    names = [layer.name for layer in extractor.extra_layers[0].layers if layer.weights]
    assert names == [
        "layer_19_1_Conv2d_2_1x1_256_conv",
        "layer_19_1_Conv2d_2_1x1_256_batchnorm",
        "layer_19_2_Conv2d_2_3x3_s2_512_depthwise_conv",
        "layer_19_2_Conv2d_2_3x3_s2_512_depthwise_batchnorm",
        "layer_19_2_Conv2d_2_3x3_s2_512_conv",
        "layer_19_2_Conv2d_2_3x3_s2_512_batchnorm",
    ]
    last = [layer.name for layer in extractor.extra_layers[3].layers]
    assert last[0] == "layer_19_1_Conv2d_5_1x1_64_conv"
    assert last[-1] == "layer_19_2_Conv2d_5_3x3_s2_128"
    batch_norm = extractor.extra_layers[0].layers[1]
    assert (batch_norm.epsilon, batch_norm.momentum) == (1e-3, 0.9997)


def test_depth_multiplier_and_plain_convolutions():
    extractor = SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.5, min_depth=80, use_depthwise=False
    )
    feature_maps = extractor(tf.zeros([1, 128, 128, 3]))
    # Body, as the TF OD API's: block_12's projection 96 * 0.5 = 48 raised to min_depth 80,
    # so block_13's expansion has 6 * 80 = 480; Conv_1 1280 * 0.5 = 640 (Keras keeps 1280).
    # Extras: 512, 256, 256, 128 halved, the last raised to min_depth 80.
    assert [f.shape[-1] for f in feature_maps] == [480, 640, 256, 128, 128, 80]
    # Blocks whose projection was raised lose their residual add, as in the TF OD API.
    assert type(extractor.body.get_layer("block_12_add")).__name__ == "SkipResidual"
    assert type(extractor.body.get_layer("block_15_add")).__name__ == "Add"  # 160 * 0.5
    downsample = extractor.extra_layers[0].layers[3]
    assert downsample.name == "layer_19_2_Conv2d_2_3x3_s2_256_conv"
    assert tuple(downsample.kernel.shape) == (3, 3, 128, 256)
    assert not any(
        isinstance(layer, keras.layers.DepthwiseConv2D)
        for block in extractor.extra_layers
        for layer in block.layers
    )


def test_slim_layout_keeps_the_residuals_min_depth_makes_possible():
    # Depth multiplier 0.25, min_depth 16: expanded_conv's 32 → 16 and block_2's 24 → 16
    # projections are floored to 16, so TF-Slim (TF1) adds their residuals where Keras (TF2)
    # has no add (expanded_conv) or drops it (block_2: 24 * 0.25 = 6 < 16, SkipResidual).
    keras_layout = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.25, min_depth=16)
    slim = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.25, min_depth=16, slim_layout=True)
    assert type(keras_layout.body.get_layer("block_2_add")).__name__ == "SkipResidual"
    assert type(slim.body.get_layer("block_2_add")).__name__ == "Add"
    assert slim.get_config()["slim_layout"] and not keras_layout.get_config()["slim_layout"]
    revived = SSDMobileNetV2FeatureExtractor.from_config(slim.get_config())
    assert type(revived.body.get_layer("block_2_add")).__name__ == "Add"
    # At 0.35, Conv1 (16) and expanded_conv's projection (8 → 16) are equal in Slim only:
    # kdet adds the residual Keras's MobileNetV2 has no layer for.
    slim = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35, min_depth=16, slim_layout=True)
    body = slim.body
    add = body.get_layer("expanded_conv_add")
    probe = keras.Model(body.inputs, [body.get_layer("Conv1_relu").output,
                                      body.get_layer("expanded_conv_project_BN").output,
                                      add.output])
    block_input, residual, added = probe(tf.random.uniform([1, 32, 32, 3]))
    np.testing.assert_allclose(added, block_input + residual, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(block_input))) > 0
    consumer = body.get_layer("block_1_expand")
    np.testing.assert_allclose(
        keras.Model(body.inputs, consumer.output)(tf.ones([1, 32, 32, 3])),
        consumer(keras.Model(body.inputs, add.output)(tf.ones([1, 32, 32, 3]))), atol=1e-5)
    assert not any(layer.name == "expanded_conv_add" for layer in SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.35, min_depth=16).body.layers)


def test_runs_under_tf_function_with_dynamic_sizes(extractor):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def extract(images):
        return extractor(images)

    expected = extractor(tf.ones([1, 64, 96, 3]))
    got = extract(tf.ones([1, 64, 96, 3]))
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert [f.shape[1] for f in extract(tf.ones([2, 128, 128, 3]))] == [8, 4, 2, 1, 1, 1]


def test_registry_and_config_round_trip(extractor):
    assert get_feature_extractor_class("ssd_mobilenet_v2") is SSDMobileNetV2FeatureExtractor
    custom = SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.75, min_depth=8, use_depthwise=False, name="fe"
    )
    config = custom.get_config()
    restored = SSDMobileNetV2FeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert (restored.depth_multiplier, restored.min_depth, restored.use_depthwise) == (
        0.75, 8, False,
    )
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(extractor)
    )
    assert type(revived) is SSDMobileNetV2FeatureExtractor
    assert revived.get_config() == extractor.get_config()


def test_rejects_unknown_backbone_weights():
    with pytest.raises(ValueError, match="backbone_weights"):
        SSDMobileNetV2FeatureExtractor(backbone_weights="coco")


def test_backbone_weights_are_kept_by_the_padding_fix(monkeypatch):
    # "imagenet" downloads; a stand-in with seeded weights checks they reach the body.
    mobilenet_v2 = keras.applications.MobileNetV2
    built = []

    def seeded_mobilenet_v2(weights=None, **kwargs):
        model = mobilenet_v2(weights=None, **kwargs)
        rng = np.random.default_rng(0)
        for variable in model.weights:
            variable.assign(rng.uniform(0.5, 1.0, variable.shape).astype("float32"))
        built.append(model)
        return model

    monkeypatch.setattr(keras.applications, "MobileNetV2", seeded_mobilenet_v2)
    # Keras's depths: the ImageNet weights are Keras's MobileNetV2 (the TF OD API's depths
    # differ from them below depth multiplier 1).
    extractor = SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.35, backbone_weights="imagenet", tf_od_api_body_depths=False
    )
    expected = built[0].get_weights()
    got = extractor.body.get_weights()
    assert len(got) == len(expected) == 260
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_imagenet_weights_need_keras_depths_below_depth_multiplier_1():
    # Refused before anything is downloaded.
    with pytest.raises(ValueError, match="Conv_1 of 1280 filters.*tf_od_api_body_depths=False"):
        SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35, backbone_weights="imagenet")


def test_save_and_load_round_trip(tmp_path):
    extractor = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35, min_depth=8)
    inputs = keras.Input([None, None, 3])
    model = keras.Model(inputs, extractor(inputs))
    # Kernels are random already; move the batch norm statistics off their initial values too.
    rng = np.random.default_rng(1)
    for variable in model.weights:
        if variable.name in ("beta", "moving_mean"):
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype("float32"))
    model.save(tmp_path / "extractor.keras")
    loaded = keras.saving.load_model(tmp_path / "extractor.keras")
    images = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=2)
    for a, b in zip(model(images), loaded(images)):
        assert np.isfinite(a).all() and np.std(a) > 0
        np.testing.assert_array_equal(a, b)


def _regularized_kernels(extractor):
    """`{layer name: its kernel's regularizer}` of every convolution, body and extra layers."""
    layers = extractor.body.layers + [
        layer for block in extractor.extra_layers for layer in block.layers
    ]
    return {
        layer.name: layer.kernel.regularizer
        for layer in layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
    }


@pytest.mark.parametrize("regularize_depthwise", [False, True])
def test_kernel_regularizer_reaches_body_and_extra_layers(regularize_depthwise):
    plain = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35, min_depth=8, name="fe")
    extractor = SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.35,
        min_depth=8,
        kernel_regularizer=keras.regularizers.L2(2e-5),
        regularize_depthwise=regularize_depthwise,
        name="fe",
    )
    for model in (plain, extractor):
        model.build((None, 64, 64, 3))
    # Layer and weight names are unchanged: TF OD API weights and checkpoints load by name.
    assert [w.path for w in extractor.weights] == [w.path for w in plain.weights]
    assert set(_regularized_kernels(plain).values()) == {None}
    regularizers = _regularized_kernels(extractor)
    assert len(regularizers) == (35 + 17) + (8 + 4)
    for name, regularizer in regularizers.items():
        if "depthwise" in name and not regularize_depthwise:
            assert regularizer is None, name
        else:
            assert regularizer.get_config() == {"l2": 2e-5}, name
    regularized = [w for w in extractor.trainable_weights if w.regularizer is not None]
    expected = 2e-5 * sum(float(np.sum(np.square(w.numpy()))) for w in regularized)
    np.testing.assert_allclose(float(keras.ops.sum(extractor.losses)), expected, rtol=1e-5)
    assert len(regularized) == (35 + 8) + (17 + 4 if regularize_depthwise else 0)


def test_regularizer_config_round_trip():
    extractor = SSDMobileNetV2FeatureExtractor(
        depth_multiplier=0.35,
        kernel_regularizer=keras.regularizers.L2(2e-5),
        regularize_depthwise=True,
    )
    config = extractor.get_config()
    # The old arguments are folded into conv_hyperparams.
    hyperparams = keras.saving.deserialize_keras_object(config["conv_hyperparams"])
    assert hyperparams.kernel_regularizer.get_config() == {"l2": 2e-5}
    assert hyperparams.regularize_depthwise is True
    restored = SSDMobileNetV2FeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.kernel_regularizer.get_config() == {"l2": 2e-5}


def test_explicit_padding_pads_every_side_before_the_stride_2_convolutions():
    # TF OD API use_explicit_padding: on an even size, "same" pads only bottom/right while
    # the explicit padding pads one pixel on every side; the map sizes stay those of "same".
    same = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35)
    explicit = SSDMobileNetV2FeatureExtractor(depth_multiplier=0.35, use_explicit_padding=True)
    images = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=3)
    same_maps, explicit_maps = same(images), explicit(images)
    assert [m.shape for m in explicit_maps] == [m.shape for m in same_maps]
    explicit.set_weights(same.get_weights())
    explicit_maps = explicit(images)
    difference = np.max(np.abs(explicit_maps[0].numpy() - same_maps[0].numpy()))
    assert difference > 0.1 * np.max(np.abs(same_maps[0].numpy()))
    assert explicit.body.get_layer("Conv1_pad") is not None
    conv1 = explicit.body.get_layer("MobilenetV2").get_layer("Conv1")
    assert conv1.padding == "valid"
    extra_layer = explicit.extra_layers[0]
    padding = extra_layer.get_layer("layer_19_2_Conv2d_2_3x3_s2_179_depthwise_padding")
    assert padding.padding == ((1, 1), (1, 1))
    config = explicit.get_config()
    assert config["use_explicit_padding"] is True
    restored = SSDMobileNetV2FeatureExtractor.from_config(json.loads(json.dumps(config)))
    assert restored.use_explicit_padding
