"""A whole pipeline.config: load_pipeline, train_dataset, `kdet train` with resume, lr_sweep."""

import json
import warnings

import keras
import numpy as np
import pytest

import kdet
import tiny_pipeline
from keras_configs import without_names
from kdet import cli
from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs import restore_fine_tune_checkpoint
from kdet.configs import train_dataset
from kdet.training import trainer

IMAGE_SIZE = tiny_pipeline.IMAGE_SIZE


@pytest.fixture
def config_path(tmp_path):
    return tiny_pipeline.write_pipeline(
        tmp_path, learning_rate=0.01, eval_input_reader=False,
        train_config_extra="data_augmentation_options { random_horizontal_flip { } }",
    )


def test_load_pipeline_builds_model_optimizer_and_dataset(config_path):
    pipeline = load_pipeline(config_path)
    assert isinstance(pipeline.model, kdet.SSD) and pipeline.model.num_classes == 2
    assert isinstance(pipeline.optimizer, keras.optimizers.SGD)
    assert (pipeline.train.batch_size, pipeline.train.num_steps) == (4, 4)
    images, y = next(iter(train_dataset(pipeline, seed=0)))
    assert images.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert y["boxes"].shape == (4, 100, 4) and y["labels"].shape == (4, 100)
    labels = y["labels"].numpy()
    assert set(np.unique(labels)) <= {-1, 1, 2} and (labels > 0).any()


