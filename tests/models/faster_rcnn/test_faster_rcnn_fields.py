"""FasterRCNN arguments of TF OD API `faster_rcnn` fields: the built model holds and applies
them (hyperparams of both heads, atrous RPN, anchor clipping, proposal score threshold, a box
shared across classes)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_faster_rcnn import _shapes
from test_faster_rcnn import _tiny_faster_rcnn

import kdet
from kdet.layers import ConvHyperparams
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import RPNHead

_RPN_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.RandomNormal(stddev=0.05),
    kernel_regularizer=keras.regularizers.L2(0.5 * 4e-4),
    activation="relu",  # not used: the RPN convolution is always ReLU6
    batch_norm={"momentum": 0.97, "epsilon": 1e-4, "scale": True, "train": False},
)
_FC_HYPERPARAMS = ConvHyperparams(
    kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
    kernel_regularizer=keras.regularizers.L1(3e-4),
    activation=None,
    batch_norm={"momentum": 0.9, "epsilon": 1e-2},
)


def _check_heads_hold_the_hyperparams(model):
    rpn = model.region_proposal_network.rpn_head
    assert rpn.rpn_conv.dilation_rate == (2, 2)
    # Centering batch norm after the RPN conv: no bias there; the predictors keep theirs.
    assert rpn.rpn_conv.use_bias is False
    assert rpn.box_predictor.use_bias and rpn.class_predictor.use_bias
    norm = rpn.rpn_batch_norm
    assert norm.name == "RPNBatchNorm"
    assert (norm.momentum, norm.epsilon) == pytest.approx((0.97, 1e-4))
    assert norm.center and norm.scale
    assert norm.frozen  # batch_norm.train: false
    for conv in (rpn.rpn_conv, rpn.box_predictor, rpn.class_predictor):
        assert isinstance(conv.kernel_initializer, keras.initializers.RandomNormal)
        assert conv.kernel_initializer.stddev == 0.05
        assert conv.kernel_regularizer.get_config()["l2"] == pytest.approx(0.5 * 4e-4)
    head = model.roi_heads.box_predictor
    assert head.share_box_across_classes
    for dense, norm in [
        (head.class_predictor, head.class_batch_norm),
        (head.box_predictor, head.box_batch_norm),
    ]:
        assert isinstance(dense.kernel_initializer, keras.initializers.TruncatedNormal)
        assert dense.kernel_initializer.stddev == 0.02
        assert dense.kernel_regularizer.get_config()["l1"] == pytest.approx(3e-4)
        assert dense.use_bias is False and dense.activation is keras.activations.linear
        assert (norm.momentum, norm.epsilon) == pytest.approx((0.9, 1e-2))
        assert norm.center and not norm.scale
    assert head.box_batch_norm.name == "BoxEncodingPredictor_batchnorm"
    assert head.box_predictor.units == 4  # one box for all classes


def test_heads_hold_and_round_trip_their_hyperparams(tmp_path):
    model = _tiny_faster_rcnn(
        rpn={
            "rpn_head": RPNHead(6, depth=16, dilation_rate=2, conv_hyperparams=_RPN_HYPERPARAMS)
        },
        roi_heads={
            "box_predictor": BoxClassifierHead(
                3, share_box_across_classes=True, fc_hyperparams=_FC_HYPERPARAMS
            )
        },
    )
    _check_heads_hold_the_hyperparams(model)
    config = json.loads(json.dumps(model.get_config()))
    revived = kdet.FasterRCNN.from_config(config)
    _check_heads_hold_the_hyperparams(revived)
    images, y = _shapes(2)
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert all(np.isfinite(value) for value in logs.values())
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _check_heads_hold_the_hyperparams(loaded)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0)["boxes"], model.predict(images, verbose=0)["boxes"],
        atol=1e-5,
    )


def test_rpn_activation_is_relu6_whatever_the_hyperparams_say():
    head = RPNHead(1, depth=1, kernel_size=1, conv_hyperparams=ConvHyperparams(activation=None))
    features = tf.constant([[[[-3.0], [2.0], [9.0]]]])
    head(features)
    head.rpn_conv.kernel.assign(np.ones([1, 1, 1, 1], np.float32))
    head.rpn_conv.bias.assign(np.zeros([1], np.float32))
    head.box_predictor.kernel.assign(np.ones([1, 1, 1, 4], np.float32))
    head.box_predictor.bias.assign(np.zeros([4], np.float32))
    box_encodings, _ = head(features)
    np.testing.assert_allclose(box_encodings[0, :, 0], [0.0, 2.0, 6.0])


def test_a_shared_box_is_every_class_box():
    model = _tiny_faster_rcnn(
        roi_heads={"box_predictor": BoxClassifierHead(3, share_box_across_classes=True)}
    )
    images, y = _shapes(2)
    outputs = model(images)
    assert outputs["box_encodings"].shape[2] == 3
    np.testing.assert_array_equal(
        outputs["box_encodings"][:, :, 0], outputs["box_encodings"][:, :, 2]
    )
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert np.isfinite(logs["box_classifier_box_loss"])


def test_clip_anchors_to_image():
    images, _ = _shapes(1)
    # 64-pixel anchors at stride 8 reach past a 64-pixel image: unclipped in training unless
    # clip_anchors_to_image, always clipped at inference (the TF OD API's rule) unless an RPN
    # saved before asks otherwise (clip_anchors_at_inference False).
    unclipped = _tiny_faster_rcnn()._first_stage(images, training=True)["anchors"]
    assert float(tf.reduce_min(unclipped)) < 0.0 and float(tf.reduce_max(unclipped)) > 1.0
    expected = tf.clip_by_value(unclipped, 0.0, 1.0)
    inference = _tiny_faster_rcnn()._first_stage(images, training=False)["anchors"]
    np.testing.assert_allclose(inference, expected)
    older = _tiny_faster_rcnn(rpn={"clip_anchors_at_inference": False})
    np.testing.assert_allclose(older._first_stage(images, training=False)["anchors"], unclipped)
    model = _tiny_faster_rcnn(rpn={"clip_anchors_to_image": True})
    np.testing.assert_allclose(model._first_stage(images, training=True)["anchors"], expected)
    assert model.get_config()["region_proposal_network"]["config"]["clip_anchors_to_image"]


def test_first_stage_nms_score_threshold_drops_proposals():
    images, _ = _shapes(1)
    # Freshly initialized, the RPN scores every box about 0.5.
    kept = _tiny_faster_rcnn()._first_stage(images, training=False)["proposals"]
    assert bool(tf.reduce_any(kept >= 0.0))
    model = _tiny_faster_rcnn(
        rpn={
            "proposal_generator": kdet.layers.ProposalGenerator(max_proposals=20, score_threshold=0.9)
        }
    )
    dropped = model._first_stage(images, training=False)["proposals"]
    np.testing.assert_array_equal(dropped, -1.0)


def test_second_stage_loss_and_post_processing_are_injected():
    nms = kdet.layers.MultiClassNonMaxSuppression(
        score_converter="sigmoid", logit_scale=2.0, use_class_agnostic_nms=True, max_detections=7
    )
    model = _tiny_faster_rcnn(
        roi_heads={
            "classification_loss": kdet.losses.WeightedSigmoidClassificationLoss(),
            "non_max_suppression": nms,
        }
    )
    images, y = _shapes(2)
    outputs = model(images)
    # Sigmoid of logits / 2 for each column, background dropped after, as the TF OD API.
    scores = tf.sigmoid(outputs["class_logits"] / 2.0)[..., 1:]
    detections = model.postprocess(outputs)
    assert detections["boxes"].shape == (2, 7, 4)
    top = detections["confidences"][0, 0]
    valid = tf.reduce_any(outputs["proposals"][0] >= 0.0, axis=-1)
    np.testing.assert_allclose(top, tf.reduce_max(tf.boolean_mask(scores[0], valid)), rtol=1e-5)
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert np.isfinite(logs["box_classifier_class_loss"])
    revived = kdet.FasterRCNN.from_config(json.loads(json.dumps(model.get_config())))
    assert isinstance(
        revived.roi_heads.classification_loss, kdet.losses.WeightedSigmoidClassificationLoss
    )
    assert revived.roi_heads.non_max_suppression.get_config() == nms.get_config()


def test_matchers_are_injected_and_round_trip():
    model = _tiny_faster_rcnn()
    assert model.region_proposal_network.matcher.get_config() == kdet.targets.ArgmaxMatcher(
        0.7, 0.3, force_match_for_each_row=True
    ).get_config()
    assert model.roi_heads.matcher.get_config() == kdet.targets.ArgmaxMatcher(
        0.5, 0.5
    ).get_config()
    # No anchor reaches IoU 0.99 with a groundtruth box, and nothing forces a match.
    strict = kdet.targets.ArgmaxMatcher(0.99, 0.99)
    images, y = _shapes(1)
    positives = []
    for matcher in (None, strict):
        model = _tiny_faster_rcnn(rpn={"matcher": matcher})
        outputs = model.forward_train(
            images, tf.constant(y["boxes"], tf.float32), tf.constant(y["labels"]), False
        )
        targets = model.region_proposal_network._target_assigner.assign(
            outputs["anchors"], outputs["gt_frame"], tf.constant(y["labels"])
        )
        positives.append(int(tf.reduce_sum(tf.cast(targets["cls_targets"] > 0, tf.int32))))
    assert positives[0] > 0 and positives[1] == 0
    revived = kdet.FasterRCNN.from_config(json.loads(json.dumps(model.get_config())))
    assert revived.region_proposal_network.matcher.get_config() == strict.get_config()


def test_one_stage_is_the_region_proposal_network_alone():
    model = _tiny_faster_rcnn(number_of_stages=1)
    images, y = _shapes(2)
    outputs = model(images)
    assert "class_logits" not in outputs
    detections = model.predict(images, verbose=0)
    assert detections["boxes"].shape == (2, 20, 4)
    count = int(detections["num_detections"][0])
    assert count > 0
    np.testing.assert_array_equal(detections["labels"][0, :count], 1)
    np.testing.assert_array_equal(detections["labels"][0, count:], -1)
    np.testing.assert_allclose(
        detections["confidences"][0, :count], outputs["proposal_scores"][0, :count], rtol=1e-6
    )
    model.compile()
    logs = model.train_on_batch(images, y, return_dict=True)
    assert logs["box_classifier_class_loss"] == logs["box_classifier_box_loss"] == 0.0
    assert logs["rpn_objectness_loss"] > 0.0
    assert not model.roi_heads.box_predictor.built
    assert kdet.FasterRCNN.from_config(model.get_config()).number_of_stages == 1
    with pytest.raises(ValueError, match="number_of_stages must be 1"):
        _tiny_faster_rcnn(number_of_stages=3)


def test_default_hyperparams_do_not_shift_the_layers_seeds():
    # Keras initializers draw their seed from Python's random when constructed: building the
    # default templates must not move it, so seeded default models keep their initial weights.
    import random

    keras.utils.set_random_seed(3)
    before = random.getstate()
    RPNHead.default_conv_hyperparams()
    BoxClassifierHead.default_fc_hyperparams()
    assert random.getstate() == before
    keras.utils.set_random_seed(3)
    head = RPNHead(2, depth=4)
    head(tf.zeros([1, 4, 4, 3]))
    keras.utils.set_random_seed(3)
    reference = keras.layers.Conv2D(
        4, 3, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01)
    )
    reference.build((None, 4, 4, 3))
    np.testing.assert_array_equal(head.rpn_conv.kernel.numpy(), reference.kernel.numpy())
