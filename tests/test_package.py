"""`import kdet` alone makes saved kdet models loadable, and starts TensorFlow quietly."""

import pathlib
import re
import subprocess
import sys

import kdet

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_keras_load_model_works_right_after_import_kdet(tmp_path):
    model = kdet.SSD(num_classes=2, feature_extractor="ssd_mobilenet_v2",
                     image_resizer=kdet.layers.FixedShapeResizer(64, 64))
    model.build((None, 64, 64, 3))
    model.save(tmp_path / "ssd.keras")
    # A new process that imports nothing but kdet and keras, and runs the model once.
    code = ("import sys, kdet, keras; model = keras.saving.load_model(sys.argv[1], compile=False); "
            "model.predict_on_batch(keras.ops.zeros((1, 64, 64, 3))); "
            "print(type(model).__name__, type(model.feature_extractor).__name__)")
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ssd.keras")],
        env={"PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["SSD", "SSDMobileNetV2FeatureExtractor"]
    # `import kdet` starts TensorFlow quietly: no C++ banner, CUDA probe (`E0000 … cuInit`) or
    # info lines, though TF_CPP_MIN_LOG_LEVEL is not set here.
    assert not re.findall(r"^[IWEF]\d{4} .*", result.stderr, re.MULTILINE), result.stderr[-3000:]


def _requirements(section="options", key="install_requires"):
    """A requirement list of setup.cfg (`install_requires`, or an extra of
    `options.extras_require`), one requirement per line, comments dropped."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config[section][key].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def test_keras_floor_excludes_the_mirrored_strategy_regressions_and_is_installed():
    # Keras 3.7-3.9 train with NaN losses under MirroredStrategy (keras-team/keras#21061,
    # #21072); 3.10 fixed it, and kdet's mirrored and multi-worker training rely on it.
    (keras_requirement,) = [line for line in _requirements()
                            if re.match(r"keras\s*[<>=!~]", line)]
    floor = re.fullmatch(r"keras\s*>=\s*([\d.]+)", keras_requirement)
    assert floor, f"expected keras>=X.Y in setup.cfg, got {keras_requirement!r}"
    assert _version(floor[1]) >= (3, 10)
    import keras

    assert _version(keras.__version__) >= _version(floor[1])


def test_the_notebooks_extra_installs_jupyter_and_the_readme_says_how_to_open_them():
    extra = _requirements("options.extras_require", "notebooks")
    assert [line for line in extra if re.match(r"(notebook|jupyterlab)\b", line)], extra
    readme = (REPO / "README.md").read_text()
    assert 'pip install ".[zoo,notebooks]" && jupyter notebook notebooks/' in readme
