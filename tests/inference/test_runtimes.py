"""`load_detector(..., runtime=...)` and `kdet predict --runtime`: every runtime detects what
the Keras model detects; a TFLite conversion is cached and reused without building the model;
a runtime a model cannot have is one clear error naming the model and its runtimes."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tiny_pipeline
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

import kdet
from kdet import cli
from kdet.configs import load_pipeline
from kdet.inference import RUNTIMES
from kdet.inference import load_detector
from kdet.inference.loaded_detector import _box_mask_rows_in_pixels
from kdet.inference.loaded_detector import _KerasSource
from kdet.inference.loaded_detector import _serve_keras
from kdet.inference.runtimes import cached_tflite_path
from kdet.inference.runtimes import tflite_detect
from kdet.inference.runtimes import tflite_interpreter_class

REPO = pathlib.Path(__file__).resolve().parents[2]
# Run in a new process, after `import sys`: the heavy modules imported so far.
HEAVY_MODULES = "[m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]"

# Not the model's 64x64: the TFLite model resizes inside, as the Keras model does.
HEIGHT, WIDTH = 72, 100


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`(tiny.keras, label_map.pbtxt, image)`: the tiny pipeline's SSD, its batch norms moved
    off identity (so folding them changes numbers), and one shapes image of another size."""
    root = tmp_path_factory.mktemp("runtimes")
    keras.utils.set_random_seed(0)
    model = load_pipeline(tiny_pipeline.write_pipeline(root)).model
    model.build((None, tiny_pipeline.IMAGE_SIZE, tiny_pipeline.IMAGE_SIZE, 3))
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.numpy() for w in layer.weights)
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape),
                               beta + rng.normal(0, 0.1, beta.shape),
                               mean + rng.normal(0, 0.1, mean.shape),
                               variance * rng.uniform(0.5, 1.5, variance.shape)])
    model.save(root / "tiny.keras")
    image = tiny_pipeline.shapes_examples(1, seed=5)[0][0]
    image = np.asarray(Image.fromarray(image).resize((WIDTH, HEIGHT)))
    return root / "tiny.keras", root / "label_map.pbtxt", image


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "kdet_cache"
    monkeypatch.setenv("KDET_CACHE_DIR", str(folder))
    return folder


def _assert_same(got, want, atol):
    assert want["labels"].size > 0
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_allclose(got["confidences"], want["confidences"], atol=atol)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=atol * max(HEIGHT, WIDTH))


def test_each_runtime_detects_what_keras_detects_and_tflite_is_cached(tiny, cache_dir,
                                                                     tmp_path):
    path, _, image = tiny
    keras_detector = load_detector(path)  # a model file: Keras unless asked otherwise
    assert keras_detector.keras_model is not None and keras_detector.description == str(path)
    want = keras_detector.detect(image, score_threshold=0.0)
    frozen = load_detector(path, runtime="frozen")
    assert frozen.description.endswith("(frozen graph)")
    _assert_same(frozen.detect(image, score_threshold=0.0), want, 1e-5)

    tflite = load_detector(path, runtime="tflite")
    (cached,) = (cache_dir / "runtimes").glob("*.tflite")
    assert cached == cached_tflite_path([str(path)])
    assert not list((cache_dir / "runtimes").glob(".tmp-*"))
    _assert_same(tflite.detect(image, score_threshold=0.0), want, 1e-4)
    # Cached: the next load builds no Keras model, and finds the same detections.
    again = load_detector(path, runtime="tflite")
    assert again.keras_model is None and again.description == f"{path} (TFLite)"
    _assert_same(again.detect(image, score_threshold=0.0), want, 1e-4)
    # A changed model file has another cache entry.
    copy = tmp_path / "tiny.keras"
    shutil.copy2(path, copy)
    before = cached_tflite_path([str(copy)])
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 1))
    assert cached_tflite_path([str(copy)]) != before


