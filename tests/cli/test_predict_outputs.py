"""`kdet predict` loses nothing: bad files skipped (or, with --strict, nothing written), output
names that never collide, numbered run folders, --overwrite that replaces only kdet's outputs,
interrupted runs that leave earlier results as they were."""

import json

import numpy as np
import pytest
from PIL import Image

import kdet
import tiny_pipeline
from kdet import cli
from kdet import visualization
from kdet.inference import prediction_run

SIZE = tiny_pipeline.IMAGE_SIZE


@pytest.fixture(scope="module")
def keras_model(tiny_keras_model):
    """A tiny untrained SSD (the tiny pipeline's, 64 px, 2 classes) saved as `.keras`."""
    return tiny_keras_model[0]


def _image(path, seed=0, size=SIZE):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _predict(keras_model, *argv):
    return cli.main(["predict", *map(str, argv), "--model", str(keras_model),
                     "--score_threshold", "0"])


def test_a_corrupt_file_is_skipped_with_a_warning_naming_it(keras_model, tmp_path, capsys):
    good = _image(tmp_path / "good.png")
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("not a JPEG")
    output = tmp_path / "out"
    assert _predict(keras_model, good, bad, "--output_dir", output) == 0
    captured = capsys.readouterr()
    assert f"WARNING: skipped {bad}: not an image file Pillow can read" in captured.err
    assert "Traceback" not in captured.err
    assert "skipped 1" in captured.out
    assert list(json.loads((output / "detections.json").read_text())) == ["good.png"]
    assert (output / "good_detections.jpg").is_file()
    assert not (output / "not_an_image_detections.jpg").exists()


def _truncated_png(path):
    """A PNG whose header reads but whose pixels do not decode."""
    _image(path, size=200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_strict_stops_at_a_bad_file_and_writes_nothing(keras_model, tmp_path, capsys):
    good = _image(tmp_path / "a_good.png")
    output = tmp_path / "out"
    # A file Pillow cannot identify is found before the model loads...
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a JPEG")
    assert _predict(keras_model, good, bad, "--output_dir", output, "--strict") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(bad) in error[0] and "nothing was written" in error[0]
    assert not output.exists()
    # ... one that breaks while decoding, after other images were drawn: still nothing.
    truncated = _truncated_png(tmp_path / "z_truncated.png")
    assert _predict(keras_model, good, truncated, "--output_dir", output, "--strict") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(truncated) in error[0] and "cannot decode" in error[0]
    assert not output.exists()
    # Without --strict the truncated file is skipped.
    assert _predict(keras_model, good, truncated, "--output_dir", output) == 0
    assert f"WARNING: skipped {truncated}: cannot decode" in capsys.readouterr().err
    assert list(json.loads((output / "detections.json").read_text())) == ["a_good.png"]


def test_only_bad_files_is_an_error_and_writes_nothing(keras_model, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG nonsense")
    assert _predict(keras_model, bad, "--output_dir", tmp_path / "out") == 2
    assert "none of the 1 input file(s) can be read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_inputs_of_one_name_never_collide(keras_model, tmp_path, capsys):
    # One grey level each, so that an annotated copy tells which input it is.
    levels = {"photos/cat.jpg": 20, "mine/cat.jpg": 230, "photos/cat.png": 120}
    for key, level in levels.items():
        (tmp_path / key).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), level, np.uint8)).save(tmp_path / key)
    first, second, third = (tmp_path / key for key in levels)
    output = tmp_path / "out"
    assert _predict(keras_model, first, second, third, first, "--output_dir", output) == 0
    printed = capsys.readouterr().out
    assert "photos/cat.jpg: " in printed and "mine/cat.jpg: " in printed
    results = json.loads((output / "detections.json").read_text())
    assert list(results) == ["photos/cat.jpg", "mine/cat.jpg", "cat.png"]  # `first` once
    drawn = sorted(path.name for path in output.glob("*.jpg"))
    assert drawn == ["cat_detections.jpg", "mine_cat_detections.jpg",
                     "photos_cat_detections.jpg"]
    # Each annotated image is its own input's, not another's.
    for name, level in (("photos_cat", 20), ("mine_cat", 230), ("cat", 120)):
        with Image.open(output / f"{name}_detections.jpg") as image:
            median = np.median(np.asarray(image))
        assert min(levels.values(), key=lambda other: abs(other - median)) == level, name


