"""The TF OD API `ssd` message, its box predictors and `post_processing` → `kdet.SSD`: every
value a config sets is held by the built model, or refused with the reason."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_ssd_extractor
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.text_format import ConfigError
from kdet.layers import FusedBatchNormalization

_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "data" / "tfod_configs"

_TINY = """\
model {
  ssd {
    num_classes: 3
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor { type: '%s' }
    box_coder { faster_rcnn_box_coder { } }
    matcher { argmax_matcher { } }
    similarity_calculator { iou_similarity { } }
    anchor_generator { ssd_anchor_generator { num_layers: 2 aspect_ratios: [1.0, 2.0] } }
    box_predictor { PREDICTOR }
    loss {
      classification_loss { weighted_sigmoid { } }
      localization_loss { weighted_smooth_l1 { } }
    }
    post_processing { POST_PROCESSING }
    EXTRA
  }
}
""" % tiny_ssd_extractor.NAME

_CONVOLUTIONAL = """
convolutional_box_predictor {
  use_dropout: false kernel_size: 3 min_depth: 8 max_depth: 8
  num_layers_before_predictor: 1 use_depthwise: true class_prediction_bias_init: -2.0
  conv_hyperparams {
    activation: RELU
    regularizer { l1_regularizer { weight: 0.003 } }
    initializer { variance_scaling_initializer { factor: 1.5 uniform: true mode: FAN_AVG } }
    batch_norm { decay: 0.97 epsilon: 0.01 center: true scale: false train: false }
    regularize_depthwise: true
  }
}"""
_WEIGHT_SHARED = """
weight_shared_convolutional_box_predictor {
  depth: 8 num_layers_before_predictor: 2 kernel_size: 3
  class_prediction_bias_init: -4.6 share_prediction_tower: true
  score_converter: SIGMOID
  box_encodings_clip_range { min: -0.5 max: 0.25 }
  conv_hyperparams {
    activation: NONE
    initializer { truncated_normal_initializer { mean: 0.1 stddev: 0.02 } }
    regularizer { l2_regularizer { weight: 0.0004 } }
  }
}"""
_SIGMOID = "score_converter: SIGMOID"


def _config(predictor=_CONVOLUTIONAL, post_processing=_SIGMOID, extra=""):
    return (
        _TINY.replace("PREDICTOR", predictor)
        .replace("POST_PROCESSING", post_processing)
        .replace("EXTRA", extra)
    )


def _layers(predictor, kind):
    """Every layer of `kind` in a `ConvolutionalBoxPredictor`, in build order."""
    stacks = predictor.towers + predictor.box_heads + predictor.class_heads
    return [layer for stack in stacks for layer in stack.layers if type(layer) is kind]


def test_tf2_ssd_mobilenet_v2_builds_with_its_random_normal_box_predictor():
    text = (_CONFIGS / "ssd_mobilenet_v2_320x320_coco17_tpu-8.config").read_text()
    model = build_model_from_text(text)
    predictor = model.box_predictor
    hyperparams = predictor.conv_hyperparams
    assert hyperparams.batch_norm["momentum"] == pytest.approx(0.97)
    convs = _layers(predictor, keras.layers.Conv2D)
    assert len(convs) == 2 * len(predictor.num_anchors_per_location)
    for conv in convs:
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.RandomNormal)
        assert (initializer.mean, initializer.stddev) == (0.0, pytest.approx(0.01))
        assert float(conv.kernel_regularizer.l2) == pytest.approx(0.5 * 0.00004)
        assert conv.use_bias and conv.kernel_size == (1, 1)
    class_bias = predictor.class_heads[0].layers[-1].bias_initializer
    assert float(class_bias.value) == pytest.approx(-4.6)
    nms = model.non_max_suppression
    assert (nms.score_converter, nms.score_threshold, nms.max_detections) == (
        "sigmoid", pytest.approx(1e-8), 100
    )


def test_convolutional_box_predictor_holds_every_conv_hyperparams_value(tmp_path):
    model = build_model_from_text(_config())
    predictor = model.box_predictor
    batch_norms = _layers(predictor, FusedBatchNormalization)
    # One tower per map (2 maps) + a depthwise batch norm in each box and class head.
    assert len(batch_norms) == 2 + 4
    for batch_norm in batch_norms:
        assert batch_norm.momentum == pytest.approx(0.97)
        assert batch_norm.epsilon == pytest.approx(0.01)
        assert batch_norm.center and not batch_norm.scale and batch_norm.frozen
    activations = _layers(predictor, keras.layers.Activation)
    assert len(activations) == 6 and {a.get_config()["activation"] for a in activations} == {
        "relu"
    }
    assert not _layers(predictor, keras.layers.ReLU)  # not kdet's default ReLU6
    depthwise = _layers(predictor, keras.layers.DepthwiseConv2D)
    convs = _layers(predictor, keras.layers.Conv2D)
    assert len(depthwise) == 4 and len(convs) == 2 + 4
    for conv in convs:
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.VarianceScaling)
        assert (initializer.scale, initializer.mode, initializer.distribution) == (
            1.5, "fan_avg", "uniform"
        )
        assert float(conv.kernel_regularizer.l1) == pytest.approx(0.003)
    towers = [layer for tower in predictor.towers for layer in tower.layers]
    assert not towers[0].use_bias  # a centering batch norm follows
    assert all(layer.use_bias for layer in convs[2:])  # predictor convolutions
    for layer in depthwise:
        assert float(layer.depthwise_regularizer.l1) == pytest.approx(0.003)
        assert isinstance(layer.depthwise_initializer, keras.initializers.VarianceScaling)

    # The hyperparams survive get_config and a .keras file.
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert rebuilt.box_predictor.conv_hyperparams == predictor.conv_hyperparams
    images = tf.random.uniform([1, 64, 64, 3], 0, 255, seed=2)
    expected = model(images)["class_logits"]
    path = tmp_path / "ssd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.box_predictor.conv_hyperparams == predictor.conv_hyperparams
    np.testing.assert_allclose(loaded(images)["class_logits"], expected, rtol=1e-5, atol=1e-6)


def test_weight_shared_box_predictor_as_the_tf_od_api_builds_it():
    model = build_model_from_text(_config(_WEIGHT_SHARED))
    predictor = model.box_predictor
    # No batch_norm in conv_hyperparams: no batch norm, the towers keep their bias.
    assert not predictor.apply_batch_norm
    convs = [*predictor.tower_convs["prediction"], predictor.box_predictor_conv,
             predictor.class_predictor_conv]
    assert len(convs) == 4 and all(conv.use_bias for conv in convs)
    for conv in convs:
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.TruncatedNormal)
        assert (initializer.mean, initializer.stddev) == (pytest.approx(0.1), pytest.approx(0.02))
        assert float(conv.kernel_regularizer.l2) == pytest.approx(0.5 * 0.0004)
    assert predictor.box_encodings_clip_range == (-0.5, 0.25)
    assert predictor.class_score_converter == "sigmoid"
    box_encodings, class_scores = predictor(
        [tf.random.normal([1, 8, 8, 8], seed=1) * 50, tf.random.normal([1, 4, 4, 8], seed=2) * 50]
    )
    assert float(tf.reduce_min(box_encodings)) >= -0.5
    assert float(tf.reduce_max(box_encodings)) <= 0.25
    assert 0.0 <= float(tf.reduce_min(class_scores)) <= float(tf.reduce_max(class_scores)) <= 1.0
    # The tower activation of a TF1 (slim) config is ReLU6 whatever `activation` says (the
    # TF OD API's slim predictor ignores it) ...
    assert not predictor.use_conv_hyperparams_activation
    features = predictor._tower(
        "prediction", 0, tf.random.normal([1, 4, 4, 8], seed=3) * 100, False
    )
    assert float(tf.reduce_max(features)) <= 6.0 and float(tf.reduce_min(features)) >= 0.0
    # ... that of a TF2 config (a `*_keras` extractor) is `activation` (NONE here), as the
    # TF OD API's Keras predictor applies it.
    name = tiny_ssd_extractor.NAME
    tf2 = build_model_from_text(
        _config(_WEIGHT_SHARED).replace(f"type: '{name}'", f"type: '{name}_keras'")
    ).box_predictor
    assert tf2.use_conv_hyperparams_activation and tf2.tower_activation is None
    # Random kernels (mean 0.1) can give one sign everywhere: the tower of an input and of its
    # negative span beyond [0, 6] together.
    inputs = tf.constant(np.random.default_rng(4).normal(size=[1, 4, 4, 8]) * 100, tf.float32)
    features = tf.concat([tf2._tower("prediction", 0, x, False) for x in (inputs, -inputs)], 0)
    assert float(tf.reduce_max(features)) > 6.0 and float(tf.reduce_min(features)) < 0.0


def test_post_processing_is_one_non_max_suppression():
    post_processing = """
      batch_non_max_suppression {
        iou_threshold: 0.4 max_detections_per_class: 7 max_total_detections: 9
        use_class_agnostic_nms: true soft_nms_sigma: 0.5 use_combined_nms: true
      }
      score_converter: SOFTMAX logit_scale: 2.0"""
    model = build_model_from_text(_config(post_processing=post_processing))
    nms = model.non_max_suppression
    assert nms.get_config() | {"name": None} == {
        **nms.get_config(), "name": None,
        "score_threshold": 0.0, "iou_threshold": pytest.approx(0.4),
        "max_detections_per_class": 7, "max_detections": 9, "use_class_agnostic_nms": True,
        "soft_nms_sigma": 0.5, "score_converter": "softmax", "logit_scale": 2.0,
    }
    # An omitted score_threshold and kdet.SSD's default agree (the TF OD API's 0.0).
    assert build_model_from_text(_config()).score_threshold == 0.0


def test_calibration_config_is_applied_after_the_score_converter():
    post_processing = _SIGMOID + """
      calibration_config {
        function_approximation {
          x_y_pairs {
            x_y_pair { x: 0.9 y: 1.0 }
            x_y_pair { x: 0.0 y: 0.0 }
            x_y_pair { x: 0.5 y: 0.7 }
          }
        }
      }"""
    model = build_model_from_text(_config(post_processing=post_processing))
    assert model.non_max_suppression.calibration == {
        "function_approximation": {"x": [0.0, 0.5, 0.9], "y": [0.0, pytest.approx(0.7), 1.0]}
    }
    sigmoid = _SIGMOID + " calibration_config { sigmoid_calibration { sigmoid_parameters { b: 2 } } }"
    model = build_model_from_text(_config(post_processing=sigmoid))
    assert model.non_max_suppression.calibration == {"sigmoid": {"a": -1.0, "b": 2.0}}


def test_ssd_fields_add_background_class_and_negative_class_weight():
    extra = "add_background_class: false negative_class_weight: 0.5 implicit_example_weight: 0.3"
    model = build_model_from_text(_config(extra=extra))
    assert not model.add_background_class and model.negative_class_weight == 0.5
    assert model.box_predictor.num_class_slots == 3
    assert model(tf.zeros([1, 64, 64, 3]))["class_logits"].shape[-1] == 3
    shared = build_model_from_text(_config(_WEIGHT_SHARED, extra="add_background_class: false"))
    assert shared.box_predictor.num_class_slots == 3


@pytest.mark.parametrize(
    "predictor, post_processing, extra, needle, problem",
    [
        (_CONVOLUTIONAL, _SIGMOID, "explicit_background_class: true", "explicit_background_class",
         "'model.ssd.explicit_background_class' is true, but kdet uses false: it is for ground "
         "truth whose class scores include a background column (multiclass_scores), which "
         "kdet's inputs do not carry"),
        (_CONVOLUTIONAL,
         _SIGMOID + " calibration_config { label_sigmoid_calibrations { } }", "",
         "label_sigmoid_calibrations {",
         "'model.ssd.post_processing.calibration_config.label_sigmoid_calibrations' is set, but "
         "per-class calibration (by label-map names) is not in kdet yet; the class-agnostic "
         "function_approximation and sigmoid_calibration are"),
        (_CONVOLUTIONAL,
         _SIGMOID + " batch_non_max_suppression { use_class_agnostic_nms: true "
         "max_classes_per_detection: 2 }", "", "max_classes_per_detection",
         "'model.ssd.post_processing.batch_non_max_suppression.max_classes_per_detection' is 2, "
         "but kdet uses 1: class-agnostic NMS keeps one class per box (the TF OD API refuses "
         "more as well: 'Max classes per detection box >1 not supported')"),
        (_CONVOLUTIONAL.replace("min_depth: 8", "min_depth: 4"), _SIGMOID, "", "min_depth",
         "'model.ssd.box_predictor.convolutional_box_predictor' has min_depth 4 and max_depth "
         "8, but kdet's tower has one fixed depth: set them equal"),
        (_WEIGHT_SHARED.replace("max: 0.25", "max: -1.0"), _SIGMOID, "", "max: -1.0",
         "'model.ssd.box_predictor.weight_shared_convolutional_box_predictor."
         "box_encodings_clip_range' has min -0.5 and max -1.0: min must be below max"),
    ],
)  # fmt: skip
def test_refusals_name_the_field_and_the_reason(predictor, post_processing, extra, needle, problem):
    text = _config(predictor, post_processing, extra)
    with pytest.raises(ConfigError) as error:
        build_model_from_text(text)
    offset = text.index(needle)
    if needle.endswith(" {"):  # an error about a message points at its brace
        offset += len(needle) - 1
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    assert str(error.value) == f"<string>:{line}:{column}: {problem}"
