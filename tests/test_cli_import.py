"""`kdet COMMAND --import MODULE`: a pipeline config naming the user's own feature extractor."""

import os
import pathlib
import shutil
import subprocess
import sys

import tiny_pipeline
from kdet import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _kdet(args, cwd):
    """`python -m kdet.cli ARGS` in a new process where nothing registered the tests' extractor."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "kdet.cli", *map(str, args)], cwd=cwd, capture_output=True,
        text=True, timeout=300, env=env,
    )
    return result.returncode, result.stdout, result.stderr


def test_train_imports_the_module_that_registers_the_extractor(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=2)
    # The user's module, in the folder they run kdet from.
    shutil.copy(REPO / "tests" / "tiny_ssd_extractor.py", tmp_path / "my_extractors.py")
    train = ["train", "--pipeline_config_path", config, "--checkpoint_every_n", "2"]

    code, _, err = _kdet([*train, "--model_dir", tmp_path / "without"], cwd=tmp_path)
    assert code == 2, err
    assert "test_tiny_two_map_ssd" in err.strip().splitlines()[-1]

    code, _, err = _kdet([*train, "--model_dir", tmp_path / "by_name", "--import", "my_extractors"],
                         cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "by_name" / "ckpt-2.weights.h5").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = _kdet([*train, "--model_dir", tmp_path / "by_path", "--import",
                          tmp_path / "my_extractors.py"], cwd=elsewhere)
    assert code == 0, err
    assert (tmp_path / "by_path" / "ckpt-2.weights.h5").is_file()


def test_a_missing_module_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["zoo", "--import", "no_such_module_here"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kdet zoo: error: --import no_such_module_here: no module named 'no_such_module_here' in "
        "the current folder or on PYTHONPATH (or give the path of its .py file)"
    )
    assert cli.main(["zoo", "--import", str(tmp_path / "nope.py")]) == 2
    missing_file = f"--import {tmp_path / 'nope.py'}: no such file"
    assert capsys.readouterr().err.strip().endswith(missing_file)


def test_dotted_names_and_taken_names_are_one_clear_line(tmp_path, capsys):
    assert cli.main(["zoo", "--import", "kdet.no_such_module"]) == 2
    assert "no module named 'kdet.no_such_module' in the current folder" in capsys.readouterr().err
    (tmp_path / "json.py").write_text("")
    assert cli.main(["zoo", "--import", str(tmp_path / "json.py")]) == 2
    assert "the module name 'json' is already taken by" in capsys.readouterr().err


def test_every_command_takes_import():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        assert "--import" in command.format_help(), name
    config_commands = commands["config"]._subparsers._group_actions[0].choices
    assert "--import" in config_commands["convert"].format_help()
