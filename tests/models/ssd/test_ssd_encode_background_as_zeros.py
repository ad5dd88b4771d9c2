"""kdet.SSD(encode_background_as_zeros=True): unmatched anchors get all-zero class targets."""

import numpy as np
import pytest
import tensorflow as tf

import tiny_ssd_extractor
from kdet.layers import FixedShapeResizer
from kdet.layers import SSDAnchorGenerator
from kdet.models.ssd import SSD

IMAGE_SIZE = 64
NUM_CLASSES = 2
BACKGROUND_LOGIT = 5.0
CLASS_LOGIT = -5.0


def _ssd(encode_background_as_zeros):
    return SSD(
        num_classes=NUM_CLASSES,
        feature_extractor=tiny_ssd_extractor.TinyTwoMapSSDExtractor(),
        image_resizer=FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        encode_background_as_zeros=encode_background_as_zeros,
    )


def _classification_loss(model, gt_boxes, gt_labels):
    """The sigmoid classification loss of logits `BACKGROUND_LOGIT` in the background column and
    `CLASS_LOGIT` in the class columns, for every anchor."""
    outputs = model(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3]))
    logits = tf.concat(
        [
            tf.fill(tf.shape(outputs["class_logits"][..., :1]), BACKGROUND_LOGIT),
            tf.fill(tf.shape(outputs["class_logits"][..., 1:]), CLASS_LOGIT),
        ],
        axis=-1,
    )
    losses = model.compute_losses({**outputs, "class_logits": logits}, gt_boxes, gt_labels)
    return float(losses["classification_loss"]), outputs["anchors"].shape[0]


@pytest.mark.parametrize(
    "encode_background_as_zeros, background_target", [(False, 1.0), (True, 0.0)]
)
def test_unmatched_anchors_target_the_background_column_only_without_it(
    encode_background_as_zeros, background_target
):
    model = _ssd(encode_background_as_zeros)
    # An image without boxes: every anchor is unmatched, the normalizer is 1.
    loss, num_anchors = _classification_loss(
        model, -tf.ones([1, 1, 4]), -tf.ones([1, 1], tf.int32)
    )
    background = tf.nn.sigmoid_cross_entropy_with_logits(
        tf.constant(background_target), tf.constant(BACKGROUND_LOGIT)
    )
    classes = tf.nn.sigmoid_cross_entropy_with_logits(tf.constant(0.0), tf.constant(CLASS_LOGIT))
    expected = num_anchors * (float(background) + NUM_CLASSES * float(classes))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_get_config_round_trip():
    model = _ssd(True)
    assert model.get_config()["encode_background_as_zeros"] is True
    assert SSD.from_config(model.get_config()).encode_background_as_zeros
