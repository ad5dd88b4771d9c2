"""`kdet export`: a trained pipeline's model as a SavedModel (and a TFLite model for SSD), laid
out as the TF OD API's `exporter_main_v2.py` lays it out."""

# `kdet.export.INPUT_TYPES`, named here so that `kdet --help` does not import TensorFlow.
INPUT_TYPES = ("image_tensor", "encoded_image_string_tensor", "tf_example")
# --tflite_quantization → `export_tflite`'s `quantization`.
TFLITE_QUANTIZATIONS = {"float32": None, "dynamic_range": "dynamic_range"}
# `kdet.export.DEFAULT_MAX_IMAGE_PIXELS`, named here so that `kdet --help` does not import
# TensorFlow (a test checks that they agree).
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


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
    parser.add_argument(
        "--max_image_pixels",
        type=_positive_int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="with --input_type encoded_image_string_tensor or tf_example: the SavedModel "
        "refuses an image of more pixels (width x height, read from the file's header before "
        "decoding) with an InvalidArgumentError, so that a small crafted file cannot make it "
        f"decode gigabytes (default {DEFAULT_MAX_IMAGE_PIXELS}, Pillow's DecompressionBomb "
        "limit: ~1.4 GB of serving memory)",
    )
    parser.set_defaults(run=run_export)


def _positive_int(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number; got {text!r}")
    return value


def run_export(args):
    import pathlib
    import shutil
    import sys

    from kdet.export import export_saved_model
    from kdet.export import export_tflite
    from kdet.export.export_folder import discard_staging
    from kdet.export.export_folder import publish_export
    from kdet.export.export_folder import recover_export_folder
    from kdet.export.export_folder import staging_folder
    from kdet.inference import restored_model
    from kdet.training import latest_checkpoint
    from kdet.training.model_dir import config_copy_name
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
    model = restored_model(args.pipeline_config_path, checkpoint, step, progress=log)

    output = pathlib.Path(args.output_directory)
    config = pathlib.Path(args.pipeline_config_path)
    config_copy = config_copy_name(config)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    # An earlier export killed during its swap is completed first; what killed runs left goes.
    try:
        for line in recover_export_folder(output):
            log(f"{output}: {line}")
    except RuntimeError as error:  # another export is publishing into the folder
        print(f"kdet export: error: {error}", file=sys.stderr)
        return 2
    staging = staging_folder(output)
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
            model,
            staging / "saved_model",
            args.input_type,
            progress=log.nested("SavedModel"),
            max_image_pixels=args.max_image_pixels,
        )
        (staging / "checkpoint").mkdir()
        for path in (checkpoint, checksum_path(checkpoint)):
            shutil.copyfile(path, staging / "checkpoint" / path.name)
        shutil.copyfile(config, staging / config_copy)
        publish_export(output, staging, ["saved_model", "checkpoint", config_copy, *written],
                       keep=[config])
    except BaseException:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        raise
    finally:
        discard_staging(output, staging)
    written = ["saved_model/", "checkpoint/", config_copy, *written]
    print(
        f"exported {checkpoint.name} (step {step}) with input_type {args.input_type} to "
        f"{output}: {', '.join(written)}"
    )
    return 0

