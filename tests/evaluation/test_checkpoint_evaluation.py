"""The work of `kdet train`, `kdet eval`, `kdet plot` and `kdet export` called from Python on
one tiny model directory: `kdet.training.train_pipeline`, checkpoints restored and evaluated
into an eval folder (`kdet.evaluation.evaluate_checkpoint` / `evaluate_continuously`),
`kdet.plots.save_model_dir_plots`, `kdet.export.export_inference_graph`, and the other library
pieces the CLI modules used to hold."""

import json
import math

import numpy as np
import pytest

import tiny_pipeline
from kdet import configs
from kdet import evaluation
from kdet import export
from kdet import plots
from kdet.cli import evaluate as evaluate_command
from kdet.evaluation import checkpoint_evaluation
from kdet.training import model_dir as layout
from kdet.training import train_pipeline

EVAL_CONFIG = """
eval_config {
  metrics_set: "coco_detection_metrics"
  metrics_set: "pascal_voc_detection_metrics"
  num_visualizations: 1
}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(config, model_dir)`: 4 steps of `train_pipeline`, checkpoints at steps 2 and 4."""
    folder = tmp_path_factory.mktemp("checkpoint_evaluation")
    config = tiny_pipeline.write_pipeline(folder, eval_config=EVAL_CONFIG, num_steps=4,
                                          num_eval_images=3)
    model_dir = folder / "model"
    summary = train_pipeline(config, model_dir, checkpoint_every_n=2, verbose=0, log=None)
    assert (summary["start_step"], summary["final_step"]) == (0, 4)
    assert (summary["replicas"], summary["fine_tune"]) == (1, None)
    assert summary["checkpoint"] == layout.checkpoint_path(model_dir, 4)
    assert [layout.checkpoint_name(2), layout.checkpoint_name(4)] == sorted(
        path.name for path in model_dir.glob("ckpt-*.weights.h5")
    )
    # The config's copy, so that kdet eval / export / predict find it.
    assert (model_dir / "pipeline.config").read_bytes() == config.read_bytes()
    return config, model_dir


