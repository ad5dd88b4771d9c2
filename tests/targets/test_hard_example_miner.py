import keras
import numpy as np
import pytest
import tensorflow as tf

from kdet.targets import IGNORED
from kdet.targets import UNMATCHED
from kdet.targets import HardExampleMiner

U, I = UNMATCHED, IGNORED
# Ten disjoint boxes in a row.
BOXES = np.array([[0.0, 0.1 * i, 0.1, 0.1 * i + 0.05] for i in range(10)], "float32")
# Anchors 0 and 1 are positives, 2-8 negatives, 9 ignored (with the highest loss of all).
MATCH = [0, 1, U, U, U, U, U, U, U, I]
CLS_LOSSES = np.array([0.1, 0.2, 0.5, 0.9, 0.3, 0.8, 0.05, 0.6, 0.7, 5.0], "float32")
NO_LOC_LOSS = np.zeros([1, 10], "float32")


def _mine(miner, match=MATCH, cls_losses=CLS_LOSSES, loc_losses=NO_LOC_LOSS, boxes=BOXES):
    return miner(cls_losses[None], loc_losses, boxes[None], [match]).numpy()[0]


@pytest.mark.parametrize(
    "max_negatives_per_positive, expected",
    [
        (1, [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]),  # the two hardest negatives: 0.9, 0.8
        (3, [1, 1, 1, 1, 1, 1, 0, 1, 1, 0]),  # six: all but the easiest (0.05)
        (None, [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),  # every negative, never the ignored one
    ],
)
def test_keeps_positives_and_the_hardest_negatives_up_to_the_ratio(
    max_negatives_per_positive, expected
):
    miner = HardExampleMiner(max_negatives_per_positive=max_negatives_per_positive)
    np.testing.assert_array_equal(_mine(miner), expected)


def test_min_negatives_per_image_without_positives():
    match = [U] * 9 + [I]
    np.testing.assert_array_equal(_mine(HardExampleMiner(), match=match), np.zeros(10))
    np.testing.assert_array_equal(
        _mine(HardExampleMiner(min_negatives_per_image=2), match=match),
        [0, 0, 0, 1, 0, 1, 0, 0, 0, 0],
    )


def test_nms_suppresses_overlapping_lower_loss_negatives():
    boxes = BOXES.copy()
    boxes[5] = boxes[3]  # anchor 5 (loss 0.8) duplicates anchor 3 (loss 0.9)
    miner = HardExampleMiner(max_negatives_per_positive=1)
    np.testing.assert_array_equal(_mine(miner, boxes=boxes), [1, 1, 0, 1, 0, 0, 0, 0, 1, 0])
    # With NMS off (IoU threshold 1), the duplicate stays.
    miner = HardExampleMiner(iou_threshold=1.0, max_negatives_per_positive=1)
    np.testing.assert_array_equal(_mine(miner, boxes=boxes), [1, 1, 0, 1, 0, 1, 0, 0, 0, 0])


def test_num_hard_examples_caps_the_negatives():
    for iou_threshold in (0.99, 1.0):
        miner = HardExampleMiner(num_hard_examples=3, iou_threshold=iou_threshold)
        # The three hardest anchors are negatives 3, 5 and 8; positives stay regardless.
        np.testing.assert_array_equal(_mine(miner), [1, 1, 0, 1, 0, 1, 0, 0, 1, 0])


def test_loss_type_chooses_the_ranking():
    loc_losses = np.array([[5.0, 0.7, 0.6, 0.05, 0.8, 0.3, 0.65, 0.5, 0.2, 0.1]], "float32")
    kwargs = {"max_negatives_per_positive": 1}
    # Hardest negatives by cls: anchors 3 (0.9), 5 (0.8); by loc: anchors 4 (0.8), 6 (0.65).
    by_cls = _mine(HardExampleMiner(loss_type="cls", **kwargs), loc_losses=loc_losses)
    np.testing.assert_array_equal(by_cls, [1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    by_loc = _mine(HardExampleMiner(loss_type="loc", **kwargs), loc_losses=loc_losses)
    np.testing.assert_array_equal(by_loc, [1, 1, 0, 0, 1, 0, 1, 0, 0, 0])
    # 0.05 * cls + 0.06 * loc: anchors 4 (0.063) and 2 (0.061) lead anchor 7 (0.060).
    both = _mine(HardExampleMiner(loss_type="both", **kwargs), loc_losses=loc_losses)
    np.testing.assert_array_equal(both, [1, 1, 1, 0, 1, 0, 0, 0, 0, 0])


def test_batched_static_shape_under_tf_function():
    miner = HardExampleMiner(max_negatives_per_positive=1, min_negatives_per_image=1)
    mine = tf.function(miner)
    concrete = mine.get_concrete_function(
        tf.TensorSpec([2, 10], tf.float32),
        tf.TensorSpec([2, 10], tf.float32),
        tf.TensorSpec([2, 10, 4], tf.float32),
        tf.TensorSpec([2, 10], tf.int32),
    )
    assert concrete.structured_outputs.shape == (2, 10)
    mask = mine(
        tf.constant(np.stack([CLS_LOSSES, CLS_LOSSES])),
        tf.zeros([2, 10]),
        tf.constant(np.stack([BOXES, BOXES])),
        tf.constant([MATCH, [U] * 9 + [I]]),
    )
    np.testing.assert_array_equal(
        mask, [[1, 1, 0, 1, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]
    )


def test_config_round_trip():
    miner = HardExampleMiner(
        num_hard_examples=None,
        iou_threshold=1.0,
        loss_type="cls",
        max_negatives_per_positive=None,
        min_negatives_per_image=4,
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(miner))
    assert isinstance(restored, HardExampleMiner)
    assert restored.get_config() == miner.get_config()


def test_rejects_unknown_loss_type():
    with pytest.raises(ValueError, match="loss_type must be one of"):
        HardExampleMiner(loss_type="focal")
