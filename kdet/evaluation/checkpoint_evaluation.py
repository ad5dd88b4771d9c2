"""Evaluating the checkpoints of a model directory: what `kdet eval` does, as library calls.

- `pipeline_evaluator(pipeline)`: the `COCOEvaluator` a pipeline config's `eval_config` and
  first `eval_input_reader` describe.
- `evaluate_checkpoint(pipeline, checkpoint, eval_dir)`: one checkpoint restored into the
  pipeline's model and evaluated; the results are added to `eval_dir`.
- `evaluate_continuously(pipeline, checkpoint_dir, eval_dir)`: each new checkpoint of a running
  training, as it appears (the TF OD API's `eval_continuously`).

What goes into `eval_dir` (names: `kdet.training.model_dir`): TensorBoard scalars and images
(step = checkpoint step), `metrics.json` (`{step: {metric: value}}`, NaN as `null`, one entry
per checkpoint evaluated), `precision_recall.json` (per-class curves at IoU 0.5 of the last
checkpoint evaluated, as `kdet.plots.read_precision_recall` reads it), and the PNGs
`precision_recall.png`, `average_precision.png` and `detections.png`.

Example:
```python
pipeline = kdet.configs.compiled_pipeline("pets.config")
metrics = kdet.evaluation.evaluate_checkpoint(pipeline, "runs/pets", "runs/pets/eval")
metrics["DetectionBoxes_Precision/mAP"]
```
"""

import json
import math
import pathlib
import time

import numpy as np

from kdet.evaluation.evaluator import CURVES_IOU_THRESHOLD
from kdet.evaluation.evaluator import COCOEvaluator
from kdet.training import model_dir as model_dir_layout

# A checkpoint directory is checked this often by default, as in model_main_tf2.py.
DEFAULT_WAIT_INTERVAL = 180
# The metrics of the summary line, when computed: the headline numbers of each metrics set.
_SUMMARY_METRICS = (
    "DetectionBoxes_Precision/mAP",
    "DetectionBoxes_Precision/mAP@.50IOU",
    "PascalBoxes_Precision/mAP@0.5IOU",
    "WeightedPascalBoxes_Precision/mAP@0.5IOU",
)


def pipeline_evaluator(pipeline, log_dir=None, num_examples=None, index=0):
    """The `COCOEvaluator` of a pipeline's `eval_config` and an `eval_input_reader`.

    Honours `eval_config.metrics_set`, `include_metrics_per_category`,
    `all_metrics_per_category`, `super_categories`, `use_moving_averages`,
    `recall_lower_bound`, `recall_upper_bound`, `num_examples`, `num_visualizations`,
    `min_score_threshold`, `max_num_boxes_to_visualize`, the `coco_keypoint_metrics` of
    `parameterized_metric` and `keypoint_edge`, over
    `kdet.configs.eval_dataset(pipeline, index)` with the reader's label map.

    Args:
        pipeline: a `kdet.configs.Pipeline` with an `eval_input_reader`.
        log_dir: optional str or path for the evaluator's TensorBoard logs (the eval folder).
        num_examples: optional int, images evaluated; overrides `eval_config.num_examples`.
        index: int, which `eval_input_reader`. Defaults to `0`.

    Returns:
        A `COCOEvaluator`.

    Raises:
        ValueError: naming the config, when it has no `eval_input_reader` (at `index`).
        kdet.configs.ConfigError: a path of the reader that names nothing.
    """
    from kdet.configs import eval_dataset

    settings = pipeline.eval_config
    dataset = eval_dataset(pipeline, index)
    return COCOEvaluator(
        dataset,
        label_map=pipeline.eval_inputs[index]["label_map"],
        metrics_sets=settings.metrics_sets,
        include_metrics_per_category=settings.include_metrics_per_category,
        all_metrics_per_category=settings.all_metrics_per_category,
        super_categories=settings.super_categories,
        use_moving_averages=settings.use_moving_averages,
        recall_lower_bound=settings.recall_lower_bound,
        recall_upper_bound=settings.recall_upper_bound,
        num_examples=settings.num_examples if num_examples is None else num_examples,
        log_dir=log_dir,
        num_visualizations=settings.num_visualizations,
        min_score_threshold=settings.min_score_threshold,
        max_num_boxes_to_visualize=settings.max_num_boxes_to_visualize,
        keypoint_metrics=settings.keypoint_metrics,
        keypoint_edges=settings.keypoint_edges or None,
    )


