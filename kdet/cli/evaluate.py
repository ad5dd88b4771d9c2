"""`kdet eval`: the TF OD API metrics of a model directory's checkpoints, once or as they appear.

The work is `kdet.evaluation.evaluate_checkpoint` / `evaluate_continuously`; this module maps
the flags to their arguments.
"""

import argparse

# `kdet.evaluation.checkpoint_evaluation.DEFAULT_WAIT_INTERVAL`, named here so that `kdet
# --help` does not import TensorFlow.
_DEFAULT_WAIT_INTERVAL = 180


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
    from kdet.configs import compiled_pipeline
    from kdet.evaluation import evaluate_checkpoint
    from kdet.evaluation import evaluate_continuously
    from kdet.evaluation import pipeline_evaluator
    from kdet.training import latest_checkpoint
    from kdet.training import model_dir as model_dir_layout

    def log(line):
        print(line, flush=True)

    pipeline = compiled_pipeline(args.pipeline_config_path)
    eval_dir = model_dir_layout.eval_dir(args.model_dir)
    evaluator = pipeline_evaluator(pipeline, log_dir=eval_dir, num_examples=args.num_examples)
    if len(pipeline.eval_inputs) > 1:
        print(f"evaluating the first of {len(pipeline.eval_inputs)} eval_input_readers")
    if args.checkpoint_dir is None:
        latest = latest_checkpoint(args.model_dir)
        if latest is None:
            raise FileNotFoundError(
                f"{args.model_dir}: no intact checkpoint (ckpt-<step>.weights.h5) to evaluate; "
                "train with kdet train first, or pass --checkpoint_dir to wait for one"
            )
        evaluate_checkpoint(pipeline, latest[1], eval_dir, evaluator, log=log)
        return 0
    evaluate_continuously(
        pipeline, args.checkpoint_dir, eval_dir, evaluator, wait_interval=args.wait_interval,
        timeout=args.timeout, log=log,
    )
    return 0
