"""CenterNet feature extractors: every TF OD API type name, stride-4 outputs, preprocessing,
configs, saving, and the TF OD API's layouts (variable and parameter counts measured on its
own extractors, `TF_USE_LEGACY_KERAS=1` in its venv).

Building the `keras.applications` bodies is most of this file's time, so each `TINY` extractor
is built once (the `extractors` fixture) and serves every test that reads it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.feature_extractors import CenterNetFeatureExtractor
from kdet.feature_extractors import CenterNetHourglassFeatureExtractor
from kdet.feature_extractors import build_feature_extractor
from kdet.feature_extractors import get_feature_extractor_class
from kdet.feature_extractors.hourglass_network import ResidualBlock

# TF OD API type → (tiny constructor arguments, input height and width, output channels).
TINY = {
    "hourglass_10": ({"num_channels": 4}, (32, 48), 8),
    "hourglass_20": ({"num_channels": 4}, (32, 48), 8),
    "hourglass_32": ({"num_channels": 4}, (32, 64), 8),
    "hourglass_52": ({"num_channels": 4}, (128, 128), 8),
    "resnet_v2_50": ({}, (64, 96), 64),
    "resnet_v1_50_fpn": ({}, (64, 96), 64),
    "mobilenet_v2": ({"depth_multiplier": 0.35}, (64, 96), 64),
    # Bilinear (not the default nearest, which mobilenet_v2_fpn_sep_conv runs) and plain
    # convolutions: test_mobilenet_fpn_options reads them.
    "mobilenet_v2_fpn": (
        {"depth_multiplier": 0.35, "upsampling_interpolation": "bilinear"}, (64, 96), 24
    ),
    "mobilenet_v2_fpn_sep_conv": ({"depth_multiplier": 0.35}, (64, 96), 24),
}


def test_tf_od_api_type_names_are_registered():
    # The TF OD API's `CENTER_NET_EXTRACTOR_FUNCTION_MAP`, but resnet_v1_18_fpn and
    # resnet_v1_34_fpn (its own basic-block ResNets, which no config or zoo model uses).
    # The ResNet-101 ones are their ResNet-50 siblings' classes on the deeper body (built in
    # no test here: 2 × ~2 s).
    names = sorted(TINY) + ["hourglass_104", "resnet_v2_101", "resnet_v1_101_fpn"]
    assert len(names) == 12
    for name in names:
        assert issubclass(get_feature_extractor_class(name), CenterNetFeatureExtractor)


# The `channel_means` / `channel_stds` of the `extractors` fixture's extractors.
MEANS, STDS = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
# Their config round trip goes through a `.keras` file (which also checks the outputs).
KERAS_FILE_ROUND_TRIP = ("hourglass_20", "mobilenet_v2_fpn_sep_conv")


def _build(name, **kwargs):
    tiny_kwargs, _, _ = TINY[name]
    return build_feature_extractor(name, **{**tiny_kwargs, **kwargs})


@pytest.fixture(scope="module")
def extractors():
    """`extractors(name)`: the `TINY` extractor of `name` with `MEANS` / `STDS`, made on first
    use and shared by this module's tests."""
    built = {}

    def extractor(name):
        if name not in built:
            built[name] = _build(name, channel_means=MEANS, channel_stds=STDS)
        return built[name]

    return extractor


