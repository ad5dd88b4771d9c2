"""kdet.plots: scalars read from real event files, training curves, precision/recall and AP
charts, and figures saved as PNG and logged to TensorBoard."""

import io
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import plot_logs
from kdet import plots


def _as_lists(scalars):
    return {tag: (steps.tolist(), values.tolist()) for tag, (steps, values) in scalars.items()}


def test_read_scalars_returns_each_tags_steps_and_values_and_skips_other_summaries(tmp_path):
    plot_logs.write_scalars(tmp_path, plot_logs.TRAIN_SCALARS)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=10):
        tf.summary.image("an_image", tf.zeros([1, 4, 4, 3]))
        tf.summary.histogram("a_histogram", [1.0, 2.0])
        tf.summary.text("a_text", "hello")
    writer.close()

    scalars = plots.read_scalars(tmp_path)
    assert _as_lists(scalars) == {
        tag: (sorted(values), [values[step] for step in sorted(values)])
        for tag, values in plot_logs.TRAIN_SCALARS.items()
    }
    steps, values = scalars["learning_rate"]
    assert steps.dtype == np.int64 and values.dtype == np.float64


def test_a_step_logged_again_by_a_resumed_run_takes_the_newer_value(tmp_path):
    plot_logs.write_scalars(tmp_path, {"losses/loss": {2: 4.0, 4: 3.0, 6: 2.0}})
    # The resumed run writes a second event file, from step 4 on.
    plot_logs.write_scalars(tmp_path, {"losses/loss": {4: 2.5, 8: 1.0}})
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert _as_lists(plots.read_scalars(tmp_path)) == {
        "losses/loss": ([2, 4, 6, 8], [4.0, 2.5, 2.0, 1.0])
    }


def test_tf1_simple_values_are_read_too(tmp_path):
    writer = EventFileWriter(str(tmp_path))
    for step, number in ((1, 0.5), (2, 0.25)):
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="loss", simple_value=number)]
        )
        writer.add_event(event_pb2.Event(step=step, wall_time=float(step), summary=summary))
    writer.close()
    assert _as_lists(plots.read_scalars(tmp_path)) == {"loss": ([1, 2], [0.5, 0.25])}


def test_a_record_cut_short_by_a_running_writer_is_skipped(tmp_path):
    plot_logs.write_scalars(tmp_path, {"losses/loss": {1: 3.0, 2: 2.0, 3: 1.0}})
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-5])
    assert _as_lists(plots.read_scalars(tmp_path)) == {"losses/loss": ([1, 2], [3.0, 2.0])}


def test_read_scalars_of_a_folder_without_logs_is_empty(tmp_path):
    assert plots.read_scalars(tmp_path) == {}
    assert plots.read_scalars(tmp_path / "missing") == {}


def test_read_training_curves_groups_losses_learning_rate_and_headline_maps(tmp_path):
    curves = plots.read_training_curves(plot_logs.make_model_dir(tmp_path))
    assert set(curves["losses"]) == {"loss", "localization_loss", "classification_loss"}
    assert _as_lists(curves["losses"])["localization_loss"] == ([10, 20, 30], [1.0, 0.75, 0.5])
    assert _as_lists(curves["learning_rate"]) == {
        "learning_rate": ([10, 20, 30], [0.015625, 0.015625, 0.0009765625])
    }
    # Recall and the per-size mAPs are left out.
    assert _as_lists(curves["metrics"]) == {
        "DetectionBoxes_Precision/mAP": ([20, 30], [0.25, 0.375]),
        "DetectionBoxes_Precision/mAP@.50IOU": ([20, 30], [0.5, 0.625]),
        "PascalBoxes_Precision/mAP@0.5IOU": ([20, 30], [0.5, 0.625]),
    }
    assert plots.last_step(curves) == 30


def test_coco_minus_one_for_no_ground_truth_becomes_nan(tmp_path):
    plot_logs.write_scalars(tmp_path / "eval", {"DetectionBoxes_Precision/mAP": {5: -1.0, 9: 0.5}})
    curves = plots.read_training_curves(tmp_path)
    steps, values = curves["metrics"]["DetectionBoxes_Precision/mAP"]
    assert steps.tolist() == [5, 9] and math.isnan(values[0]) and values[1] == 0.5
    assert curves["losses"] == {} and curves["learning_rate"] == {}


def test_a_model_dir_without_logs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        plots.read_training_curves(tmp_path / "missing")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no losses or learning rate in .*train"):
        plots.read_training_curves(tmp_path)


def test_plot_training_curves_draws_the_logged_numbers(tmp_path):
    curves = plots.read_training_curves(plot_logs.make_model_dir(tmp_path))
    figure = plots.plot_training_curves(curves)
    losses, learning_rate, metrics = figure.axes
    assert [a.get_title() for a in figure.axes] == [
        "training losses", "learning rate", "evaluation mAP",
    ]
    lines = {line.get_label(): line for line in losses.lines}
    assert list(lines) == ["total", "classification_loss", "localization_loss"]
    np.testing.assert_array_equal(lines["total"].get_xdata(), [10, 20, 30])
    np.testing.assert_array_equal(lines["total"].get_ydata(), [3.0, 2.0, 1.5])
    assert lines["total"].get_color() == "black"
    np.testing.assert_array_equal(
        learning_rate.lines[0].get_ydata(), [0.015625, 0.015625, 0.0009765625]
    )
    assert {line.get_label() for line in metrics.lines} == set(curves["metrics"])
    assert figure.get_size_inches().tolist() == [15.0, 4.0]