def test_kdet_train_trains_checkpoints_and_resumes(config_path, tmp_path, capsys):
    model_dir = tmp_path / "model"
    argv = ["train", "--pipeline_config_path", str(config_path), "--model_dir", str(model_dir),
            "--checkpoint_every_n", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "trained steps 0..4" in out and "ckpt-4.weights.h5" in out
    assert [step for step, _ in trainer.list_checkpoints(model_dir)] == [2, 4]
    assert list((model_dir / "train").glob("events.out.tfevents.*"))

    assert cli.main([*argv, "--num_train_steps", "6"]) == 0
    assert "trained steps 4..6" in capsys.readouterr().out
    assert [step for step, _ in trainer.list_checkpoints(model_dir)][-1] == 6


@pytest.mark.parametrize(
    "edit, message",
    [
        (("num_classes: 2", "num_clases: 2"),
         r"pipeline.config:4:5: 'model.ssd.num_clases' is not a field kdet supports "
         r"\(did you mean 'num_classes'\?\)"),
        (("  batch_size: 4", "  batch_size: 4\n  freeze_variables: '.*FeatureExtractor.*'"),
         r"pipeline.config:37:3: 'train_config.freeze_variables': regex '\.\*FeatureExtractor"
         r"\.\*' matches no trainable variable .* feature_extractor/stem/conv2d/kernel"),
        (("train_input_reader {", "train_input_reader {{"),
         r"pipeline.config:47:21: expected a field name"),
    ],
)
def test_config_errors_are_one_line_with_file_line_and_column(
    config_path, tmp_path, capsys, edit, message
):
    config_path.write_text(config_path.read_text().replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_pipeline(config_path)
    argv = ["train", "--pipeline_config_path", str(config_path), "--model_dir", str(tmp_path)]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("kdet train: error: ") and error.count("\n") == 1


def test_freeze_variables_keep_the_matching_variables_from_training(config_path):
    config_path.write_text(config_path.read_text().replace(
        "  batch_size: 4", "  batch_size: 4\n  freeze_variables: '.*feature_extractor.*'"
    ))
    pipeline = load_pipeline(config_path)
    names = kdet.training.variable_names(pipeline.model)
    trainable = {id(variable) for variable in pipeline.model.trainable_variables}
    assert trainable and all(
        name.startswith("box_predictor/") for name, v in names.items() if id(v) in trainable
    )
    before = {name: v.numpy() for name, v in names.items()}
    pipeline.model.compile(optimizer=pipeline.optimizer)
    pipeline.model.fit(train_dataset(pipeline, seed=0), steps_per_epoch=2, verbose=0)
    changed = {name for name, v in names.items() if not np.array_equal(v.numpy(), before[name])}
    assert changed and all(name.startswith("box_predictor/") for name in changed)


def test_missing_config_file_is_a_one_line_error(tmp_path, capsys):
    argv = ["train", "--pipeline_config_path", str(tmp_path / "nope.config"), "--model_dir",
            str(tmp_path)]
    assert cli.main(argv) == 2
    assert "nope.config: no such file" in capsys.readouterr().err


def _fine_tune_config(config_path, checkpoint, num_classes=3):
    text = config_path.read_text().replace("num_classes: 2", f"num_classes: {num_classes}")
    text = text.replace(
        "  batch_size: 4",
        f"  batch_size: 4\n  fine_tune_checkpoint: '{checkpoint}'\n"
        "  fine_tune_checkpoint_type: 'detection'",
    )
    path = config_path.with_name("fine_tune.config")
    path.write_text(text)
    return path


def test_detection_fine_tune_checkpoint_restores_every_matching_weight(config_path, tmp_path):
    assert cli.main(["train", "--pipeline_config_path", str(config_path), "--model_dir",
                     str(tmp_path / "first")]) == 0
    trained = load_pipeline(config_path).model
    trained.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    trained.load_weights(trainer.checkpoint_path(tmp_path / "first", 4))

    pipeline = load_pipeline(_fine_tune_config(config_path, tmp_path / "first"))
    pipeline.model.compile(optimizer=pipeline.optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = restore_fine_tune_checkpoint(pipeline)
    # Keras's skipped-optimizer and skipped-layer warnings are told by kdet's one line.
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert restored.checkpoint == trainer.checkpoint_path(tmp_path / "first", 4)
    class_heads = [name for name in kdet.training.variable_names(pipeline.model)
                   if "ClassPredictor" in name]
    assert sorted(restored.shape_differs) == sorted(class_heads) and len(class_heads) == 4
    assert len(restored.restored) + 4 == len(pipeline.model.weights)
    assert str(restored).startswith(
        f"initialized from {restored.checkpoint} (detection): restored "
        f"{len(restored.restored)} weights; 4 kept their initial values (the shapes differ"
    )
    for ours, theirs in zip(pipeline.model.feature_extractor.weights,
                            trained.feature_extractor.weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    predictor = pipeline.model.box_predictor.weights
    same_shape = [w for w, t in zip(predictor, trained.box_predictor.weights)
                  if w.shape == t.shape]
    assert 0 < len(same_shape) < len(predictor)  # box heads restored, class heads new (3 + 1)


def test_a_missing_or_unreadable_tf_checkpoint_is_a_clear_error_when_training_starts(
        config_path, tmp_path, capsys):
    path = _fine_tune_config(config_path, "PATH/model.ckpt")
    argv = ["train", "--pipeline_config_path", str(path), "--model_dir", str(tmp_path / "m")]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "fine_tune.config:37:3: 'train_config.fine_tune_checkpoint' 'PATH/model.ckpt': no " \
        "such file or folder; expected a kdet checkpoint" in error
    assert "a TF OD API checkpoint (a ckpt-N or model.ckpt prefix with its .index" in error

    # A TF checkpoint whose .index is damaged: TensorFlow's reason, at the config's line.
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "model.ckpt.index").write_bytes(b"")
    path = _fine_tune_config(config_path, tmp_path / "tf" / "model.ckpt")
    assert cli.main([*argv[:-1], str(tmp_path / "m2")]) == 2
    error = capsys.readouterr().err
    assert "model.ckpt': cannot read the checkpoint" in error


def test_kdet_lr_sweep_writes_plot_and_numbers_and_prints_a_suggestion(
    config_path, tmp_path, capsys
):
    argv = ["lr_sweep", "--pipeline_config_path", str(config_path), "--model_dir",
            str(tmp_path / "sweep"), "--min_lr", "1e-4", "--max_lr", "1.0", "--num_steps", "6"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "suggested learning rate: " in out and "constant_learning_rate" in out
    assert (tmp_path / "sweep" / "lr_sweep.png").is_file()
    result = json.loads((tmp_path / "sweep" / "lr_sweep.json").read_text())
    assert len(result["learning_rates"]) == len(result["losses"]) <= 6


def test_use_bfloat16_builds_a_mixed_bfloat16_model_and_leaves_the_global_policy(config_path):
    config_path.write_text(
        config_path.read_text().replace("  batch_size: 4", "  batch_size: 4\n  use_bfloat16: true")
    )
    pipeline = load_pipeline(config_path)
    assert keras.config.dtype_policy().name == "float32"
    assert pipeline.model.box_predictor.dtype_policy.name == "mixed_bfloat16"
    assert pipeline.model.feature_extractor.compute_dtype == "bfloat16"


def test_kdet_train_mixed_precision(config_path, tmp_path, capsys):
    argv = ["train", "--pipeline_config_path", str(config_path), "--model_dir",
            str(tmp_path / "mixed"), "--num_train_steps", "2", "--mixed_precision"]
    assert cli.main(argv) == 0
    assert "trained steps 0..2" in capsys.readouterr().out
    assert keras.config.dtype_policy().name == "float32"


def test_kdet_config_convert_writes_a_yaml_config_that_trains_the_same(config_path, tmp_path,
                                                                      capsys):
    yaml_path = tmp_path / "pipeline.yaml"
    assert cli.main(["config", "convert", str(config_path), str(yaml_path)]) == 0
    assert f"wrote {yaml_path}" in capsys.readouterr().out
    text = yaml_path.read_text()
    assert "score_converter: SIGMOID" in text and "num_classes: 2" in text
    from_yaml, from_text = load_pipeline(yaml_path), load_pipeline(config_path)
    assert without_names(from_yaml.model.get_config()) == without_names(
        from_text.model.get_config()
    )
    assert from_yaml.train == from_text.train and from_yaml.train_input == from_text.train_input
    assert type(from_yaml.optimizer) is type(from_text.optimizer)
    argv = ["train", "--pipeline_config_path", str(yaml_path), "--model_dir",
            str(tmp_path / "m"), "--num_train_steps", "2"]
    assert cli.main(argv) == 0


def test_yaml_config_errors_name_the_line_and_column(config_path, tmp_path):
    yaml_path = tmp_path / "pipeline.yaml"
    cli.main(["config", "convert", str(config_path), str(yaml_path)])
    yaml_path.write_text(yaml_path.read_text().replace("num_classes: 2", "num_clases: 2"))
    with pytest.raises(ConfigError, match=r"pipeline.yaml:4:17: 'model.ssd.num_clases' is not a "
                       r"field kdet supports \(did you mean 'num_classes'\?\)"):
        load_pipeline(yaml_path)
    yaml_path.write_text("model:\n  ssd: {num_classes: [1\n")
    with pytest.raises(ConfigError, match=r"pipeline.yaml:\d+:\d+: invalid YAML"):
        load_pipeline(yaml_path)
