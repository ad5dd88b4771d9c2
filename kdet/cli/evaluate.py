"""`kdet eval`: the TF OD API metrics of a model directory's checkpoints, once or as they appear."""

import argparse
import json
import math
import pathlib
import time

# A checkpoint directory is checked this often by default, as in model_main_tf2.py.
_DEFAULT_WAIT_INTERVAL = 180
# The metrics of the summary line, when computed: the headline numbers of each metrics set.
_SUMMARY_METRICS = (
    "DetectionBoxes_Precision/mAP",
    "DetectionBoxes_Precision/mAP@.50IOU",
    "PascalBoxes_Precision/mAP@0.5IOU",
    "WeightedPascalBoxes_Precision/mAP@0.5IOU",
)


def add_evaluate_parser(subparsers):
    parser = subparsers.add_parser(
        "eval",
        help="evaluate checkpoints of a model directory (COCO / Pascal VOC metrics)",
        description="Evaluate the model of a TF OD API pipeline.config on its eval_input_reader "
        "with the eval_config.metrics_set metrics (default coco_detection_metrics). Without "
        "--checkpoint_dir, the newest checkpoint of --model_dir is evaluated once; with it, each "
        "new checkpoint of CHECKPOINT_DIR is evaluated as it appears, until --timeout seconds "
        "pass without one, the checkpoint at train_config.num_steps is evaluated, or "
        "eval_config.max_evals evaluations are done. Results go to MODEL_DIR/eval: TensorBoard "
        "scalars and images (step = checkpoint step), metrics.json ({step: {metric: value}}) and "
        "precision_recall.json (per-class curves at IoU 0.5 of the last checkpoint evaluated). "
        "Flag names follow the TF OD API's model_main_tf2.py.",
    )
    parser.add_argument(
        "--pipeline_config_path",
        required=True,
        help="the TF OD API pipeline.config (protobuf text) or kdet YAML config (.yaml)",
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="the training folder: its newest checkpoint is evaluated (without "
        "--checkpoint_dir); results are written to MODEL_DIR/eval",
    )
    parser.add_argument(
        "--checkpoint_dir",
        help="evaluate each new checkpoint of this folder as it appears (usually the --model_dir "
        "of a running kdet train; default: none, the newest checkpoint of --model_dir is "
        "evaluated once)",
    )
    parser.add_argument(
        "--wait_interval",
        type=_non_negative_int,
        help="with --checkpoint_dir: seconds between checks for a new checkpoint (default: "
        f"eval_config.eval_interval_secs if set, else {_DEFAULT_WAIT_INTERVAL})",
    )
    parser.add_argument(
        "--timeout",
        type=_non_negative_int,
        default=3600,
        help="with --checkpoint_dir: stop after this many seconds without a new checkpoint "
        "(default: 3600)",
    )
    parser.add_argument(
        "--num_examples",
        type=int,
        help="images evaluated per checkpoint; overrides eval_config.num_examples (default: the "
        "whole eval input)",
    )
    parser.set_defaults(run=run_evaluate)


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def run_evaluate(args):
    from kdet.cli.train import compiled_pipeline
    from kdet.configs import eval_dataset
    from kdet.evaluation import COCOEvaluator
    from kdet.training import latest_checkpoint

    pipeline = compiled_pipeline(args.pipeline_config_path)
    settings = pipeline.eval_config
    eval_dir = pathlib.Path(args.model_dir) / "eval"
    evaluator = COCOEvaluator(
        eval_dataset(pipeline),
        label_map=pipeline.eval_inputs[0]["label_map"],
        metrics_sets=settings.metrics_sets,
        include_metrics_per_category=settings.include_metrics_per_category,
        num_examples=settings.num_examples if args.num_examples is None else args.num_examples,
        log_dir=eval_dir,
        num_visualizations=settings.num_visualizations,
        min_score_threshold=settings.min_score_threshold,
        max_num_boxes_to_visualize=settings.max_num_boxes_to_visualize,
    )
    if len(pipeline.eval_inputs) > 1:
        print(f"evaluating the first of {len(pipeline.eval_inputs)} eval_input_readers")
    if args.checkpoint_dir is None:
        latest = latest_checkpoint(args.model_dir)
        if latest is None:
            raise FileNotFoundError(
                f"{args.model_dir}: no intact checkpoint (ckpt-<step>.weights.h5) to evaluate; "
                "train with kdet train first, or pass --checkpoint_dir to wait for one"
            )
        evaluate_checkpoint(pipeline, evaluator, *latest, eval_dir)
        return 0
    wait_interval = args.wait_interval
    if wait_interval is None:
        wait_interval = settings.eval_interval_secs or _DEFAULT_WAIT_INTERVAL
    evaluate_continuously(
        pipeline, evaluator, args.checkpoint_dir, eval_dir, wait_interval, args.timeout
    )
    return 0


