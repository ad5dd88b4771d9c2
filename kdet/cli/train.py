"""`kdet train` and `kdet lr_sweep`: train the model of a pipeline config, or sweep its
learning rate first.

The work is `kdet.training.train_pipeline` (with `kdet.training.distribution_strategy`) and
`kdet.training.lr_sweep`; this module maps the flags to their arguments.
"""

# Names that lived here before they moved into the library, still found here (lazily, so that
# `kdet --help` does not import TensorFlow).
_MOVED = {
    "compiled_pipeline": "kdet.configs.pipeline",
    "distribution_strategy": "kdet.training.distribution",
    "mirrored_devices": "kdet.training.distribution",
    "config_copy_name": "kdet.training.model_dir",
    "save_pipeline_config": "kdet.training.config_copy",
    "config_copy_callback": "kdet.training.config_copy",
}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_train_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model from a TF OD API pipeline.config",
        description="Train the model of a TF OD API pipeline.config (its model, train_config and "
        "train_input_reader) into a model directory: a checkpoint every --checkpoint_every_n "
        "steps, TensorBoard logs in MODEL_DIR/train, and a restart resumes from the newest "
        "intact checkpoint. A copy of the config is kept in MODEL_DIR (pipeline.config, or "
        "pipeline.yaml for a YAML config), so that 'kdet predict --model MODEL_DIR', 'kdet "
        "eval' and 'kdet export' find it; a different one already there is kept as "
        "pipeline.previous-<n>.config with a warning. Flag names follow the TF OD API's "
        "model_main_tf2.py.",
    )
    parser.add_argument(
        "--pipeline_config_path",
        required=True,
        help="the TF OD API pipeline.config (protobuf text) or kdet YAML config (.yaml)",
    )
    parser.add_argument(
        "--model_dir", required=True, help="folder for checkpoints and logs (created if needed)"
    )
    parser.add_argument(
        "--num_train_steps",
        type=int,
        help="total training steps; overrides train_config.num_steps (default: "
        "train_config.num_steps)",
    )
    parser.add_argument(
        "--checkpoint_every_n", type=int, default=1000, help="steps between checkpoints"
    )
    parser.add_argument(
        "--log_every_n",
        type=_positive_int,
        default=100,
        help="steps between TensorBoard loss and learning-rate points (the mean over those "
        "steps; the last step is always logged): the resolution of 'kdet plot' curves",
    )
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs, or the "
        "CPU), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG)",
    )
    parser.add_argument(
        "--num_gpus",
        type=int,
        help="with --strategy mirrored: use the first N GPUs (default: all GPUs, or the CPU)",
    )
    parser.add_argument(
        "--mixed_precision",
        action="store_true",
        help="train with Keras mixed precision: mixed_float16 on GPUs, mixed_bfloat16 otherwise "
        "(train_config.use_bfloat16 asks for mixed_bfloat16)",
    )
    parser.add_argument(
        "--data_service",
        metavar="grpc://HOST:PORT",
        help="run the input pipeline (reading, decoding, augmentation, resizing, batching) on the "
        "workers of this tf.data service dispatcher (TF's tf.data.experimental.service; "
        "docs/training.md shows how to start them); with --strategy multi_worker the training "
        "workers share one job (default: none, the input runs in this process)",
    )
    parser.set_defaults(run=run_train)


def add_lr_sweep_parser(subparsers):
    parser = subparsers.add_parser(
        "lr_sweep",
        help="learning-rate range test for a pipeline.config",
        description="Train a copy of the pipeline.config's model for at most --num_steps steps "
        "with a learning rate growing exponentially from --min_lr to --max_lr (stopping when "
        "the loss diverges), save the loss-vs-rate plot and the numbers to MODEL_DIR, and print "
        "a suggested learning rate.",
    )
    parser.add_argument(
        "--pipeline_config_path",
        required=True,
        help="the TF OD API pipeline.config (protobuf text) or kdet YAML config (.yaml)",
    )
    parser.add_argument(
        "--model_dir", required=True, help="where lr_sweep.png and lr_sweep.json are written"
    )
    parser.add_argument("--min_lr", type=float, default=1e-6, help="first learning rate")
    parser.add_argument("--max_lr", type=float, default=1.0, help="last learning rate")
    parser.add_argument("--num_steps", type=int, default=100, help="steps at most")
    parser.set_defaults(run=run_lr_sweep)


def _positive_int(text):
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of steps >= 1, got {text}")
    return value


def run_lr_sweep(args):
    import json
    import pathlib

    from kdet.configs import compiled_pipeline
    from kdet.configs import train_dataset
    from kdet.training import lr_sweep
    from kdet.training import plot_lr_sweep

    pipeline = compiled_pipeline(args.pipeline_config_path)
    result = lr_sweep(
        pipeline.model,
        train_dataset(pipeline).repeat(),
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        num_steps=args.num_steps,
    )
    model_dir = pathlib.Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    plot_lr_sweep(result, model_dir / "lr_sweep.png")
    (model_dir / "lr_sweep.json").write_text(json.dumps(result, indent=1))
    suggested = result["suggested_learning_rate"]
    ended = "stopped when the loss diverged" if result["diverged"] else "did not diverge"
    print(
        f"ran {len(result['losses'])} steps from {args.min_lr:g} to "
        f"{result['learning_rates'][-1]:.3g} ({ended}); plot: {model_dir / 'lr_sweep.png'}\n"
        f"suggested learning rate: {suggested:.3g}; put it in the config as the base rate of "
        "train_config.optimizer's learning_rate, e.g. learning_rate { constant_learning_rate "
        f"{{ learning_rate: {suggested:.3g} }} }} (or initial_learning_rate / "
        "learning_rate_base of a schedule)"
    )
    return 0


def run_train(args):
    import tensorflow as tf

    from kdet.training import distribution_strategy
    from kdet.training import train_pipeline

    strategy = distribution_strategy(args.strategy, args.num_gpus)
    policy = None
    if args.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    summary = train_pipeline(
        args.pipeline_config_path,
        args.model_dir,
        num_steps=args.num_train_steps,
        checkpoint_every_n=args.checkpoint_every_n,
        log_every_n=args.log_every_n,
        strategy=strategy,
        dtype_policy=policy,
        log=lambda line: print(line, flush=True),
        data_service=args.data_service,
    )
    losses = ", ".join(f"{name} {value:.4f}" for name, value in summary["losses"].items())
    print(
        f"trained steps {summary['start_step']}..{summary['final_step']} in "
        f"{summary['seconds']:.0f} s on {summary['replicas']} replica(s)"
        + (f"; mean losses: {losses}" if losses else " (already at --num_train_steps)")
        + f"; checkpoint: {summary['checkpoint']}"
    )
    return 0