def test_evaluate_checkpoint_writes_the_evaluators_metrics_and_curves(trained, tmp_path):
    config, model_dir = trained
    eval_dir = tmp_path / "eval"
    lines = []
    # A config path and a model directory: its newest checkpoint, step 4.
    metrics = evaluation.evaluate_checkpoint(config, model_dir, eval_dir, progress=False,
                                             log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("step 4 (ckpt-4.weights.h5, ")
    assert "DetectionBoxes_Precision/mAP " in lines[0]

    # The same numbers as the evaluator on the checkpoint restored by hand.
    pipeline = configs.load_pipeline(config)
    pipeline.model.build((None, 64, 64, 3))
    pipeline.model.load_weights(layout.checkpoint_path(model_dir, 4))
    expected = evaluation.pipeline_evaluator(pipeline).evaluate(pipeline.model)
    assert metrics.keys() == expected.keys()
    assert all(math.isnan(a) and math.isnan(b) or a == b
               for a, b in zip(metrics.values(), expected.values()))
    written = json.loads(layout.metrics_path(eval_dir).read_text())
    assert written == {"4": {k: None if math.isnan(v) else v for k, v in expected.items()}}

    curves = plots.read_precision_recall(layout.precision_recall_path(eval_dir))
    assert (curves["step"], curves["iou_threshold"]) == (4, evaluation.CURVES_IOU_THRESHOLD)
    for name, curve in curves["classes"].items():
        ap = metrics[f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{name}"]
        assert curve["average_precision"] == ap or math.isnan(ap)
    assert (eval_dir / "detections.png").is_file()

    # A Pipeline and a checkpoint file: step 2 is added, step 4 kept.
    pipeline = configs.compiled_pipeline(config)
    evaluation.evaluate_checkpoint(pipeline, layout.checkpoint_path(model_dir, 2), eval_dir,
                                   progress=False, log=None)
    assert list(json.loads(layout.metrics_path(eval_dir).read_text())) == ["4", "2"]
    assert plots.read_precision_recall(layout.precision_recall_path(eval_dir))["step"] == 2
    assert pipeline.model.optimizer.iterations.numpy() == 2  # the optimizer state too


def test_evaluate_continuously_evaluates_each_checkpoint_once(trained, tmp_path):
    config, model_dir = trained
    lines = []
    pipeline = configs.compiled_pipeline(config)
    count = evaluation.evaluate_continuously(
        pipeline, model_dir, tmp_path / "eval", wait_interval=0, timeout=0, progress=False,
        log=lines.append,
    )
    assert count == 2
    assert [line.split(" (")[0] for line in lines if line.startswith("step ")] == [
        "step 2", "step 4"
    ]
    # The checkpoint at train_config.num_steps (4) ends it, not the timeout.
    assert lines[-1] == "evaluated the checkpoint at train_config.num_steps (4)"
    assert list(json.loads(layout.metrics_path(tmp_path / "eval").read_text())) == ["2", "4"]

    with pytest.raises(FileNotFoundError, match="appeared within 0 s"):
        evaluation.evaluate_continuously(pipeline, tmp_path / "none", tmp_path / "eval2",
                                         wait_interval=0, timeout=0, log=None)
    assert checkpoint_evaluation.next_checkpoint(model_dir, 2)[0] == 4
    assert checkpoint_evaluation.next_checkpoint(model_dir, 4) is None


def test_restored_pipeline_restores_the_newest_checkpoint(trained, tmp_path):
    config, model_dir = trained
    lines = []
    pipeline = configs.restored_pipeline(config, model_dir, progress=lines.append)
    assert lines == [f"building the model of {config}",
                     f"restoring step 4: {layout.checkpoint_path(model_dir, 4)}"]
    assert pipeline.model.optimizer.iterations.numpy() == 4
    by_hand = configs.load_pipeline(config)
    by_hand.model.build((None, 64, 64, 3))
    by_hand.model.load_weights(layout.checkpoint_path(model_dir, 4))
    for restored, expected in zip(pipeline.model.weights, by_hand.model.weights):
        np.testing.assert_array_equal(restored.numpy(), expected.numpy())

    # Restoring another checkpoint into the same pipeline replaces the weights.
    assert configs.restore_pipeline_checkpoint(pipeline, layout.checkpoint_path(model_dir, 2)) \
        == (2, layout.checkpoint_path(model_dir, 2))
    assert pipeline.model.optimizer.iterations.numpy() == 2
    # A pipeline whose model is not compiled yet gets the config's optimizer.
    uncompiled = configs.load_pipeline(config)
    configs.restore_pipeline_checkpoint(uncompiled, model_dir)
    assert uncompiled.model.optimizer.iterations.numpy() == 4

    with pytest.raises(FileNotFoundError, match="no intact checkpoint in it"):
        configs.restored_pipeline(config, tmp_path)
    with pytest.raises(FileNotFoundError, match="ckpt-9.weights.h5: no such file"):
        configs.restore_pipeline_checkpoint(pipeline, tmp_path / "ckpt-9.weights.h5")


def test_train_pipeline_resumes_and_needs_a_step_limit(trained, tmp_path):
    config, model_dir = trained
    summary = train_pipeline(config, model_dir, log=None)  # already at num_steps 4
    assert (summary["start_step"], summary["final_step"], summary["losses"]) == (4, 4, {})
    no_limit = tmp_path / "no_limit.config"
    no_limit.write_text(config.read_text().replace("num_steps: 4", "num_steps: 0"))
    with pytest.raises(ValueError, match="no_limit.config: train_config.num_steps is 0"):
        train_pipeline(no_limit, tmp_path / "model", log=None)
    assert not (tmp_path / "model").exists()


def test_compiled_pipeline_needs_a_train_config(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path)
    without = tmp_path / "no_train.config"
    text = config.read_text()
    start = text.index("train_config {")
    end = text.index("train_input_reader {")
    without.write_text(text[:start] + text[end:])
    with pytest.raises(ValueError, match="no_train.config: no train_config"):
        configs.compiled_pipeline(without)
    assert configs.compiled_pipeline(config).model.optimizer is not None


def test_save_model_dir_plots_after_an_evaluation(trained, tmp_path):
    config, model_dir = trained
    evaluation.evaluate_checkpoint(config, model_dir, layout.eval_dir(model_dir),
                                   progress=False, log=None)
    written = plots.save_model_dir_plots(model_dir, tmp_path / "out", log=None)
    assert [path.name for path in written] == [
        "training_curves.png", "precision_recall.png", "average_precision.png"
    ]
    assert all(path.parent == tmp_path / "out" and path.stat().st_size for path in written)
    assert layout.plots_dir(model_dir).is_dir()


def test_export_inference_graph_of_a_model_directory(trained, tmp_path):
    config, model_dir = trained
    result = export.export_inference_graph(config, model_dir, tmp_path / "out", progress=False)
    assert result == {"step": 4, "checkpoint": layout.checkpoint_path(model_dir, 4),
                      "written": ["saved_model/", "checkpoint/", "pipeline.config"]}
    assert (tmp_path / "out" / "saved_model" / "saved_model.pb").is_file()
    assert (tmp_path / "out" / "checkpoint" / "ckpt-4.weights.h5").read_bytes() == \
        layout.checkpoint_path(model_dir, 4).read_bytes()
    assert (tmp_path / "out" / "pipeline.config").read_bytes() == config.read_bytes()


def test_model_dir_names():
    assert layout.checkpoint_step(layout.checkpoint_path("runs/a", 120)) == 120
    assert layout.checkpoint_step("diverged-ckpt-3.weights.h5") is None
    assert layout.checkpoint_step("ckpt-3.weights.h5.sha256") is None
    assert str(layout.metrics_path(layout.eval_dir("m"))) == "m/eval/metrics.json"
    assert str(layout.precision_recall_path("m/eval")) == "m/eval/precision_recall.json"
    assert layout.config_copy_name("a/b.yml") == "pipeline.yaml"
    assert layout.config_copy_name("a/b.config") == "pipeline.config"


def test_the_cli_default_wait_interval_is_the_librarys():
    assert evaluate_command._DEFAULT_WAIT_INTERVAL == checkpoint_evaluation.DEFAULT_WAIT_INTERVAL


def test_distribution_strategy_names():
    import tensorflow as tf

    from kdet.training import distribution_strategy
    from kdet.training import mirrored_devices

    assert distribution_strategy("default") is tf.distribute.get_strategy()
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    assert mirrored_devices() == devices  # no GPU here: every logical CPU
    with pytest.raises(ValueError, match="--strategy mirored: unknown; expected one of default"):
        distribution_strategy("mirored")


def test_save_pipeline_config_keeps_a_different_one_aside(tmp_path):
    from kdet.training import save_pipeline_config

    first, second = tmp_path / "a.config", tmp_path / "b.config"
    first.write_text("model {}\n")
    second.write_text("model { ssd {} }\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    warnings = []
    assert save_pipeline_config(first, model_dir, warn=warnings.append) == \
        model_dir / "pipeline.config"
    assert save_pipeline_config(first, model_dir, warn=warnings.append) == \
        model_dir / "pipeline.config"
    assert warnings == []
    save_pipeline_config(second, model_dir, warn=warnings.append)
    assert (model_dir / "pipeline.config").read_text() == second.read_text()
    assert (model_dir / "pipeline.previous-1.config").read_text() == first.read_text()
    assert len(warnings) == 1 and "pipeline.previous-1.config" in warnings[0]


def test_pipeline_evaluator_applies_every_eval_config_setting(tmp_path):
    eval_config = """
eval_config {
  metrics_set: "precision_at_recall_detection_metrics"
  include_metrics_per_category: true
  all_metrics_per_category: true
  recall_lower_bound: 0.25
  recall_upper_bound: 0.75
  num_examples: 2
  min_score_threshold: 0.3
}
"""
    config = tiny_pipeline.write_pipeline(tmp_path, eval_config=eval_config)
    evaluator = evaluation.pipeline_evaluator(configs.load_pipeline(config))
    assert evaluator.metrics_sets == ("precision_at_recall_detection_metrics",)
    assert evaluator.include_metrics_per_category and evaluator.all_metrics_per_category
    assert (evaluator.recall_lower_bound, evaluator.recall_upper_bound) == (0.25, 0.75)
    assert (evaluator.num_examples, evaluator.min_score_threshold) == (2, 0.3)