def test_a_tflite_file_or_export_folder_serves_its_tflite_model(tiny, tmp_path):
    path, _, image = tiny
    model = keras.saving.load_model(path)
    want = load_detector(path).detect(image, score_threshold=0.0)
    # Exported for the model's 64x64 images; the input is resized to the image's size.
    kdet.export.export_tflite(model, tmp_path / "model.tflite", progress=False)
    tflite = load_detector(tmp_path / "model.tflite")
    assert tflite.description == f"TFLite model {tmp_path / 'model.tflite'}"
    _assert_same(tflite.detect(image, score_threshold=0.0), want, 1e-4)
    # An export folder (only the files that choose the runtime; no SavedModel is loaded).
    exported = tmp_path / "exported"
    (exported / "saved_model").mkdir(parents=True)
    (exported / "saved_model" / "saved_model.pb").touch()
    with pytest.raises(ValueError, match=r"runtime 'tflite' cannot serve SavedModel .*no "
                                         r"model.tflite.*its runtimes: saved_model$"):
        load_detector(exported, runtime="tflite")
    (tmp_path / "model.tflite").rename(exported / "model.tflite")
    from_folder = load_detector(exported, runtime="tflite")
    _assert_same(from_folder.detect(image, score_threshold=0.0), want, 1e-4)
    with pytest.raises(ValueError, match=r"runtime 'keras' cannot serve SavedModel .*its "
                                         r"runtimes: saved_model, tflite$"):
        load_detector(exported, runtime="keras")


def test_a_runtime_a_model_cannot_have_is_one_clear_error(tiny):
    path, _, _ = tiny
    with pytest.raises(ValueError, match=r"runtime must be one of keras, frozen, saved_model, "
                                         r"tflite; got 'onnx'"):
        load_detector(path, runtime="onnx")
    with pytest.raises(ValueError, match=rf"runtime 'saved_model' cannot serve {path} \(a Keras "
                                         r"model.*its runtimes: keras, frozen, tflite$"):
        load_detector(path, runtime="saved_model")
    # TFLite's post-processing op has no soft NMS (nor RoI crops: Faster R-CNN, masks).
    model = keras.saving.load_model(path)
    model.non_max_suppression.soft_nms_sigma = 0.5
    source = _KerasSource("my soft-NMS SSD", ["soft"], dict, lambda: model,
                          default_runtime="tflite")
    with pytest.raises(ValueError, match=r"runtime 'tflite' cannot serve my soft-NMS SSD \(the "
                                         r"model's post-processing uses soft NMS.*its runtimes: "
                                         r"keras, frozen$"):
        _serve_keras(source, "tflite")
    # A default TFLite (a zoo model's) falls back to Keras.
    assert _serve_keras(source, None).keras_model is model


def test_kdet_predict_runtime_flag(tiny, tmp_path, capsys):
    path, label_map, image = tiny
    Image.fromarray(image).save(tmp_path / "shape.png")

    def predict(*flags, output):
        return cli.main(["predict", str(tmp_path / "shape.png"), "--model", str(path),
                         "--label_map", str(label_map), "--output_dir", str(tmp_path / output),
                         "--score_threshold", "0.0", *flags])

    assert predict(output="keras") == 0
    assert predict("--runtime", "tflite", output="tflite") == 0
    assert f"by {path} (TFLite) written to" in capsys.readouterr().out
    want = json.loads((tmp_path / "keras" / "detections.json").read_text())["shape.png"]
    got = json.loads((tmp_path / "tflite" / "detections.json").read_text())["shape.png"]
    assert [d["name"] for d in got] == [d["name"] for d in want] and want
    np.testing.assert_allclose([d["score"] for d in got], [d["score"] for d in want], atol=1e-4)
    assert predict("--runtime", "saved_model", output="refused") == 2
    assert "its runtimes: keras, frozen, tflite" in capsys.readouterr().err
    # `kdet --help` names the runtimes without importing kdet.inference: the same ones.
    from kdet.cli import predict as predict_command

    assert predict_command.RUNTIMES == RUNTIMES


