import io

import matplotlib.figure
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kdet import visualization

RED = (255, 0, 0)
# yxyx pixels; the caption tag sits above the box (rows < 20), away from the probed pixels.
BOX = [20.0, 10.0, 50.0, 40.0]


def black():
    return np.zeros((64, 64, 3), np.uint8)


def one_box(label=1, confidence=0.9):
    return {
        "boxes": np.array([BOX], np.float32),
        "labels": np.array([label], np.int32),
        "confidences": np.array([confidence], np.float32),
    }


def test_box_edges_are_coloured_and_inside_untouched():
    drawn = visualization.draw_detections(black(), one_box(), color=RED, line_thickness=2)
    assert drawn.dtype == np.uint8 and drawn.shape == (64, 64, 3)
    for y, x in [(20, 25), (50, 25), (35, 10), (35, 40), (21, 25), (35, 39)]:
        assert tuple(drawn[y, x]) == RED, (y, x)
    for y, x in [(22, 25), (35, 25), (35, 12), (35, 45), (55, 25)]:
        assert tuple(drawn[y, x]) == (0, 0, 0), (y, x)
    # The caption tag is filled with the box colour just above the top-left corner.
    assert tuple(drawn[18, 12]) == RED


def test_input_image_is_not_modified():
    image = black()
    visualization.draw_detections(image, one_box())
    assert not image.any()


def test_padding_low_scores_and_rows_past_num_detections_draw_nothing():
    detections = {
        "boxes": np.array([BOX, BOX, BOX, [-1.0] * 4], np.float32),
        "labels": np.array([1, 2, 3, -1], np.int32),
        "confidences": np.array([0.49, 0.5, 0.9, 0.0], np.float32),
        "num_detections": np.int32(2),
    }
    # Row 0 is under the threshold, row 1 is at it (kept), row 2 is past num_detections,
    # row 3 is padding: only row 1 must be drawn.
    drawn = visualization.draw_detections(black(), detections, score_threshold=0.5)
    row_1 = {key: value[1:2] for key, value in detections.items() if key != "num_detections"}
    np.testing.assert_array_equal(
        drawn, visualization.draw_detections(black(), row_1, score_threshold=0.0)
    )
    assert drawn.any()
    detections["num_detections"] = np.int32(0)
    np.testing.assert_array_equal(visualization.draw_detections(black(), detections), black())


def test_ground_truth_padding_rows_draw_nothing():
    padded = {
        "boxes": np.array([[-1.0] * 4, BOX, [-1.0] * 4], np.float32),
        "labels": np.array([-1, 1, -1], np.int32),
    }
    unpadded = {"boxes": np.array([BOX], np.float32), "labels": np.array([1], np.int32)}
    np.testing.assert_array_equal(
        visualization.draw_detections(black(), padded),
        visualization.draw_detections(black(), unpadded),
    )


def test_most_confident_of_overlapping_boxes_is_drawn_on_top():
    colours = {}
    for order in ([0, 1], [1, 0]):
        detections = {
            "boxes": np.array([BOX, BOX], np.float32),
            "labels": np.array([1, 2], np.int32)[order],
            "confidences": np.array([0.6, 0.9], np.float32)[order],
        }
        colours[tuple(order)] = tuple(visualization.draw_detections(black(), detections)[35, 10])
    label_2 = tuple(visualization.draw_detections(black(), one_box(label=2))[35, 10])
    assert colours[(0, 1)] == colours[(1, 0)] == label_2


def test_zero_detections_leave_the_image_unchanged():
    empty = {
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros((0,), np.int32),
        "confidences": np.zeros((0,), np.float32),
    }
    np.testing.assert_array_equal(visualization.draw_detections(black(), empty), black())


def test_label_missing_from_label_map_is_captioned_with_its_id():
    drawn = visualization.draw_detections(black(), one_box(label=7), label_map={1: "cat"})
    as_id = visualization.draw_detections(black(), one_box(label=7), label_map={7: "7"})
    as_name = visualization.draw_detections(black(), one_box(label=7), label_map={7: "cat"})
    np.testing.assert_array_equal(drawn, as_id)
    assert (drawn != as_name).any()


def test_ground_truth_is_drawn_without_scores_and_accepts_classes_alias():
    labels = {"boxes": np.array([BOX]), "labels": np.array([2])}
    classes = {"boxes": np.array([BOX]), "classes": np.array([2])}
    drawn = visualization.draw_detections(black(), labels, score_threshold=2.0, color=RED)
    assert tuple(drawn[35, 10]) == RED
    np.testing.assert_array_equal(
        drawn, visualization.draw_detections(black(), classes, color=RED)
    )
    # Without confidences the caption is the name alone, shorter than "2 0.90".
    with_score = visualization.draw_detections(black(), one_box(label=2), color=RED)
    assert (with_score != drawn).any()