def evaluate_checkpoint(pipeline, checkpoint, eval_dir, evaluator=None, progress=True, log=print):
    """Restores one trained checkpoint (`kdet train`'s, or a TF OD API one:
    `kdet.configs.restore_pipeline_checkpoint`) into the pipeline's model, evaluates it and
    adds the results to `eval_dir`.

    `metrics.json` gains (or replaces) the checkpoint's step; `precision_recall.json` and the
    PNGs are the checkpoint's; TensorBoard scalars and images are logged at its step.

    Args:
        pipeline: a `kdet.configs.Pipeline` (from `kdet.configs.compiled_pipeline`; a model not
            compiled yet is compiled with the config's optimizer), or the path of its config.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory (its newest intact
            checkpoint); or a TF OD API checkpoint prefix or folder.
        eval_dir: str or path of the results folder (created if needed), usually
            `kdet.training.model_dir.eval_dir(model_dir)`.
        evaluator: optional `COCOEvaluator`; defaults to `pipeline_evaluator(pipeline,
            log_dir=eval_dir)`. Pass one to evaluate several checkpoints without reading the
            eval records' set-up again.
        progress: bool, show a progress bar while evaluating. Defaults to `True`.
        log: callable taking one line, or None: the summary line `step STEP (FILE, SECONDS
            s): METRIC VALUE, …`. Defaults to `print`.

    Returns:
        dict `{metric name: float}` (NaN: undefined, e.g. the AP of a class without ground
        truth), as `COCOEvaluator.evaluate` returns it.

    Raises:
        FileNotFoundError: a model directory without an intact checkpoint, or no such file.
        ValueError: `metrics.json` in `eval_dir` is not valid JSON (named).
    """
    from kdet.configs import compiled_pipeline
    from kdet.configs import restore_pipeline_checkpoint

    if isinstance(pipeline, (str, pathlib.PurePath)):
        pipeline = compiled_pipeline(pipeline)
    eval_dir = pathlib.Path(eval_dir)
    if evaluator is None:
        evaluator = pipeline_evaluator(pipeline, log_dir=eval_dir)
    step, path = restore_pipeline_checkpoint(pipeline, checkpoint)
    begin = time.perf_counter()
    metrics, curves = evaluator.evaluate(
        pipeline.model, return_curves=True, step=step, progress=progress
    )
    seconds = time.perf_counter() - begin
    eval_dir.mkdir(parents=True, exist_ok=True)
    write_metrics(eval_dir, step, metrics)
    write_precision_recall(eval_dir, step, curves)
    save_evaluation_plots(eval_dir, evaluator.last_visualizations, log=log or (lambda line: None))
    if log is not None:
        summary = ", ".join(
            f"{name} {metrics[name]:.4f}" for name in _SUMMARY_METRICS if name in metrics
        )
        log(f"step {step} ({path.name}, {seconds:.1f} s): {summary}")
    return metrics


def write_metrics(eval_dir, step, metrics):
    """Adds one checkpoint's metrics to `eval_dir/metrics.json`, atomically.

    Args:
        eval_dir: str or path of an existing folder.
        step: int, the checkpoint's step (the JSON key, as a string).
        metrics: dict `{name: float}`; NaN is written as `null`.

    Returns:
        `pathlib.Path` of `metrics.json`.

    Raises:
        ValueError: the existing file is not valid JSON (named).
    """
    path = model_dir_layout.metrics_path(eval_dir)
    history = _read_json(path) if path.exists() else {}
    history[str(step)] = {name: _json_number(value) for name, value in metrics.items()}
    _write_json(path, history)
    return path


def write_precision_recall(eval_dir, step, curves):
    """Writes `eval_dir/precision_recall.json`: one checkpoint's per-class curves.

    Args:
        eval_dir: str or path of an existing folder.
        step: int, the checkpoint's step.
        curves: `{class name: {"precision": [N], "recall": [N], "average_precision": float}}`,
            as `COCOEvaluator.evaluate(return_curves=True)` returns them (numpy arrays).

    Returns:
        `pathlib.Path` of the file (`{"step", "iou_threshold", "classes"}`, see
        `kdet.plots.read_precision_recall`).
    """
    path = model_dir_layout.precision_recall_path(eval_dir)
    classes = {
        name: {
            "precision": np.asarray(curve["precision"], np.float64).tolist(),
            "recall": np.asarray(curve["recall"], np.float64).tolist(),
            "average_precision": _json_number(float(curve["average_precision"])),
        }
        for name, curve in curves.items()
    }
    _write_json(
        path, {"step": step, "iou_threshold": CURVES_IOU_THRESHOLD, "classes": classes},
        indent=None,
    )
    return path


def save_evaluation_plots(eval_dir, visualizations=(), log=print):
    """Writes the PNGs of an evaluation into `eval_dir`.

    `precision_recall.png` and `average_precision.png` (`kdet.plots.evaluation_figures` of
    `eval_dir/precision_recall.json`, as `kdet plot` draws them), and `detections.png`: the
    drawn images (detections left, ground truth right), one above the other.

    Args:
        eval_dir: str or path holding `precision_recall.json`.
        visualizations: list of uint8 `[height, width, 3]` images of equal width, e.g.
            `COCOEvaluator.last_visualizations`; none: no `detections.png`.
        log: callable taking one line (see `kdet.plots.evaluation_figures`).
    """
    from kdet import plots
    from kdet.visualization import save_image

    eval_dir = pathlib.Path(eval_dir)
    precision_recall = model_dir_layout.precision_recall_path(eval_dir)
    for name, figure, _ in plots.evaluation_figures(precision_recall, log=log):
        plots.save_figure(figure, eval_dir / f"{name}.png")
    if visualizations:
        save_image(np.concatenate(visualizations, axis=0), eval_dir / "detections.png")


