"""`kdet predict` takes what kdet makes and what users have: folders, glob patterns, videos,
`.keras` files, `kdet train` model directories and checkpoints, `kdet export` folders and
SavedModels; images over Pillow's limit get one line and a flag."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import tiny_pipeline
from kdet import cli

SIZE = tiny_pipeline.IMAGE_SIZE
NAMES = set(tiny_pipeline.LABEL_MAP.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(config, model directory, export folder)`: the tiny pipeline trained 1 step, exported."""
    root = tmp_path_factory.mktemp("trained")
    config = tiny_pipeline.write_pipeline(root, num_steps=1, learning_rate=0.0005)
    model_dir = root / "model"
    assert cli.main(["train", "--pipeline_config_path", str(config), "--model_dir",
                     str(model_dir)]) == 0
    exported = root / "exported"
    assert cli.main(["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
                     str(model_dir), "--output_directory", str(exported)]) == 0
    return config, model_dir, exported


@pytest.fixture(scope="module")
def keras_model(tiny_keras_model):
    return tiny_keras_model


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """A folder of 3 shapes PNGs (what the tiny model learns from) and a text file."""
    folder = tmp_path_factory.mktemp("shapes")
    images, _, _ = tiny_pipeline.shapes_examples(3, seed=5)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"shape{index}.png")
    (folder / "README.txt").write_text("not an image")
    return folder


def _run(*argv, model, output):
    return cli.main(["predict", *map(str, argv), "--model", str(model), "--output_dir",
                     str(output), "--score_threshold", "0"])


def _results(output):
    return json.loads((output / "detections.json").read_text())


def test_a_folder_is_its_images_and_a_glob_its_matches(keras_model, shapes_folder, tmp_path,
                                                       capsys):
    model, _ = keras_model
    assert _run(shapes_folder, model=model, output=tmp_path / "folder") == 0
    assert list(_results(tmp_path / "folder")) == ["shape0.png", "shape1.png", "shape2.png"]
    assert _run(f"{shapes_folder}/shape[02].*", model=model, output=tmp_path / "glob") == 0
    assert list(_results(tmp_path / "glob")) == ["shape0.png", "shape2.png"]
    # `**` reaches into subfolders.
    assert _run(f"{shapes_folder.parent}/**/shape1.png", model=model,
                output=tmp_path / "deep") == 0
    assert list(_results(tmp_path / "deep")) == ["shape1.png"]
    capsys.readouterr()


def test_wrong_inputs_are_one_clear_line(keras_model, tmp_path, capsys):
    model, _ = keras_model
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("")
    for argument, message in (
        (empty, f"folder {empty}: no image or video file in it; expected files ending in .jpg"),
        (tmp_path / "missing.jpg", f"no such file or folder, and no file matching: "
                                   f"{tmp_path / 'missing.jpg'}"),
        (f"{tmp_path}/*.png", f"no such file or folder, and no file matching: {tmp_path}/*.png"),
    ):
        assert _run(argument, model=model, output=tmp_path / "out") == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "out").exists()


