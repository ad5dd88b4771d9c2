"""`kdet plot --model_dir D`: PNGs of a real training run's logs and of kdet eval's results."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import kdet
import plot_logs
import tiny_ssd_extractor
from kdet import cli
from kdet import plots

IMAGE_SIZE = 64


def _png_size(path):
    with Image.open(path) as png:
        png.verify()
    with Image.open(path) as png:
        assert png.format == "PNG"
        return png.size


def _logged_images(log_dir):
    """`{tag: step}` of the images in `log_dir`'s event files."""
    logged = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    logged[value.tag] = event.step
    return logged


def test_plot_writes_training_curves_precision_recall_and_ap_charts(tmp_path, capsys):
    model_dir = plot_logs.make_model_dir(tmp_path / "run")
    output_dir = tmp_path / "figures"
    code = cli.main(["plot", "--model_dir", str(model_dir), "--output_dir", str(output_dir)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    names = ("training_curves", "precision_recall", "average_precision")
    for name in names:
        width, height = _png_size(output_dir / f"{name}.png")
        assert 600 <= width <= 2000 and 300 <= height <= 1200, (name, width, height)
        assert f"wrote {output_dir / name}.png" in printed
    assert not list(model_dir.glob("*.png"))
    assert _logged_images(model_dir / "plots") == {
        "training_curves": 30, "precision_recall": 30, "average_precision": 30,
    }
    assert printed[-1] == f"logged 3 image(s) to TensorBoard in {model_dir / 'plots'}"


def test_without_precision_recall_json_only_training_curves_go_into_the_model_dir(
    tmp_path, capsys
):
    model_dir = plot_logs.make_model_dir(tmp_path, precision_recall=False)
    assert cli.main(["plot", "--model_dir", str(model_dir)]) == 0
    assert sorted(path.name for path in model_dir.glob("*.png")) == ["training_curves.png"]
    assert _logged_images(model_dir / "plots") == {"training_curves": 30}


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_model_dir_without_logs_is_one_error_line(tmp_path, capsys, make):
    model_dir = tmp_path / "run"
    if make == "empty":
        (model_dir / "train").mkdir(parents=True)
    assert cli.main(["plot", "--model_dir", str(model_dir)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("kdet plot: error: ") and str(model_dir) in line
    assert captured.out == ""
    assert not (model_dir / "plots").exists()


def test_a_broken_precision_recall_json_is_one_error_line_naming_it(tmp_path, capsys):
    model_dir = plot_logs.make_model_dir(tmp_path)
    (model_dir / "eval" / "precision_recall.json").write_text('{"step": 3, "classes": []}')
    assert cli.main(["plot", "--model_dir", str(model_dir)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "precision_recall.json" in line and '"classes"' in line


def test_a_precision_recall_json_without_ground_truth_gives_training_curves_and_a_note(
    tmp_path, capsys
):
    model_dir = plot_logs.make_model_dir(tmp_path)
    no_ground_truth = {"precision": [], "recall": [], "average_precision": None}
    (model_dir / "eval" / "precision_recall.json").write_text(
        json.dumps({"step": 30, "iou_threshold": 0.5, "classes": {"cat": no_ground_truth}})
    )
    assert cli.main(["plot", "--model_dir", str(model_dir)]) == 0
    assert "no class in" in capsys.readouterr().out
    assert sorted(path.name for path in model_dir.glob("*.png")) == ["training_curves.png"]


def test_help_describes_the_command_and_its_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for text in ("--model_dir", "--output_dir", "training_curves.png", "precision_recall.png",
                 "average_precision.png", "MODEL_DIR/plots"):
        assert text in help_text, text


def test_plot_reads_the_logs_of_a_real_training_run(tmp_path, capsys):
    model = kdet.SSD(
        num_classes=2,
        feature_extractor=tiny_ssd_extractor.NAME,
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    images, y = kdet.datasets.shapes(4, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    dataset = tf.data.Dataset.from_tensors((images.astype("float32"), y)).repeat()
    kdet.training.train(
        model, dataset, tmp_path, num_steps=4, checkpoint_every_n=4, log_every_n=2, verbose=0
    )

    curves = plots.read_training_curves(tmp_path)
    assert set(curves["losses"]) == {"loss", "localization_loss", "classification_loss"}
    for steps, values in curves["losses"].values():
        assert steps.tolist() == [2, 4] and np.isfinite(values).all()
    steps, learning_rates = curves["learning_rate"]["learning_rate"]
    np.testing.assert_allclose(learning_rates, [0.01, 0.01])
    # The total is the sum of the named losses (the tiny model has no regularization loss).
    total = curves["losses"]["loss"][1]
    named = curves["losses"]["localization_loss"][1] + curves["losses"]["classification_loss"][1]
    np.testing.assert_allclose(total, named, rtol=1e-5)

    assert cli.main(["plot", "--model_dir", str(tmp_path)]) == 0
    assert _png_size(tmp_path / "training_curves.png") == (1000, 400)
    assert _logged_images(tmp_path / "plots") == {"training_curves": 4}
