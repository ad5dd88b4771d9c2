"""`kdet export`: a trained pipeline's model as a SavedModel (and a TFLite model for SSD and
CenterNet), laid out as the TF OD API's `exporter_main_v2.py` lays it out.

The work is `kdet.export.export_inference_graph`; this module maps the flags to its arguments.
"""

# `kdet.export.INPUT_TYPES`, named here so that `kdet --help` does not import TensorFlow.
INPUT_TYPES = ("image_tensor", "encoded_image_string_tensor", "tf_example")
# --tflite_quantization → `export_tflite`'s `quantization`.
TFLITE_QUANTIZATIONS = {"float32": None, "dynamic_range": "dynamic_range", "int8": "int8"}
# `kdet.export.DEFAULT_MAX_IMAGE_PIXELS`, named here so that `kdet --help` does not import
# TensorFlow (a test checks that they agree).
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def add_export_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel (and TFLite for SSD and CenterNet)",
        description="Build the model of a pipeline config, restore the newest intact "
        "checkpoint of --trained_checkpoint_dir (a 'kdet train' model directory, or a TF OD "
        "API training or zoo checkpoint folder), and write "
        "to --output_directory, as the TF OD API's exporter_main_v2.py does: saved_model/ "
        "(signature serving_default: input_tensor -> detection_boxes, detection_scores, "
        "detection_classes, num_detections; for Mask R-CNN also detection_masks [batch, "
        "max_detections, mask_height, mask_width] in each box's frame; for CenterNet with "
        "keypoints detection_keypoints and detection_keypoint_scores; post-processing "
        "included; loads with "
        "tf.saved_model.load, no kdet needed), checkpoint/ (the restored checkpoint) and a "
        "copy of the config (pipeline.config, or pipeline.yaml for a YAML config). With "
        "--tflite, also model.tflite (SSD and CenterNet; int8 with --tflite_quantization int8, "
        "from a quantization-aware SSD config's learned ranges or calibrated on "
        "--representative_images).",
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
        "is exported), or a TF OD API checkpoint folder as exporter_main_v2.py takes it (a "
        "training folder or a zoo archive's checkpoint/: the ckpt-N its `checkpoint` file "
        "names; TF1 model.ckpt-N too)",
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
        help="also write OUTPUT_DIRECTORY/model.tflite (SSD and CenterNet with a "
        "fixed_shape_resizer; uint8 [1, height, width, 3] input; SSD post-processing by "
        "TFLite's built-in TFLite_Detection_PostProcess op, CenterNet's own peaks and top-k in "
        "built-in ops)",
    )
    parser.add_argument(
        "--tflite_quantization",
        choices=tuple(TFLITE_QUANTIZATIONS),
        default="float32",
        help="with --tflite: float32, dynamic_range (int8 weights, about 4x smaller), or int8 "
        "(weights and activations, with the ranges learned by a config's graph_rewriter "
        "{ quantization { } }, which exports int8 with float32 too; any other config needs "
        "--representative_images)",
    )
    parser.add_argument(
        "--representative_images",
        nargs="+",
        metavar="PATH",
        help="with --tflite --tflite_quantization int8 of a config without graph_rewriter: "
        "the images whose activations set the int8 ranges (TFLite's representative "
        "dataset; a few hundred typical ones): image files, folders (their images) or quoted "
        "glob patterns ('photos/**/*.jpg') (default: none)",
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
    import sys

    from kdet.configs.checkpoints import is_tfod_checkpoint
    from kdet.export.export_folder import ExportInProgressError
    from kdet.export.exporter import export_inference_graph
    from kdet.export.tflite import RepresentativeImages
    from kdet.training import latest_checkpoint
    from kdet.utils.progress import StageLog

    representative_images = None
    if args.representative_images:
        if not (args.tflite and args.tflite_quantization == "int8"):
            raise ValueError("--representative_images calibrate an int8 TFLite model: give "
                             "them with --tflite --tflite_quantization int8")
        representative_images = RepresentativeImages(args.representative_images)
    checkpoint_dir = pathlib.Path(args.trained_checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"--trained_checkpoint_dir {checkpoint_dir}: no such directory")
    checkpoint = checkpoint_dir
    if not is_tfod_checkpoint(checkpoint_dir):
        latest = latest_checkpoint(checkpoint_dir)
        if latest is None:
            raise FileNotFoundError(
                f"--trained_checkpoint_dir {checkpoint_dir}: no intact kdet checkpoint in it "
                "(ckpt-<step>.weights.h5 with its .sha256, as 'kdet train' writes) nor a TF OD "
                "API one (a `checkpoint` file naming ckpt-N, as its training and zoo folders "
                "hold)"
            )
        checkpoint = latest[1]
    try:
        result = export_inference_graph(
            args.pipeline_config_path,
            checkpoint,
            args.output_directory,
            args.input_type,
            tflite=args.tflite,
            tflite_quantization=TFLITE_QUANTIZATIONS[args.tflite_quantization],
            max_image_pixels=args.max_image_pixels,
            progress=StageLog("kdet export"),  # stage lines on stderr: the export takes seconds
            tflite_representative_images=representative_images,
        )
    except ExportInProgressError as error:  # another export is publishing into the folder
        print(f"kdet export: error: {error}", file=sys.stderr)
        return 2
    output = pathlib.Path(args.output_directory)
    print(
        f"exported {result['checkpoint'].name} (step {result['step']}) with input_type "
        f"{args.input_type} to {output}: {', '.join(result['written'])}"
    )
    return 0