def _write_video(path, frames):
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def test_a_video_gives_an_annotated_video_and_per_frame_json(keras_model, tmp_path, capsys):
    av = pytest.importorskip("av")
    model, label_map = keras_model
    images, _, _ = tiny_pipeline.shapes_examples(5, seed=6)
    video = tmp_path / "clip.mp4"
    _write_video(video, images)
    output = tmp_path / "out"
    argv = ["predict", str(video), "--model", str(model), "--label_map", str(label_map),
            "--output_dir", str(output), "--score_threshold", "0.0"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "clip.mp4: 5 frames; " in captured.out
    assert "5/5" in captured.err  # the progress bar
    record = json.loads((output / "clip_detections.json").read_text())
    assert [frame["frame"] for frame in record["frames"]] == list(range(5))
    assert record["fps"] == 10 and (record["width"], record["height"]) == (SIZE, SIZE)
    assert record["frames"][0]["detections"]
    assert {d["name"] for f in record["frames"] for d in f["detections"]} <= NAMES
    assert [abs(f["time"] - f["frame"] / 10) < 1e-3 for f in record["frames"]] == [True] * 5
    with av.open(str(output / "clip_detections.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (SIZE, SIZE, 3)
    # The boxes are drawn: the annotated frames differ from the input's.
    assert np.abs(frames[2].astype(float) - images[2]).mean() > 5
    assert _results(output) == {}
    assert cli.main([*argv, "--overwrite", "--no_progress"]) == 0
    assert "frame" not in capsys.readouterr().err
    assert len(json.loads((output / "clip_detections.json").read_text())["frames"]) == 5


def test_a_file_that_is_no_video_is_skipped_by_name(keras_model, tmp_path, capsys):
    pytest.importorskip("av")
    model, _ = keras_model
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"no video here")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(good)
    assert _run(fake, good, model=model, output=tmp_path / "out") == 0
    assert f"WARNING: skipped {fake}: not a video FFmpeg can read" in capsys.readouterr().err


def test_a_keras_file_names_classes_by_id_or_by_label_map(keras_model, shapes_folder, tmp_path):
    model, label_map = keras_model
    image = shapes_folder / "shape0.png"
    assert _run(image, model=model, output=tmp_path / "ids") == 0
    found = _results(tmp_path / "ids")["shape0.png"]
    assert found and {d["name"] for d in found} <= {"1", "2"}
    assert _run(image, "--label_map", label_map, model=model, output=tmp_path / "names") == 0
    named = _results(tmp_path / "names")["shape0.png"]
    assert [d["name"] for d in named] == [tiny_pipeline.LABEL_MAP[d["label"]] for d in found]


def test_a_train_model_dir_its_checkpoint_and_its_export_give_the_same_detections(
    trained, shapes_folder, tmp_path, capsys
):
    config, model_dir, exported = trained
    image = shapes_folder / "shape1.png"
    # kdet train kept a copy of its config in the model directory: no flag needed.
    assert (model_dir / "pipeline.config").read_bytes() == config.read_bytes()
    assert _run(image, model=model_dir, output=tmp_path / "dir") == 0
    assert (f"file(s) by {model_dir / 'ckpt-1.weights.h5'} (step 1) with "
            f"{model_dir / 'pipeline.config'} written") in capsys.readouterr().out
    from_dir = _results(tmp_path / "dir")["shape1.png"]
    assert from_dir and {d["name"] for d in from_dir} <= NAMES  # the config's label map
    # A model directory without a config (an older kdet's): it must be named, and the error
    # says how.
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    (copy / "pipeline.config").unlink()
    assert _run(image, model=copy, output=tmp_path / "none") == 2
    error = capsys.readouterr().err
    assert f"no pipeline.config or pipeline.yaml or pipeline.yml in {copy}" in error
    assert "--pipeline_config_path" in error
    assert _run(image, "--pipeline_config_path", config, model=copy,
                output=tmp_path / "flag") == 0
    assert f"(step 1) with {config} written" in capsys.readouterr().out
    assert _results(tmp_path / "flag")["shape1.png"] == from_dir
    # A checkpoint file, its config beside it.
    shutil.copyfile(config, copy / "pipeline.config")
    assert _run(image, model=copy / "ckpt-1.weights.h5", output=tmp_path / "ckpt") == 0
    assert _results(tmp_path / "ckpt")["shape1.png"] == from_dir
    # A config whose label map is not here: a warning, and classes by id.
    text = config.read_text().replace("label_map.pbtxt", "moved.pbtxt")
    (copy / "pipeline.config").write_text(text)
    assert _run(image, model=copy, output=tmp_path / "moved") == 0
    assert "moved.pbtxt, which does not exist here: detections are named by class id" \
        in capsys.readouterr().err
    assert [d["name"] for d in _results(tmp_path / "moved")["shape1.png"]] \
        == [str(d["label"]) for d in from_dir]
    # The export folder and its saved_model/: the same detections, named by the config.
    for model in (exported, exported / "saved_model"):
        output = tmp_path / model.name
        assert _run(image, model=model, output=output) == 0
        from_export = _results(output)["shape1.png"]
        assert [d["name"] for d in from_export] == [d["name"] for d in from_dir]
        np.testing.assert_allclose([d["score"] for d in from_export],
                                   [d["score"] for d in from_dir], atol=2e-3)
        np.testing.assert_allclose([d["box_yxyx"] for d in from_export],
                                   [d["box_yxyx"] for d in from_dir], atol=0.3)
    capsys.readouterr()


def test_train_keeps_one_copy_of_its_config_and_sets_a_different_one_aside(
    trained, shapes_folder, tmp_path, capsys
):
    config, model_dir, _ = trained
    model_dir = shutil.copytree(model_dir, tmp_path / "model")
    # Resumed with another config (a YAML one, with another learning rate): the earlier copy
    # is kept under another name with a warning, and the new one is what predict finds.
    yaml_config = tmp_path / "changed.yaml"
    assert cli.main(["config", "convert", str(config), str(yaml_config)]) == 0
    yaml_config.write_text(yaml_config.read_text().replace("0.0005", "0.0004"))
    capsys.readouterr()
    assert cli.main(["train", "--pipeline_config_path", str(yaml_config), "--model_dir",
                     str(model_dir), "--num_train_steps", "2"]) == 0
    error = capsys.readouterr().err
    assert (f"WARNING: {model_dir / 'pipeline.config'} was a different config from "
            f"{yaml_config} (the one trained now): kept as "
            f"{model_dir / 'pipeline.previous-1.config'}") in error
    assert (model_dir / "pipeline.previous-1.config").read_bytes() == config.read_bytes()
    assert (model_dir / "pipeline.yaml").read_bytes() == yaml_config.read_bytes()
    assert not (model_dir / "pipeline.config").exists()
    assert not [path for path in model_dir.iterdir() if path.name.startswith(".tmp-")]
    assert _run(shapes_folder / "shape1.png", model=model_dir, output=tmp_path / "out") == 0
    assert f"(step 2) with {model_dir / 'pipeline.yaml'} written" in capsys.readouterr().out
    # The same config again: no warning, nothing renamed.
    assert cli.main(["train", "--pipeline_config_path", str(yaml_config), "--model_dir",
                     str(model_dir), "--num_train_steps", "3"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    assert sorted(path.name for path in model_dir.glob("pipeline*")) == [
        "pipeline.previous-1.config", "pipeline.yaml"]


def test_savedmodels_of_string_inputs_run_too(trained, shapes_folder, tmp_path, capsys):
    config, model_dir, image_tensor_export = trained
    image = shapes_folder / "shape2.png"
    assert _run(image, model=image_tensor_export, output=tmp_path / "image_tensor") == 0
    want = _results(tmp_path / "image_tensor")["shape2.png"]
    assert want
    for input_type in ("encoded_image_string_tensor", "tf_example"):
        exported = tmp_path / input_type
        assert cli.main(["export", "--pipeline_config_path", str(config),
                         "--trained_checkpoint_dir", str(model_dir), "--output_directory",
                         str(exported), "--input_type", input_type]) == 0
        output = tmp_path / f"{input_type}_out"
        assert _run(image, model=exported / "saved_model", output=output) == 0
        assert _results(output)["shape2.png"] == want, input_type
    capsys.readouterr()


def test_a_model_that_is_none_of_these_is_one_clear_line(tmp_path, capsys):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(image)
    (tmp_path / "folder").mkdir()
    for model, message in (
        (tmp_path / "folder", "a folder, but not a model; expected a zoo model name"),
        (tmp_path / "nope" / "saved_model", "no such file or folder; expected a zoo model name"),
        ("ssd_mobilenet_v2_cooc", "Did you mean 'ssd_mobilenet_v2_coco'?"),
    ):
        assert _run(image, model=model, output=tmp_path / "out") == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and message in error[0], error
    assert "a 'kdet export' folder or a SavedModel folder" in error[0]
    # A zoo model has its own config: a pipeline config given with it is a mistake.
    assert _run(image, "--pipeline_config_path", image, model="ssd_mobilenet_v2_coco",
                output=tmp_path / "out") == 2
    assert "has its own configuration" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_images_over_the_pixel_limit_are_one_line_or_decoded_with_a_flag(
    keras_model, tmp_path, capsys, monkeypatch
):
    model, _ = keras_model
    image = tmp_path / "large.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(image)
    # Pillow refuses more than twice MAX_IMAGE_PIXELS: 4096 pixels are too many here.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert _run(image, "--strict", model=model, output=tmp_path / "out") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(image) in error[0]
    assert "64x64 = 4096 pixels, over Pillow's limit of 2000" in error[0]
    assert "pass --allow_large_images" in error[0]
    assert _run(image, "--allow_large_images", model=model, output=tmp_path / "out") == 0
    assert "large.png" in _results(tmp_path / "out")
    assert Image.MAX_IMAGE_PIXELS == 1000  # the user's setting is back


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: ssd_mobilenet_v2_coco)", "(default: runs/detections)",
                    "(default: 0.5)", "default: half the tile size",
                    "default: the whole image at once", "default: off",
                    "(default: skip it with a warning)", "(default: a pipeline.config or "
                    "pipeline.yaml in its folder)"):
        assert default in text, default