def evaluate_continuously(pipeline, checkpoint_dir, eval_dir, evaluator=None,
                          wait_interval=None, timeout=3600, progress=True, log=print):
    """Evaluates each new checkpoint of `checkpoint_dir`, oldest first, as it appears.

    The TF OD API's `eval_continuously`: stops after `timeout` seconds without a new
    checkpoint, after the checkpoint at `train_config.num_steps`, or after
    `eval_config.max_evals` evaluations. Each is `evaluate_checkpoint`.

    Args:
        pipeline: a `kdet.configs.Pipeline`, or the path of its config (see
            `evaluate_checkpoint`).
        checkpoint_dir: the folder the training writes `ckpt-<step>.weights.h5` to, or a
            folder of TF OD API checkpoints (`ckpt-N.index`, as `model_main_tf2.py` writes).
        eval_dir: str or path of the results folder (see `evaluate_checkpoint`).
        evaluator: optional `COCOEvaluator` (see `evaluate_checkpoint`).
        wait_interval: seconds between checks for a new checkpoint. Defaults to
            `eval_config.eval_interval_secs`, or 180 when that is 0.
        timeout: seconds without a new checkpoint before stopping. Defaults to 3600.
        progress: bool, a progress bar per evaluation. Defaults to `True`.
        log: callable taking one line, or None: what is evaluated and why it stops. Defaults
            to `print`.

    Returns:
        int, the number of checkpoints evaluated.

    Raises:
        FileNotFoundError: if no checkpoint appears within `timeout` seconds.
    """
    from kdet.configs import compiled_pipeline

    if isinstance(pipeline, (str, pathlib.PurePath)):
        pipeline = compiled_pipeline(pipeline)
    log_line = log or (lambda line: None)
    eval_dir = pathlib.Path(eval_dir)
    if evaluator is None:
        evaluator = pipeline_evaluator(pipeline, log_dir=eval_dir)
    if wait_interval is None:
        wait_interval = pipeline.eval_config.eval_interval_secs or DEFAULT_WAIT_INTERVAL
    num_steps = pipeline.train.num_steps if pipeline.train is not None else 0
    max_evals = pipeline.eval_config.max_evals
    log_line(
        f"evaluating new checkpoints of {checkpoint_dir} (checked every {wait_interval} s, "
        f"stopping after {timeout} s without one)"
    )
    last_step, count = -1, 0
    deadline = time.monotonic() + timeout
    while True:
        found = next_checkpoint(checkpoint_dir, last_step)
        if found is not None:
            evaluate_checkpoint(pipeline, found[1], eval_dir, evaluator, progress, log)
            last_step, count = found[0], count + 1
            if num_steps and last_step >= num_steps:
                log_line(f"evaluated the checkpoint at train_config.num_steps ({num_steps})")
                return count
            if max_evals and count >= max_evals:
                log_line(f"done eval_config.max_evals ({max_evals}) evaluations")
                return count
            deadline = time.monotonic() + timeout
            continue
        if time.monotonic() + wait_interval > deadline:
            break
        time.sleep(wait_interval)
    if count == 0:
        raise FileNotFoundError(
            f"{checkpoint_dir}: no intact checkpoint (ckpt-<step>.weights.h5) appeared within "
            f"{timeout} s"
        )
    log_line(f"no new checkpoint for {timeout} s; stopping after {count} evaluation(s)")
    return count


def next_checkpoint(checkpoint_dir, last_step=-1):
    """`(step, path)` of the oldest intact checkpoint of `checkpoint_dir` after `last_step`
    (its sha256 matches), or None. A folder of TF OD API checkpoints (`ckpt-N`, as
    `model_main_tf2.py` trains into) gives its checkpoints' prefixes, by training step."""
    from kdet.configs.checkpoints import is_tfod_checkpoint
    from kdet.configs.checkpoints import list_tfod_checkpoints
    from kdet.training.trainer import list_checkpoints
    from kdet.utils.verified_files import is_verified

    if is_tfod_checkpoint(checkpoint_dir):
        for step, prefix in list_tfod_checkpoints(checkpoint_dir):
            if step > last_step:
                return step, prefix
        return None
    for step, path in list_checkpoints(checkpoint_dir):
        if step > last_step and is_verified(path):
            return step, path
    return None


def _json_number(value):
    """A metric for JSON: NaN (e.g. the AP of a class without ground truth) becomes null."""
    return None if math.isnan(value) else value


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); move it away to start anew") from None


def _write_json(path, data, indent=1):
    """Writes `data` as JSON atomically (temporary file, then rename; with a `.sha256`)."""
    from kdet.utils.verified_files import write_verified

    text = json.dumps(data, indent=indent, allow_nan=False)
    write_verified(path, lambda temp_path: temp_path.write_text(text))
