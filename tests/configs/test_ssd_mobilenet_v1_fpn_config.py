"""A RetinaNet-style SSD MobileNetV1 FPN pipeline.config (weight-shared predictor, focal loss,
background encoded as zeros, body set up by conv_hyperparams) → kdet.SSD and its training.

The config is kdet's own, with the fields of the TF OD API
`ssd_mobilenet_v1_fpn_shared_box_predictor_640x640_coco14_sync.config` and TF2
`ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8.config`, at a small size.
"""

import keras
import numpy as np
import pytest

import kdet
from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs.model_builder import build_model_from_text
from kdet.training import CosineDecayWithWarmup

CONFIG = """\
model {
  ssd {
    inplace_batchnorm_update: true
    freeze_batchnorm: false
    num_classes: 3
    box_coder {
      faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 }
    }
    matcher {
      argmax_matcher {
        matched_threshold: 0.5
        unmatched_threshold: 0.4
        ignore_thresholds: false
        negatives_lower_than_unmatched: true
        force_match_for_each_row: true
        use_matmul_gather: true
      }
    }
    similarity_calculator { iou_similarity { } }
    encode_background_as_zeros: true
    anchor_generator {
      multiscale_anchor_generator {
        min_level: 3
        max_level: 6
        anchor_scale: 3.0
        aspect_ratios: [1.0, 2.0]
        scales_per_octave: 1
      }
    }
    image_resizer { fixed_shape_resizer { height: 96 width: 96 } }
    box_predictor {
      weight_shared_convolutional_box_predictor {
        depth: 24
        class_prediction_bias_init: -3.0
        conv_hyperparams {
          activation: RELU_6,
          regularizer { l2_regularizer { weight: 0.0002 } }
          initializer { random_normal_initializer { stddev: 0.01 mean: 0.0 } }
          batch_norm { scale: true, decay: 0.997, epsilon: 0.001, }
        }
        num_layers_before_predictor: 2
        kernel_size: 3
      }
    }
    feature_extractor {
      type: 'ssd_mobilenet_v1_fpn_keras'
      fpn { min_level: 3 max_level: 6 additional_layer_depth: 64 }
      min_depth: 8
      depth_multiplier: 0.25
      conv_hyperparams {
        activation: RELU_6,
        regularizer { l2_regularizer { weight: 0.0004 } }
        initializer { random_normal_initializer { stddev: 0.01 mean: 0.0 } }
        batch_norm { scale: true, decay: 0.997, epsilon: 0.001, }
      }
      override_base_feature_extractor_hyperparams: true
    }
    loss {
      classification_loss { weighted_sigmoid_focal { alpha: 0.3 gamma: 1.5 } }
      localization_loss { weighted_smooth_l1 { } }
      classification_weight: 1.0
      localization_weight: 2.0
    }
    normalize_loss_by_num_matches: true
    normalize_loc_loss_by_codesize: true
    post_processing {
      batch_non_max_suppression {
        score_threshold: 1e-8
        iou_threshold: 0.5
        max_detections_per_class: 20
        max_total_detections: 30
      }
      score_converter: SIGMOID
    }
  }
}
"""

TRAIN_CONFIG = """
train_config: {
  fine_tune_checkpoint_version: V2
  batch_size: 8
  sync_replicas: true
  startup_delay_steps: 0
  replicas_to_aggregate: 8
  num_steps: 300
  data_augmentation_options { random_horizontal_flip { } }
  data_augmentation_options {
    random_crop_image {
      min_object_covered: 0.0
      min_aspect_ratio: 0.75
      max_aspect_ratio: 3.0
      min_area: 0.75
      max_area: 1.0
      overlap_thresh: 0.0
    }
  }
  optimizer {
    momentum_optimizer: {
      learning_rate: {
        cosine_decay_learning_rate {
          learning_rate_base: .02
          total_steps: 300
          warmup_learning_rate: .005
          warmup_steps: 20
        }
      }
      momentum_optimizer_value: 0.9
    }
    use_moving_average: false
  }
  max_number_of_boxes: 10
  unpad_groundtruth_tensors: false
}
"""


