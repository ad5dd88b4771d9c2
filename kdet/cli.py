"""The `kdet` command line.

- `kdet convert {voc,coco,csv} INPUT --output OUT` converts annotated images to TFRecords of
  TF OD API `tf.train.Example`s.
- `kdet predict IMAGE… --model NAME` detects objects in images with a zoo model (or a saved
  `.keras` model) and writes annotated copies and a JSON of the detections.
- `kdet zoo` lists the zoo models.
"""

import argparse
import contextlib
import os
import sys


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hides the C++ start-up banner TensorFlow prints on import (CUDA probe, oneDNN notice).

    `TF_CPP_MIN_LOG_LEVEL` cannot silence it because it is written before absl logging is
    initialized, so the file descriptor itself is redirected for the duration of the import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _add_convert_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert annotated images (Pascal VOC, COCO JSON, CSV) to TFRecords",
        description=(
            "Convert annotated images to sharded TFRecords of tf.train.Example with the TF Object "
            "Detection API keys. With no --label_map, one is derived from the class names and "
            "written next to the output as label_map.pbtxt."
        ),
    )
    parser.add_argument(
        "source",
        choices=("voc", "coco", "csv"),
        help="annotation format: 'voc' (a folder of Pascal VOC XML files), 'coco' (a COCO "
        "instances JSON file) or 'csv' (columns image_path,xmin,ymin,xmax,ymax,label in pixels)",
    )
    parser.add_argument("input", help="the VOC XML folder, COCO JSON file or CSV file")
    parser.add_argument(
        "--output",
        required=True,
        help="output TFRecord path; with --num_shards N > 1 the files are OUTPUT-0000i-of-0000N",
    )
    parser.add_argument(
        "--image_dir",
        default=None,
        help="folder with the images (default: next to the annotation files)",
    )
    parser.add_argument(
        "--label_map",
        default=None,
        help="label map .pbtxt; class names not in it are bad input (default: derive one)",
    )
    parser.add_argument("--num_shards", type=int, default=1, help="number of output files")
    parser.add_argument(
        "--on_error",
        choices=("skip", "raise"),
        default="skip",
        help="bad image or annotation: skip that image and count it in the summary (default), "
        "or stop with an error and write nothing",
    )
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=_run_convert)


def _run_convert(args):
    from kdet.data import converters

    convert = {
        "voc": converters.convert_voc,
        "coco": converters.convert_coco,
        "csv": converters.convert_csv,
    }[args.source]
    if args.num_shards < 1:
        raise ValueError(f"--num_shards must be at least 1, got {args.num_shards}")
    summary = convert(
        args.input,
        args.output,
        image_dir=args.image_dir,
        label_map=args.label_map,
        num_shards=args.num_shards,
        on_error=args.on_error,
        progress=not args.no_progress,
    )
    print(summary)
    return 0


def _add_predict_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images with a zoo model or a saved .keras model",
        description=(
            "Detect objects in images, print them, and write annotated copies plus "
            "detections.json to --output_dir. Zoo models are converted and cached on first use."
        ),
    )
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    parser.add_argument(
        "--model",
        default="ssd_mobilenet_v2_coco",
        help="a zoo model name (see 'kdet zoo') or a saved .keras model file "
        "(default: ssd_mobilenet_v2_coco)",
    )
    parser.add_argument(
        "--label_map",
        default=None,
        help="label map .pbtxt for class names (default: the zoo model's own)",
    )
    parser.add_argument(
        "--output_dir", default="runs/detections", help="where to write the annotated images"
    )
    parser.add_argument(
        "--score_threshold", type=float, default=0.5, help="lowest score shown (default 0.5)"
    )
    parser.set_defaults(run=_run_predict)


