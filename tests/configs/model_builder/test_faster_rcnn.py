"""The TF OD API `faster_rcnn` message → `kdet.FasterRCNN`: every value a config sets is held
by the built model, or refused with the reason."""

import json
import pathlib

import keras
import numpy as np
import pytest
from tiny_two_stage_extractor import TINY_FASTER_RCNN_CONFIG  # also registers the extractor

import kdet
from kdet.configs.model_builder import build_model_from_text
from kdet.configs.text_format import ConfigError
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import RPNHead

_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "data" / "tfod_configs"


_TINY = TINY_FASTER_RCNN_CONFIG


def _with(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _with_fields(fields):
    anchor = "    first_stage_max_proposals: 20\n"
    return _with(_TINY, anchor, anchor + fields)


def _error(text):
    with pytest.raises(ConfigError) as raised:
        build_model_from_text(text)
    return str(raised.value)


def test_absent_hyperparams_are_the_heads_defaults():
    model = build_model_from_text(_TINY)
    rpn_head = model.region_proposal_network.rpn_head
    assert rpn_head.conv_hyperparams == RPNHead.default_conv_hyperparams()
    box_head = model.roi_heads.box_predictor
    assert box_head.fc_hyperparams == BoxClassifierHead.default_fc_hyperparams()
    assert not box_head.share_box_across_classes
    assert model.region_proposal_network.clip_anchors_to_image is False
    assert model.region_proposal_network.rpn_head.dilation_rate == 1
    assert model.region_proposal_network.proposal_generator.score_threshold == 0.0


_NON_DEFAULT_FIELDS = """\
    first_stage_atrous_rate: 2
    first_stage_nms_score_threshold: 0.25
    clip_anchors_to_image: true
    use_static_shapes: true
    use_matmul_crop_and_resize: true
    use_matmul_gather_in_matcher: true
    use_static_balanced_label_sampler: true
    first_stage_box_predictor_conv_hyperparams {
      op: CONV
      activation: NONE
      regularizer { l1_regularizer { weight: 0.001 } }
      initializer { random_normal_initializer { mean: 0.1 stddev: 0.02 } }
      batch_norm { decay: 0.95 epsilon: 0.0001 scale: true train: false }
    }
"""
_NON_DEFAULT_BOX_PREDICTOR = """mask_rcnn_box_predictor {
      use_dropout: true
      dropout_keep_probability: 0.75
      share_box_across_classes: true
      fc_hyperparams {
        op: FC
        regularizer { l2_regularizer { weight: 0.0004 } }
        initializer { variance_scaling_initializer { factor: 2.0 uniform: false mode: FAN_IN } }
        batch_norm { decay: 0.9 center: false }
      }
    }"""


def _check_non_default_values(model):
    rpn = model.region_proposal_network.rpn_head
    assert rpn.rpn_conv.dilation_rate == (2, 2)
    for conv in (rpn.rpn_conv, rpn.box_predictor, rpn.class_predictor):
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.RandomNormal)
        assert (initializer.mean, initializer.stddev) == pytest.approx((0.1, 0.02))
        assert conv.kernel_regularizer.get_config()["l1"] == pytest.approx(0.001)
    assert not rpn.rpn_conv.use_bias  # a centering batch norm follows
    norm = rpn.rpn_batch_norm
    assert (norm.momentum, norm.epsilon) == pytest.approx((0.95, 1e-4))
    assert norm.center and norm.scale and norm.frozen
    head = model.roi_heads.box_predictor
    assert head.share_box_across_classes and head.box_predictor.units == 4
    assert head.use_dropout and head.dropout_keep_probability == 0.75
    for dense, norm in [
        (head.class_predictor, head.class_batch_norm),
        (head.box_predictor, head.box_batch_norm),
    ]:
        initializer = dense.kernel_initializer
        assert isinstance(initializer, keras.initializers.VarianceScaling)
        assert (initializer.scale, initializer.mode, initializer.distribution) == (
            2.0, "fan_in", "truncated_normal"
        )  # fmt: skip
        assert dense.kernel_regularizer.get_config()["l2"] == pytest.approx(0.5 * 0.0004)
        assert dense.use_bias  # the batch norm does not center
        assert norm.momentum == pytest.approx(0.9) and not norm.center and not norm.scale
    assert model.region_proposal_network.clip_anchors_to_image is True
    assert model.region_proposal_network.proposal_generator.score_threshold == pytest.approx(0.25)


