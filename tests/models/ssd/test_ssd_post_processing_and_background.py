"""kdet.SSD: the injected non_max_suppression (post_processing), add_background_class: false,
negative_class_weight, and older configs with post-processing scalars."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_ssd_extractor
from kdet.layers import FixedShapeResizer
from kdet.layers import MultiClassNonMaxSuppression
from kdet.layers import SSDAnchorGenerator
from kdet.models.ssd import SSD
from kdet.models.ssd import WeightSharedConvolutionalBoxPredictor

IMAGE_SIZE = 64
NUM_CLASSES = 2
NO_BOXES = (-tf.ones([1, 1, 4]), -tf.ones([1, 1], tf.int32))


def _ssd(**kwargs):
    return SSD(
        num_classes=NUM_CLASSES,
        feature_extractor=tiny_ssd_extractor.TinyTwoMapSSDExtractor(),
        image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        **kwargs,
    )


def test_default_post_processing_is_the_tf_od_api_default_with_sigmoid():
    model = _ssd()
    nms = model.non_max_suppression
    assert isinstance(nms, MultiClassNonMaxSuppression)
    # An omitted config field and an omitted argument agree: score_threshold 0.0.
    assert (nms.score_converter, nms.score_threshold, nms.iou_threshold) == ("sigmoid", 0.0, 0.6)
    assert (model.max_detections_per_class, model.max_detections) == (100, 100)


def test_injected_non_max_suppression_is_used_and_round_trips(tmp_path):
    nms = MultiClassNonMaxSuppression(
        score_threshold=0.3, max_detections=7, use_class_agnostic_nms=True,
        soft_nms_sigma=0.5, score_converter="softmax", logit_scale=2.0,
    )
    model = _ssd(non_max_suppression=nms)
    images = tf.random.uniform([1, IMAGE_SIZE, IMAGE_SIZE, 3], 0, 255, seed=1)
    outputs = model(images)
    boxes, scores = model.decode_boxes_and_scores(outputs)
    expected = tf.nn.softmax(outputs["class_logits"] / 2.0)[..., 1:]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-7)
    detections = model.postprocess(outputs)
    assert detections["boxes"].shape == (1, 7, 4)
    assert (model.score_converter, model.score_threshold, model.logit_scale) == ("softmax", 0.3, 2.0)
    restored = SSD.from_config(json.loads(json.dumps(model.get_config())))
    assert restored.non_max_suppression.get_config() == nms.get_config()
    with pytest.raises(ValueError, match="either non_max_suppression"):
        _ssd(non_max_suppression=nms, score_threshold=0.5)


def test_older_configs_with_post_processing_arguments_still_load():
    config = _ssd().get_config()
    del config["non_max_suppression"]
    old = {
        "score_converter": "softmax", "logit_scale": 1.5, "score_threshold": 1e-8,
        "iou_threshold": 0.5, "max_detections_per_class": 20, "max_detections": 30,
    }
    model = SSD.from_config({**config, **old})
    assert {name: getattr(model, name) for name in old} == old
    assert model.non_max_suppression.max_detections == 30


def test_without_background_class_unmatched_anchors_have_all_zero_targets():
    model = _ssd(add_background_class=False)
    assert model.box_predictor.num_class_slots == NUM_CLASSES
    outputs = model(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3]))
    assert outputs["class_logits"].shape[-1] == NUM_CLASSES
    logits = tf.fill(tf.shape(outputs["class_logits"]), -3.0)
    losses = model.compute_losses({**outputs, "class_logits": logits}, *NO_BOXES)
    num_anchors = outputs["anchors"].shape[0]
    per_column = float(tf.nn.sigmoid_cross_entropy_with_logits(0.0, -3.0))
    np.testing.assert_allclose(
        losses["classification_loss"], num_anchors * NUM_CLASSES * per_column, rtol=1e-5
    )
    # Every column is a class: no column is dropped before NMS.
    _, scores = model.decode_boxes_and_scores({**outputs, "class_logits": logits})
    assert scores.shape[-1] == NUM_CLASSES
    np.testing.assert_allclose(scores, tf.sigmoid(logits), rtol=1e-6)
    assert SSD.from_config(model.get_config()).box_predictor.num_class_slots == NUM_CLASSES


def test_without_background_class_a_matched_anchor_targets_its_class_column():
    model = _ssd(add_background_class=False, normalize_loss_by_num_matches=False)
    outputs = model(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3]))
    logits = tf.zeros_like(outputs["class_logits"])
    # A box equal to one anchor (in pixels of the 64² image), label 2 → column 1.
    anchor = outputs["anchors"][0] * IMAGE_SIZE
    losses = model.compute_losses(
        {**outputs, "class_logits": logits}, anchor[tf.newaxis, tf.newaxis], tf.constant([[2]])
    )
    targets = model._target_assigner.assign(
        outputs["anchors"], outputs["anchors"][:1][tf.newaxis], tf.constant([[2]])
    )
    positives = float(tf.reduce_sum(targets["reg_weights"]))
    assert positives >= 1
    num_anchors = outputs["anchors"].shape[0]
    log2 = float(np.log(2.0))
    # Every column of every anchor costs log 2 at logit 0, whatever its target.
    np.testing.assert_allclose(
        losses["classification_loss"], num_anchors * NUM_CLASSES * log2, rtol=1e-5
    )
    # With logits +10 in column 1 (label 2) only, positive anchors cost nearly nothing.
    shifted = tf.concat([tf.fill(tf.shape(logits[..., :1]), -10.0),
                         tf.fill(tf.shape(logits[..., 1:]), 10.0)], axis=-1)
    shifted_loss = model.compute_losses(
        {**outputs, "class_logits": shifted}, anchor[tf.newaxis, tf.newaxis], tf.constant([[2]])
    )["classification_loss"]
    negatives_cost = (num_anchors - positives) * float(
        tf.nn.sigmoid_cross_entropy_with_logits(0.0, 10.0)
    )
    np.testing.assert_allclose(shifted_loss, negatives_cost, rtol=1e-3)


def test_predictor_and_model_must_agree_on_the_background_column():
    predictor = WeightSharedConvolutionalBoxPredictor(NUM_CLASSES, 6, depth=8)
    with pytest.raises(ValueError, match="add_background_class"):
        _ssd(add_background_class=False, box_predictor=predictor)


def test_negative_class_weight_scales_the_loss_of_unmatched_anchors():
    model = _ssd()
    outputs = model(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3]))
    full = model.compute_losses(outputs, *NO_BOXES)["classification_loss"]
    light = _ssd(negative_class_weight=0.25)
    light(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3]))
    light.set_weights(model.get_weights())
    scaled = light.compute_losses(light(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3])), *NO_BOXES)
    np.testing.assert_allclose(scaled["classification_loss"], 0.25 * float(full), rtol=1e-5)
    assert SSD.from_config(light.get_config()).negative_class_weight == 0.25