def test_litert_and_tf_lite_interpreters_detect_the_same(tiny, monkeypatch):
    path, _, image = tiny
    load_detector(path, runtime="tflite")  # converts (and caches) once
    cached = cached_tflite_path([str(path)])
    assert tflite_interpreter_class().__module__ == "ai_edge_litert.interpreter"
    litert = tflite_detect(cached)(image[np.newaxis], None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # not installed
    assert tflite_interpreter_class() is not Interpreter
    tf_lite = tflite_detect(cached)(image[np.newaxis], None)
    assert litert["labels"].size > 0 and litert.keys() == tf_lite.keys()
    np.testing.assert_array_equal(litert["labels"], tf_lite["labels"])
    np.testing.assert_array_equal(litert["confidences"], tf_lite["confidences"])
    # Their builds' float rounding differs in the box decoding: a unit or two in the last place.
    np.testing.assert_allclose(litert["boxes"], tf_lite["boxes"], rtol=1e-6, atol=1e-6)
    # The boxes in pixels, computed in numpy, are what kdet.boxes.convert_format makes.
    relative = litert["boxes"] / np.array([HEIGHT, WIDTH, HEIGHT, WIDTH], np.float32)
    rows = _box_mask_rows_in_pixels(
        {"boxes": relative[np.newaxis], "labels": litert["labels"][np.newaxis],
         "confidences": litert["confidences"][np.newaxis],
         "num_detections": np.array([len(relative)])}, None, HEIGHT, WIDTH)
    np.testing.assert_array_equal(
        rows["boxes"], kdet.boxes.convert_format(relative, "rel_yxyx", "yxyx", HEIGHT, WIDTH))


def test_kdet_predict_of_a_cached_tflite_model_imports_no_tensorflow(tiny, tmp_path):
    """The path of `kdet predict photo.jpg` with a zoo model converted before (cache lookup,
    LiteRT, drawing, JSON) imports neither TensorFlow nor Keras; shown on a tiny `.keras`
    model's cached conversion (the same `_serve_keras` cache hit as a zoo model's) plus the
    zoo entry lookup, cache key and label map of `ssd_mobilenet_v2_coco`."""
    path, label_map, image = tiny
    Image.fromarray(image).save(tmp_path / "shape.png")
    load_detector(path, runtime="tflite")  # converts (and caches) once
    argv = ["predict", str(tmp_path / "shape.png"), "--model", str(path), "--runtime", "tflite",
            "--label_map", str(label_map), "--score_threshold", "0.0", "--output_dir"]
    code = f"""
import json, sys
from kdet import cli
from kdet.inference import load_detector, read_image
from kdet.inference.loaded_detector import _zoo_source
from kdet.inference.runtimes import cached_tflite_path
assert cli.main(json.loads(sys.argv[1])) == 0
found = load_detector(sys.argv[2], runtime="tflite").detect(read_image(sys.argv[3]))
zoo = _zoo_source("ssd_mobilenet_v2_coco")
print(json.dumps([{{key: value.tolist() for key, value in found.items()}},
                  str(cached_tflite_path(zoo.files)), zoo.label_map()[17], {HEAVY_MODULES}]))
"""
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps([*argv, str(tmp_path / "light")]), str(path),
         str(tmp_path / "shape.png")],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found, zoo_cache, cat, heavy = json.loads(result.stdout.splitlines()[-1])
    assert heavy == []
    want = load_detector(path, runtime="tflite").detect(image)
    assert want["labels"].size > 0 and found.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(np.asarray(found[key], value.dtype), value, err_msg=key)
    from kdet.inference.loaded_detector import _zoo_source

    assert zoo_cache == str(cached_tflite_path(_zoo_source("ssd_mobilenet_v2_coco").files))
    assert cat == "cat"
    assert cli.main([*argv, str(tmp_path / "in_process")]) == 0
    assert ((tmp_path / "light" / "detections.json").read_text()
            == (tmp_path / "in_process" / "detections.json").read_text())
