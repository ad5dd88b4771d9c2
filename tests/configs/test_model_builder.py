"""kdet.configs.model_builder: TF OD API `model { ... }` blocks → kdet.SSD / kdet.FasterRCNN.

Models are constructed, never trained. Error tests use a tiny registered extractor so that
they run in milliseconds, and check the exact `source:line:column:` of every error.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.configs.model_builder import build_model
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.text_format import ConfigError
from kdet.configs.text_format import parse
from tiny_two_stage_extractor import TINY_FASTER_RCNN_CONFIG
from tiny_two_stage_extractor import ConfigTestTinyTwoStageExtractor

# Written for this test after the TF OD API `ssd_mobilenet_v2_coco.config`: its model block
# with the same values.
SSD_MOBILENET_V2_COCO = """\
# SSD with Mobilenet v2 configuration for MSCOCO Dataset.
# Users should configure the fine_tune_checkpoint field in the train config as
# well as the label_map_path and input_path fields in the train_input_reader and
# eval_input_reader. Search for "PATH_TO_BE_CONFIGURED" to find the fields that
# should be configured.

model {
  ssd {
    num_classes: 90
    box_coder {
      faster_rcnn_box_coder {
        y_scale: 10.0
        x_scale: 10.0
        height_scale: 5.0
        width_scale: 5.0
      }
    }
    matcher {
      argmax_matcher {
        matched_threshold: 0.5
        unmatched_threshold: 0.5
        ignore_thresholds: false
        negatives_lower_than_unmatched: true
        force_match_for_each_row: true
      }
    }
    similarity_calculator {
      iou_similarity {
      }
    }
    anchor_generator {
      ssd_anchor_generator {
        num_layers: 6
        min_scale: 0.2
        max_scale: 0.95
        aspect_ratios: 1.0
        aspect_ratios: 2.0
        aspect_ratios: 0.5
        aspect_ratios: 3.0
        aspect_ratios: 0.3333
      }
    }
    image_resizer {
      fixed_shape_resizer {
        height: 300
        width: 300
      }
    }
    box_predictor {
      convolutional_box_predictor {
        min_depth: 0
        max_depth: 0
        num_layers_before_predictor: 0
        use_dropout: false
        dropout_keep_probability: 0.8
        kernel_size: 3
        box_code_size: 4
        apply_sigmoid_to_scores: false
        conv_hyperparams {
          activation: RELU_6,
          regularizer {
            l2_regularizer {
              weight: 0.00004
            }
          }
          initializer {
            truncated_normal_initializer {
              stddev: 0.03
              mean: 0.0
            }
          }
          batch_norm {
            train: true,
            scale: true,
            center: true,
            decay: 0.9997,
            epsilon: 0.001,
          }
        }
      }
    }
    feature_extractor {
      type: 'ssd_mobilenet_v2'
      min_depth: 16
      depth_multiplier: 1.0
      use_depthwise: true
      conv_hyperparams {
        activation: RELU_6,
        regularizer {
          l2_regularizer {
            weight: 0.00004
          }
        }
        initializer {
          truncated_normal_initializer {
            stddev: 0.03
            mean: 0.0
          }
        }
        batch_norm {
          train: true,
          scale: true,
          center: true,
          decay: 0.9997,
          epsilon: 0.001,
        }
      }
      batch_norm_trainable: true
    }
    loss {
      classification_loss {
        weighted_sigmoid {
        }
      }
      localization_loss {
        weighted_smooth_l1 {
        }
      }
      hard_example_miner {
        num_hard_examples: 3000
        iou_threshold: 0.99
        loss_type: CLASSIFICATION
        max_negatives_per_positive: 3
        min_negatives_per_image: 3
      }
      classification_weight: 1.0
      localization_weight: 1.0
    }
    normalize_loss_by_num_matches: true
    post_processing {
      batch_non_max_suppression {
        score_threshold: 1e-8
        iou_threshold: 0.6
        max_detections_per_class: 100
        max_total_detections: 100
      }
      score_converter: SIGMOID
    }
  }
}