def test_batch_of_one_tensors_match_unbatched_and_larger_batches_fail():
    batched = {key: tf.constant(value[None]) for key, value in one_box().items()}
    batched["num_detections"] = tf.constant([1])
    np.testing.assert_array_equal(
        visualization.draw_detections(tf.constant(black()[None]), batched),
        visualization.draw_detections(black(), one_box()),
    )
    two = {key: np.concatenate([value[None]] * 2) for key, value in one_box().items()}
    with pytest.raises(ValueError, match="batch of 2"):
        visualization.draw_detections(black(), two)


def test_missing_labels_and_bad_image_shape_fail_with_clear_errors():
    with pytest.raises(ValueError, match="labels"):
        visualization.draw_detections(black(), {"boxes": np.array([BOX])})
    with pytest.raises(ValueError, match=r"\[height, width, 3\]"):
        visualization.draw_detections(np.zeros((64, 64)), one_box())


def test_other_box_formats_draw_the_same_box():
    expected = visualization.draw_detections(black(), one_box())
    y1, x1, y2, x2 = BOX
    for box_format, box in [
        ("xyxy", [x1, y1, x2, y2]),
        ("xywh", [x1, y1, x2 - x1, y2 - y1]),
        ("rel_yxyx", [y1 / 64, x1 / 64, y2 / 64, x2 / 64]),
    ]:
        detections = dict(one_box(), boxes=np.array([box], np.float32))
        drawn = visualization.draw_detections(
            black(), detections, bounding_box_format=box_format
        )
        np.testing.assert_array_equal(drawn, expected, err_msg=box_format)


def test_classes_get_distinct_colours_and_float_images_match_uint8():
    detections = {
        "boxes": np.array([[10, 5, 30, 25], [40, 35, 60, 55], [40, 5, 60, 25]], np.float32),
        "labels": np.array([1, 2, 1]),
    }
    drawn = visualization.draw_detections(black(), detections)
    assert tuple(drawn[20, 5]) == tuple(drawn[50, 5])
    assert tuple(drawn[20, 5]) != tuple(drawn[50, 35])
    assert tuple(drawn[20, 5]) != (0, 0, 0)
    as_float = visualization.draw_detections(black().astype(np.float32), detections)
    np.testing.assert_array_equal(as_float, drawn)


def test_box_on_the_image_border_keeps_visible_edges():
    whole = {"boxes": np.array([[0.0, 0.0, 64.0, 64.0]]), "labels": np.array([1])}
    drawn = visualization.draw_detections(black(), whole, color=RED, line_thickness=1)
    assert tuple(drawn[63, 30]) == RED and tuple(drawn[40, 63]) == RED


def batch(num_images, num_boxes):
    rng = np.random.default_rng(0)
    top_left = rng.uniform(0, 30, (num_images, num_boxes, 2))
    boxes = np.concatenate([top_left, top_left + 20], axis=-1).astype(np.float32)
    labels = rng.integers(1, 4, (num_images, num_boxes)).astype(np.int32)
    predictions = {
        "boxes": boxes,
        "labels": labels,
        "confidences": rng.uniform(0.4, 1.0, (num_images, num_boxes)).astype(np.float32),
        "num_detections": np.full((num_images,), num_boxes, np.int32),
    }
    images = rng.integers(0, 256, (num_images, 64, 64, 3)).astype(np.uint8)
    return images, predictions, {"boxes": boxes, "labels": labels}


def test_plot_detections_predictions_only(tmp_path):
    images, predictions, _ = batch(num_images=3, num_boxes=2)
    path = tmp_path / "gallery.png"
    figure = visualization.plot_detections(images, predictions, cols=2, path=path)
    assert isinstance(figure, matplotlib.figure.Figure)
    assert len(figure.axes) == 3
    titles = [a.get_title() for a in figure.axes]
    assert titles == ["0: predictions", "1: predictions", "2: predictions"]
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > 100 and png.height > 100


def test_plot_detections_figure_renders_as_png_in_notebooks():
    # `_repr_png_` is the hook IPython calls on a cell's last value: without it, a bare Figure
    # shows as "<Figure size …>" unless `%matplotlib inline` ran first.
    images, predictions, _ = batch(num_images=2, num_boxes=2)
    figure = visualization.plot_detections(images, predictions, figsize=(4, 2))
    with Image.open(io.BytesIO(figure._repr_png_())) as png:
        assert png.format == "PNG" and png.size == (400, 200)


def test_plot_detections_puts_ground_truth_beside_predictions():
    images, predictions, y_true = batch(num_images=2, num_boxes=3)
    y_true = {"boxes": y_true["boxes"], "classes": y_true["labels"]}
    figure = visualization.plot_detections(
        images, predictions, y_true=y_true, label_map={1: "a", 2: "b", 3: "c"}
    )
    titles = [a.get_title() for a in figure.axes]
    assert titles == ["0: ground truth", "0: predictions", "1: ground truth", "1: predictions"]
    # Both panels of an image sit on the same row.
    assert figure.axes[0].get_position().y0 == pytest.approx(figure.axes[1].get_position().y0)