def _run_predict(args):
    import json
    import pathlib

    import numpy as np
    from PIL import Image

    import kdet.zoo
    from kdet import visualization
    from kdet.data.label_map import read_label_map

    paths = [pathlib.Path(path) for path in args.images]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file(s): {', '.join(missing)}")
    if args.model.endswith(".keras"):
        import keras

        model = keras.saving.load_model(args.model)
        label_map = {}
    else:
        model = kdet.zoo.load(args.model)
        label_map = kdet.zoo.get_entry(args.model).label_map
    if args.label_map:
        label_map = read_label_map(args.label_map)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        detections = model.predict_on_batch(pixels[np.newaxis])
        count = int(detections["num_detections"][0])
        keep = [i for i in range(count) if detections["confidences"][0, i] >= args.score_threshold]
        found = [
            {
                "label": int(detections["labels"][0, i]),
                "name": label_map.get(int(detections["labels"][0, i]), str(detections["labels"][0, i])),
                "score": round(float(detections["confidences"][0, i]), 4),
                "box_yxyx": [round(float(v), 1) for v in detections["boxes"][0, i]],
            }
            for i in keep
        ]
        results[path.name] = found
        drawn = visualization.draw_detections(
            pixels,
            {key: value[0] for key, value in detections.items()},
            label_map=label_map,
            score_threshold=args.score_threshold,
            bounding_box_format=model.bounding_box_format,
        )
        visualization.save_image(drawn, output_dir / f"{path.stem}_detections.jpg")
        summary = ", ".join(f"{d['name']} {d['score']:.2f}" for d in found) or "nothing"
        print(f"{path.name}: {summary}")
    (output_dir / "detections.json").write_text(json.dumps(results, indent=2))
    print(f"Annotated images and detections.json written to {output_dir}")
    return 0


def _add_zoo_parser(subparsers):
    parser = subparsers.add_parser(
        "zoo", help="list the zoo models", description="List the pretrained models of the zoo."
    )
    parser.set_defaults(run=_run_zoo)


def _run_zoo(args):
    import kdet.zoo

    for name in kdet.zoo.list():
        entry = kdet.zoo.get_entry(name)
        print(f"{name}: {entry.metadata.get('description', '')}".rstrip(": "))
    return 0


def _add_train_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model from a TF OD API pipeline.config",
        description="Train the model of a TF OD API pipeline.config (its model, train_config and "
        "train_input_reader) into a model directory: a checkpoint every --checkpoint_every_n "
        "steps, TensorBoard logs in MODEL_DIR/train, and a restart resumes from the newest "
        "intact checkpoint. Flag names follow the TF OD API's model_main_tf2.py.",
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
        help="total training steps; overrides train_config.num_steps",
    )
    parser.add_argument(
        "--checkpoint_every_n", type=int, default=1000, help="steps between checkpoints"
    )
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs, or the "
        "CPU), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG)",
    )
    parser.add_argument(
        "--num_gpus", type=int, help="with --strategy mirrored: use the first N GPUs"
    )
    parser.add_argument(
        "--mixed_precision",
        action="store_true",
        help="train with Keras mixed precision: mixed_float16 on GPUs, mixed_bfloat16 otherwise "
        "(train_config.use_bfloat16 asks for mixed_bfloat16)",
    )
    parser.set_defaults(run=_run_train)


def _add_lr_sweep_parser(subparsers):
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
    parser.set_defaults(run=_run_lr_sweep)


def _compiled_pipeline(path, dtype_policy=None):
    """The config's pipeline, its model compiled with the config's optimizer."""
    from kdet.configs import load_pipeline

    pipeline = load_pipeline(path, dtype_policy=dtype_policy)
    if pipeline.optimizer is None:
        raise ValueError(f"{path}: no train_config; it is needed to train")
    pipeline.model.compile(optimizer=pipeline.optimizer)
    return pipeline


def _run_lr_sweep(args):
    import json
    import pathlib

    from kdet.configs import train_dataset
    from kdet.training import lr_sweep
    from kdet.training import plot_lr_sweep

    pipeline = _compiled_pipeline(args.pipeline_config_path)
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


