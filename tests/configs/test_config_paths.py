"""Files a pipeline config names are checked at their config line before anything is restored;
empty or too short training input is an error naming the files; every `--help` shows every
default; an unknown feature extractor's error says how to register one."""

import re

import pytest
import tensorflow as tf

import kdet
import tiny_pipeline
from kdet import cli
from kdet.configs import ConfigError
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.training import trainer


@pytest.fixture
def config_path(tmp_path):
    return tiny_pipeline.write_pipeline(tmp_path)


def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _position(path, needle):
    """`line:column` (1-based) of `needle` in the file."""
    text = path.read_text()
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - text.rfind(chr(10), 0, index)}"


def _train(config_path, tmp_path, *flags):
    argv = ["train", "--pipeline_config_path", str(config_path), "--model_dir",
            str(tmp_path / "model"), *flags]
    return cli.main(argv)


@pytest.mark.parametrize(
    "old, new, field, problem",
    [
        ("train.record", "trian.record", "train_input_reader.tf_record_input_reader.input_path",
         "no file matches it; expected TFRecord files"),
        ("label_map.pbtxt\"\n}", "labelmap.pbtxt\"\n}", "train_input_reader.label_map_path",
         "no such file; expected a .pbtxt label map"),
    ],
)
def test_a_missing_training_file_names_the_config_line_and_field(
    config_path, tmp_path, capsys, old, new, field, problem
):
    _edit(config_path, old, new)
    needle = "input_path" if "input_path" in field else "label_map_path: \"" + str(tmp_path)
    where = f"{config_path}:{_position(config_path, needle)}: '{field}'"
    with pytest.raises(ConfigError) as info:
        train_dataset(load_pipeline(config_path))
    assert str(info.value).startswith(where) and problem in str(info.value)

    assert _train(config_path, tmp_path) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"kdet train: error: {where}") and error.count("\n") == 1


def test_paths_are_checked_before_any_weights_are_restored(
    config_path, tmp_path, capsys, monkeypatch
):
    def restore_nothing(*args, **kwargs):
        raise AssertionError("restored weights before checking the input paths")

    monkeypatch.setattr(kdet.zoo, "load", restore_nothing)
    _edit(config_path, "  batch_size: 4", "  batch_size: 4\n  fine_tune_checkpoint: "
          "'zoo:ssd_mobilenet_v2_coco'\n  fine_tune_checkpoint_type: 'detection'")
    _edit(config_path, "train.record", "trian.record")
    assert _train(config_path, tmp_path) == 2
    assert "'train_input_reader.tf_record_input_reader.input_path'" in capsys.readouterr().err

    # Records without an example, too.
    tf.io.TFRecordWriter(str(tmp_path / "trian.record")).close()
    assert _train(config_path, tmp_path) == 2
    assert f"{tmp_path / 'trian.record'}: no record in this file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "checkpoint, problem",
    [
        ("runs/nope/ckpt-5.weights.h5", "no such file or folder; expected a kdet checkpoint"),
        ("zoo:ssd_mobilenet_v2_cocoo",
         "Unknown zoo model 'ssd_mobilenet_v2_cocoo'. Did you mean 'ssd_mobilenet_v2_coco'?"),
    ],
)
def test_a_missing_fine_tune_checkpoint_names_the_config_line(
    config_path, tmp_path, capsys, checkpoint, problem
):
    _edit(config_path, "  batch_size: 4", f"  batch_size: 4\n  fine_tune_checkpoint: "
          f"'{checkpoint}'")
    where = (f"{config_path}:{_position(config_path, 'fine_tune_checkpoint')}: "
             f"'train_config.fine_tune_checkpoint' '{checkpoint}': ")
    assert _train(config_path, tmp_path) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"kdet train: error: {where}{problem}")
    assert not (tmp_path / "model").exists()


def test_a_missing_eval_file_names_the_config_line(config_path, tmp_path, capsys):
    _edit(config_path, "eval.record", "evl.record")
    field = "'eval_input_reader.tf_record_input_reader.input_path' "
    with pytest.raises(ConfigError, match=re.escape(field)):
        eval_dataset(load_pipeline(config_path))
    argv = ["eval", "--pipeline_config_path", str(config_path), "--model_dir", str(tmp_path)]
    assert cli.main(argv) == 2
    position = _position(config_path, f'input_path: "{tmp_path}/evl')
    assert f"pipeline.config:{position}: {field}" in capsys.readouterr().err


def test_empty_records_are_an_error_at_the_input_path_not_a_hang(config_path, tmp_path):
    tf.io.TFRecordWriter(str(tmp_path / "train.record")).close()
    field = "'train_input_reader.tf_record_input_reader.input_path'"
    with pytest.raises(ConfigError) as info:
        train_dataset(load_pipeline(config_path))  # num_epochs 0: it would repeat forever
    assert str(info.value).startswith(
        f"{config_path}:{_position(config_path, 'input_path')}: {field}"
    )
    assert f"{tmp_path / 'train.record'}: no record in this file" in str(info.value)
    tf.io.TFRecordWriter(str(tmp_path / "eval.record")).close()
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'eval.record'}: no record")):
        eval_dataset(load_pipeline(config_path))


def test_training_input_that_runs_out_is_an_error_and_keeps_the_steps_done(
    config_path, tmp_path, capsys
):
    # 8 records, one epoch, batches of 4: 2 steps of the 4 asked.
    _edit(config_path, "tf_record_input_reader { input_path: \"" + str(tmp_path) + "/train",
          "num_epochs: 1\n  tf_record_input_reader { input_path: \"" + str(tmp_path) + "/train")
    assert _train(config_path, tmp_path, "--checkpoint_every_n", "100") == 2
    error = capsys.readouterr().err
    assert "train_input_reader ran out of data at step 2 of 4" in error
    assert f"num_epochs: 1 over {tmp_path / 'train.record'} in batches of 4" in error
    assert "set num_epochs: 0" in error
    assert [step for step, _ in trainer.list_checkpoints(tmp_path / "model")] == [2]

    _edit(config_path, "batch_size: 4", "batch_size: 16")
    assert _train(config_path, tmp_path / "again") == 2
    assert "train_input_reader gives no batch: num_epochs: 1" in capsys.readouterr().err


def test_an_unknown_feature_extractor_says_how_to_register_one(config_path, tmp_path, capsys):
    _edit(config_path, '"test_tiny_two_map_ssd"', '"my_own_extractor"')
    assert _train(config_path, tmp_path) == 2
    error = capsys.readouterr().err
    assert "unknown feature extractor 'my_own_extractor'" in error
    assert "--import MODULE" in error


def _options(parser):
    from kdet.cli import _command_parsers

    for command in _command_parsers(parser):
        if command.prog == "kdet predict":  # checked by its own tests
            continue
        for action in command._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                yield command, action


def test_every_help_shows_every_default():
    parser = cli.build_parser()
    options = list(_options(parser))
    assert len(options) > 20
    for command, action in options:
        if action.dest == "imports":  # repeatable, nothing by default
            continue
        help_text = " ".join(command.format_help().split())
        option_help = " ".join(command._get_formatter()._expand_help(action).split())
        assert option_help in help_text
        assert "(default" in option_help or "default:" in option_help, (
            f"{command.prog} {action.option_strings[0]}: the help does not say the default "
            f"({action.default!r}): {option_help}"
        )
        if action.default is not None:
            assert str(action.default) in option_help, (command.prog, option_help)
    train = " ".join(next(c for c, _ in options if c.prog == "kdet train").format_help().split())
    assert "steps between checkpoints (default: 1000)" in train
