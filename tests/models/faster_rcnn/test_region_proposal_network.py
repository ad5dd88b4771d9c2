"""kdet.models.faster_rcnn.RegionProposalNetwork: outputs, losses, injected parts, config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.models.faster_rcnn import RegionProposalNetwork
from kdet.models.faster_rcnn import RPNHead
from kdet.models.faster_rcnn import default_anchor_generator


def _features(batch=2, size=8, channels=4):
    return tf.random.stateless_normal([batch, size, size, channels], seed=(1, 2))


def test_outputs_of_one_feature_map():
    rpn = RegionProposalNetwork(
        default_anchor_generator(8),
        rpn_head=RPNHead(12, depth=8),
        proposal_generator=kdet.layers.ProposalGenerator(max_proposals=10),
    )
    outputs = rpn(_features(), image_size=(64, 64), window=tf.ones([2, 2]))
    num_anchors = 8 * 8 * 12
    assert outputs["anchors"].shape == (num_anchors, 4)
    assert outputs["rpn_box_encodings"].shape == (2, num_anchors, 4)
    assert outputs["rpn_objectness_logits"].shape == (2, num_anchors, 2)
    assert outputs["proposals"].shape == (2, 10, 4)
    assert outputs["proposal_scores"].shape == (2, 10)
    np.testing.assert_array_equal(outputs["num_proposals"], [10, 10])
    assert rpn.max_proposals == 10
    # Proposals are clipped to each image's content window.
    half = rpn(_features(), image_size=(64, 64), window=tf.constant([[0.5, 1.0], [1.0, 0.5]]))
    assert float(tf.reduce_max(half["proposals"][0, :, 2])) <= 0.5
    assert float(tf.reduce_max(half["proposals"][1, :, 3])) <= 0.5


def test_a_pyramid_shares_the_head_and_the_anchor_generator_must_agree():
    generator = kdet.layers.MultiscaleGridAnchorGenerator(3, 4, anchor_scale=4.0,
                                                          aspect_ratios=(1.0,),
                                                          scales_per_octave=1)  # fmt: skip
    rpn = RegionProposalNetwork(generator, rpn_head=RPNHead(1, depth=4))
    maps = [_features(1, 8), _features(1, 4)]
    outputs = rpn(maps, image_size=(64, 64), window=tf.ones([1, 2]))
    assert outputs["anchors"].shape == (64 + 16, 4)
    with pytest.raises(ValueError, match="same number of anchors per location"):
        RegionProposalNetwork(kdet.layers.SSDAnchorGenerator())


def test_losses_apply_the_weights_and_the_matcher():
    rpn = RegionProposalNetwork(default_anchor_generator(8), rpn_head=RPNHead(12, depth=8))
    outputs = rpn(_features(1), image_size=(64, 64), window=tf.ones([1, 2]))
    gt_boxes = tf.constant([[[0.1, 0.1, 0.6, 0.5], [-1.0, -1.0, -1.0, -1.0]]])
    gt_labels = tf.constant([[1, -1]])
    losses = rpn.compute_losses(outputs, gt_boxes, gt_labels)
    assert set(losses) == set(RegionProposalNetwork.loss_names)
    assert float(losses["rpn_objectness_loss"]) > 0 and float(losses["rpn_box_loss"]) > 0
    heavier = RegionProposalNetwork.from_config(
        {**rpn.get_config(), "localization_loss_weight": 4.0, "objectness_loss_weight": 3.0}
    )
    weighted = heavier.compute_losses(outputs, gt_boxes, gt_labels)
    # The sampler draws its random negatives again, so only the box loss (positives) is
    # the same up to its weight; the objectness loss of the same sample would be 3x.
    np.testing.assert_allclose(weighted["rpn_box_loss"], 2.0 * losses["rpn_box_loss"], rtol=1e-5)
    # No anchor reaches IoU 0.99 and nothing forces a match: no positive, no box loss.
    strict = RegionProposalNetwork.from_config(
        {
            **rpn.get_config(),
            "matcher": keras.saving.serialize_keras_object(kdet.targets.ArgmaxMatcher(0.99, 0.99)),
        }
    )
    assert float(strict.compute_losses(outputs, gt_boxes, gt_labels)["rpn_box_loss"]) == 0.0


def test_config_round_trip():
    rpn = RegionProposalNetwork(
        default_anchor_generator(8),
        rpn_head=RPNHead(12, depth=8, kernel_regularizer=keras.regularizers.L2(0.1)),
        proposal_generator=kdet.layers.ProposalGenerator(max_proposals=7, score_threshold=0.2),
        matcher=kdet.targets.ArgmaxMatcher(0.6, 0.2),
        clip_anchors_to_image=True,
        minibatch_size=32,
        positive_balance_fraction=0.25,
        localization_loss_weight=1.0,
        objectness_loss_weight=0.5,
    )
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(rpn)))
    revived = keras.saving.deserialize_keras_object(config)
    assert isinstance(revived, RegionProposalNetwork)
    assert json.loads(json.dumps(keras.saving.serialize_keras_object(revived))) == config
    assert revived.matcher.get_config() == rpn.matcher.get_config()
    assert revived.proposal_generator.score_threshold == 0.2
    assert revived.rpn_head.kernel_regularizer.get_config() == {"l2": 0.1}
    assert (revived.minibatch_size, revived.clip_anchors_to_image) == (32, True)