def test_plot_detections_zero_detections_and_ground_truth_only(tmp_path):
    images, _, _ = batch(num_images=2, num_boxes=1)
    empty = {
        "boxes": tf.zeros((2, 0, 4)),
        "labels": tf.zeros((2, 0), tf.int32),
        "confidences": tf.zeros((2, 0)),
        "num_detections": tf.zeros((2,), tf.int32),
    }
    path = tmp_path / "empty.png"
    figure = visualization.plot_detections(images, empty, path=path)
    assert len(figure.axes) == 2
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), images[0])
    with Image.open(path) as png:
        png.verify()
    ground_truth_only = visualization.plot_detections(images, y_true=empty)
    assert [a.get_title() for a in ground_truth_only.axes] == [
        "0: ground truth",
        "1: ground truth",
    ]
    with pytest.raises(ValueError, match="neither"):
        visualization.plot_detections(images)


def test_save_image_round_trips(tmp_path):
    drawn = visualization.draw_detections(black(), one_box())
    visualization.save_image(drawn, tmp_path / "drawn.png")
    with Image.open(tmp_path / "drawn.png") as png:
        np.testing.assert_array_equal(np.asarray(png), drawn)


# (y, x) pixels inside BOX, away from its edges and its caption tag.
KEYPOINTS = [[30.0, 25.0], [44.0, 25.0], [30.0, 16.0]]


def box_with_keypoints(keypoint_scores=(0.9, 0.8, 0.2)):
    return {
        **one_box(),
        "keypoints": np.array([KEYPOINTS], np.float32),
        "keypoint_scores": np.array([keypoint_scores], np.float32),
    }


def test_keypoints_are_dots_in_the_box_colour_at_their_position():
    drawn = visualization.draw_detections(
        black(), box_with_keypoints(), color=RED, keypoint_radius=2
    )
    # Keypoints 0 and 1 score at least the threshold: dots of radius 2 at (y, x).
    for y, x in [(30, 25), (28, 25), (30, 27), (44, 25), (46, 25)]:
        assert tuple(drawn[y, x]) == RED, (y, x)
    # Keypoint 2 scores 0.2 < 0.5: not drawn; nothing beside the dots either.
    for y, x in [(30, 16), (30, 29), (37, 25), (44, 21)]:
        assert tuple(drawn[y, x]) == (0, 0, 0), (y, x)
    # Keypoints alone change only their dots: no keypoints, no dots.
    plain = visualization.draw_detections(black(), one_box(), color=RED)
    assert tuple(plain[30, 25]) == (0, 0, 0)
    # A lower keypoint threshold draws keypoint 2 too.
    low = visualization.draw_detections(
        black(), box_with_keypoints(), color=RED, keypoint_score_threshold=0.1
    )
    assert tuple(low[30, 16]) == RED


def test_keypoint_edges_join_drawn_keypoints_only():
    drawn = visualization.draw_detections(
        black(), box_with_keypoints(), color=RED, line_thickness=1,
        keypoint_edges=[(0, 1), (0, 2), (1, 7)],
    )
    # 0 → 1 is drawn (x 25, y 30 → 44); 0 → 2 is not (keypoint 2 scores too low); 1 → 7 names
    # no keypoint and is skipped.
    assert tuple(drawn[37, 25]) == RED
    assert tuple(drawn[30, 20]) == (0, 0, 0)


def test_ground_truth_keypoints_follow_visibilities_and_relative_formats_scale():
    truth = {
        "boxes": np.array([BOX], np.float32) / 64,
        "labels": np.array([1]),
        "keypoints": np.array([KEYPOINTS], np.float32) / 64,
        "keypoint_visibilities": np.array([[2, 0, 1]]),
    }
    drawn = visualization.draw_detections(
        black(), truth, color=RED, bounding_box_format="rel_yxyx"
    )
    assert tuple(drawn[30, 25]) == RED and tuple(drawn[30, 16]) == RED
    assert tuple(drawn[44, 25]) == (0, 0, 0)  # visibility 0: not labelled
    # NaN coordinates (a keypoint without visibilities) are not drawn either.
    truth = {**one_box(), "keypoints": np.array([[[np.nan, np.nan], KEYPOINTS[1]]])}
    drawn = visualization.draw_detections(black(), truth, color=RED)
    assert tuple(drawn[44, 25]) == RED


def test_gallery_and_plot_draw_keypoints_of_both_dicts():
    images = black()[None]
    y_true = {key: value[None] for key, value in box_with_keypoints().items()
              if key != "keypoint_scores"}
    y_true["keypoints"] = y_true["keypoints"] + [0.0, 8.0]  # 8 px right of the predictions
    predictions = {key: value[None] for key, value in box_with_keypoints().items()}
    gallery = visualization.draw_detection_gallery(
        images, predictions, y_true=y_true, keypoint_edges=[(0, 1)]
    )
    assert tuple(gallery[30, 25]) == visualization.PREDICTION_COLOR
    assert tuple(gallery[30, 33]) == visualization.GROUNDTRUTH_COLOR
    assert tuple(gallery[37, 33]) == visualization.GROUNDTRUTH_COLOR  # its 0 → 1 edge
    figure = visualization.plot_detections(images, predictions, y_true=y_true)
    shown = figure.axes[1].images[0].get_array()
    assert tuple(shown[30, 25]) != (0, 0, 0)