def _replace(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _error(text):
    with pytest.raises(ConfigError) as raised:
        build_model_from_text(text)
    return str(raised.value)


def _at(text, needle):
    """The `<string>:line:column: ` prefix of an error at the first `needle` of `text`."""
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    return f"<string>:{line}:{index - text.rfind(chr(10), 0, index)}: "


@pytest.fixture(scope="module")
def model():
    return build_model_from_text(CONFIG)


def test_every_field_reaches_the_model(model):
    assert isinstance(model, kdet.SSD)
    assert model.encode_background_as_zeros
    assert model.normalize_loc_loss_by_codesize and model.normalize_loss_by_num_matches
    assert (model.classification_weight, model.localization_weight) == (1.0, 2.0)
    assert isinstance(model.classification_loss, kdet.losses.SigmoidFocalClassificationLoss)
    assert (model.classification_loss.gamma, model.classification_loss.alpha) == (1.5, 0.3)
    assert (model.max_detections, model.iou_threshold) == (30, 0.5)
    assert model.matcher.unmatched_threshold == 0.4
    anchors = model.anchor_generator.get_config()
    assert (anchors["min_level"], anchors["max_level"], anchors["anchor_scale"]) == (3, 6, 3.0)
    predictor = model.box_predictor
    assert isinstance(predictor, kdet.models.ssd.WeightSharedConvolutionalBoxPredictor)
    assert (predictor.depth, predictor.num_layers_before_predictor) == (24, 2)
    assert predictor.class_prediction_bias_init == -3.0
    assert predictor.kernel_regularizer.get_config() == {"l2": 0.5 * 0.0002}


def test_feature_extractor_fields(model):
    extractor = model.feature_extractor
    assert isinstance(extractor, kdet.feature_extractors.SSDMobileNetV1FPNFeatureExtractor)
    config = extractor.get_config()
    assert config["override_base_feature_extractor_hyperparams"]
    assert (config["fpn_min_level"], config["fpn_max_level"]) == (3, 6)
    assert (config["depth_multiplier"], config["min_depth"]) == (0.25, 8)
    assert extractor.feature_pyramid.depth == 16  # max(64 * 0.25, 8)
    assert extractor.kernel_regularizer.get_config() == {"l2": 0.5 * 0.0004}
    # override_base_feature_extractor_hyperparams: the body takes conv_hyperparams' decay.
    assert extractor.body.get_layer("conv_pw_5_bn").momentum == 0.997


def test_the_built_model_runs_forward_and_predicts(model):
    images = np.random.default_rng(0).uniform(0, 255, [2, 96, 96, 3]).astype("float32")
    outputs = model(images)
    num_anchors = 2 * (12 * 12 + 6 * 6 + 3 * 3 + 2 * 2)
    assert outputs["box_encodings"].shape == (2, num_anchors, 4)
    assert outputs["class_logits"].shape == (2, num_anchors, 4)
    detections = model.predict_on_batch(images)
    assert detections["boxes"].shape == (2, 30, 4)


def test_the_tf1_type_name_without_fpn_keeps_the_extractor_levels():
    text = _replace(CONFIG, "'ssd_mobilenet_v1_fpn_keras'", "'ssd_mobilenet_v1_fpn'")
    text = _replace(text, "fpn { min_level: 3 max_level: 6 additional_layer_depth: 64 }", "")
    text = _replace(text, "max_level: 6", "max_level: 7")
    extractor = build_model_from_text(text).feature_extractor
    assert (extractor.fpn_min_level, extractor.fpn_max_level) == (3, 7)
    assert extractor.additional_layer_depth == 256


def test_tf1_and_tf2_type_names_give_their_body_depths(model):
    # TF2 (`_keras`): Keras's MobileNet(alpha=0.25) scaled by 0.25 again, as the TF OD API's
    # Keras body; TF1 (TF-Slim): scaled once. Both bounded by min_depth.
    extractor = model.feature_extractor
    assert not extractor.slim_layout
    assert [o.shape[-1] for o in extractor.body.outputs] == [16, 32, 64]
    text = _replace(CONFIG, "'ssd_mobilenet_v1_fpn_keras'", "'ssd_mobilenet_v1_fpn'")
    extractor = build_model_from_text(text).feature_extractor
    assert extractor.slim_layout
    assert [o.shape[-1] for o in extractor.body.outputs] == [64, 128, 256]
    # FPNLite: the TF1 extractor applies its conv_defs' 256-filter Conv_1, the TF2 one not.
    lite = _replace(CONFIG, "      min_depth: 8\n", "      min_depth: 8\n      use_depthwise: true\n")
    for name, slim, conv_1 in [("ssd_mobilenet_v2_fpn", True, 64), ("ssd_mobilenet_v2_fpn_keras",
                                                                      False, 320)]:
        text = _replace(lite, "'ssd_mobilenet_v1_fpn_keras'", f"'{name}'")
        extractor = build_model_from_text(text).feature_extractor
        assert extractor.slim_layout is slim
        assert extractor.body.get_layer("Conv_1").filters == conv_1


def test_use_explicit_padding_and_use_depthwise_reach_the_extractor():
    text = _replace(
        CONFIG,
        "      min_depth: 8\n",
        "      min_depth: 8\n      use_explicit_padding: true\n      use_depthwise: true\n",
    )
    extractor = build_model_from_text(text).feature_extractor
    assert extractor.use_explicit_padding and extractor.feature_pyramid.use_explicit_padding
    assert extractor.use_depthwise and extractor.feature_pyramid.use_depthwise


def test_body_fields_of_extractors_that_do_not_take_them_are_errors():
    # kdet's FPNLite takes the same conv_hyperparams and the override (its body then gets the
    # config's batch norm decay 0.997), but not use_explicit_padding.
    text = _replace(CONFIG, "'ssd_mobilenet_v1_fpn_keras'", "'ssd_mobilenet_v2_fpn'")
    model = build_model_from_text(text)
    body = model.feature_extractor.body
    assert body.get_layer("bn_Conv1").momentum == pytest.approx(0.997)
    text = _replace(
        text,
        "override_base_feature_extractor_hyperparams: true",
        "use_explicit_padding: true",
    )
    assert _error(text) == (
        f"{_at(text, 'use_explicit_padding')}'model.ssd.feature_extractor.use_explicit_padding' "
        "is true, but the 'ssd_mobilenet_v2_fpn' feature extractor takes no "
        "use_explicit_padding; only false (the TF OD API default) is accepted"
    )


def test_conv_hyperparams_values_are_applied_to_the_pyramid_and_body():
    text = _replace(
        CONFIG,
        "        initializer { random_normal_initializer { stddev: 0.01 mean: 0.0 } }\n"
        "        batch_norm { scale: true, decay: 0.997",
        "        initializer { random_normal_initializer { stddev: 0.01 mean: 0.0 } }\n"
        "        batch_norm { scale: true, decay: 0.9997",
    )
    extractor = build_model_from_text(text).feature_extractor
    pyramid = extractor.feature_pyramid
    assert pyramid.conv_hyperparams.batch_norm["momentum"] == pytest.approx(0.9997)
    # override_base_feature_extractor_hyperparams: true sets up the body with them too.
    assert extractor.body.get_layer("conv1_bn").momentum == pytest.approx(0.9997)


def test_load_pipeline_builds_model_optimizer_and_settings(tmp_path):
    path = tmp_path / "pipeline.config"
    path.write_text(CONFIG + TRAIN_CONFIG)
    with pytest.warns(UserWarning, match="is ignored: kdet trains synchronously"):
        pipeline = load_pipeline(path)
    assert pipeline.model.encode_background_as_zeros
    assert isinstance(pipeline.optimizer, keras.optimizers.SGD)
    schedule = pipeline.optimizer._learning_rate
    assert isinstance(schedule, CosineDecayWithWarmup)
    assert (schedule.learning_rate_base, schedule.warmup_steps) == (0.02, 20)
    assert [name for name, _ in pipeline.train.augmentation] == [
        "random_horizontal_flip", "random_crop_image",
    ]
    assert (pipeline.train.batch_size, pipeline.train.max_number_of_boxes) == (8, 10)


def test_fine_tune_checkpoint_version_takes_v1_or_v2(tmp_path):
    path = tmp_path / "pipeline.config"
    path.write_text(CONFIG + TRAIN_CONFIG.replace("version: V2", "version: V3"))
    with pytest.raises(ConfigError, match="fine_tune_checkpoint_version' expects one of V1, V2"):
        load_pipeline(path)
