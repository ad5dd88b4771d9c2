"""kdet.visualization.draw_detection_gallery: a batch tiled into one image, ground truth and
predictions overlaid in two colours."""

import numpy as np
import pytest

from kdet import visualization

GREEN, MAGENTA, WHITE, BLACK = (0, 255, 0), (255, 0, 255), (255, 255, 255), (0, 0, 0)
# yxyx pixels of 64 x 64 images; the prediction sits lower right of the ground truth, so the
# edges of both are visible, and caption tags (above a box's top-left corner) stay above row 30.
GT_BOX = [30.0, 10.0, 50.0, 30.0]
PREDICTED_BOX = [36.0, 36.0, 60.0, 60.0]


def _batch(num_images):
    images = np.zeros((num_images, 64, 64, 3), np.uint8)
    y_true = {
        "boxes": np.array([[GT_BOX, [-1.0] * 4]] * num_images, np.float32),
        "labels": np.array([[1, -1]] * num_images, np.int32),
    }
    predictions = {
        "boxes": np.array([[PREDICTED_BOX, GT_BOX]] * num_images, np.float32),
        "labels": np.array([[2, 1]] * num_images, np.int32),
        # The second prediction is under the threshold: it must not cover the ground truth.
        "confidences": np.array([[0.9, 0.3]] * num_images, np.float32),
        "num_detections": np.full((num_images,), 2, np.int32),
    }
    return images, y_true, predictions


def test_ground_truth_and_predictions_are_drawn_in_their_colours_on_every_tile():
    images, y_true, predictions = _batch(2)
    gallery = visualization.draw_detection_gallery(
        images, predictions, y_true, label_map={1: "cat", 2: "dog"}, cols=2, spacing=4
    )
    assert gallery.dtype == np.uint8 and gallery.shape == (64, 64 + 4 + 64, 3)
    for left in (0, 68):
        tile = gallery[:, left : left + 64]
        # Ground-truth box edges (top, left, bottom, right) are green.
        for y, x in [(30, 20), (40, 10), (50, 20), (40, 30)]:
            assert tuple(tile[y, x]) == GREEN, (left, y, x)
        # Prediction box edges are magenta.
        for y, x in [(36, 48), (48, 36), (60, 48), (48, 60)]:
            assert tuple(tile[y, x]) == MAGENTA, (left, y, x)
        # The prediction's caption tag is magenta, above its corner; ground truth has none.
        assert tuple(tile[34, 38]) == MAGENTA
        assert tuple(tile[28, 12]) == BLACK
        assert tuple(tile[40, 20]) == BLACK  # inside the ground-truth box
    # The spacing between tiles is white.
    assert (gallery[:, 64:68] == 255).all()


def test_tiles_follow_batch_order_row_by_row_and_empty_cells_stay_white():
    images, y_true, _ = _batch(3)
    images[1] = 100
    gallery = visualization.draw_detection_gallery(images, y_true=y_true, cols=2, spacing=2)
    assert gallery.shape == (64 + 2 + 64, 64 + 2 + 64, 3)
    assert tuple(gallery[5, 66 + 5]) == (100, 100, 100)  # image 1: first row, second column
    assert tuple(gallery[66 + 30, 20]) == GREEN  # image 2: second row, first column
    assert (gallery[66:, 66:] == 255).all()


def test_predictions_only_with_custom_colours_and_ground_truth_only():
    images, y_true, predictions = _batch(1)
    red, blue = (255, 0, 0), (0, 0, 255)
    only_predictions = visualization.draw_detection_gallery(
        images, predictions, prediction_color=red
    )
    assert tuple(only_predictions[48, 36]) == red and tuple(only_predictions[40, 10]) == BLACK
    only_truth = visualization.draw_detection_gallery(
        images, y_true=y_true, groundtruth_color=blue
    )
    assert tuple(only_truth[40, 10]) == blue and tuple(only_truth[48, 36]) == BLACK
    with pytest.raises(ValueError, match="neither"):
        visualization.draw_detection_gallery(images)


def test_draw_detections_without_captions_draws_the_box_alone():
    image = np.zeros((64, 64, 3), np.uint8)
    boxes = {"boxes": np.array([GT_BOX]), "labels": np.array([1])}
    plain = visualization.draw_detections(image, boxes, color=GREEN, captions=False)
    captioned = visualization.draw_detections(image, boxes, color=GREEN)
    assert tuple(plain[30, 20]) == GREEN
    assert not plain[:28].any()
    assert captioned[:28].any()
