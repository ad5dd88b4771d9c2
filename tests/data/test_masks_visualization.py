"""`kdet.visualization` draws instance masks as a translucent fill in each box's colour."""

import numpy as np
import pytest

from kdet import visualization

GRAY = 100
MASK = np.zeros([20, 30], np.uint8)
MASK[5:12, 6:18] = 1


def image():
    return np.full([20, 30, 3], GRAY, np.uint8)


def blended(color, alpha=visualization.MASK_ALPHA):
    return np.round((1 - alpha) * GRAY + alpha * np.asarray(color)).astype(np.uint8)


def test_ground_truth_masks_filled_in_the_box_colour():
    y = {
        "boxes": np.array([[4, 5, 13, 19], [-1, -1, -1, -1]], np.float32),
        "labels": np.array([3, -1]),
        "masks": np.stack([MASK, np.ones_like(MASK)]),  # the padding row's mask is not drawn
    }
    drawn = visualization.draw_detections(image(), y, captions=False, color=(0, 255, 0))
    # Inside the mask, off the box outline: blended; outside the mask: untouched.
    np.testing.assert_array_equal(drawn[8, 10], blended((0, 255, 0)))
    np.testing.assert_array_equal(drawn[16:, 20:], GRAY)
    np.testing.assert_array_equal(drawn[8, 25], GRAY)
    # Without a colour the class colour fills it, as it draws the box.
    drawn = visualization.draw_detections(image(), y, captions=False)
    np.testing.assert_array_equal(drawn[8, 10], blended(visualization._class_color(3)))


def test_predicted_masks_by_score_and_mask_threshold():
    probabilities = MASK * 0.9 + 0.2 * (1 - MASK)  # 0.2 outside the object
    predictions = {
        "boxes": np.array([[[4, 5, 13, 19], [0, 0, 20, 30]]], np.float32),
        "labels": np.array([[1, 2]]),
        "confidences": np.array([[0.9, 0.3]]),
        "masks": np.stack([probabilities, np.ones_like(probabilities)])[np.newaxis],
    }
    drawn = visualization.draw_detections(
        image(), predictions, captions=False, color=(255, 0, 255), line_thickness=1
    )
    np.testing.assert_array_equal(drawn[8, 10], blended((255, 0, 255)))
    # The 0.3-score box and the 0.2 probabilities are not drawn.
    np.testing.assert_array_equal(drawn[16, 25], GRAY)
    drawn = visualization.draw_detections(
        image(), predictions, captions=False, color=(255, 0, 255), mask_threshold=0.1,
        mask_alpha=1.0,
    )
    np.testing.assert_array_equal(drawn[16, 25], (255, 0, 255))


def test_gallery_draws_the_masks_of_a_batch():
    y = {"boxes": np.array([[[4, 5, 13, 19]]] * 2, np.float32), "labels": np.ones([2, 1], int),
         "masks": np.stack([MASK[np.newaxis]] * 2)}
    gallery = visualization.draw_detection_gallery(np.stack([image(), image()]), y_true=y)
    assert np.sum(np.all(gallery == blended(visualization.GROUNDTRUTH_COLOR), axis=-1)) > 100


def test_masks_of_another_size_are_refused():
    y = {"boxes": np.array([[4, 5, 13, 19]], np.float32), "labels": np.array([1]),
         "masks": np.zeros([1, 10, 15])}
    with pytest.raises(ValueError, match=r"\[1, 20, 30\] .*got \(1, 10, 15\)"):
        visualization.draw_detections(image(), y)
