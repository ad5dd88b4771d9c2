"""What the SSD FPN extractors share (`SSDFPNFeatureExtractor`), checked on each of them, and
the base class through an extractor written with the public API."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.feature_extractors import SSDFPNFeatureExtractor
from kdet.feature_extractors import SSDMobileNetV1FPNFeatureExtractor
from kdet.feature_extractors import SSDMobileNetV2FPNFeatureExtractor
from kdet.feature_extractors import SSDResNet50V1FPNFeatureExtractor
from kdet.feature_extractors import get_feature_extractor_class


@dataclasses.dataclass(frozen=True)
class Case:
    """One SSD FPN extractor class and the arguments its tests build it with."""

    cls: type
    registered_name: str
    # `preprocess` of the RGB pixels 0, 127.5 and 255 (one a row).
    preprocessed: list
    # A small model of the class, and the channels of its pyramid maps.
    small: dict
    pyramid_depth: int
    # A value other than the default for each constructor argument.
    custom: dict


CASES = [
    Case(
        SSDMobileNetV1FPNFeatureExtractor,
        "ssd_mobilenet_v1_fpn",
        preprocessed=[[-1.0] * 3, [0.0] * 3, [1.0] * 3],
        small={"depth_multiplier": 0.25},
        pyramid_depth=64,  # max(256 * 0.25, 16)
        custom={
            "depth_multiplier": 0.25,
            "min_depth": 96,
            "fpn_min_level": 2,
            "fpn_max_level": 6,
            "additional_layer_depth": 128,
            "use_depthwise": True,
            "use_explicit_padding": True,
            "override_base_feature_extractor_hyperparams": True,
            "slim_layout": True,
            "kernel_regularizer": keras.regularizers.L2(2e-5),
            "regularize_depthwise": True,
        },
    ),
    Case(
        SSDMobileNetV2FPNFeatureExtractor,
        "ssd_mobilenet_v2_fpn",
        preprocessed=[[-1.0] * 3, [0.0] * 3, [1.0] * 3],
        small={"depth_multiplier": 0.35},
        pyramid_depth=44,  # max(int(128 * 0.35), 16)
        custom={
            "depth_multiplier": 0.35,
            "min_depth": 48,
            "fpn_min_level": 2,
            "fpn_max_level": 6,
            "additional_layer_depth": 256,
            "use_depthwise": False,
            "kernel_regularizer": keras.regularizers.L2(2e-5),
            "regularize_depthwise": True,
        },
    ),
    Case(
        SSDResNet50V1FPNFeatureExtractor,
        "ssd_resnet50_v1_fpn",
        # The ImageNet channel means in RGB order subtracted (TF OD API resnet_v1).
        preprocessed=[
            [-123.68, -116.779, -103.939],
            [3.82, 10.721, 23.561],
            [131.32, 138.221, 151.061],
        ],
        small={"depth_multiplier": 0.25, "additional_layer_depth": 64},
        pyramid_depth=16,  # max(int(64 * 0.25), 16)
        custom={
            "depth_multiplier": 0.25,
            "min_depth": 32,
            "fpn_min_level": 2,
            "fpn_max_level": 6,
            "additional_layer_depth": 32,
            "kernel_regularizer": keras.regularizers.L2(2e-4),
        },
    ),
]


@pytest.fixture(scope="module", params=CASES, ids=[case.registered_name for case in CASES])
def case(request):
    return request.param


@pytest.fixture(scope="module")
def extractor(case):
    return case.cls(**case.small)


def _sizes(feature_maps):
    return [tuple(f.shape[1:]) for f in feature_maps]


def test_registered_name_names_the_class(case):
    assert get_feature_extractor_class(case.registered_name) is case.cls
    assert issubclass(case.cls, SSDFPNFeatureExtractor)


def test_preprocess_normalizes_raw_pixels(case, extractor):
    images = tf.constant([[[[0.0] * 3, [127.5] * 3, [255.0] * 3]]])
    preprocessed = extractor.preprocess(images)
    assert preprocessed.dtype == tf.float32
    np.testing.assert_allclose(preprocessed[0, 0], case.preprocessed, atol=1e-4)


def test_levels_3_to_7_have_strides_8_to_128(case, extractor):
    depth = case.pyramid_depth
    assert extractor.pyramid_depth == extractor.feature_pyramid.depth == depth
    feature_maps = extractor(tf.zeros([2, 128, 128, 3]))
    assert [f.shape[0] for f in feature_maps] == [2] * 5
    assert _sizes(feature_maps) == [(128 // 2**level,) * 2 + (depth,) for level in range(3, 8)]
    # Odd sizes round up at every stride, as TF "SAME" padding does.
    assert [f.shape[1] for f in extractor(tf.zeros([1, 100, 100, 3]))] == [13, 7, 4, 2, 1]


def test_level_2_has_stride_4_and_levels_stop_at_fpn_max_level(case):
    extractor = case.cls(**case.small, fpn_min_level=2, fpn_max_level=4)
    assert _sizes(extractor(tf.zeros([1, 64, 64, 3]))) == [
        (16, 16, case.pyramid_depth), (8, 8, case.pyramid_depth), (4, 4, case.pyramid_depth),
    ]
    assert len(extractor.body.outputs) == 3


def test_rejects_a_min_level_without_a_body_map(case):
    with pytest.raises(ValueError, match="fpn_min_level must be one of the backbone levels"):
        case.cls(fpn_min_level=1)


def test_gradients_reach_body_and_pyramid(extractor):
    images = extractor.preprocess(tf.random.uniform([1, 64, 64, 3], maxval=255.0))
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(f) for f in extractor(images, training=True))
    weights = extractor.trainable_weights
    gradients = tape.gradient(loss, weights)
    assert not [w.path for w, g in zip(weights, gradients) if g is None]
    assert any("feature_pyramid" in w.path for w in weights)


def test_config_round_trip(case):
    extractor = case.cls(**case.custom)
    config = extractor.get_config()
    legacy = ("kernel_regularizer", "regularize_depthwise")
    expected = {name: value for name, value in case.custom.items() if name not in legacy}
    assert {name: config[name] for name in expected} == expected
    # The old regularization arguments are folded into conv_hyperparams.
    hyperparams = keras.saving.deserialize_keras_object(config["conv_hyperparams"])
    regularizer = case.custom["kernel_regularizer"]
    assert hyperparams.kernel_regularizer.get_config() == regularizer.get_config()
    assert hyperparams.regularize_depthwise == case.custom.get("regularize_depthwise", False)
    restored = case.cls.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert _sizes(restored.body.outputs) == _sizes(extractor.body.outputs)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(extractor))
    assert type(revived) is case.cls


def test_keras_file_round_trip(case, tmp_path):
    extractor = case.cls(**case.custom)
    images = keras.Input((64, 64, 3))
    model = keras.Model(images, extractor(images))
    model.save(tmp_path / "extractor.keras")
    loaded = keras.saving.load_model(tmp_path / "extractor.keras")
    batch = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0, seed=1)
    for a, b in zip(model(batch), loaded(batch)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_kernel_regularizer_reaches_every_kernel_with_names_kept(case):
    arguments = dict(case.small, kernel_regularizer=keras.regularizers.L2(2e-5), name="fe")
    if "regularize_depthwise" in case.custom:
        arguments["regularize_depthwise"] = True
    plain = case.cls(**case.small, name="fe")
    regularized = case.cls(**arguments)
    for model in (plain, regularized):
        model.build((None, 64, 64, 3))
    # Layer and weight names do not depend on the regularizer: checkpoints load either way.
    assert [w.path for w in regularized.weights] == [w.path for w in plain.weights]
    assert not [w for w in plain.trainable_weights if w.regularizer is not None]
    kernels = [w for w in regularized.trainable_weights if w.name.endswith("kernel")]
    # Body and pyramid, plain, depthwise and pointwise kernels; biases and batch norms not.
    assert [w for w in regularized.trainable_weights if w.regularizer is not None] == kernels
    assert any("feature_pyramid" in w.path for w in kernels)
    assert len(regularized.losses) == len(kernels)


@kdet.feature_extractors.register_feature_extractor("test_tiny_ssd_fpn")
class TinySSDFPNExtractor(SSDFPNFeatureExtractor):
    """Three stride-2 convolutions as the body: levels 1..3 (strides 2, 4, 8), 4 channels."""

    LEVEL_ENDPOINTS = {1: "tiny_conv1", 2: "tiny_conv2", 3: "tiny_conv3"}

    def __init__(self, fpn_min_level=2, fpn_max_level=4, additional_layer_depth=8, **kwargs):
        super().__init__(fpn_min_level, fpn_max_level, additional_layer_depth, **kwargs)
        images = keras.Input((None, None, 3))
        features = images
        for name in self.LEVEL_ENDPOINTS.values():
            features = keras.layers.Conv2D(
                4, 3, strides=2, padding="same", kernel_regularizer=self.kernel_regularizer,
                name=name,
            )(features)
        classifier = keras.Model(images, features)
        outputs = [
            classifier.get_layer(name).output
            for name in self.body_endpoints(self.LEVEL_ENDPOINTS)
        ]
        self.attach_body(keras.Model(images, outputs, name="tiny_body"))

    def preprocess(self, images):
        return keras.ops.cast(images, "float32") / 255.0


def test_a_user_defined_fpn_extractor_needs_only_its_body(tmp_path):
    extractor = kdet.feature_extractors.build_feature_extractor(
        "test_tiny_ssd_fpn", fpn_min_level=1, kernel_regularizer=keras.regularizers.L2(1e-3)
    )
    feature_maps = extractor(extractor.preprocess(tf.zeros([2, 32, 32, 3])))
    # Levels 1..3 from the body, level 4 a stride-2 layer of the pyramid.
    assert _sizes(feature_maps) == [(16, 16, 8), (8, 8, 8), (4, 4, 8), (2, 2, 8)]
    assert extractor.feature_pyramid.conv_hyperparams == extractor.conv_hyperparams
    assert extractor.feature_pyramid.kernel_regularizer.get_config() == {"l2": 1e-3}
    config = extractor.get_config()
    assert {name: config[name] for name in ("fpn_min_level", "fpn_max_level")} == {
        "fpn_min_level": 1,
        "fpn_max_level": 4,
    }
    images = keras.Input((32, 32, 3))
    model = keras.Model(images, extractor(images))
    model.save(tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(tmp_path / "tiny.keras")
    assert type(loaded.layers[1]) is TinySSDFPNExtractor
    assert loaded.layers[1].get_config() == config
    batch = tf.random.uniform([1, 32, 32, 3], seed=2)
    for a, b in zip(model(batch), loaded(batch)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_pad_to_multiple_zero_pads_bottom_right():
    from kdet.feature_extractors.ssd_feature_extractor import pad_to_multiple

    images = tf.ones([2, 5, 7, 3])
    padded = pad_to_multiple(images, 4)
    assert padded.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(padded[:, :5, :7], images)
    assert float(tf.reduce_sum(padded)) == float(tf.reduce_sum(images))
    run = tf.function(lambda x: pad_to_multiple(x, 4), input_signature=[
        tf.TensorSpec([None, None, None, 3])
    ])
    assert run(tf.ones([1, 8, 9, 3])).shape == (1, 8, 12, 3)
    assert pad_to_multiple(images, 1) is images
