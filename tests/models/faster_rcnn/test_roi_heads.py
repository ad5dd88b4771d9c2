"""kdet.models.faster_rcnn.RoIHeads: crops, predictions, RoI sampling, losses, detections,
config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.models.faster_rcnn import BoxClassifierHead
from kdet.models.faster_rcnn import RoIHeads

_ROIS = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8], [-1.0, -1.0, -1.0, -1.0]]])


def test_crops_and_predictions_of_one_map_and_of_a_pyramid():
    heads = RoIHeads(3, kdet.layers.CropAndResizeRoIPooler(8), batch_size=32)
    crops = heads.crop([tf.ones([1, 16, 16, 5])], _ROIS, image_size=(128, 128))
    assert crops.shape == (3, 4, 4, 5)
    outputs = heads(crops, _ROIS)
    assert outputs["class_logits"].shape == (1, 3, 4)
    assert outputs["box_encodings"].shape == (1, 3, 3, 4)
    pyramid = RoIHeads(3, kdet.layers.MultiLevelRoIAlign(2, 3, crop_size=3))
    maps = [tf.ones([1, 32, 32, 5]), tf.ones([1, 16, 16, 5]), tf.ones([1, 8, 8, 5])]
    # Only the cropper's levels (the first two maps) are cropped from.
    assert pyramid.crop(maps, _ROIS, image_size=(128, 128)).shape == (3, 3, 3, 5)


def test_sampling_keeps_batch_size_rois_with_the_groundtruth_among_them():
    gt_boxes = tf.constant([[[0.2, 0.2, 0.7, 0.6], [-1.0, -1.0, -1.0, -1.0]]])
    gt_labels = tf.constant([[2, -1]])
    no_proposals = -tf.ones([1, 5, 4])
    sampled = RoIHeads(3, batch_size=4).sample(no_proposals, gt_boxes, gt_labels)
    assert sampled["rois"].shape == (1, 4, 4)
    # The groundtruth box is the one candidate: sampled first, its own target.
    np.testing.assert_allclose(sampled["rois"][0, 0], gt_boxes[0, 0])
    np.testing.assert_array_equal(sampled["roi_weights"][0], [1.0, 0.0, 0.0, 0.0])
    assert int(sampled["roi_cls_targets"][0, 0]) == 2
    without = RoIHeads(3, batch_size=4, add_groundtruth_to_proposals=False)
    assert float(tf.reduce_sum(without.sample(no_proposals, gt_boxes, gt_labels)["roi_weights"])) == 0


def test_losses_read_the_box_of_the_groundtruth_class():
    heads = RoIHeads(2, batch_size=4, localization_loss_weight=1.0)
    class_logits = tf.zeros([1, 2, 3])
    # Class 2's box encoding is exact for the positive RoI, class 1's is off.
    box_encodings = tf.constant([[[[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.0]]] * 2])
    outputs = {
        "class_logits": class_logits,
        "box_encodings": box_encodings,
        "roi_weights": tf.constant([[1.0, 1.0]]),
        "roi_cls_targets": tf.constant([[2, 0]]),
        "roi_reg_targets": tf.zeros([1, 2, 4]),
    }
    losses = heads.compute_losses(outputs)
    assert float(losses["box_classifier_box_loss"]) == 0.0
    np.testing.assert_allclose(losses["box_classifier_class_loss"], np.log(3.0), rtol=1e-5)


def test_postprocess_gives_label_ids_and_drops_padding_proposals():
    heads = RoIHeads(2, non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(
        score_converter="softmax", max_detections=5))  # fmt: skip
    outputs = {
        "proposals": _ROIS,
        "scale": tf.ones([1, 2]),
        "class_logits": tf.constant([[[0.0, 0.0, 6.0], [0.0, 5.0, 0.0], [0.0, 9.0, 0.0]]]),
        "box_encodings": tf.zeros([1, 3, 2, 4]),
    }
    detections = heads.postprocess(outputs)
    assert detections["labels"][0, 0] == 2 and detections["labels"][0, 1] == 1
    np.testing.assert_allclose(detections["boxes"][0, 0], _ROIS[0, 0], atol=1e-6)
    # The padding proposal's high score does not count.
    count = int(detections["num_detections"][0])
    assert not np.any(np.all(detections["boxes"][0, :count] == -1.0, axis=-1))


def test_rejects_a_box_predictor_of_other_classes_and_round_trips_its_config():
    with pytest.raises(ValueError, match="box_predictor predicts 4 classes"):
        RoIHeads(3, box_predictor=BoxClassifierHead(4))
    heads = RoIHeads(
        3,
        kdet.layers.MultiLevelRoIAlign(2, 5, crop_size=4),
        box_predictor=BoxClassifierHead(3, share_box_across_classes=True),
        matcher=kdet.targets.ArgmaxMatcher(0.6, 0.4),
        classification_loss=kdet.losses.WeightedSigmoidClassificationLoss(),
        non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(score_converter="sigmoid"),
        batch_size=16,
        balance_fraction=0.5,
        localization_loss_weight=1.0,
        classification_loss_weight=0.5,
        add_groundtruth_to_proposals=False,
    )
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(heads)))
    revived = keras.saving.deserialize_keras_object(config)
    assert json.loads(json.dumps(keras.saving.serialize_keras_object(revived))) == config
    assert isinstance(revived.roi_cropper, kdet.layers.MultiLevelRoIAlign)
    assert revived.box_predictor.share_box_across_classes
    assert (revived.batch_size, revived.add_groundtruth_to_proposals) == (16, False)
