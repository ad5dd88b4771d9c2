"""The slim Inception extractors: `ssd_inception_v2`, `ssd_inception_v3` (with
`keras.applications.InceptionV3`'s weights), `faster_rcnn_inception_v2`, and the Inception v2 /
v3 bodies they share.

Their numbers against the TF OD API's own TF1 models: tests/checkpoints/
test_tfod_parity_inception.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from extractor_battery import assert_faster_rcnn_extractor_learns
from extractor_battery import assert_keras_round_trip
from extractor_battery import assert_ssd_extractor_learns
from extractor_battery import tiny_ssd

from kdet.feature_extractors import FasterRCNNInceptionV2FeatureExtractor
from kdet.feature_extractors import SSDInceptionV2FeatureExtractor
from kdet.feature_extractors import SSDInceptionV3FeatureExtractor
from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.inception_body import inception_body
from kdet.layers import ConvHyperparams

HYPERPARAMS = ConvHyperparams(activation="relu6", batch_norm={"scale": True})


def _shapes(feature_maps):
    return [tuple(f.shape) for f in feature_maps]


def _channels(architecture, endpoints, depth_multiplier=1.0, min_depth=16):
    body = inception_body(architecture, endpoints[-1], HYPERPARAMS, depth_multiplier, min_depth)
    return [body.get_layer(name).output.shape[-1] for name in endpoints]


def test_the_bodies_have_slims_depths():
    # inception_v2_base / inception_v3_base endpoints at depth multiplier 1 (1024 for
    # Inception v2's Mixed_5c, 2048 for v3's Mixed_7c), a quarter of them here: every depth of
    # the tables is a multiple of 4, so with min_depth 1 this checks them all.
    assert _channels(
        "InceptionV2", ["Mixed_3c", "Mixed_4a", "Mixed_4c", "Mixed_4e", "Mixed_5c"], 0.25, 1
    ) == [80, 144, 144, 144, 256]
    assert _channels(
        "InceptionV3", ["Mixed_5b", "Mixed_5d", "Mixed_6a", "Mixed_6e", "Mixed_7c"], 0.25, 1
    ) == [64, 72, 192, 192, 512]


def test_depths_follow_slims_rule_with_min_depth():
    # max(int(d * 0.0625), 8): Mixed_4c's 192 | 128 | 128 | 128 → 12 | 8 | 8 | 8.
    assert _channels("InceptionV2", ["Mixed_4c"], 0.0625, 8) == [36]
    body = inception_body("InceptionV2", "Conv2d_2c_3x3", HYPERPARAMS, 0.0625, 8)
    first = body.get_layer("Conv2d_1a_7x7_conv")
    # slim's separable 7x7: depthwise multiplier min(int(depth(64) / 3), 8) = int(8 / 3) = 2.
    assert isinstance(first, keras.layers.SeparableConv2D)
    assert tuple(first.depthwise_kernel.shape) == (7, 7, 3, 2)
    assert tuple(first.pointwise_kernel.shape) == (1, 1, 6, 8)
    assert first.strides == (2, 2) and first.padding == "same"


def test_layers_carry_slim_scopes_and_initializers():
    body = inception_body("InceptionV2", "Mixed_3b", HYPERPARAMS)
    names = [layer.name for layer in body.layers if layer.weights]
    assert "Mixed_3b_Branch_2_Conv2d_0c_3x3_conv" in names
    assert "Mixed_3b_Branch_3_Conv2d_0b_1x1_batchnorm" in names
    assert isinstance(body.get_layer("Mixed_3b_Branch_3_AvgPool_0a_3x3"),
                      keras.layers.AveragePooling2D)
    # slim's own trunc_normal(0.09) on the 1x1 reductions; the hyperparams' elsewhere.
    reduction = body.get_layer("Mixed_3b_Branch_1_Conv2d_0a_1x1_conv").kernel_initializer
    assert isinstance(reduction, keras.initializers.TruncatedNormal)
    assert reduction.stddev == 0.09
    assert isinstance(
        body.get_layer("Mixed_3b_Branch_0_Conv2d_0a_1x1_conv").kernel_initializer,
        keras.initializers.GlorotUniform,
    )
    v3 = inception_body("InceptionV3", "Mixed_5c", HYPERPARAMS, 0.25)
    # slim's irregular names in Mixed_5c and the "valid" stem.
    assert v3.get_layer("Mixed_5c_Branch_1_Conv_1_0c_5x5_conv").kernel_size == (5, 5)
    assert v3.get_layer("Conv2d_4a_3x3_conv").padding == "valid"


def test_an_unknown_endpoint_or_architecture_is_named():
    with pytest.raises(ValueError, match="InceptionV2 has no endpoint 'Mixed_6a'.*Mixed_5c"):
        inception_body("InceptionV2", "Mixed_6a", HYPERPARAMS)
    with pytest.raises(ValueError, match="one of \\['InceptionV2', 'InceptionV3'\\]; got 'V4'"):
        inception_body("V4", "Mixed_5c", HYPERPARAMS)


@pytest.fixture(scope="module")
def ssd_v2():
    return SSDInceptionV2FeatureExtractor(depth_multiplier=0.25, use_depthwise=True)


def test_ssd_inception_v2_reads_mixed_4c_and_5c(ssd_v2):
    feature_maps = ssd_v2(ssd_v2.preprocess(tf.zeros([1, 300, 300, 3])))
    # 576 / 4 (Mixed_4c), 1024 / 4 (Mixed_5c), extras 512, 256, 256, 128 / 4.
    channels = [144, 256, 128, 64, 64, 32]
    sizes = [19, 10, 5, 3, 2, 1]
    assert _shapes(feature_maps) == [(1, s, s, c) for s, c in zip(sizes, channels)]
    names = [layer.name for layer in ssd_v2.extra_layers[0].layers if layer.weights]
    assert names == [
        "Mixed_5c_1_Conv2d_2_1x1_64_conv",
        "Mixed_5c_1_Conv2d_2_1x1_64_batchnorm",
        "Mixed_5c_2_Conv2d_2_3x3_s2_128_depthwise_conv",
        "Mixed_5c_2_Conv2d_2_3x3_s2_128_depthwise_batchnorm",
        "Mixed_5c_2_Conv2d_2_3x3_s2_128_conv",
        "Mixed_5c_2_Conv2d_2_3x3_s2_128_batchnorm",
    ]


def test_conv_hyperparams_set_up_the_body_too():
    hyperparams = ConvHyperparams(
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
        kernel_regularizer=keras.regularizers.L2(2e-5),
        activation="relu6",
        batch_norm={"momentum": 0.9, "epsilon": 0.01, "scale": True},
    )
    extractor = SSDInceptionV2FeatureExtractor(
        depth_multiplier=0.0625, min_depth=8, conv_hyperparams=hyperparams,
        override_base_feature_extractor_hyperparams=False,
    )
    body = extractor.body
    batch_norm = body.get_layer("Mixed_4c_Branch_0_Conv2d_0a_1x1_batchnorm")
    assert (batch_norm.momentum, batch_norm.epsilon) == (0.9, 0.01)
    assert isinstance(body.get_layer("Mixed_4c_Branch_0_Conv2d_0a_1x1"), keras.layers.ReLU)
    assert body.get_layer("Conv2d_2c_3x3_conv").kernel_regularizer.l2 == pytest.approx(2e-5)
    assert body.get_layer("Conv2d_2c_3x3_conv").kernel_initializer.stddev == 0.03
    # slim's separable_conv2d regularizes both kernels.
    first = body.get_layer("Conv2d_1a_7x7_conv")
    assert first.depthwise_regularizer is not None and first.pointwise_regularizer is not None


def test_ssd_inception_v2_learns():
    # Measured: last/first epoch loss 0.23, mAP@0.5 0.64 (60 steps; 150: 0.07, 0.77).
    # Seeded before the extractor is built: its initial weights decide the result.
    keras.utils.set_random_seed(0)
    assert_ssd_extractor_learns(SSDInceptionV2FeatureExtractor(depth_multiplier=0.0625), steps=60)


def test_ssd_inception_v3_reads_mixed_5d_6e_7c_predicts_and_round_trips(tmp_path):
    extractor = SSDInceptionV3FeatureExtractor(depth_multiplier=0.0625, min_depth=8)
    feature_maps = extractor(extractor.preprocess(tf.zeros([1, 96, 96, 3])))
    # Mixed_5d 8 | 8 | 8 | 8 (64 * 0.0625 = 4 → 8), Mixed_6e 12 x 4, Mixed_7c 20 | 48 | 48 | 12;
    # extras 512, 256, 128 x 0.0625. "Valid" stem and reductions: 96 → 47 → 45 → 22 → 20 → 9
    # (Mixed_5d) → 4 (Mixed_6a) → 1 (Mixed_7a).
    channels = [32, 48, 128, 32, 16, 8]
    sizes = [9, 4, 1, 1, 1, 1]
    assert _shapes(feature_maps) == [(1, s, s, c) for s, c in zip(sizes, channels)]
    assert extractor.extra_layers[0].name == "Mixed_7c_Conv2d_3"
    loaded = assert_keras_round_trip(tiny_ssd(extractor), tmp_path)
    assert loaded.feature_extractor.get_config() == extractor.get_config()


def test_faster_rcnn_inception_v2_splits_after_mixed_4e():
    extractor = FasterRCNNInceptionV2FeatureExtractor(depth_multiplier=0.25)
    features = extractor.extract_proposal_features(extractor.preprocess(tf.zeros([1, 128, 128, 3])))
    assert tuple(features.shape) == (1, 8, 8, 144)  # 96 | 192 | 192 | 96, / 4
    crops = extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 144]))
    assert tuple(crops.shape) == (5, 4, 4, 256)  # Mixed_5c: 352 | 320 | 224 | 128, / 4
    assert extractor.box_classifier_body.layers[1].name.startswith("Mixed_5a_")
    # The TF OD API's batch norm arg scope: decay 0.9997, epsilon 1e-3, with scale.
    batch_norm = extractor.proposal_body.get_layer("Mixed_4e_Branch_0_Conv2d_0a_1x1_batchnorm")
    assert (batch_norm.momentum, batch_norm.epsilon, batch_norm.scale) == (0.9997, 1e-3, True)


def test_faster_rcnn_inception_v2_learns():
    # Measured: loss ratio 0.25, mAP@0.5 0.54 (120 steps; 90: 0.28, 0.26, under the bound).
    # Seeded before the extractor is built: its initial weights decide the result.
    keras.utils.set_random_seed(0)
    assert_faster_rcnn_extractor_learns(
        FasterRCNNInceptionV2FeatureExtractor(depth_multiplier=0.0625, batch_norm_trainable=True),
        steps=120,
    )


def test_registered_names_and_config_round_trips():
    for name, cls in (
        ("ssd_inception_v2", SSDInceptionV2FeatureExtractor),
        ("ssd_inception_v3", SSDInceptionV3FeatureExtractor),
        ("faster_rcnn_inception_v2", FasterRCNNInceptionV2FeatureExtractor),
    ):
        assert get_feature_extractor_class(name) is cls
    # ssd_inception_v3 has its .keras round trip above.
    for extractor in (
        SSDInceptionV2FeatureExtractor(
            depth_multiplier=0.0625, min_depth=8, use_explicit_padding=True, pad_to_multiple=4
        ),
        FasterRCNNInceptionV2FeatureExtractor(
            depth_multiplier=0.0625, min_depth=8, batch_norm_trainable=True
        ),
    ):
        again = type(extractor).from_config(extractor.get_config())
        assert again.get_config() == extractor.get_config()
        assert [w.shape for w in again.weights] == [w.shape for w in extractor.weights]


def test_ssd_inception_v3_takes_keras_inception_v3_weights():
    # What backbone_weights="imagenet" does with the downloaded model, on a random one.
    keras.utils.set_random_seed(0)
    source = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    rng = np.random.default_rng(0)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, variance = (w.shape for w in layer.weights)
            layer.set_weights([rng.normal(0.0, 0.2, beta), rng.normal(0.0, 0.2, mean),
                               rng.uniform(0.5, 1.5, variance)])
    # Keras's ReLU and epsilon, so that the functions are the same; a scale (ones) to fill;
    # zero kernels, all replaced (and cheaper to draw than truncated normals).
    extractor = SSDInceptionV3FeatureExtractor(
        conv_hyperparams=ConvHyperparams(
            kernel_initializer="zeros", activation="relu", batch_norm={"scale": True}
        )
    )
    restored = extractor.restore_from_classification_checkpoint(source)
    # 94 convolutions and their batch norms: every layer of the body with weights.
    assert len(restored) == 188
    assert restored == sorted(layer.name for layer in extractor.body.layers if layer.weights)
    images = tf.constant(rng.uniform(0.0, 255.0, [2, 96, 96, 3]), tf.float32)
    ours = extractor.body(extractor.preprocess(images), training=False)
    endpoints = keras.Model(
        source.input, [source.get_layer(name).output for name in ("mixed2", "mixed7", "mixed10")]
    )
    theirs = endpoints(keras.applications.inception_v3.preprocess_input(images), training=False)
    for mine, other in zip(ours, theirs, strict=True):
        other = np.asarray(other)
        np.testing.assert_allclose(mine, other, rtol=1e-4, atol=1e-4 * np.abs(other).max())


def test_imagenet_weights_need_depth_multiplier_1_and_centering_batch_norms():
    # Refused before any download.
    with pytest.raises(ValueError, match=r"keras.applications.InceptionV3's, which load into "
                       r"the body only at depth_multiplier 1.0.*got depth_multiplier=0.5"):
        SSDInceptionV3FeatureExtractor(depth_multiplier=0.5, backbone_weights="imagenet")
    with pytest.raises(ValueError, match="batch norms that center.*batch_norm=None"):
        SSDInceptionV3FeatureExtractor(
            conv_hyperparams=ConvHyperparams(activation="relu6"), backbone_weights="imagenet"
        )


@pytest.mark.parametrize("cls", [SSDInceptionV2FeatureExtractor,
                                 FasterRCNNInceptionV2FeatureExtractor])
def test_imagenet_weights_are_refused_by_name(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__} has no backbone_weights='imagenet'"):
        cls(backbone_weights="imagenet")
