"""`kdet train` and `kdet lr_sweep`: train the model of a pipeline config, or sweep its
learning rate first."""


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


def compiled_pipeline(path, dtype_policy=None):
    """The config's pipeline, its model compiled with the config's optimizer."""
    from kdet.configs import load_pipeline

    pipeline = load_pipeline(path, dtype_policy=dtype_policy)
    if pipeline.optimizer is None:
        raise ValueError(
            f"{path}: no train_config; kdet needs it to train, and to read the optimizer state "
            "that checkpoints hold"
        )
    pipeline.model.compile(optimizer=pipeline.optimizer)
    return pipeline


def run_lr_sweep(args):
    import json
    import pathlib

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



def distribution_strategy(name, num_gpus=None):
    """The `tf.distribute` strategy `--strategy` names (see `add_train_parser`)."""
    import os

    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(mirrored_devices(num_gpus))
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            # MultiWorkerMirroredStrategy would quietly train this process alone.
            raise ValueError(
                "--strategy multi_worker needs TF_CONFIG (the cluster and this worker's task) "
                "set on every worker; see docs/training.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def mirrored_devices(num_gpus=None):
    """The devices of `--strategy mirrored`: the first `num_gpus` GPUs, or all GPUs, or else
    every logical CPU device (one unless the process split the CPU into several, as tests do).

    `MirroredStrategy()` alone would take one CPU even where several logical CPUs exist.
    """
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if num_gpus is not None:
        if not 0 < num_gpus <= len(gpus):
            raise ValueError(
                f"--num_gpus {num_gpus}: this machine has {len(gpus)} GPU(s) visible to "
                "TensorFlow; pass at most that many, or leave --num_gpus out"
            )
        return gpus[:num_gpus]
    return gpus or [device.name for device in tf.config.list_logical_devices("CPU")]


def run_train(args):
    from kdet.configs import check_config_paths
    from kdet.configs import check_train_dataset
    from kdet.configs import restore_fine_tune_checkpoint
    from kdet.configs import train_dataset
    from kdet.data.label_map import read_label_map
    from kdet.configs.pipeline import train_input_ran_out
    from kdet.training import latest_checkpoint
    from kdet.training import train
    from kdet.training.trainer import TrainingInputRanOutError

    import tensorflow as tf

    strategy = distribution_strategy(args.strategy, args.num_gpus)
    policy = None
    if args.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    with strategy.scope():
        pipeline = compiled_pipeline(args.pipeline_config_path, dtype_policy=policy)
        # Path typos are reported at their config line before any weights are restored.
        check_config_paths(pipeline, "train_input_reader")
        # A new run starts from the fine-tune checkpoint; a resumed one from its own.
        if latest_checkpoint(args.model_dir) is None:
            restored = restore_fine_tune_checkpoint(pipeline)
            if restored is not None:
                print(restored, flush=True)
    num_steps = args.num_train_steps or pipeline.train.num_steps
    if num_steps <= 0:
        raise ValueError(
            f"{args.pipeline_config_path}: train_config.num_steps is 0 (no limit); pass "
            "--num_train_steps"
        )
    dataset = train_dataset(pipeline)
    check_train_dataset(pipeline, dataset)
    label_map = pipeline.train_input.get("label_map")
    try:
        summary = train(
            pipeline.model,
            dataset,
            args.model_dir,
            num_steps,
            args.checkpoint_every_n,
            log_every_n=args.log_every_n,
            label_map=read_label_map(label_map) if label_map else None,
            callbacks=[config_copy_callback(args.pipeline_config_path, args.model_dir)],
        )
    except TrainingInputRanOutError as error:  # the same, said in the config's terms
        raise train_input_ran_out(
            pipeline, error.summary["final_step"], num_steps, error.summary["checkpoint"]
        ) from None
    losses = ", ".join(f"{name} {value:.4f}" for name, value in summary["losses"].items())
    print(
        f"trained steps {summary['start_step']}..{summary['final_step']} in "
        f"{summary['seconds']:.0f} s on {strategy.num_replicas_in_sync} replica(s)"
        + (f"; mean losses: {losses}" if losses else " (already at --num_train_steps)")
        + f"; checkpoint: {summary['checkpoint']}"
    )
    return 0


def config_copy_name(config):
    """The name of a config's copy in a model directory: `pipeline.yaml` for a YAML config,
    else `pipeline.config` (what `kdet export` writes; `kdet predict` looks for both)."""
    import pathlib

    yaml_config = pathlib.Path(config).suffix.lower() in (".yaml", ".yml")
    return "pipeline.yaml" if yaml_config else "pipeline.config"


def save_pipeline_config(config, model_dir, warn=None):
    """Copies a pipeline config into a model directory, atomically (as the TF OD API's
    model_main does), so that the checkpoints there can be loaded without naming it.

    The copy is `config_copy_name(config)`. A config already there with the same content is
    left as it is. A different one (and any other `pipeline.config` / `pipeline.yaml` /
    `pipeline.yml` there, which readers would pick first) is renamed
    `pipeline.previous-<n>.<suffix>` (first free n), with a warning: never lost, never read
    instead of the new one.

    Args:
        config: path of the pipeline.config / YAML config being trained.
        model_dir: the model directory (must exist).
        warn: callable taking one line; defaults to printing `WARNING: …` to stderr.

    Returns:
        `pathlib.Path` of the copy.
    """
    import os
    import pathlib
    import sys

    from kdet.inference.loaded_detector import CONFIG_NAMES
    from kdet.utils.verified_files import fsync_file
    from kdet.utils.verified_files import fsync_folder

    if warn is None:
        def warn(line):
            print(f"WARNING: {line}", file=sys.stderr, flush=True)

    config, model_dir = pathlib.Path(config), pathlib.Path(model_dir)
    target = model_dir / config_copy_name(config)
    content = config.read_bytes()
    up_to_date = False
    for name in CONFIG_NAMES:
        existing = model_dir / name
        if not os.path.lexists(existing):
            continue
        if existing.is_file() and not existing.is_symlink() and (
            os.path.samefile(existing, config) or existing.read_bytes() == content
        ):
            up_to_date = up_to_date or existing == target
            continue
        number = 1
        while os.path.lexists(model_dir / f"pipeline.previous-{number}{existing.suffix}"):
            number += 1
        aside = model_dir / f"pipeline.previous-{number}{existing.suffix}"
        os.replace(existing, aside)
        warn(
            f"{existing} was a different config from {config} (the one trained now): kept "
            f"as {aside}; {target} is now a copy of {config}"
        )
    if up_to_date:
        return target
    # The `.tmp-<pid>-` name is one that the next kdet train removes if this one is killed.
    temp = model_dir / f".tmp-{os.getpid()}-{target.name}"
    try:
        temp.write_bytes(content)
        fsync_file(temp)
        os.replace(temp, target)
        fsync_folder(model_dir)
    finally:
        temp.unlink(missing_ok=True)
    return target


def config_copy_callback(config, model_dir):
    """A Keras callback running `save_pipeline_config(config, model_dir)` when training begins:
    inside `kdet.training.train`, so under the model directory's lock (a run the lock stops
    never replaces the running one's copy), and on the chief only."""
    import keras

    from kdet.training.trainer import is_chief

    class SavePipelineConfig(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if is_chief(self.model.distribute_strategy):
                save_pipeline_config(config, model_dir)

    return SavePipelineConfig()
