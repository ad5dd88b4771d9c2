"""`kdet predict` with damaged or hostile model files and output folders: one clear line naming
the `.keras` file and what is wrong (never Keras's "File not found" for a file that exists, nor
a `BadZipFile` traceback), Lambda layers still refused, and nothing written through a symlink
in the output folder."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

import tiny_pipeline
from kdet import cli

SIZE = tiny_pipeline.IMAGE_SIZE


@pytest.fixture(scope="module")
def keras_model(tiny_keras_model, tmp_path_factory):
    """The tiny `.keras` model, and an image to run it on."""
    image = tmp_path_factory.mktemp("image") / "chelsea.jpg"
    pixels = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    return tiny_keras_model[0], image


def _predict(model, image, output, *flags):
    return cli.main(["predict", str(image), "--model", str(model), "--output_dir", str(output),
                     "--score_threshold", "0", *flags])


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "File not found" not in lines[0]
    return lines[0]


def _flip_bytes_inside(path, member):
    """`path` with 10 bytes of `member`'s stored data flipped (the zip directory intact)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    # The member's data follows its 30-byte local header, file name and extra field.
    name_length = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    for offset in range(start, start + 10):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_keras_files_are_one_line_naming_the_file(keras_model, tmp_path, capsys):
    model, image = keras_model
    good = model.read_bytes()
    cases = {
        "truncated.keras": (good[: len(good) // 2], "is not a Keras model file (not a zip archive"),
        "empty.keras": (b"", "is not a Keras model file (not a zip archive: truncated, 0 bytes"),
        "text.keras": (b"just some notes\n", "is not a Keras model file (not a zip archive"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert _predict(tmp_path / name, image, tmp_path / "out") == 2
        line = _one_error_line(capsys)
        assert f"{tmp_path / name} {message}" in line, line
    flipped = tmp_path / "flipped.keras"
    flipped.write_bytes(good)
    _flip_bytes_inside(flipped, "model.weights.h5")
    assert _predict(flipped, image, tmp_path / "out") == 2
    line = _one_error_line(capsys)
    assert f"{flipped} is damaged (zip CRC check failed for model.weights.h5)" in line, line
    # A zip archive that is no Keras model.
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert _predict(other, image, tmp_path / "out") == 2
    line = _one_error_line(capsys)
    assert f"{other} is not a Keras model file (a zip archive without config.json" in line
    assert not (tmp_path / "out").exists()
    # The intact file still loads.
    assert _predict(model, image, tmp_path / "out") == 0


def test_a_lambda_layer_is_refused_by_keras_safe_mode(tmp_path, capsys):
    marker = tmp_path / "marker"
    inputs = keras.Input((4,))
    # The Lambda's code touches a file whenever it runs: building the model runs it once.
    name = str(marker)
    outputs = keras.layers.Lambda(lambda x: (open(name, "a").close(), x)[1])(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink()
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert _predict(path, image, tmp_path / "out") == 2
    assert "safe_mode" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def _victims(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("precious notes\n")
    # Shaped like a manifest: trusted, it would make --overwrite delete the user's mine.txt.
    (victim / "data.json").write_text('{"entries": ["mine.txt"]}\n')
    return victim


def _unchanged(victim):
    assert (victim / "notes.txt").read_text() == "precious notes\n"
    assert (victim / "data.json").read_text() == '{"entries": ["mine.txt"]}\n'
    assert sorted(path.name for path in victim.iterdir()) == ["data.json", "notes.txt"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_nothing_is_written_through_symlinks_in_the_output_folder(
    keras_model, tmp_path, capsys, overwrite
):
    model, image = keras_model
    victim = _victims(tmp_path)
    output = tmp_path / "out"
    output.mkdir()
    (output / "mine.txt").write_text("the user's own file\n")
    os.symlink("../victim/notes.txt", output / "chelsea_detections.jpg")
    os.symlink("../victim/data.json", output / "detections.json")
    os.symlink("../victim/data.json", output / ".kdet_predict.json")
    # Links with the names of this process's staging and set-aside folders.
    pid = os.getpid()
    os.symlink("../victim", output / f".kdet-predict.tmp-{pid}")
    os.symlink("../victim", output / f".kdet-predict.old-{pid}")
    # Numbered folders that are links: to an empty folder elsewhere, and dangling.
    (tmp_path / "empty").mkdir()
    os.symlink("empty", tmp_path / "out2")
    os.symlink("nowhere", tmp_path / "out3")
    flags = ["--overwrite"] if overwrite else []
    assert _predict(model, image, output, *flags) == 0, capsys.readouterr().err
    _unchanged(victim)
    assert not any((tmp_path / "empty").iterdir())
    written = output if overwrite else tmp_path / "out4"
    assert f"written to {written}" in capsys.readouterr().out
    for name in ("chelsea_detections.jpg", "detections.json", ".kdet_predict.json"):
        assert (written / name).is_file() and not (written / name).is_symlink()
    assert list(json.loads((written / "detections.json").read_text())) == ["chelsea.jpg"]
    assert (output / "mine.txt").read_text() == "the user's own file\n"
    # Again with --overwrite, over the files of a finished run.
    assert _predict(model, image, output, "--overwrite") == 0
    _unchanged(victim)
    assert (output / "mine.txt").read_text() == "the user's own file\n"
    assert not [path for path in output.iterdir() if path.name.startswith(".kdet-predict.")]
