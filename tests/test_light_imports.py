"""`import kdet` and the `kdet` command's help and usage errors import neither TensorFlow nor
Keras; the first use of the library loads them, quietly, with kdet's saved classes registered."""

import contextlib
import json
import pathlib
import re
import subprocess
import sys

from kdet import cli
from kdet.utils.import_hooks import run_around_imports

REPO = pathlib.Path(__file__).resolve().parents[1]
# Run in a new process, after `import sys`: the heavy modules imported so far.
HEAVY_MODULES = ("[m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]")
# The command lines that must answer without TensorFlow: help, and argparse's usage errors.
LIGHT_COMMANDS = (["--help"], ["--version"], ["train", "--help"], ["config", "convert", "--help"],
                  ["train"], ["nosuch"], [])


def _python(code, *args):
    """Runs `python -c code args` on this repository's kdet, TF_CPP_MIN_LOG_LEVEL unset."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], check=False,
        env={"PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin",
             "COLUMNS": "100"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_help_and_usage_errors_import_no_tensorflow_and_say_what_they_said(monkeypatch):
    code = f"""
import contextlib, io, json, sys
import kdet.cli
kdet.cli.build_parser()
outputs = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            kdet.cli.main(argv)
        except SystemExit as exit:
            outputs.append([exit.code, out.getvalue(), err.getvalue()])
print(json.dumps([outputs, {HEAVY_MODULES}]))
"""
    outputs, heavy = json.loads(_python(code, json.dumps(LIGHT_COMMANDS)).stdout)
    assert heavy == []
    # The same answers as this process gives, where TensorFlow and all of kdet are loaded.
    monkeypatch.setenv("COLUMNS", "100")
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    config_convert = commands["config"]._subparsers._group_actions[0].choices["convert"]
    assert outputs[0] == [0, parser.format_help(), ""]
    assert outputs[1][:2] == [0, f"kdet {__import__('kdet').__version__}\n"]
    assert outputs[2] == [0, commands["train"].format_help(), ""]
    assert outputs[3] == [0, config_convert.format_help(), ""]
    assert "--checkpoint_every_n CHECKPOINT_EVERY_N\n" in outputs[2][1]
    assert "(default: 1000)" in outputs[2][1]
    for output in outputs[4:]:
        assert output[0] == 2 and output[1] == ""
    assert outputs[4][2].endswith(
        "kdet train: error: the following arguments are required: --pipeline_config_path, "
        "--model_dir\n"
    )
    assert "argument COMMAND: invalid choice: 'nosuch'" in outputs[5][2]
    assert outputs[6][2].endswith("kdet: error: the following arguments are required: COMMAND\n")


def test_import_kdet_is_light_and_a_kdet_module_starts_tensorflow_quietly():
    code = f"""
import sys
import kdet
assert {HEAVY_MODULES} == [], {HEAVY_MODULES}
print(kdet.__version__)
import kdet.layers  # imports TensorFlow and Keras
import keras
assert keras.saving.get_registered_object("kdet>SSD") is kdet.SSD
assert keras.saving.get_registered_object("kdet>SSDMobileNetV2FeatureExtractor") is not None
from kdet import FasterRCNN
print(FasterRCNN.__name__, kdet.SSD.__name__)
"""
    result = _python(code)
    assert result.stdout.split() == [__import__("kdet").__version__, "FasterRCNN", "SSD"]
    # No C++ banner (oneDNN, CPU features), CUDA probe (`E0000 … cuInit`) or info lines.
    assert not re.findall(r"^[IWEF]\d{4} |oneDNN|cpu_feature_guard|absl::", result.stderr,
                          re.MULTILINE), result.stderr[-3000:]


def test_hooks_on_one_module_nest_and_run_around_its_code(tmp_path, monkeypatch):
    (tmp_path / "hooked_module_here.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    events = []

    def around(label):
        @contextlib.contextmanager
        def hook(module):
            events.append((label, "before", hasattr(module, "VALUE")))
            yield
            events.append((label, "after", module.VALUE))

        return hook

    run_around_imports(lambda name: name == "hooked_module_here", around("inner"))
    run_around_imports(lambda name: name == "hooked_module_here", around("outer"))
    try:
        import hooked_module_here  # noqa: F401
    finally:
        sys.modules.pop("hooked_module_here", None)
    assert events == [("outer", "before", False), ("inner", "before", False),
                      ("inner", "after", 1), ("outer", "after", 1)]
