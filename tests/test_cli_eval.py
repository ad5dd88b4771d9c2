"""`kdet eval`: the newest checkpoint once, or each new checkpoint as it appears."""

import json
import math

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import tiny_pipeline
from kdet import cli
from kdet.configs import eval_dataset
from kdet.configs import load_pipeline
from kdet.evaluation import COCOEvaluator
from kdet.training import trainer

EVAL_CONFIG = """
eval_config {
  metrics_set: "coco_detection_metrics"
  metrics_set: "pascal_voc_detection_metrics"
  num_visualizations: 2
}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`(config path, model dir)`: 4 steps of `kdet train`, checkpoints at steps 2 and 4."""
    folder = tmp_path_factory.mktemp("eval")
    config = tiny_pipeline.write_pipeline(folder, eval_config=EVAL_CONFIG, num_steps=4)
    model_dir = folder / "model"
    argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(model_dir),
            "--checkpoint_every_n", "2"]
    assert cli.main(argv) == 0
    assert [step for step, _ in trainer.list_checkpoints(model_dir)] == [2, 4]
    return config, model_dir


def _eval(config, model_dir, *flags):
    return cli.main(["eval", "--pipeline_config_path", str(config), "--model_dir",
                     str(model_dir), *flags])


def _scalar_and_image_steps(log_dir):
    steps = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


def _config_variant(config, name, old, new):
    path = config.with_name(name)
    path.write_text(config.read_text().replace(old, new))
    return path


def test_eval_of_the_newest_checkpoint_writes_metrics_curves_and_tensorboard(trained, capsys):
    config, model_dir = trained
    assert _eval(config, model_dir) == 0
    out = capsys.readouterr().out
    assert out.count("step ") == 1
    assert "step 4 (ckpt-4.weights.h5" in out and "DetectionBoxes_Precision/mAP " in out
    assert "PascalBoxes_Precision/mAP@0.5IOU" in out

    metrics = json.loads((model_dir / "eval" / "metrics.json").read_text())
    assert list(metrics) == ["4"]
    # The same numbers as the evaluator in Python on the restored checkpoint.
    pipeline = load_pipeline(config)
    pipeline.model.build((None, 64, 64, 3))
    pipeline.model.load_weights(trainer.checkpoint_path(model_dir, 4))
    expected = COCOEvaluator(
        eval_dataset(pipeline), label_map=tiny_pipeline.LABEL_MAP,
        metrics_sets=("coco_detection_metrics", "pascal_voc_detection_metrics"),
    ).evaluate(pipeline.model)
    assert metrics["4"] == {name: None if math.isnan(v) else v for name, v in expected.items()}

    curves = json.loads((model_dir / "eval" / "precision_recall.json").read_text())
    assert set(curves) == {"step", "iou_threshold", "classes"}
    assert (curves["step"], curves["iou_threshold"]) == (4, 0.5)
    assert curves["classes"] and set(curves["classes"]) <= {"square", "circle"}
    for name, curve in curves["classes"].items():
        assert set(curve) == {"precision", "recall", "average_precision"}
        assert len(curve["precision"]) == len(curve["recall"]) > 0
        assert np.all(np.diff(curve["recall"]) >= 0)
        assert curve["average_precision"] == metrics["4"][
            f"PascalBoxes_PerformanceByCategory/AP@0.5IOU/{name}"
        ]

    steps = _scalar_and_image_steps(model_dir / "eval")
    assert steps["DetectionBoxes_Precision/mAP"] == [4]
    assert steps["PascalBoxes_Precision/mAP@0.5IOU"] == [4]
    assert steps["eval_side_by_side_0"] == steps["eval_side_by_side_1"] == [4]
    assert "eval_side_by_side_2" not in steps

    # PNGs to look at: the curves and AP bars kdet plot draws, and the drawn images (two,
    # each detections | ground truth at the model's 64x64).
    for name in ("precision_recall", "average_precision"):
        with Image.open(model_dir / "eval" / f"{name}.png") as png:
            assert png.format == "PNG" and min(png.size) > 100
    with Image.open(model_dir / "eval" / "detections.png") as png:
        assert png.size == (2 * 64, 2 * 64)


def test_continuous_eval_evaluates_each_checkpoint_once_and_stops(trained, tmp_path, capsys):
    config, model_dir = trained
    # Training would go on to step 6, so only the timeout ends the evaluation.
    longer = _config_variant(config, "six_steps.config", "num_steps: 4", "num_steps: 6")
    out_dir = tmp_path / "timeout"
    assert _eval(longer, out_dir, "--checkpoint_dir", str(model_dir), "--wait_interval", "1",
                 "--timeout", "2", "--num_examples", "3") == 0
    out = capsys.readouterr().out
    assert out.count("step 2 (") == out.count("step 4 (") == 1
    assert "no new checkpoint for 2 s; stopping after 2 evaluation(s)" in out
    assert list(json.loads((out_dir / "eval" / "metrics.json").read_text())) == ["2", "4"]
    assert json.loads((out_dir / "eval" / "precision_recall.json").read_text())["step"] == 4
    assert _scalar_and_image_steps(out_dir / "eval")["DetectionBoxes_Precision/mAP"] == [2, 4]

    # At train_config.num_steps it stops without waiting for the (long) timeout.
    assert _eval(config, tmp_path / "num_steps", "--checkpoint_dir", str(model_dir),
                 "--timeout", "600") == 0
    out = capsys.readouterr().out
    assert out.count("step 2 (") == out.count("step 4 (") == 1
    assert "evaluated the checkpoint at train_config.num_steps (4)" in out

    once = _config_variant(config, "max_evals.config", "num_visualizations: 2",
                           "num_visualizations: 0 max_evals: 1")
    assert _eval(once, tmp_path / "max_evals", "--checkpoint_dir", str(model_dir)) == 0
    out = capsys.readouterr().out
    assert "step 2 (" in out and "step 4 (" not in out
    assert "done eval_config.max_evals (1) evaluations" in out


def test_errors_are_one_line(trained, tmp_path, capsys):
    config, _ = trained
    no_reader = tiny_pipeline.write_pipeline(tmp_path, eval_input_reader=False)
    cases = [
        ((config, tmp_path / "empty"),
         "no intact checkpoint (ckpt-<step>.weights.h5) to evaluate"),
        ((config, tmp_path / "empty", "--checkpoint_dir", str(tmp_path / "none"), "--timeout",
          "0"), "appeared within 0 s"),
        ((no_reader, tmp_path), "pipeline.config: no eval_input_reader; it is needed to evaluate"),
        ((tmp_path / "missing.config", tmp_path), "missing.config"),
    ]
    for arguments, message in cases:
        assert _eval(*arguments) == 2
        error = capsys.readouterr().err
        assert error.startswith("kdet eval: error: ") and error.count("\n") == 1, error
        assert message in error


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--pipeline_config_path", "--model_dir", "--checkpoint_dir", "--wait_interval",
                 "--timeout", "--num_examples", "metrics.json", "precision_recall.json"):
        assert flag in help_text