def test_non_default_values_are_held_by_the_layers_and_round_trip(tmp_path):
    text = _with(_with_fields(_NON_DEFAULT_FIELDS), "mask_rcnn_box_predictor { }",
                 _NON_DEFAULT_BOX_PREDICTOR)  # fmt: skip
    model = build_model_from_text(text)
    _check_non_default_values(model)
    config = json.loads(json.dumps(model.get_config()))
    _check_non_default_values(kdet.FasterRCNN.from_config(config))
    images = np.random.default_rng(0).uniform(0, 255, [1, 64, 64, 3]).astype("float32")
    expected = model.predict(images, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _check_non_default_values(loaded)
    np.testing.assert_allclose(loaded.predict(images, verbose=0)["boxes"], expected["boxes"])


def test_refused_fields_say_why():
    message = _error(_with_fields("    hard_example_miner { num_hard_examples: 64 }\n"))
    assert "'model.faster_rcnn.hard_example_miner' is set, but kdet's Faster R-CNN samples" in (
        message
    )
    assert message.startswith("<string>:")
    message = _error(_with_fields("    output_final_box_features: true\n"))
    assert "'model.faster_rcnn.output_final_box_features' is true, but kdet uses false" in message
    message = _error(
        _with(_TINY, "mask_rcnn_box_predictor { }", "mask_rcnn_box_predictor { box_code_size: 6 }")
    )
    assert "box coder encodes a box in 4 numbers" in message
    message = _error(
        _with_fields("    first_stage_box_predictor_conv_hyperparams { op: FC }\n")
    )
    assert "'model.faster_rcnn.first_stage_box_predictor_conv_hyperparams.op' is FC" in message


def test_mask_head_hyperparams_without_masks_change_nothing():
    text = _with(
        _TINY,
        "mask_rcnn_box_predictor { }",
        "mask_rcnn_box_predictor { conv_hyperparams { op: CONV activation: NONE } }",
    )
    assert _unnamed(build_model_from_text(text).get_config()) == _unnamed(
        build_model_from_text(_TINY).get_config()
    )


def _unnamed(config):
    """A config without its (unique, numbered) layer names."""
    if isinstance(config, dict):
        return {key: _unnamed(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_unnamed(value) for value in config]
    return config


def test_a_mask_field_without_a_mask_stage_builds_faster_rcnn():
    model = build_model_from_text(_with_fields("    resize_masks: false\n"))
    assert type(model) is kdet.FasterRCNN


def _read_model_block(name):
    return build_model_from_text((_CONFIGS / name).read_text(), name)


@pytest.mark.parametrize(
    "name",
    [
        "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8.config",
        "faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8.config",
    ],
)
def test_tf2_configs_build_with_their_values(name):
    model = _read_model_block(name)
    assert model.region_proposal_network.clip_anchors_to_image is True
    rpn_hyperparams = model.region_proposal_network.rpn_head.conv_hyperparams
    assert rpn_hyperparams.kernel_initializer.get_config()["stddev"] == pytest.approx(0.01)
    assert rpn_hyperparams.kernel_regularizer is None  # l2 weight 0.0
    head = model.roi_heads.box_predictor
    # tf2/faster_rcnn_resnet50_v1_640x640 shares one box across classes, the FPN one does not.
    assert head.share_box_across_classes is ("fpn" not in name)
    assert head.fc_hyperparams.kernel_initializer.get_config()["mode"] == "fan_avg"


def test_second_stage_classification_loss_and_post_processing():
    model = build_model_from_text(_TINY)
    assert isinstance(
        model.roi_heads.classification_loss, kdet.losses.WeightedSoftmaxClassificationLoss
    )
    nms = model.roi_heads.non_max_suppression
    assert (nms.score_converter, nms.max_detections, nms.iou_threshold) == ("softmax", 10, 0.6)
    text = _with_fields(
        "    second_stage_classification_loss {\n"
        "      weighted_sigmoid_focal { gamma: 1.5 alpha: 0.4 }\n"
        "    }\n"
    )
    loss = build_model_from_text(text).roi_heads.classification_loss
    assert isinstance(loss, kdet.losses.SigmoidFocalClassificationLoss)
    assert (loss.gamma, loss.alpha) == pytest.approx((1.5, 0.4))
    text = _with_fields(
        "    second_stage_classification_loss { weighted_softmax { logit_scale: 2.0 } }\n"
    )
    assert build_model_from_text(text).roi_heads.classification_loss.logit_scale == 2.0


def test_grid_anchor_generator_fields():
    text = _with(
        _TINY,
        "height: 32 width: 32 height_stride: 8 width_stride: 8",
        "height: 40 width: 24 height_stride: 8 width_stride: 4 height_offset: 2 width_offset: 3 "
        "octaves: 2",
    )
    config = build_model_from_text(text).region_proposal_network.anchor_generator.get_config()
    assert config["base_anchor_size"] == (40.0, 24.0)
    assert config["anchor_stride"] == (8.0, 4.0)
    assert config["anchor_offset"] == (2.0, 3.0)
    assert config["scales"] == (0.5, 1.0) and config["aspect_ratios"] == (1.0,)


def test_number_of_stages():
    assert build_model_from_text(_TINY).number_of_stages == 2
    for fields in ("    number_of_stages: 1\n", "    first_stage_only: true\n"):
        assert build_model_from_text(_with_fields(fields)).number_of_stages == 1
    message = _error(_with_fields("    number_of_stages: 3\n"))
    assert ("'model.faster_rcnn.number_of_stages' is 3 (instance masks), but "
            "second_stage_box_predictor.mask_rcnn_box_predictor.predict_instance_masks is not "
            "true") in message


def test_second_stage_score_converter_and_logit_scale_are_applied():
    text = _with(_TINY, "score_converter: SOFTMAX", "score_converter: SIGMOID logit_scale: 2.0")
    nms = build_model_from_text(text).roi_heads.non_max_suppression
    assert (nms.score_converter, nms.logit_scale) == ("sigmoid", 2.0)
    # logits [0, 4] → sigmoid(logits / 2)
    scores = nms.convert_scores(np.array([[[0.0, 4.0]]], "float32"))
    np.testing.assert_allclose(np.asarray(scores)[0, 0], 1 / (1 + np.exp([0.0, -2.0])), rtol=1e-6)


def test_absent_fields_take_the_constructor_defaults():
    # One default table: a field the config leaves out is not passed, so the component's
    # constructor default applies (docs/faster_rcnn.md: where it differs from the proto's).
    model = build_model_from_text(_TINY)
    rpn, roi_heads = model.region_proposal_network, model.roi_heads
    default_rpn = kdet.models.faster_rcnn.RegionProposalNetwork()
    default_roi_heads = kdet.models.faster_rcnn.RoIHeads(2)
    for name in ("clip_anchors_to_image", "minibatch_size", "positive_balance_fraction",
                 "localization_loss_weight", "objectness_loss_weight"):  # fmt: skip
        assert getattr(rpn, name) == getattr(default_rpn, name), name
    assert rpn.localization_loss_weight == 2.0  # the TF OD API proto's is 1.0
    assert rpn.rpn_head.depth == default_rpn.rpn_head.depth == 512
    generator = rpn.proposal_generator
    assert generator.nms_iou_threshold == default_rpn.proposal_generator.nms_iou_threshold
    assert generator.max_proposals == 20  # set by the config
    for name in ("balance_fraction", "localization_loss_weight", "classification_loss_weight"):
        assert getattr(roi_heads, name) == getattr(default_roi_heads, name), name
    assert roi_heads.batch_size == 8  # set by the config
    text = _with_fields(
        "    first_stage_localization_loss_weight: 1.0\n"
        "    second_stage_localization_loss_weight: 1.5\n"
    )
    model = build_model_from_text(text)
    assert model.region_proposal_network.localization_loss_weight == 1.0
    assert model.roi_heads.localization_loss_weight == 1.5