def _num_parameters(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


# (name, its `TINY` arguments) → (variables, trainable parameters) of the TF OD API's extractor
# of that type and size (hourglasses: `hourglass_network.hourglass_N(num_channels=4)`; the
# others from the `model_builder` functions).
TF_OD_API_SIZES = {
    "hourglass_10": (70, 6948),
    "hourglass_20": (150, 22604),
    "hourglass_32": (245, 42164),
    "hourglass_52": (400, 93812),
    # Separable convolutions by default (plain ones: 286 variables).
    "mobilenet_v2_fpn_sep_conv": (289, 337088),
    # The TF OD API also holds the unused final batch norm of keras.applications' ResNet50V2
    # (`post_bn`, 4 variables, 4096 parameters), which kdet leaves out.
    "resnet_v2_50": (306 - 4, 29383424 - 4096),
    "resnet_v1_50_fpn": (344, 24809920),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_stride_4_outputs_tf_od_api_sizes_and_config_round_trip(name, extractors, tmp_path):
    extractor = extractors(name)
    assert isinstance(extractor, CenterNetFeatureExtractor)
    _, (height, width), channels = TINY[name]
    images = extractor.preprocess(tf.random.uniform([2, height, width, 3], maxval=255, seed=1))
    features = extractor(images)
    assert extractor.out_stride == 4
    assert len(features) == extractor.num_feature_outputs == 1
    for feature in features:
        assert tuple(feature.shape) == (2, height // 4, width // 4, channels)
    if name in TF_OD_API_SIZES:
        assert (len(extractor.weights), _num_parameters(extractor.trainable_weights)) == (
            TF_OD_API_SIZES[name]
        )
    if name in KERAS_FILE_ROUND_TRIP:
        copy = _keras_file_round_trip(extractor, images, features, tmp_path)
    else:
        copy = type(extractor).from_config(extractor.get_config())
        copy.build(images.shape)
    assert copy.get_config() == extractor.get_config()
    assert [weight.shape for weight in copy.weights] == [
        weight.shape for weight in extractor.weights
    ]


def _keras_file_round_trip(extractor, images, features, tmp_path):
    """`extractor` in a functional model saved as `.keras` and loaded: the loaded extractor
    (of the same class) gives `features` on `images` again."""
    inputs = keras.Input(images.shape[1:])
    keras.Model(inputs, extractor(inputs)).save(tmp_path / "extractor.keras")
    loaded = keras.saving.load_model(tmp_path / "extractor.keras")
    assert type(loaded.layers[-1]) is type(extractor)
    for got, want in zip(keras.tree.flatten(loaded(images)), features, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    return loaded.layers[-1]


def test_hourglass_104_layout_outputs_and_gradients():
    # The Hourglass-104 layout (num_channels=8: 8, 16..32 channels) as the TF OD API builds it
    # with `HourglassNetwork(num_stages=5, input_channel_dims=8, channel_dims_per_stage=[16, 16,
    # 24, 24, 24, 32], blocks_per_stage=[2, 2, 2, 2, 2, 4], num_hourglasses=2)`: 800
    # variables, 480 trainable, 741,192 trainable parameters.
    extractor = build_feature_extractor("hourglass_104", num_channels=8)
    assert isinstance(extractor, CenterNetHourglassFeatureExtractor)
    assert extractor.channel_dims == [16, 16, 24, 24, 24, 32]
    copy = type(extractor).from_config(extractor.get_config())
    assert copy.get_config() == extractor.get_config()
    assert copy.get_config()["num_channels"] == 8
    images = tf.random.uniform([1, 128, 128, 3], seed=2)
    with tf.GradientTape() as tape:
        features = extractor(images, training=True)
        loss = sum(tf.reduce_sum(feature) for feature in features)
    assert extractor.num_feature_outputs == 2
    assert [tuple(f.shape) for f in features] == [(1, 32, 32, 16)] * 2
    assert len(extractor.weights) == 800
    assert len(extractor.trainable_weights) == 480
    assert _num_parameters(extractor.trainable_weights) == 741192
    # Every weight is used, in the first hourglass and in the second.
    gradients = tape.gradient(loss, extractor.trainable_weights)
    assert all(gradient is not None for gradient in gradients)
    # Shortcuts are 1x1 convolutions only where the shape changes: the input block, and per
    # hourglass 5 stride-2 encoder entries and 2 widening exits (16 → 24, 24 → 32 on the way
    # in, back on the way out): 15 `skip` convolutions in the TF OD API's checkpoint.
    skips = [
        layer for layer in _sublayers(extractor)
        if isinstance(layer, ResidualBlock) and layer.skip is not None
    ]
    assert len(skips) == 1 + 2 * 7


def _sublayers(layer):
    return list(layer._flatten_layers(include_self=False, recursive=True))


def test_preprocess_normalizes_then_applies_the_body_normalization(extractors):
    images = tf.random.uniform([1, 4, 4, 3], maxval=255, seed=3)
    normalized = (images - MEANS) / STDS
    swapped = (images[..., ::-1] - MEANS) / STDS

    np.testing.assert_allclose(extractors("hourglass_10").preprocess(images), normalized,
                               rtol=1e-6)
    bgr = _build("hourglass_10", channel_means=MEANS, channel_stds=STDS, bgr_ordering=True)
    np.testing.assert_allclose(bgr.preprocess(images), swapped, rtol=1e-6)

    # MobileNetV2 and ResNet-v2 then scale to [-1, 1]; ResNet-v1 ("caffe") swaps to BGR and
    # subtracts the ImageNet BGR mean.
    for name in ("mobilenet_v2_fpn", "resnet_v2_50"):
        np.testing.assert_allclose(
            extractors(name).preprocess(images), normalized / 127.5 - 1, atol=1e-6, err_msg=name
        )
    imagenet_bgr_mean = (103.939, 116.779, 123.68)
    np.testing.assert_allclose(
        extractors("resnet_v1_50_fpn").preprocess(images),
        normalized[..., ::-1] - imagenet_bgr_mean,
        atol=1e-4,
    )


def test_empty_channel_statistics_are_the_tf_od_api_defaults():
    extractor = _build("hourglass_10", channel_means=[], channel_stds=None)
    assert extractor.channel_means == (0.0, 0.0, 0.0)
    assert extractor.channel_stds == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="channel_means must have 3 values"):
        _build("hourglass_10", channel_means=[1.0, 2.0])
    with pytest.raises(ValueError, match="channel_stds must be non-zero"):
        _build("hourglass_10", channel_stds=[1.0, 0.0, 1.0])


def test_mobilenet_fpn_options(extractors):
    plain = extractors("mobilenet_v2_fpn")
    layers = {layer.name: layer for layer in plain.feature_model.layers}
    assert type(layers["top_down_0_conv"]) is keras.layers.Conv2D
    assert layers["top_down_0_upsampling"].interpolation == "bilinear"
    # TF OD API: Conv_1 of 1280 × 0.35 (rounded to 8), no min_depth.
    assert plain.feature_model.get_layer("mobilenetv2").get_layer("Conv_1").filters == 448
    with pytest.raises(ValueError, match="upsampling_interpolation must be one of"):
        _build("mobilenet_v2_fpn", upsampling_interpolation="bicubic")


def test_hourglass_rejects_sizes_its_stages_cannot_halve(extractors):
    assert extractors("hourglass_52").input_multiple == 128
    extractor = extractors("hourglass_20")
    assert extractor.input_multiple == 16
    with pytest.raises(ValueError, match="multiples of 16"):
        extractor(tf.zeros([1, 32, 40, 3]))