def test_a_rerun_goes_to_a_numbered_folder_and_overwrite_replaces_only_kdet_outputs(
    keras_model, tmp_path, capsys
):
    images = [_image(tmp_path / f"image{i}.png", seed=i) for i in range(3)]
    output = tmp_path / "runs" / "detections"
    assert _predict(keras_model, *images, "--output_dir", output) == 0
    first_run = json.loads((output / "detections.json").read_text())
    assert len(first_run) == 3
    capsys.readouterr()
    # Again, with one image: a new folder; the first run's stays whole.
    assert _predict(keras_model, images[0], "--output_dir", output) == 0
    assert f"written to {output}2" in capsys.readouterr().out
    assert json.loads((output / "detections.json").read_text()) == first_run
    assert list(json.loads((output.with_name("detections2") / "detections.json").read_text())) \
        == ["image0.png"]
    assert _predict(keras_model, images[1], "--output_dir", output) == 0
    assert f"written to {output}3" in capsys.readouterr().out
    # --overwrite: the earlier run's images go, the user's own files stay.
    (output / "notes.txt").write_text("mine")
    assert _predict(keras_model, images[0], "--output_dir", output, "--overwrite") == 0
    assert f"written to {output}\n" in capsys.readouterr().out
    assert sorted(path.name for path in output.iterdir()) == [
        ".kdet_predict.json", "detections.json", "image0_detections.jpg", "notes.txt"]
    assert list(json.loads((output / "detections.json").read_text())) == ["image0.png"]


def test_overwrite_clears_the_outputs_of_kdet_versions_without_a_manifest(
    keras_model, tmp_path
):
    output = tmp_path / "out"
    output.mkdir()
    (output / "detections.json").write_text('{"old.jpg": []}')
    (output / "old_detections.jpg").write_bytes(b"old")
    (output / "older_detections.jpg").write_bytes(b"older")  # from a run before that
    (output / "photo.jpg").write_bytes(b"the user's")
    image = _image(tmp_path / "new.png")
    assert _predict(keras_model, image, "--output_dir", output, "--overwrite") == 0
    assert sorted(path.name for path in output.iterdir()) == [
        ".kdet_predict.json", "detections.json", "new_detections.jpg", "photo.jpg"]


def test_an_interrupted_run_leaves_the_earlier_results_as_they_were(
    keras_model, tmp_path, monkeypatch
):
    images = [_image(tmp_path / f"image{i}.png", seed=i) for i in range(3)]
    output = tmp_path / "out"
    assert _predict(keras_model, images[0], "--output_dir", output) == 0
    before = {path.name: path.read_bytes() for path in output.iterdir()}
    detect_and_draw = prediction_run._detect_and_draw
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return detect_and_draw(*args, **kwargs)

    monkeypatch.setattr(prediction_run, "_detect_and_draw", interrupted)
    for extra in ([], ["--overwrite"]):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            _predict(keras_model, *images, "--output_dir", output, *extra)
        assert {path.name: path.read_bytes() for path in output.iterdir()} == before
        assert not output.with_name("out2").exists()


def test_save_image_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "drawn.png"
    visualization.save_image(np.zeros((4, 5, 3), np.uint8), path)
    with Image.open(path) as image:
        assert image.size == (5, 4)


def test_unique_keys_take_folders_only_where_names_clash(tmp_path):
    from kdet.inference.input_files import unique_keys

    paths = [tmp_path / "a" / "x" / "cat.jpg", tmp_path / "b" / "x" / "cat.jpg",
             tmp_path / "a" / "dog.jpg"]
    assert unique_keys(paths) == ["a/x/cat.jpg", "b/x/cat.jpg", "dog.jpg"]
    assert kdet.inference.InputFile  # the package is importable as kdet.inference


def test_a_folder_name_ending_in_a_digit_gets_a_separated_number(tmp_path):
    from kdet.inference.run_folder import numbered_folder

    for name in ("m4", "runs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "detections.json").write_text("{}")
    assert numbered_folder(tmp_path / "m4") == tmp_path / "m4-2"
    assert numbered_folder(tmp_path / "runs") == tmp_path / "runs2"
