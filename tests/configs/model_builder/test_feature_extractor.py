"""Feature extractor messages: `conv_hyperparams` and the scalar fields reach the layers of
the built extractor (pyramid, extra layers, and the body with
`override_base_feature_extractor_hyperparams`)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.configs.field_reader import Node
from kdet.configs.model_builder.feature_extractor import SSD_FEATURE_EXTRACTOR_SCHEMA
from kdet.configs.model_builder.feature_extractor import build_feature_extractor
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from kdet.feature_extractors import SSDFeatureExtractor
from kdet.layers import FusedBatchNormalization

HYPERPARAMS = """
  conv_hyperparams {
    activation: SWISH
    regularizer { l1_regularizer { weight: 0.003 } }
    initializer { random_normal_initializer { mean: 0.2 stddev: 0.05 } }
    batch_norm { decay: 0.9 epsilon: 0.01 scale: false train: true }
  }
"""


def _build(text):
    node = Node(parse(text, "fe.config"), "model.ssd.feature_extractor")
    return build_feature_extractor(node, SSDFeatureExtractor, SSD_FEATURE_EXTRACTOR_SCHEMA)


def _batch_norms(model):
    layers = model._flatten_layers()
    return [layer for layer in layers if isinstance(layer, FusedBatchNormalization)]


def _check_batch_norm(layer):
    assert (layer.momentum, layer.epsilon, layer.center, layer.scale) == pytest.approx(
        (0.9, 0.01, True, False)
    ), layer.name


def _check_conv(layer, regularized=True):
    initializer = layer.kernel_initializer
    assert isinstance(initializer, keras.initializers.RandomNormal), layer.name
    assert (initializer.mean, initializer.stddev) == pytest.approx((0.2, 0.05))
    if regularized:
        assert layer.kernel_regularizer.get_config() == pytest.approx({"l1": 0.003})
    assert not layer.use_bias  # a centering batch norm follows


def _convolutions(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]


def test_ssd_mobilenet_v2_override_sets_up_extra_layers_and_body():
    extractor = _build(
        f"type: 'ssd_mobilenet_v2_keras' depth_multiplier: 0.35 {HYPERPARAMS}"
        "override_base_feature_extractor_hyperparams: true"
    )
    extractor(tf.zeros([1, 64, 64, 3]))
    for block in extractor.extra_layers:
        for layer in block.layers:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                continue
            if isinstance(layer, keras.layers.Conv2D):
                _check_conv(layer)
            elif isinstance(layer, FusedBatchNormalization):
                _check_batch_norm(layer)
            else:
                assert layer.get_config()["activation"] in ("swish", "silu")
    body = extractor.body
    assert len(_batch_norms(body)) == 52
    for layer in _batch_norms(body):
        _check_batch_norm(layer)
    for layer in _convolutions(body):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # The TF OD API body regularizes its depthwise kernels too under the override.
            assert layer.depthwise_regularizer.get_config() == pytest.approx({"l1": 0.003})
        else:
            _check_conv(layer)
    # Every ReLU6 of the body became the configured activation.
    assert not [layer for layer in body.layers if isinstance(layer, keras.layers.ReLU)]
    swish = [layer for layer in body.layers if isinstance(layer, keras.layers.Activation)]
    assert len(swish) == 35
    assert {layer.get_config()["activation"] for layer in swish} <= {"swish", "silu"}
    # Random init: the body's kernels are drawn from the configured initializer.
    kernel = body.get_layer("Conv1").kernel.numpy()
    assert abs(float(np.mean(kernel)) - 0.2) < 0.02 and abs(float(np.std(kernel)) - 0.05) < 0.01


def test_without_override_the_body_keeps_its_settings_but_takes_the_regularizer():
    extractor = _build(f"type: 'ssd_mobilenet_v2' depth_multiplier: 0.35 {HYPERPARAMS}")
    body_norms = _batch_norms(extractor.body)
    assert {(layer.momentum, layer.epsilon) for layer in body_norms} == {(0.999, 1e-3)}
    assert isinstance(extractor.body.get_layer("out_relu"), keras.layers.ReLU)
    conv = extractor.body.get_layer("Conv1")
    assert conv.kernel_regularizer.get_config() == pytest.approx({"l1": 0.003})
    assert isinstance(conv.kernel_initializer, keras.initializers.GlorotUniform)
    for layer in _batch_norms(extractor.extra_layers[0]):
        _check_batch_norm(layer)


@pytest.mark.parametrize("kind", ["ssd_mobilenet_v2_fpn_keras", "ssd_mobilenet_v1_fpn_keras"])
def test_fpn_extractors_apply_conv_hyperparams_to_the_pyramid_and_body(kind):
    extractor = _build(
        f"type: '{kind}' depth_multiplier: 0.25 {HYPERPARAMS} "
        "override_base_feature_extractor_hyperparams: true "
        "fpn { min_level: 3 max_level: 6 additional_layer_depth: 32 }"
    )
    extractor(tf.zeros([1, 64, 64, 3]))
    pyramid = extractor.feature_pyramid
    for block in pyramid.smoothing_blocks + pyramid.extra_blocks:
        _check_batch_norm(block.layers[-2])
        assert block.layers[-1].get_config()["activation"] in ("swish", "silu")
    for conv in pyramid.lateral_convs:
        assert conv.use_bias  # projections keep their bias, as in the TF OD API
        assert conv.kernel_regularizer.get_config() == pytest.approx({"l1": 0.003})
        assert conv.kernel_initializer.get_config()["stddev"] == pytest.approx(0.05)
    for layer in _batch_norms(extractor.body):
        _check_batch_norm(layer)


def test_hyperparams_round_trip_through_a_keras_file(tmp_path):
    extractor = _build(
        f"type: 'ssd_mobilenet_v1_fpn' depth_multiplier: 0.25 {HYPERPARAMS}"
        "override_base_feature_extractor_hyperparams: true "
        "fpn { min_level: 3 max_level: 5 additional_layer_depth: 16 }"
    )
    restored = type(extractor).from_config(json.loads(json.dumps(extractor.get_config())))
    assert restored.conv_hyperparams == extractor.conv_hyperparams
    assert restored.override_base_feature_extractor_hyperparams
    images = keras.Input((64, 64, 3))
    model = keras.Model(images, extractor(images))
    model.save(tmp_path / "extractor.keras")
    loaded = keras.saving.load_model(tmp_path / "extractor.keras")
    batch = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=1)
    for a, b in zip(model(batch), loaded(batch)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    loaded_norms = _batch_norms(loaded)
    assert loaded_norms and all(layer.momentum == pytest.approx(0.9) for layer in loaded_norms)


@kdet.feature_extractors.register_feature_extractor("test_d3_takes_hyperparams")
class _TakesHyperparams(SSDFeatureExtractor):
    def __init__(self, conv_hyperparams=None, pad_to_multiple=1, use_depthwise=False, **kwargs):
        super().__init__(**kwargs)
        self.conv_hyperparams = conv_hyperparams
        self.pad_to_multiple = pad_to_multiple
        self.use_depthwise = use_depthwise

    def preprocess(self, images):
        return images

    def call(self, images, training=None):
        return [images]


@kdet.feature_extractors.register_feature_extractor("test_d3_takes_none")
class _TakesNone(SSDFeatureExtractor):
    def preprocess(self, images):
        return images

    def call(self, images, training=None):
        return [images]


def test_a_user_extractor_receives_what_it_takes():
    extractor = _build(
        f"type: 'test_d3_takes_hyperparams' {HYPERPARAMS} pad_to_multiple: 32 use_depthwise: true"
    )
    assert extractor.conv_hyperparams.activation == "swish"
    assert extractor.conv_hyperparams.batch_norm["momentum"] == pytest.approx(0.9)
    assert extractor.pad_to_multiple == 32 and extractor.use_depthwise


def test_an_extractor_that_takes_none_refuses_only_non_default_values():
    assert isinstance(_build("type: 'test_d3_takes_none'"), _TakesNone)
    with pytest.raises(ConfigError, match=r"fe.config:2:3: .*'test_d3_takes_none' feature "
                       r"extractor takes no conv_hyperparams"):
        _build(f"type: 'test_d3_takes_none' {HYPERPARAMS}")
    with pytest.raises(ConfigError, match=r"takes no pad_to_multiple; only 1 .*does not pad"):
        _build("type: 'test_d3_takes_none' pad_to_multiple: 32")



@pytest.mark.parametrize("kind", ["ssd_mobilenet_v2", "ssd_mobilenet_v1_fpn"])
def test_pad_to_multiple_pads_the_preprocessed_images_bottom_right(kind):
    extractor = _build(f"type: '{kind}' depth_multiplier: 0.25 {HYPERPARAMS} pad_to_multiple: 32")
    assert extractor.pad_to_multiple == 32
    # 40x40 is padded to 64x64: the finest map is 64 / stride wide, not 40 / stride rounded up.
    maps = extractor(tf.zeros([1, 40, 40, 3]))
    stride = 16 if kind == "ssd_mobilenet_v2" else 8
    assert tuple(maps[0].shape[1:3]) == (64 // stride, 64 // stride)
    unpadded = _build(f"type: '{kind}' depth_multiplier: 0.25 {HYPERPARAMS}")
    assert tuple(unpadded(tf.zeros([1, 40, 40, 3]))[0].shape[1:3]) == (
        -(-40 // stride), -(-40 // stride)
    )


def test_other_ssd_feature_extractor_fields():
    # An export switch: either value computes the same.
    _build("type: 'test_d3_takes_none' replace_preprocessor_with_placeholder: true")
    _build("type: 'test_d3_takes_none' num_layers: 6")
    with pytest.raises(ConfigError, match=r"takes no num_layers; only 6 .*fixed number"):
        _build("type: 'test_d3_takes_none' num_layers: 4")
    with pytest.raises(ConfigError,
                       match=r"fe.config:1:34: .*has no bidirectional feature pyramid"):
        _build("type: 'test_d3_takes_none' bifpn { min_level: 3 }")


def test_resnet_body_override_replaces_every_relu_and_batch_norm():
    extractor = _build(
        f"type: 'ssd_resnet50_v1_fpn_keras' {HYPERPARAMS}"
        "override_base_feature_extractor_hyperparams: true "
        "fpn { min_level: 3 max_level: 5 additional_layer_depth: 16 }"
    )
    body = extractor.body
    activations = [layer for layer in body.layers if isinstance(layer, keras.layers.Activation)]
    assert len(activations) == 49  # every ReLU of ResNet50, block outputs included
    assert {layer.get_config()["activation"] for layer in activations} <= {"swish", "silu"}
    for layer in _batch_norms(body):
        _check_batch_norm(layer)
    conv = body.get_layer("conv2_block1_1_conv")
    assert conv.kernel_regularizer.get_config() == pytest.approx({"l1": 0.003})
    assert conv.kernel_initializer.get_config()["stddev"] == pytest.approx(0.05)


def test_override_without_batch_norm_or_activation_leaves_them_out_of_the_body():
    extractor = _build(
        "type: 'ssd_mobilenet_v2' depth_multiplier: 0.35 "
        "conv_hyperparams { activation: NONE } override_base_feature_extractor_hyperparams: true"
    )
    body = extractor.body
    assert not _batch_norms(body)
    assert not [layer for layer in body.layers if isinstance(layer, keras.layers.ReLU)]
    assert body.get_layer("Conv1").use_bias is False  # the body's own choice, as in the TF OD API
    maps = extractor(tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=2))
    assert [tuple(m.shape[1:3]) for m in maps][:2] == [(4, 4), (2, 2)]
    assert float(tf.reduce_min(maps[0])) < 0.0  # no activation: negative features pass
