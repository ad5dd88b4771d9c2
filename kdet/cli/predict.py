"""`kdet predict`: detect objects in images and videos with any model kdet makes or loads (a
thin shell over `kdet.inference`)."""

# The formats of kdet.inference.input_files (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS), named here
# so that `kdet --help` does not import it.
_IMAGES = "JPEG, PNG, BMP, GIF, TIFF, WebP"
_VIDEOS = "MP4, MOV, AVI, MKV, WebM, M4V, MPEG, WMV"
# kdet.inference.RUNTIMES, named here for the same reason (a test checks they agree).
RUNTIMES = ("keras", "frozen", "saved_model", "tflite")


def add_predict_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images or videos with a zoo model or a model you trained",
        description=(
            "Detect objects in images and videos, print them, and write to a run folder: "
            "<name>_detections.jpg per image, <name>_detections.mp4 and <name>_detections.json "
            "(every frame) per video, and detections.json ({image: [detections]}). A run never "
            "mixes with an earlier one: if --output_dir is not empty the run goes to the next "
            "free numbered folder (runs/detections2, runs/detections3, ...) unless --overwrite. "
            "A file that cannot be read is skipped with a warning (--strict: stop, write "
            "nothing). Zoo models are converted and cached on first use."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"image files ({_IMAGES}), video files ({_VIDEOS}; needs "
        "pip install 'kdet[video]'), folders (their images and videos) or quoted glob "
        "patterns ('photos/*.jpg', 'data/**/*.png')",
    )
    parser.add_argument(
        "--model",
        default="ssd_mobilenet_v2_coco",
        help="a zoo model name (see 'kdet zoo'), a .keras file, a 'kdet train' model "
        "directory (its newest checkpoint) or one of its ckpt-<step>.weights.h5 files, a "
        "'kdet export' output folder, a SavedModel folder, or a .tflite file 'kdet export' "
        "wrote (default: ssd_mobilenet_v2_coco)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="what serves the model: keras (the Keras model), frozen (one constant graph, "
        "batch norms folded), saved_model (a SavedModel or 'kdet export' folder), tflite "
        "(TFLite with XNNPACK: SSD and CenterNet without masks; a Keras model is converted "
        "once and cached, an export folder uses its model.tflite). Default: tflite for a zoo "
        "model it can serve, saved_model for a SavedModel, else keras (see docs/predict.md, "
        "'Serving on CPU')",
    )
    parser.add_argument(
        "--pipeline_config_path",
        default=None,
        help="the pipeline.config / YAML config a 'kdet train' model directory or checkpoint "
        "was trained with (default: a pipeline.config or pipeline.yaml in its folder)",
    )
    parser.add_argument(
        "--label_map",
        default=None,
        help="label map .pbtxt naming the classes (default: the zoo model's, or the one the "
        "pipeline config names; a .keras file has none: classes are shown by id)",
    )
    parser.add_argument(
        "--output_dir",
        default="runs/detections",
        help="where to write; if it holds files, the next free numbered folder is used "
        "(default: runs/detections)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into --output_dir itself even if it holds files, replacing the outputs of "
        "the earlier kdet predict run there (other files stay); default: off",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first file that cannot be read, writing nothing (default: skip it "
        "with a warning)",
    )
    parser.add_argument(
        "--allow_large_images",
        action="store_true",
        help="decode images over Pillow's decompression-bomb limit (178,956,970 pixels) "
        "instead of skipping them (default: off); they need gigabytes of memory",
    )
    parser.add_argument("--score_threshold", type=float, default=0.5, help="lowest score shown (default: 0.5)")
    parser.add_argument(
        "--tile_size",
        type=int,
        default=None,
        help="detect on overlapping tiles of this many pixels, merged by NMS (for large "
        "aerial scenes; see ObjectDetector.predict_tiled; Keras models only); default: the "
        "whole image at once",
    )
    parser.add_argument(
        "--tile_stride",
        type=int,
        default=None,
        help="pixels between tile starts; default: half the tile size",
    )
    parser.add_argument(
        "--no_progress", action="store_true",
        help="no progress bar for videos (default: a bar on stderr)",
    )
    parser.set_defaults(run=run_predict)


def run_predict(args):
    from kdet.inference import collect_inputs
    from kdet.inference import load_detector
    from kdet.inference import predict_to_folder
    from kdet.inference import readable_inputs

    if args.tile_size is not None and args.tile_size < 1:
        raise ValueError(f"--tile_size must be a positive number of pixels; got {args.tile_size}")
    if args.tile_stride is not None and args.tile_size is None:
        raise ValueError("--tile_stride needs --tile_size")
    # Every input is found and its header read before the model loads.
    found = collect_inputs(args.inputs)
    inputs = readable_inputs(found, strict=args.strict, allow_large_images=args.allow_large_images)
    detector = load_detector(args.model, args.label_map, args.pipeline_config_path,
                             runtime=args.runtime)
    result = predict_to_folder(
        detector,
        inputs,
        args.output_dir,
        score_threshold=args.score_threshold,
        tile_size=args.tile_size,
        tile_stride=args.tile_stride,
        strict=args.strict,
        overwrite=args.overwrite,
        allow_large_images=args.allow_large_images,
        progress=not args.no_progress,
    )
    written = len(result["images"]) + len(result["videos"])
    skipped = len(found) - len(inputs) + len(result["skipped"])
    skipped = f"; skipped {skipped} (see the warnings above)" if skipped else ""
    print(
        f"Detections of {written} file(s) by {detector.description} written to "
        f"{result['folder']}{skipped}"
    )
    return 0
