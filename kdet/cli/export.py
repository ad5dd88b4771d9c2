"""`kdet export`: a trained pipeline's model as a SavedModel (and a TFLite model for SSD), laid
out as the TF OD API's `exporter_main_v2.py` lays it out."""

# `kdet.export.INPUT_TYPES`, named here so that `kdet --help` does not import TensorFlow.
INPUT_TYPES = ("image_tensor", "encoded_image_string_tensor", "tf_example")
# --tflite_quantization → `export_tflite`'s `quantization`.
TFLITE_QUANTIZATIONS = {"float32": None, "dynamic_range": "dynamic_range"}
# Lists, in --output_directory, the entries an export wrote, so that the next export into the
# same folder replaces them (and removes a model.tflite it does not write again).
MANIFEST = ".kdet_export.json"


def add_export_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel (and TFLite for SSD)",
        description="Build the model of a pipeline config, restore the newest intact "
        "checkpoint of --trained_checkpoint_dir (a 'kdet train' model directory), and write "
        "to --output_directory, as the TF OD API's exporter_main_v2.py does: saved_model/ "
        "(signature serving_default: input_tensor -> detection_boxes, detection_scores, "
        "detection_classes, num_detections; non-max suppression included; loads with "
        "tf.saved_model.load, no kdet needed), checkpoint/ (the restored checkpoint) and a "
        "copy of the config (pipeline.config, or pipeline.yaml for a YAML config). With "
        "--tflite, also model.tflite (SSD only).",
    )
    parser.add_argument(
        "--pipeline_config_path",
        required=True,
        help="the TF OD API pipeline.config (protobuf text) or kdet YAML config (.yaml) the "
        "model was trained with",
    )
    parser.add_argument(
        "--trained_checkpoint_dir",
        required=True,
        help="the model directory of 'kdet train' (its newest intact ckpt-<step>.weights.h5 "
        "is exported)",
    )
    parser.add_argument(
        "--output_directory", required=True, help="where to write (created if needed)"
    )
    parser.add_argument(
        "--input_type",
        choices=INPUT_TYPES,
        default="image_tensor",
        help="what the SavedModel's input_tensor holds: image_tensor (uint8 [batch, height, "
        "width, 3]), encoded_image_string_tensor (string [batch] of JPEG/PNG bytes) or "
        "tf_example (string [batch] of serialized tf.train.Example)",
    )
    parser.add_argument(
        "--tflite",
        action="store_true",
        help="also write OUTPUT_DIRECTORY/model.tflite (SSD with a fixed_shape_resizer; "
        "uint8 [1, height, width, 3] input; post-processing by TFLite's built-in "
        "TFLite_Detection_PostProcess op)",
    )
    parser.add_argument(
        "--tflite_quantization",
        choices=tuple(TFLITE_QUANTIZATIONS),
        default="float32",
        help="with --tflite: float32, or dynamic_range (int8 weights, about 4x smaller)",
    )
    parser.set_defaults(run=run_export)


def run_export(args):
    import os
    import pathlib
    import shutil

    from kdet.configs import load_pipeline
    from kdet.configs.pipeline import input_size
    from kdet.export import export_saved_model
    from kdet.export import export_tflite
    from kdet.training import latest_checkpoint
    from kdet.training.trainer import restore_checkpoint
    from kdet.utils.progress import StageLog
    from kdet.utils.verified_files import checksum_path

    checkpoint_dir = pathlib.Path(args.trained_checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"--trained_checkpoint_dir {checkpoint_dir}: no such directory")
    latest = latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise FileNotFoundError(
            f"--trained_checkpoint_dir {checkpoint_dir}: no intact kdet checkpoint in it "
            "(ckpt-<step>.weights.h5 with its .sha256, as 'kdet train' writes)"
        )
    step, checkpoint = latest
    log = StageLog("kdet export")  # stage lines on stderr: the export takes seconds
    log(f"building the model of {args.pipeline_config_path}")
    pipeline = load_pipeline(args.pipeline_config_path)
    model = pipeline.model
    # Checkpoints hold the optimizer's state too; the config's optimizer takes it.
    model.compile(optimizer=pipeline.optimizer)
    (height, width), _ = input_size(model)
    log(f"restoring step {step}: {checkpoint}")
    restore_checkpoint(model, checkpoint, (None, height, width, 3))

    output = pathlib.Path(args.output_directory)
    config = pathlib.Path(args.pipeline_config_path)
    yaml_config = config.suffix.lower() in (".yaml", ".yml")
    config_copy = "pipeline.yaml" if yaml_config else "pipeline.config"
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    staging = output / f".kdet-export.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    written = []
    try:
        # First, so that a model TFLite cannot take fails before anything else is written.
        if args.tflite:
            export_tflite(
                model,
                staging / "model.tflite",
                TFLITE_QUANTIZATIONS[args.tflite_quantization],
                progress=log.nested("TFLite"),
            )
            written.append("model.tflite")
        export_saved_model(
            model, staging / "saved_model", args.input_type, progress=log.nested("SavedModel")
        )
        (staging / "checkpoint").mkdir()
        for path in (checkpoint, checksum_path(checkpoint)):
            shutil.copyfile(path, staging / "checkpoint" / path.name)
        shutil.copyfile(config, staging / config_copy)
        _swap_in(output, staging, ["saved_model", "checkpoint", config_copy, *written], config)
    except BaseException:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = ["saved_model/", "checkpoint/", config_copy, *written]
    print(
        f"exported {checkpoint.name} (step {step}) with input_type {args.input_type} to "
        f"{output}: {', '.join(written)}"
    )
    return 0


def _swap_in(output, staging, entries, config):
    """Moves the staged export `entries` into `output`, in place of an earlier export's.

    The earlier export's entries (listed in its `MANIFEST`: also a `model.tflite` this export
    does not write) are moved aside first and deleted only once every new entry is in place; if
    a move fails, they are put back. Other files of `output`, and the `config` being exported,
    stay.
    """
    import json
    import os
    import shutil

    stale = set(entries) | set(_read_manifest(output / MANIFEST))
    stale = {name for name in stale if (output / name).resolve() != config.resolve()}
    aside = output / f".kdet-export.old-{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    moved_aside, moved_in = [], []
    try:
        for name in sorted(stale):
            if os.path.lexists(output / name):
                os.replace(output / name, aside / name)
                moved_aside.append(name)
        for name in entries:
            os.replace(staging / name, output / name)
            moved_in.append(name)
        (staging / MANIFEST).write_text(json.dumps({"entries": entries}) + "\n")
        os.replace(staging / MANIFEST, output / MANIFEST)
    except BaseException:
        for name in moved_in:
            _remove(output / name)
        for name in moved_aside:
            os.replace(aside / name, output / name)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _read_manifest(path):
    import json

    try:
        return json.loads(path.read_text())["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _remove(path):
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
