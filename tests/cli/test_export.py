"""`kdet export`: train 2 steps, evaluate, export, serve the SavedModel where kdet cannot be
imported."""

import json
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import kdet
import tiny_pipeline
from kdet import cli
from kdet.cli import export as export_command
from kdet.configs import load_pipeline
from kdet.export import export_folder
from kdet.training import latest_checkpoint
from kdet.training.trainer import restore_checkpoint
from kdet.utils.verified_files import is_verified
from kdet_free_runner import run_without_kdet
from kdet_process import start_kdet

IMAGE_SIZE = tiny_pipeline.IMAGE_SIZE


def _shapes(count, seed):
    return kdet.datasets.shapes(count, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=seed)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(config path, model directory)` of the tiny pipeline trained for 2 steps, evaluated."""
    root = tmp_path_factory.mktemp("trained")
    config = tiny_pipeline.write_pipeline(root, num_steps=2, learning_rate=0.0005)
    model_dir = root / "model"
    argv = ["--pipeline_config_path", str(config), "--model_dir", str(model_dir)]
    assert cli.main(["train", *argv]) == 0
    # The TF OD API workflow: train, evaluate, export (the tests below), serve elsewhere.
    assert cli.main(["eval", *argv]) == 0
    assert "2" in json.loads((model_dir / "eval" / "metrics.json").read_text())
    return config, model_dir


def _restored_model(config, checkpoint):
    pipeline = load_pipeline(config)
    pipeline.model.compile(optimizer=pipeline.optimizer)
    restore_checkpoint(pipeline.model, checkpoint, (None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return pipeline.model


def _as_predictions(outputs):
    """TF OD API outputs → kdet's predictions dict in pixels (zero padding → -1 padding)."""
    valid = np.arange(outputs["detection_scores"].shape[1]) < outputs["num_detections"][:, None]
    return {
        "boxes": np.where(valid[..., None], outputs["detection_boxes"] * IMAGE_SIZE, -1.0),
        "labels": np.where(valid, outputs["detection_classes"], -1).astype("int32"),
        "confidences": outputs["detection_scores"],
        "num_detections": outputs["num_detections"].astype("int32"),
    }


def _assert_same_detections(got, want):
    np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_allclose(got["confidences"], want["confidences"], atol=1e-4)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-2)


def test_export_writes_the_tf_od_api_layout_and_the_trained_models_detections(
    trained, tmp_path, capsys
):
    config, model_dir = trained
    output = tmp_path / "exported"
    argv = ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(model_dir), "--output_directory", str(output), "--tflite"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "exported ckpt-2.weights.h5 (step 2)" in printed and str(output) in printed
    # The export takes seconds: each stage is announced on stderr as it begins.
    stages = [line.split(" (")[0] for line in captured.err.splitlines()]
    assert stages == [
        f"kdet export: building the model of {config}",
        f"kdet export: restoring step 2: {latest_checkpoint(model_dir)[1]}",
        *(f"kdet export: TFLite: {stage}" for stage in (
            "tracing", "weights to constants", "folding batch norms", "converting")),
        *(f"kdet export: SavedModel: {stage}" for stage in (
            "tracing", "weights to constants", "folding batch norms", "writing")),
    ]
    assert (output / "saved_model" / "saved_model.pb").is_file()
    assert (output / "pipeline.config").read_text() == config.read_text()
    step, copied = latest_checkpoint(output / "checkpoint")
    assert step == 2 and is_verified(copied)

    checkpoint = latest_checkpoint(model_dir)[1]
    model = _restored_model(config, checkpoint)
    images = _shapes(2, seed=11)[0]
    want = model.predict_on_batch(images)
    assert want["num_detections"].min() > 0

    (served,) = run_without_kdet([(output / "saved_model", images)], tmp_path)
    _assert_same_detections(_as_predictions(served), want)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation
        detect = tf.lite.Interpreter(str(output / "model.tflite")).get_signature_runner()
    for index, image in enumerate(images):
        lite = _as_predictions(detect(input_tensor=image[np.newaxis]))
        _assert_same_detections(lite, {name: value[index : index + 1]
                                       for name, value in want.items()})


def _earlier_export(output):
    """An earlier export (with --tflite, from a YAML config) and a file of the user's."""
    (output / "saved_model").mkdir(parents=True)
    (output / "saved_model" / "stale.pb").write_text("old")
    for name in ("model.tflite", "pipeline.yaml", "checkpoint"):
        (output / name).write_text("old")
    (output / "notes.txt").write_text("mine")
    entries = ["saved_model", "checkpoint", "pipeline.yaml", "model.tflite"]
    (output / ".kdet_export.json").write_text(json.dumps({"entries": entries}))


def test_encoded_image_input_type_over_an_earlier_export(trained, tmp_path):
    config, model_dir = trained
    output = tmp_path / "exported"
    _earlier_export(output)
    argv = ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(model_dir), "--output_directory", str(output),
            "--input_type", "encoded_image_string_tensor",
            "--max_image_pixels", str(IMAGE_SIZE * IMAGE_SIZE)]
    assert cli.main(argv) == 0
    assert sorted(path.name for path in output.iterdir()) == [
        ".kdet_export.json", "checkpoint", "notes.txt", "pipeline.config", "saved_model"
    ]
    assert not (output / "saved_model" / "stale.pb").exists()
    assert (output / "notes.txt").read_text() == "mine"
    assert json.loads((output / ".kdet_export.json").read_text()) == {
        "entries": ["saved_model", "checkpoint", "pipeline.config"]
    }
    images = _shapes(2, seed=11)[0]
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    served = tf.saved_model.load(str(output / "saved_model"))(tf.constant(pngs))
    want = _restored_model(config, latest_checkpoint(model_dir)[1]).predict_on_batch(images)
    _assert_same_detections(
        _as_predictions({name: value.numpy() for name, value in served.items()}), want
    )
    one_row_more = tf.io.encode_png(tf.zeros([IMAGE_SIZE + 1, IMAGE_SIZE, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=(
        f"image of {IMAGE_SIZE}x{IMAGE_SIZE + 1} pixels .* over the limit of "
        f"{IMAGE_SIZE * IMAGE_SIZE} pixels this model was exported with")):
        tf.saved_model.load(str(output / "saved_model"))(tf.stack([one_row_more]))


def test_a_failed_swap_puts_the_earlier_export_back(trained, tmp_path, monkeypatch):
    config, model_dir = trained
    output = tmp_path / "exported"
    _earlier_export(output)
    (output / "model.tflite").write_text("mine, not listed")
    (output / ".kdet_export.json").write_text(json.dumps({"entries": ["saved_model"]}))
    before = {path.name: path.is_dir() for path in output.iterdir()}

    def failing(move):
        def move_or_fail(source, target):  # moving the new checkpoint/ in fails
            if output / "checkpoint" in (source, target) and ".kdet-export.tmp" in str(source):
                raise OSError("disk full")
            return move(source, target)

        return move_or_fail

    for name in ("_exchange", "_rename"):
        monkeypatch.setattr(export_folder, name, failing(getattr(export_folder, name)))
    argv = ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(model_dir), "--output_directory", str(output)]
    args = cli.build_parser().parse_args(argv)
    with pytest.raises(OSError, match="disk full"):  # `kdet` prints it as one line
        args.run(args)
    assert {path.name: path.is_dir() for path in output.iterdir()} == before
    assert (output / "saved_model" / "stale.pb").read_text() == "old"
    assert (output / "checkpoint").read_text() == "old"
    assert (output / "model.tflite").read_text() == "mine, not listed"


def _export_argv(config, model_dir, output, *flags):
    return ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(model_dir), "--output_directory", str(output), *flags]


def _assert_a_usable_export(output, step):
    assert latest_checkpoint(output / "checkpoint")[0] == step
    assert (output / "pipeline.config").is_file()
    detections = tf.saved_model.load(str(output / "saved_model"))(
        tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)
    )
    assert detections["detection_boxes"].shape[0] == 1


def test_kill_9_during_the_swap_leaves_a_usable_export_and_the_next_export_completes_it(
    trained, tmp_path
):
    """The report's reproduction: SIGKILL the moment the swap begins."""
    config, model_dir = trained
    output = tmp_path / "exported"
    assert cli.main(_export_argv(config, model_dir, output)) == 0
    for attempt in range(3):  # the swap lasts milliseconds: catch it, or try again
        process = start_kdet(_export_argv(config, model_dir, output))
        swap = {f".kdet-export.old-{process.pid}", f".kdet-export.journal-{process.pid}.json"}
        try:
            while process.poll() is None:
                if swap & set(os.listdir(output)):
                    process.send_signal(signal.SIGKILL)
                    break
            process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode == -signal.SIGKILL:
            break
    assert process.returncode == -signal.SIGKILL
    _assert_a_usable_export(output, 2)

    assert cli.main(_export_argv(config, model_dir, output)) == 0
    assert sorted(path.name for path in output.iterdir()) == [
        ".kdet_export.json", "checkpoint", "pipeline.config", "saved_model"
    ]
    _assert_a_usable_export(output, 2)


def test_leftovers_of_killed_exports_are_removed(trained, tmp_path, capsys):
    config, model_dir = trained
    output = tmp_path / "exported"
    _earlier_export(output)
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()
    running = os.getppid()
    for name in (f".kdet-export.tmp-{finished.pid}", f".kdet-export.old-{finished.pid}",
                 f".kdet-export.tmp-{running}"):
        (output / name / "saved_model").mkdir(parents=True)
        (output / name / "saved_model" / "saved_model.pb").write_bytes(b"x" * 1000)
    assert cli.main(_export_argv(config, model_dir, output)) == 0
    assert sorted(path.name for path in output.iterdir()) == [
        f".kdet-export.tmp-{running}", ".kdet_export.json", "checkpoint", "notes.txt",
        "pipeline.config", "saved_model"
    ]
    assert (f"kdet export: {output}: removed what ended exports left: "
            f".kdet-export.old-{finished.pid}, .kdet-export.tmp-{finished.pid}"
            in capsys.readouterr().err)


def test_a_crafted_manifest_never_moves_files_from_outside_the_output_folder(
    trained, tmp_path, recwarn
):
    """The report's reproduction: `{"entries": ["../victim.txt"]}`, and an absolute path."""
    config, model_dir = trained
    output = tmp_path / "out"
    output.mkdir()
    (tmp_path / "victim.txt").write_text("precious")
    (output / "notes.txt").write_text("mine")
    entries = ["../victim.txt", str(tmp_path / "victim.txt"), "notes.txt"]
    (output / ".kdet_export.json").write_text(json.dumps({"entries": entries}))
    assert cli.main(_export_argv(config, model_dir, output)) == 0
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert (output / "notes.txt").read_text() == "mine"
    assert sorted(path.name for path in output.iterdir()) == [
        ".kdet_export.json", "checkpoint", "notes.txt", "pipeline.config", "saved_model"
    ]
    messages = [str(warning.message) for warning in recwarn]
    for entry in entries:
        assert any(f"entry {entry!r} ignored" in message for message in messages), entry


def test_another_running_export_into_the_folder_is_one_clear_line(trained, tmp_path, capsys):
    config, model_dir = trained
    output = tmp_path / "out"
    output.mkdir()
    running = os.getppid()
    (output / f".kdet-export.journal-{running}.json").write_text("{}")
    assert cli.main(_export_argv(config, model_dir, output)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"kdet export: error: {output}: another kdet export (process "
                           f"{running}) is publishing into this folder")


@pytest.mark.parametrize("make, message", [
    (lambda path: path / "missing", "no such directory"),
    (lambda path: path, "no intact kdet checkpoint in it"),
])
def test_a_missing_or_empty_checkpoint_dir_is_one_clear_line(trained, tmp_path, capsys, make,
                                                             message):
    config, _ = trained
    checkpoint_dir = make(tmp_path)
    argv = ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(checkpoint_dir), "--output_directory", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kdet export: error: --trained_checkpoint_dir")
    assert str(checkpoint_dir) in line and message in line
    assert not (tmp_path / "out").exists()


def test_help_lists_every_flag_and_input_type(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--pipeline_config_path", "--trained_checkpoint_dir", "--output_directory",
                 "--input_type", "--tflite", "--tflite_quantization", "dynamic_range",
                 "--max_image_pixels", "--representative_images"):
        assert flag in help_text
    assert set(export_command.INPUT_TYPES) == set(kdet.export.INPUT_TYPES)
    assert export_command.DEFAULT_MAX_IMAGE_PIXELS == kdet.export.DEFAULT_MAX_IMAGE_PIXELS
    for input_type in export_command.INPUT_TYPES:
        assert input_type in help_text


def test_int8_tflite_of_a_float_config_calibrates_on_representative_images(trained, tmp_path,
                                                                           capsys):
    config, model_dir = trained
    folder = tmp_path / "calibration"
    folder.mkdir()
    for index, image in enumerate(_shapes(3, seed=11)[0]):
        Image.fromarray(image).save(folder / f"shapes_{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    argv = ["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
            str(model_dir), "--tflite", "--tflite_quantization", "int8"]
    # Without images a float config cannot be quantized; the flag alone is refused at once.
    assert cli.main([*argv, "--output_directory", str(tmp_path / "none")]) == 2
    assert "--representative_images" in capsys.readouterr().err
    assert cli.main([*argv[:-3], "--output_directory", str(tmp_path / "float"),
                     "--representative_images", str(folder)]) == 2
    assert ("--representative_images calibrate an int8 TFLite model"
            in capsys.readouterr().err)
    assert cli.main([*argv, "--output_directory", str(tmp_path / "missing"),
                     "--representative_images", str(tmp_path / "nowhere")]) == 2
    assert f"representative images: no such file or folder, and no file matching: " \
           f"{tmp_path / 'nowhere'}" in capsys.readouterr().err

    output = tmp_path / "int8"
    assert cli.main([*argv, "--output_directory", str(output), "--representative_images",
                     str(folder / "shapes_0.png"), str(tmp_path / "calibration" / "*_[12].png"),
                     str(folder)]) == 0
    assert kdet.export.RepresentativeImages([str(folder / "*.png"), str(folder)]).files == [
        folder / f"shapes_{index}.png" for index in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(str(output / "model.tflite"))
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    convolutions = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert len(convolutions) == 8
    assert all(tensors[op["outputs"][0]]["dtype"] == np.int8 for op in convolutions)
    detections = interpreter.get_signature_runner()(input_tensor=_shapes(1, seed=12)[0])
    assert detections["detection_boxes"].shape == (1, 20, 4)