def evaluate_checkpoint(pipeline, evaluator, step, path, eval_dir):
    """Restores one checkpoint into the pipeline's model, evaluates it and writes the results.

    Args:
        pipeline: a `kdet.configs.Pipeline` whose model is compiled with its optimizer.
        evaluator: a `kdet.evaluation.COCOEvaluator` writing TensorBoard logs to `eval_dir`.
        step: int, the checkpoint's step.
        path: the `ckpt-<step>.weights.h5` file.
        eval_dir: `pathlib.Path` of `metrics.json` and `precision_recall.json`.

    Returns:
        The metrics dict.
    """
    from kdet.configs.pipeline import input_size
    from kdet.evaluation import CURVES_IOU_THRESHOLD
    from kdet.training.trainer import restore_checkpoint

    (height, width), _ = input_size(pipeline.model)
    restore_checkpoint(pipeline.model, path, (None, height, width, 3))
    begin = time.perf_counter()
    metrics, curves = evaluator.evaluate(
        pipeline.model, return_curves=True, step=step, progress=True
    )
    seconds = time.perf_counter() - begin
    metrics_path = eval_dir / "metrics.json"
    history = _read_json(metrics_path) if metrics_path.exists() else {}
    history[str(step)] = {name: _json_number(value) for name, value in metrics.items()}
    _write_json(metrics_path, history)
    classes = {
        name: {
            "precision": curve["precision"].tolist(),
            "recall": curve["recall"].tolist(),
            "average_precision": curve["average_precision"],
        }
        for name, curve in curves.items()
    }
    _write_json(
        eval_dir / "precision_recall.json",
        {"step": step, "iou_threshold": CURVES_IOU_THRESHOLD, "classes": classes},
        indent=None,
    )
    _save_plots(eval_dir, evaluator.last_visualizations)
    summary = ", ".join(
        f"{name} {metrics[name]:.4f}" for name in _SUMMARY_METRICS if name in metrics
    )
    print(f"step {step} ({path.name}, {seconds:.1f} s): {summary}", flush=True)
    return metrics


def _save_plots(eval_dir, visualizations):
    """Writes the PNGs of the last evaluation into `eval_dir`: `precision_recall.png` and
    `average_precision.png` (as `kdet plot` draws them), and `detections.png` (the drawn
    images, detections left and ground truth right, one above the other)."""
    import numpy as np

    from kdet import plots
    from kdet.cli.plot import evaluation_figures
    from kdet.visualization import save_image

    for name, figure, _ in evaluation_figures(eval_dir / "precision_recall.json"):
        plots.save_figure(figure, eval_dir / f"{name}.png")
    if visualizations:
        save_image(np.concatenate(visualizations, axis=0), eval_dir / "detections.png")


def evaluate_continuously(pipeline, evaluator, checkpoint_dir, eval_dir, wait_interval, timeout):
    """Evaluates each new checkpoint of `checkpoint_dir`, oldest first, as it appears.

    Stops after `timeout` seconds without a new checkpoint, after the checkpoint at
    `train_config.num_steps`, or after `eval_config.max_evals` evaluations.

    Args:
        pipeline: a `kdet.configs.Pipeline` whose model is compiled with its optimizer.
        evaluator: a `kdet.evaluation.COCOEvaluator`.
        checkpoint_dir: the folder the training writes `ckpt-<step>.weights.h5` to.
        eval_dir: `pathlib.Path` for the results (see `evaluate_checkpoint`).
        wait_interval: seconds between checks for a new checkpoint.
        timeout: seconds without a new checkpoint before stopping.

    Returns:
        int, the number of checkpoints evaluated.

    Raises:
        FileNotFoundError: if no checkpoint appears within `timeout` seconds.
    """
    num_steps = pipeline.train.num_steps
    max_evals = pipeline.eval_config.max_evals
    print(
        f"evaluating new checkpoints of {checkpoint_dir} (checked every {wait_interval} s, "
        f"stopping after {timeout} s without one)",
        flush=True,
    )
    last_step, count = -1, 0
    deadline = time.monotonic() + timeout
    while True:
        found = _next_checkpoint(checkpoint_dir, last_step)
        if found is not None:
            evaluate_checkpoint(pipeline, evaluator, *found, eval_dir)
            last_step, count = found[0], count + 1
            if num_steps and last_step >= num_steps:
                print(f"evaluated the checkpoint at train_config.num_steps ({num_steps})")
                return count
            if max_evals and count >= max_evals:
                print(f"done eval_config.max_evals ({max_evals}) evaluations")
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
    print(f"no new checkpoint for {timeout} s; stopping after {count} evaluation(s)")
    return count


def _next_checkpoint(checkpoint_dir, last_step):
    """`(step, path)` of the oldest intact checkpoint after `last_step`, or None."""
    from kdet.training.trainer import list_checkpoints
    from kdet.utils.verified_files import is_verified

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