def _add_config_parser(subparsers):
    parser = subparsers.add_parser(
        "config",
        help="convert pipeline configs",
        description="Work with pipeline configs.",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND")
    commands.required = True
    convert = commands.add_parser(
        "convert",
        help="write a TF OD API pipeline.config as kdet's YAML config",
        description="Write a TF OD API pipeline.config as kdet's YAML config: the same fields "
        "and values, nested mappings for messages, lists for repeated fields. The file is "
        "checked first (the model is built), so a config kdet cannot run is reported instead.",
    )
    convert.add_argument("input", help="the pipeline.config (protobuf text) file")
    convert.add_argument("output", help="the YAML file to write")
    convert.set_defaults(run=_run_config_convert)


def _run_config_convert(args):
    import pathlib

    from kdet.configs import load_pipeline
    from kdet.configs.text_format import parse_file
    from kdet.configs.yaml_config import to_yaml

    load_pipeline(args.input)  # every field checked, as `kdet train` would
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(f"# kdet YAML config converted from {args.input}\n" + to_yaml(
        parse_file(args.input)
    ))
    print(f"wrote {output}")
    return 0


def _distribution_strategy(name, num_gpus):
    import tensorflow as tf

    if name == "mirrored":
        gpus = [f"/gpu:{index}" for index in range(num_gpus)] if num_gpus else None
        return tf.distribute.MirroredStrategy(gpus)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _run_train(args):
    from kdet.configs import restore_fine_tune_checkpoint
    from kdet.configs import train_dataset
    from kdet.training import latest_checkpoint
    from kdet.training import train

    import tensorflow as tf

    strategy = _distribution_strategy(args.strategy, args.num_gpus)
    policy = None
    if args.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    with strategy.scope():
        pipeline = _compiled_pipeline(args.pipeline_config_path, dtype_policy=policy)
        # A new run starts from the fine-tune checkpoint; a resumed one from its own.
        if latest_checkpoint(args.model_dir) is None:
            restored = restore_fine_tune_checkpoint(pipeline)
            if restored is not None:
                print(f"initialized from {restored}")
    num_steps = args.num_train_steps or pipeline.train.num_steps
    if num_steps <= 0:
        raise ValueError(
            f"{args.pipeline_config_path}: train_config.num_steps is 0 (no limit); pass "
            "--num_train_steps"
        )
    dataset = train_dataset(pipeline)
    summary = train(
        pipeline.model, dataset, args.model_dir, num_steps, args.checkpoint_every_n
    )
    losses = ", ".join(f"{name} {value:.4f}" for name, value in summary["losses"].items())
    print(
        f"trained steps {summary['start_step']}..{summary['final_step']} in "
        f"{summary['seconds']:.0f} s on {strategy.num_replicas_in_sync} replica(s)"
        + (f"; mean losses: {losses}" if losses else " (already at --num_train_steps)")
        + f"; checkpoint: {summary['checkpoint']}"
    )
    return 0


def build_parser():
    """Returns the `kdet` argument parser."""
    from kdet import __version__

    parser = argparse.ArgumentParser(
        prog="kdet",
        description="kdet: Keras 3 object detection (Faster R-CNN, SSD) the TF OD API way.",
    )
    parser.add_argument("--version", action="version", version=f"kdet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_convert_parser(subparsers)
    _add_predict_parser(subparsers)
    _add_train_parser(subparsers)
    _add_lr_sweep_parser(subparsers)
    _add_config_parser(subparsers)
    _add_zoo_parser(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `kdet` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with _quiet_native_stderr():
        import tensorflow as tf

        # Device discovery prints a CUDA probe failure on machines without a GPU.
        tf.config.list_physical_devices()
    from kdet.data.errors import DataError

    try:
        return args.run(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        # Bad paths, configs or data are the user's to fix: one clear line, no stack trace.
        print(f"kdet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