train_config: {
  batch_size: 24
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/model.ckpt"
  data_augmentation_options {
    random_horizontal_flip {
    }
  }
}
"""

# The model block of the TF OD API `faster_rcnn_resnet101_pets.config`, written out for this
# test; `faster_rcnn_resnet50_coco.config` differs in `type` and `num_classes`.
FASTER_RCNN_RESNET101_PETS = """\
# Faster R-CNN with Resnet-101 (v1), configured for Oxford-IIIT Pets Dataset.
model {
  faster_rcnn {
    num_classes: 37
    image_resizer {
      keep_aspect_ratio_resizer {
        min_dimension: 600
        max_dimension: 1024
      }
    }
    feature_extractor {
      type: 'faster_rcnn_resnet101'
      first_stage_features_stride: 16
    }
    first_stage_anchor_generator {
      grid_anchor_generator {
        scales: [0.25, 0.5, 1.0, 2.0]
        aspect_ratios: [0.5, 1.0, 2.0]
        height_stride: 16
        width_stride: 16
      }
    }
    first_stage_box_predictor_conv_hyperparams {
      op: CONV
      regularizer {
        l2_regularizer {
          weight: 0.0
        }
      }
      initializer {
        truncated_normal_initializer {
          stddev: 0.01
        }
      }
    }
    first_stage_nms_score_threshold: 0.0
    first_stage_nms_iou_threshold: 0.7
    first_stage_max_proposals: 300
    first_stage_localization_loss_weight: 2.0
    first_stage_objectness_loss_weight: 1.0
    initial_crop_size: 14
    maxpool_kernel_size: 2
    maxpool_stride: 2
    second_stage_box_predictor {
      mask_rcnn_box_predictor {
        use_dropout: false
        dropout_keep_probability: 1.0
        fc_hyperparams {
          op: FC
          regularizer {
            l2_regularizer {
              weight: 0.0
            }
          }
          initializer {
            variance_scaling_initializer {
              factor: 1.0
              uniform: true
              mode: FAN_AVG
            }
          }
        }
      }
    }
    second_stage_post_processing {
      batch_non_max_suppression {
        score_threshold: 0.0
        iou_threshold: 0.6
        max_detections_per_class: 100
        max_total_detections: 300
      }
      score_converter: SOFTMAX
    }
    second_stage_localization_loss_weight: 2.0
    second_stage_classification_loss_weight: 1.0
  }
}
"""


@kdet.feature_extractors.register_feature_extractor("config_test_tiny_ssd")
class ConfigTestTinySSDExtractor(kdet.feature_extractors.SSDFeatureExtractor):
    """A user's SSD extractor: maps at strides 8 and 16."""

    def __init__(self, depth=8, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.convs = [
            keras.layers.Conv2D(depth, 3, strides=2, padding="same", activation="relu")
            for _ in range(4)
        ]

    def preprocess(self, images):
        return images / 127.5 - 1.0

    def call(self, images, training=None):
        maps, x = [], images
        for conv in self.convs:
            x = conv(x)
            maps.append(x)
        return maps[2:]

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


TINY_SSD = """\
model {
  ssd {
    num_classes: 3
    image_resizer { fixed_shape_resizer { height: 64 width: 64 } }
    feature_extractor { type: 'config_test_tiny_ssd' }
    box_coder { faster_rcnn_box_coder { } }
    matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.4 } }
    similarity_calculator { iou_similarity { } }
    anchor_generator {
      ssd_anchor_generator { num_layers: 2 aspect_ratios: [1.0, 2.0, 0.5] }
    }
    box_predictor { convolutional_box_predictor { kernel_size: 3 use_dropout: false } }
    loss {
      classification_loss { weighted_sigmoid { } }
      localization_loss { weighted_smooth_l1 { delta: 0.5 } }
    }
    post_processing {
      batch_non_max_suppression { max_total_detections: 10 }
      score_converter: SIGMOID
    }
  }
}
"""

TINY_FASTER_RCNN = TINY_FASTER_RCNN_CONFIG


def _index(text, needle, occurrence):
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    return index


def _prefix(text, index):
    """The `<string>:line:column: ` prefix of an error at `text[index]`."""
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return f"<string>:{line}:{column}: "


def _at(text, needle, occurrence=0):
    """The error prefix at the `occurrence`-th `needle` of `text`."""
    return _prefix(text, _index(text, needle, occurrence))


def _at_brace(text, needle, occurrence=0):
    """The error prefix at the first `{` after the `occurrence`-th `needle`: a message."""
    return _prefix(text, text.index("{", _index(text, needle, occurrence)))


def _error(text):
    """The message of the `ConfigError` building `text` raises."""
    with pytest.raises(ConfigError) as raised:
        build_model_from_text(text)
    return str(raised.value)


def _replace(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _without_names(config):
    """A JSON-normalized config without the `name` entries Keras makes unique per session."""
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def _initializer_config(layer, attribute="kernel_initializer"):
    return keras.initializers.serialize(getattr(layer, attribute))["config"]


# -- the TF OD API configs ------------------------------------------------------------------


def test_ssd_mobilenet_v2_coco_builds_the_zoo_model():
    model = build_model_from_text(SSD_MOBILENET_V2_COCO)
    assert isinstance(model, kdet.SSD)
    zoo_config = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").config
    # The zoo's config.json loads as the same model (its earlier format: tests/zoo/test_zoo.py).
    zoo_model = keras.saving.deserialize_keras_object(zoo_config)
    serialize = keras.saving.serialize_keras_object
    built = json.loads(json.dumps(serialize(model)))
    zoo = json.loads(json.dumps(serialize(zoo_model)))
    assert built["class_name"] == zoo["class_name"] == "SSD"
    assert _without_names(built["config"]) == _without_names(zoo["config"])


def test_accepted_hyperparams_are_the_ones_the_kdet_layers_use():
    model = build_model_from_text(SSD_MOBILENET_V2_COCO)
    extra_layers = [
        layer for block in model.feature_extractor.extra_layers for layer in block.layers
    ]
    batch_norms = [
        layer for layer in extra_layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert batch_norms
    for batch_norm in batch_norms:
        assert (batch_norm.momentum, batch_norm.epsilon) == (0.9997, 1e-3)
        assert batch_norm.center and batch_norm.scale
    for layer in extra_layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            assert _initializer_config(layer, "depthwise_initializer")["stddev"] == 0.03
        elif isinstance(layer, keras.layers.Conv2D):
            assert _initializer_config(layer) == {"mean": 0.0, "stddev": 0.03, "seed": None}
    for head in model.box_predictor.box_heads + model.box_predictor.class_heads:
        assert _initializer_config(head.layers[-1])["stddev"] == 0.03


def _regularizer_config(regularizer):
    return regularizer and keras.regularizers.serialize(regularizer)


def test_l2_regularizer_weight_is_halved_for_keras_on_the_layers_it_configures():
    model = build_model_from_text(SSD_MOBILENET_V2_COCO)
    expected = _regularizer_config(keras.regularizers.L2(0.5 * 0.00004))
    extractor, predictor = model.feature_extractor, model.box_predictor
    assert _regularizer_config(extractor.kernel_regularizer) == expected
    assert _regularizer_config(predictor.kernel_regularizer) == expected
    assert not extractor.regularize_depthwise and not predictor.regularize_depthwise
    extra_layers = [layer for block in extractor.extra_layers for layer in block.layers]
    convs = [layer for layer in extractor.body.layers + extra_layers if _is_conv(layer)]
    convs += [head.layers[-1] for head in predictor.box_heads + predictor.class_heads]
    # MobileNetV2: 35 convolutions and 17 depthwise; extra layers: 8 and 4; heads: 12.
    assert len(convs) == (35 + 17) + (8 + 4) + 12
    for conv in convs:
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            assert conv.depthwise_regularizer is None
        else:
            assert _regularizer_config(conv.kernel_regularizer) == expected, conv.name


def _is_conv(layer):
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))


def test_regularize_depthwise_regularizes_the_depthwise_kernels():
    extractor_hyperparams = SSD_MOBILENET_V2_COCO.index("feature_extractor {")
    text = SSD_MOBILENET_V2_COCO[:extractor_hyperparams] + _replace(
        SSD_MOBILENET_V2_COCO[extractor_hyperparams:],
        "        activation: RELU_6,\n",
        "        activation: RELU_6,\n        regularize_depthwise: true\n",
    )
    extractor = build_model_from_text(text).feature_extractor
    assert extractor.regularize_depthwise
    extra_layers = [layer for block in extractor.extra_layers for layer in block.layers]
    depthwise = [
        layer
        for layer in extractor.body.layers + extra_layers
        if isinstance(layer, keras.layers.DepthwiseConv2D)
    ]
    assert len(depthwise) == 17 + 4
    for layer in depthwise:
        assert layer.depthwise_regularizer.get_config() == {"l2": 0.5 * 0.00004}


def test_regularization_loss_of_a_small_ssd_is_half_the_weight_times_the_squared_kernels():
    text = _replace(
        TINY_SSD,
        "{ kernel_size: 3 use_dropout: false }",
        "{\n"
        "        kernel_size: 3 use_dropout: false\n"
        "        conv_hyperparams {\n"
        "          regularizer { l2_regularizer { weight: 0.004 } }\n"
        "          initializer { truncated_normal_initializer { stddev: 0.03 } }\n"
        "        }\n"
        "      }",
    )
    model = build_model_from_text(text)
    model.build((None, 64, 64, 3))
    predictor = model.box_predictor
    kernels = [head.layers[-1].kernel for head in predictor.box_heads + predictor.class_heads]
    regularized = [w.path for w in model.trainable_weights if w.regularizer is not None]
    assert sorted(regularized) == sorted(kernel.path for kernel in kernels)
    squares = sum(float(np.sum(np.square(kernel.numpy()))) for kernel in kernels)
    assert squares > 0
    np.testing.assert_allclose(
        float(keras.ops.sum(model.losses)), 0.5 * 0.004 * squares, rtol=1e-5
    )


def test_faster_rcnn_regularizers_go_to_the_rpn_and_box_classifier_heads():
    text = _replace(
        TINY_FASTER_RCNN,
        "    first_stage_max_proposals: 20\n",
        "    first_stage_max_proposals: 20\n"
        "    first_stage_box_predictor_conv_hyperparams {\n"
        "      regularizer { l2_regularizer { weight: 0.002 } }\n"
        "      initializer { truncated_normal_initializer { stddev: 0.01 } }\n"
        "    }\n",
    )
    text = _replace(
        text,
        "mask_rcnn_box_predictor { }",
        "mask_rcnn_box_predictor {\n"
        "      fc_hyperparams { op: FC regularizer { l1_regularizer { weight: 0.003 } } }\n"
        "    }",
    )
    model = build_model_from_text(text)
    rpn_head, box_head = model.region_proposal_network.rpn_head, model.roi_heads.box_predictor
    rpn_hyperparams = model.get_config()["region_proposal_network"]["config"]["rpn_head"]["config"][
        "conv_hyperparams"
    ]
    assert rpn_hyperparams["config"]["kernel_regularizer"] == (
        _regularizer_config(keras.regularizers.L2(0.5 * 0.002))
    )
    assert rpn_head.kernel_regularizer.get_config() == {"l2": 0.5 * 0.002}
    # Keras keeps an L1 factor as float32.
    assert box_head.kernel_regularizer.get_config() == keras.regularizers.L1(0.003).get_config()
    model.build((None, 64, 64, 3))
    rpn_kernels = [
        rpn_head.rpn_conv.kernel, rpn_head.box_predictor.kernel, rpn_head.class_predictor.kernel
    ]  # fmt: skip
    box_kernels = [box_head.class_predictor.kernel, box_head.box_predictor.kernel]
    regularized = {w.path for w in model.trainable_weights if w.regularizer is not None}
    assert regularized == {kernel.path for kernel in rpn_kernels + box_kernels}
    expected = 0.5 * 0.002 * sum(float(np.sum(np.square(k.numpy()))) for k in rpn_kernels)
    expected += 0.003 * sum(float(np.sum(np.abs(k.numpy()))) for k in box_kernels)
    np.testing.assert_allclose(float(keras.ops.sum(model.losses)), expected, rtol=1e-5)


def test_fpn_conv_hyperparams_regularize_the_pyramid():
    text = _replace(
        TINY_FASTER_RCNN,
        "type: 'config_test_tiny_two_stage' first_stage_features_stride: 8",
        "type: 'faster_rcnn_mobilenet_v2_fpn'\n"
        "      fpn { min_level: 3 max_level: 6 additional_layer_depth: 16 }\n"
        "      conv_hyperparams {\n"
        "        activation: RELU_6 regularize_depthwise: true\n"
        "        regularizer { l2_regularizer { weight: 0.0004 } }\n"
        "        batch_norm { decay: 0.997 epsilon: 0.001 scale: true }\n"
        "      }",
    )
    text = _replace(
        text,
        "grid_anchor_generator {\n"
        "        height: 32 width: 32 height_stride: 8 width_stride: 8\n"
        "        scales: [0.5, 1.0] aspect_ratios: [1.0]\n",
        "multiscale_anchor_generator {\n"
        "        min_level: 3 max_level: 6 aspect_ratios: [1.0] normalize_coordinates: false\n",
    )
    extractor = build_model_from_text(text).feature_extractor
    assert extractor.kernel_regularizer.get_config() == {"l2": 0.5 * 0.0004}
    assert extractor.regularize_depthwise
    pyramid = extractor.feature_pyramid
    assert pyramid.kernel_regularizer.get_config() == {"l2": 0.5 * 0.0004}
    assert pyramid.regularize_depthwise and pyramid.use_depthwise
    # The body stays unregularized, as in the TF OD API Faster R-CNN FPN extractors.
    assert all(
        getattr(layer, "kernel_regularizer", None) is None for layer in extractor.body.layers
    )


def test_zero_and_negative_regularizer_weights():
    text = _replace(
        TINY_FASTER_RCNN,
        "    first_stage_max_proposals: 20\n",
        "    first_stage_max_proposals: 20\n"
        "    first_stage_box_predictor_conv_hyperparams {\n"
        "      regularizer { l2_regularizer { weight: 0.0 } }\n"
        "    }\n",
    )
    rpn_head = build_model_from_text(text).region_proposal_network.rpn_head
    assert rpn_head.kernel_regularizer is None
    text = _replace(text, "weight: 0.0 ", "weight: -0.1 ")
    assert _error(text) == (
        f"{_at(text, 'weight')}'model.faster_rcnn.first_stage_box_predictor_conv_hyperparams."
        "regularizer.l2_regularizer.weight' is -0.1, but a regularization weight must not be "
        "negative"
    )


@pytest.fixture(scope="module")
def resnet101_pets():
    return build_model_from_text(FASTER_RCNN_RESNET101_PETS)


def test_faster_rcnn_resnet101_pets(resnet101_pets):
    model = resnet101_pets
    assert isinstance(model, kdet.FasterRCNN)
    assert isinstance(
        model.feature_extractor, kdet.feature_extractors.FasterRCNNResNet101FeatureExtractor
    )
    assert model.feature_extractor.first_stage_features_stride == 16
    assert model.feature_extractor.batch_norm_trainable is False
    assert model.image_resizer.get_config() == {
        "min_dimension": 600,
        "max_dimension": 1024,
        "pad_to_max_dimension": False,
        "resize_method": "legacy_bilinear",
    }
    assert model.region_proposal_network.anchor_generator.get_config() == {
        "scales": (0.25, 0.5, 1.0, 2.0),
        "aspect_ratios": (0.5, 1.0, 2.0),
        "base_anchor_size": (256.0, 256.0),
        "anchor_stride": (16.0, 16.0),
        "anchor_offset": (0.0, 0.0),
    }
    rpn, roi_heads = model.region_proposal_network, model.roi_heads
    assert model.num_classes == roi_heads.num_classes == 37
    assert (rpn.rpn_head.depth, rpn.rpn_head.kernel_size) == (512, 3)
    generator = rpn.proposal_generator
    assert (generator.nms_iou_threshold, generator.max_proposals) == (0.7, 300)
    assert (rpn.minibatch_size, rpn.positive_balance_fraction) == (256, 0.5)
    assert (rpn.localization_loss_weight, rpn.objectness_loss_weight) == (2.0, 1.0)
    cropper = roi_heads.roi_cropper
    assert (cropper.crop_size, cropper.maxpool_kernel_size, cropper.maxpool_stride) == (14, 2, 2)
    assert (roi_heads.batch_size, roi_heads.balance_fraction) == (64, 0.25)
    assert (roi_heads.localization_loss_weight, roi_heads.classification_loss_weight) == (2.0, 1.0)
    assert roi_heads.add_groundtruth_to_proposals is False
    nms = model.roi_heads.non_max_suppression
    assert (nms.score_threshold, nms.iou_threshold, nms.max_detections_per_class) == (0.0, 0.6, 100)
    assert (nms.max_detections, nms.score_converter) == (300, "softmax")
    head = model.roi_heads.box_predictor
    assert (head.num_classes, head.use_dropout, head.dropout_keep_probability) == (37, False, 1.0)


def test_accepted_faster_rcnn_hyperparams_are_the_ones_the_kdet_heads_use(resnet101_pets):
    rpn_head = resnet101_pets.region_proposal_network.rpn_head
    assert _initializer_config(rpn_head.rpn_conv)["stddev"] == 0.01
    head = resnet101_pets.roi_heads.box_predictor
    config = _initializer_config(head.class_predictor)
    assert (config["scale"], config["mode"], config["distribution"]) == (1.0, "fan_avg", "uniform")


def test_faster_rcnn_resnet50_coco():
    text = _replace(FASTER_RCNN_RESNET101_PETS, "resnet101'", "resnet50'")
    model = build_model_from_text(_replace(text, "num_classes: 37", "num_classes: 90"))
    assert isinstance(
        model.feature_extractor, kdet.feature_extractors.FasterRCNNResNet50FeatureExtractor
    )
    assert model.num_classes == model.roi_heads.box_predictor.num_classes == 90


def test_faster_rcnn_fpn_extractor_takes_multiscale_anchors_and_roi_align():
    text = _replace(
        TINY_FASTER_RCNN,
        "type: 'config_test_tiny_two_stage' first_stage_features_stride: 8",
        "type: 'faster_rcnn_mobilenet_v2_fpn_keras'\n"
        "      fpn { min_level: 3 max_level: 6 additional_layer_depth: 64 }",
    )
    text = _replace(
        text,
        "grid_anchor_generator {\n"
        "        height: 32 width: 32 height_stride: 8 width_stride: 8\n"
        "        scales: [0.5, 1.0] aspect_ratios: [1.0]\n",
        "multiscale_anchor_generator {\n"
        "        min_level: 3 max_level: 6 aspect_ratios: [1.0] normalize_coordinates: false\n",
    )
    model = build_model(parse(text).first("model"))
    extractor = model.feature_extractor
    assert isinstance(extractor, kdet.feature_extractors.FasterRCNNMobileNetV2FPNFeatureExtractor)
    assert (extractor.fpn_min_level, extractor.fpn_max_level) == (3, 6)
    assert extractor.additional_layer_depth == 64
    assert model.region_proposal_network.anchor_generator.get_config()["scales_per_octave"] == 2
    # The TF OD API's crop: every level 3..6, a 224-pixel RoI on level 5, initial_crop_size 6
    # samples on the RoI's edges, then maxpool 2/2; its RPN predictors one pair per level.
    cropper = model.roi_heads.roi_cropper
    assert (cropper.min_level, cropper.max_level, cropper.canonical_level) == (3, 6, 5)
    assert (cropper.crop_size, cropper.sampling_ratio, cropper.align_corners) == (6, 1, True)
    assert (cropper.maxpool_kernel_size, cropper.maxpool_stride) == (2, 2)
    assert len(model.region_proposal_network.rpn_head.box_predictors) == 4
    wrong_levels = _replace(text, "        min_level: 3", "        min_level: 4")
    assert _error(wrong_levels) == (
        f"{_at_brace(wrong_levels, 'multiscale_anchor_generator')}'model.faster_rcnn."
        "first_stage_anchor_generator.multiscale_anchor_generator' does not match the FPN "
        "feature extractor: use multiscale_anchor_generator with min_level 3 and max_level 6"
    )


# -- user-registered feature extractors -----------------------------------------------------


def test_user_registered_ssd_extractor_is_built_by_type_name():
    model = build_model_from_text(TINY_SSD)
    assert isinstance(model.feature_extractor, ConfigTestTinySSDExtractor)
    assert model.localization_loss.delta == 0.5
    assert model.matcher.unmatched_threshold == 0.4
    assert model.hard_example_miner is None
    detections = model.predict_on_batch(np.zeros([1, 64, 64, 3], "float32"))
    assert detections["boxes"].shape == (1, 10, 4)


def test_user_registered_faster_rcnn_extractor_gets_its_stride():
    model = build_model_from_text(TINY_FASTER_RCNN)
    assert isinstance(model.feature_extractor, ConfigTestTinyTwoStageExtractor)
    assert model.feature_extractor.first_stage_features_stride == 8
    detections = model.predict_on_batch(np.zeros([1, 64, 64, 3], "float32"))
    assert detections["boxes"].shape == (1, 10, 4)


def test_tf2_keras_type_names_the_kdet_extractor():
    text = _replace(TINY_SSD, "'config_test_tiny_ssd'", "'config_test_tiny_ssd_keras'")
    assert isinstance(build_model_from_text(text).feature_extractor, ConfigTestTinySSDExtractor)


def test_extractor_argument_it_does_not_take_is_accepted_only_at_its_default():
    text = _replace(TINY_SSD, "_ssd' }", "_ssd' depth_multiplier: 1.0 }")
    assert isinstance(build_model_from_text(text), kdet.SSD)
    text = text.replace("depth_multiplier: 1.0", "depth_multiplier: 0.5")
    assert _error(text) == (
        f"{_at(text, 'depth_multiplier')}'model.ssd.feature_extractor.depth_multiplier' is 0.5, "
        "but the 'config_test_tiny_ssd' feature extractor takes no depth_multiplier; only 1.0 "
        "(the TF OD API default) is accepted"
    )


# -- errors ---------------------------------------------------------------------------------


def test_unknown_field_with_a_close_known_name():
    text = _replace(TINY_SSD, "num_classes: 3", "num_clases: 3")
    assert _error(text) == (
        f"{_at(text, 'num_clases')}'model.ssd.num_clases' is not a field kdet supports "
        "(did you mean 'num_classes'?)"
    )


def test_unknown_field_without_a_close_known_name():
    text = _replace(TINY_SSD, "{ kernel_size: 3", "{ flux_capacitor: true kernel_size: 3")
    assert _error(text) == (
        f"{_at(text, 'flux_capacitor')}'model.ssd.box_predictor.convolutional_box_predictor."
        "flux_capacitor' is not a field kdet supports"
    )


def test_restating_field_with_another_value():
    text = _replace(TINY_SSD, "kernel_size: 3", "kernel_size: 3 box_code_size: 5")
    assert _error(text) == (
        f"{_at(text, 'box_code_size')}'model.ssd.box_predictor.convolutional_box_predictor."
        "box_code_size' is 5, but kdet uses 4: kdet's SSD box coder (faster_rcnn_box_coder) "
        "encodes a box in 4 numbers"
    )


def test_batch_norm_left_at_a_tf_od_api_default_is_applied():
    # The feature extractor's batch_norm without `scale: true`: the proto default false.
    extractor = SSD_MOBILENET_V2_COCO.index("feature_extractor {")
    text = SSD_MOBILENET_V2_COCO[:extractor] + _replace(
        SSD_MOBILENET_V2_COCO[extractor:], "          scale: true,\n", ""
    )
    model = build_model_from_text(text)
    batch_norms = [
        layer
        for block in model.feature_extractor.extra_layers
        for layer in block.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert batch_norms and not any(layer.scale for layer in batch_norms)


def test_default_score_converter_identity_is_applied():
    # The TF OD API default IDENTITY: the class logits are the scores (no longer refused).
    text = _replace(TINY_SSD, "      score_converter: SIGMOID\n", "")
    model = build_model_from_text(text)
    assert model.non_max_suppression.score_converter == "identity"
    logits = tf.constant([[[0.5, -2.0, 3.0, 1.0]]])
    outputs = {
        "box_encodings": tf.zeros([1, 1, 4]),
        "class_logits": logits,
        "anchors": tf.constant([[0.1, 0.1, 0.5, 0.5]]),
        "scale": tf.ones([1, 2]),
    }
    _, scores = model.decode_boxes_and_scores(outputs)
    np.testing.assert_allclose(scores, logits[..., 1:])


@pytest.mark.parametrize(
    "old, new, needle, problem",
    [
        ("num_classes: 3", 'num_classes: "3"', "num_classes",
         "'model.ssd.num_classes' expects an integer, got the string '3'"),
        ("num_layers: 2", "num_layers: 2 min_scale { }", "min_scale",
         "'model.ssd.anchor_generator.ssd_anchor_generator.min_scale' expects a number, got a "
         "message { ... }"),
        ("num_classes: 3", "num_classes: 3 num_classes: 4", "num_classes: 4",
         "'model.ssd.num_classes' is set twice (first at 3:5); it takes a single value"),
        ("height: 64", "height: 6.4", "height",
         "'model.ssd.image_resizer.fixed_shape_resizer.height' expects an integer, got the "
         "number 6.4"),
        ("score_converter: SIGMOID", "score_converter: 'SIGMOID'", "score_converter",
         "'model.ssd.post_processing.score_converter' expects one of IDENTITY, SIGMOID, "
         "SOFTMAX, got the string 'SIGMOID'"),
        ("image_resizer {", "image_resizer: 300 image_resizer_x {", "image_resizer",
         "'model.ssd.image_resizer' expects a message: name { ... }, got the number 300"),
    ],
)  # fmt: skip
def test_wrong_types(old, new, needle, problem):
    text = _replace(TINY_SSD, old, new)
    assert _error(text) == _at(text, needle) + problem


def test_missing_num_classes_is_reported_at_the_enclosing_message():
    text = _replace(TINY_SSD, "    num_classes: 3\n", "")
    assert _error(text) == (
        f"{_at_brace(text, 'ssd')}'model.ssd' is missing the required field 'num_classes'"
    )


def test_missing_feature_extractor_type():
    text = _replace(TINY_SSD, "{ type: 'config_test_tiny_ssd' }", "{ }")
    assert _error(text) == (
        f"{_at(text, '{ }')}'model.ssd.feature_extractor' is missing the required field 'type'"
    )


def test_unknown_feature_extractor_type_gives_the_registry_error():
    text = _replace(TINY_SSD, "'config_test_tiny_ssd'", "'ssd_mobilenet_v3'")
    message = _error(text)
    assert message.startswith(
        f"{_at(text, 'type')}'model.ssd.feature_extractor.type': unknown feature extractor "
        "'ssd_mobilenet_v3'. Did you mean 'ssd_mobilenet_v2'? Registered: ["
    )
    assert "'config_test_tiny_ssd'" in message


def test_feature_extractor_of_the_other_meta_architecture():
    text = _replace(TINY_SSD, "'config_test_tiny_ssd'", "'config_test_tiny_two_stage'")
    message = _error(text)
    assert message.startswith(
        f"{_at(text, 'type')}'model.ssd.feature_extractor.type' is 'config_test_tiny_two_stage', "
        "which is not a subclass of SSDFeatureExtractor; 'model.ssd.feature_extractor' takes one "
        "of ["
    )


def test_conv_hyperparams_of_a_user_extractor_are_rejected():
    text = _replace(
        TINY_SSD,
        "type: 'config_test_tiny_ssd' }",
        "type: 'config_test_tiny_ssd' conv_hyperparams { activation: RELU_6 } }",
    )
    assert _error(text).startswith(
        f"{_at(text, 'conv_hyperparams')}'model.ssd.feature_extractor.conv_hyperparams' is set, "
        "but the 'config_test_tiny_ssd' feature extractor takes no conv_hyperparams"
    )


def test_inconsistent_values_are_reported_at_the_field_or_message():
    text = _replace(TINY_FASTER_RCNN, "maxpool_kernel_size: 2", "maxpool_kernel_size: 8")
    assert _error(text) == (
        f"{_at(text, 'maxpool_kernel_size')}'model.faster_rcnn.maxpool_kernel_size' is 8, larger "
        "than initial_crop_size 6"
    )
    text = _replace(
        TINY_SSD,
        "convolutional_box_predictor { kernel_size: 3 use_dropout: false }",
        "weight_shared_convolutional_box_predictor { depth: 8 }",
    )
    assert _error(text).startswith(
        f"{_at(text, '{ depth')}'model.ssd.box_predictor.weight_shared_convolutional_box_predictor'"
        ": WeightSharedConvolutionalBoxPredictor shares its predictor convolutions"
    )


def test_model_must_hold_exactly_one_known_kind():
    both = _replace(TINY_SSD, "  }\n}\n", "  }\n  faster_rcnn { }\n}\n")
    assert _error(both) == (
        f"{_at(both, 'faster_rcnn { }')}'model' sets both 'ssd' and 'faster_rcnn'; only one of "
        "them is allowed"
    )
    assert _error("model { }") == (
        "<string>:1:7: 'model' needs one of 'ssd', 'faster_rcnn', 'center_net'"
    )
    assert _error("model {\n  center_net { }\n}") == (
        "<string>:2:14: 'model.center_net' is missing the required field 'num_classes'"
    )
    assert _error("model {\n  centre_net { }\n}") == (
        "<string>:2:3: 'model.centre_net' is not a field kdet supports (did you mean "
        "'center_net'?)"
    )


def test_pipeline_without_a_model():
    assert _error("train_config { batch_size: 2 }") == (
        "<string>:1:1: the config has no 'model' field: expected model { ssd { ... } } or "
        "model { faster_rcnn { ... } }"
    )
    with pytest.raises(ConfigError, match=r"^my\.config:1:1: "):
        build_model_from_text("", source="my.config")


def test_ssd_freeze_batchnorm_reaches_the_model():
    text = SSD_MOBILENET_V2_COCO.replace(
        "num_classes: 90", "num_classes: 90\n    freeze_batchnorm: true"
    )
    assert build_model_from_text(text).freeze_batchnorm