def test_plot_training_curves_leaves_out_groups_with_nothing_logged(tmp_path):
    plot_logs.write_scalars(tmp_path / "train", {"losses/loss": {1: 1.0, 2: 0.5}})
    figure = plots.plot_training_curves(plots.read_training_curves(tmp_path))
    assert [a.get_title() for a in figure.axes] == ["training losses"]


def test_a_run_that_logged_one_step_is_drawn_as_markers(tmp_path):
    # A line through one point draws nothing: kdet train with fewer steps than log_every_n.
    scalars = {"losses/loss": {3: 2.0}, "losses/a_loss": {3: 1.5}, "learning_rate": {3: 0.1}}
    plot_logs.write_scalars(tmp_path / "train", scalars)
    figure = plots.plot_training_curves(plots.read_training_curves(tmp_path))
    lines = [line for axes in figure.axes for line in axes.lines]
    assert [line.get_label() for line in lines] == ["total", "a_loss", "learning_rate"]
    assert all(line.get_marker() == "o" for line in lines)


def test_average_precision_bars_are_sorted_best_first_with_the_mean(tmp_path):
    figure = plots.plot_average_precision(
        {"dog": 0.3, "cat": 0.9, "fish": float("nan"), "bird": 0.5, "ant": 0.5}
    )
    (axes,) = figure.axes
    # Top to bottom: the y axis is inverted, so bar i is row i from the top.
    assert [label.get_text() for label in axes.get_yticklabels()] == ["cat", "ant", "bird", "dog"]
    assert [bar.get_width() for bar in axes.patches] == [0.9, 0.5, 0.5, 0.3]
    assert axes.yaxis_inverted()
    (mean,) = [line for line in axes.lines if line.get_label().startswith("mean AP")]
    np.testing.assert_allclose(mean.get_xdata(), [0.55, 0.55])
    assert mean.get_label() == "mean AP 0.550"
    with pytest.raises(ValueError, match="no class with a defined AP"):
        plots.plot_average_precision({"fish": float("nan")})


def test_precision_recall_curves_one_line_per_class_legend_by_ap():
    figure = plots.plot_precision_recall(plot_logs.PRECISION_RECALL["classes"])
    (axes,) = figure.axes
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["cat (AP 1.000)", "bird (AP 0.500)", "dog (AP 0.250)"]
    cat = next(line for line in axes.lines if line.get_label().startswith("cat"))
    np.testing.assert_array_equal(cat.get_xdata(), [0.5, 1.0, 1.0])
    np.testing.assert_array_equal(cat.get_ydata(), [1.0, 1.0, 0.6667])
    assert "mAP 0.583 over 3 classes" in axes.get_title()


def test_many_classes_keep_a_readable_legend_of_the_best_and_worst():
    rng = np.random.default_rng(0)
    classes = {
        f"class_{i:02d}": {
            "precision": rng.uniform(0, 1, 5), "recall": np.linspace(0, 1, 5),
            "average_precision": i / 40,
        }
        for i in range(40)
    }
    figure = plots.plot_precision_recall(classes, max_labeled=6)
    (axes,) = figure.axes
    assert len(axes.lines) == 40
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == [
        "class_39 (AP 0.975)", "class_38 (AP 0.950)", "class_37 (AP 0.925)",
        "class_02 (AP 0.050)", "class_01 (AP 0.025)", "class_00 (AP 0.000)",
        "34 other classes",
    ]
    grey = [line for line in axes.lines if line.get_color() == "0.8"]
    assert len(grey) == 34
    coloured = {line.get_color() for line in axes.lines if line.get_color() != "0.8"}
    assert len(coloured) == 6


def test_read_precision_recall_checks_the_layout(tmp_path):
    path = plot_logs.make_model_dir(tmp_path) / "eval" / "precision_recall.json"
    result = plots.read_precision_recall(path)
    assert (result["step"], result["iou_threshold"]) == (30, 0.5)
    np.testing.assert_array_equal(result["classes"]["dog"]["recall"], [0.0, 0.5])
    assert math.isnan(result["classes"]["fish"]["average_precision"])

    broken = json.loads(path.read_text())
    broken["classes"]["dog"]["recall"] = [0.0]
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r'classes\["dog"\]: precision has 2 values but recall'):
        plots.read_precision_recall(path)
    path.write_text(json.dumps({"step": 3, "iou_threshold": 0.5}))
    with pytest.raises(ValueError, match='"classes"'):
        plots.read_precision_recall(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        plots.read_precision_recall(path)


def _logged_images(log_dir):
    images = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    # string_val: width, height, then the encoded image.
                    images[value.tag] = (event.step, value.tensor.string_val[2])
    return images


def test_save_figure_writes_a_png_and_logs_the_same_pixels_to_tensorboard(tmp_path):
    figure = plots.plot_average_precision({"cat": 0.75, "dog": 0.5}, figsize=(6, 3))
    path = plots.save_figure(figure, tmp_path / "out" / "ap.png", tmp_path / "plots", step=7)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (600, 300)
        pixels = np.asarray(png.convert("RGB"))
    step, encoded = _logged_images(tmp_path / "plots")["ap"]
    assert step == 7
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")),
                                  pixels)


def test_save_figure_takes_an_image_array_and_a_tag(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    image[5, 7] = (255, 0, 255)
    path = plots.save_figure(image, tmp_path / "gallery.png", tmp_path / "plots", tag="gallery/0")
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), image)
    assert _logged_images(tmp_path / "plots")["gallery/0"][0] == 0
    plots.save_figure(image, tmp_path / "not_logged.png")
    assert (tmp_path / "not_logged.png").exists()
