"""`kdet predict`: detect objects in images with a zoo model or a saved `.keras` model."""


def add_predict_parser(subparsers):
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
    parser.add_argument(
        "--tile_size",
        type=int,
        default=None,
        help="detect on overlapping tiles of this many pixels, merged by NMS (for large "
        "aerial scenes; see ObjectDetector.predict_tiled); default: the whole image at once",
    )
    parser.add_argument(
        "--tile_stride",
        type=int,
        default=None,
        help="pixels between tile starts (default: half the tile size)",
    )
    parser.set_defaults(run=run_predict)


def run_predict(args):
    import json
    import pathlib

    import numpy as np
    from PIL import Image

    import kdet.zoo
    from kdet import visualization
    from kdet.data.label_map import read_label_map

    if args.tile_size is not None and args.tile_size < 1:
        raise ValueError(f"--tile_size must be a positive number of pixels; got {args.tile_size}")
    if args.tile_stride is not None and args.tile_size is None:
        raise ValueError("--tile_stride needs --tile_size")
    paths = [pathlib.Path(path) for path in args.images]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file(s): {', '.join(missing)}")
    if args.model.endswith(".keras"):
        import keras

        if not pathlib.Path(args.model).is_file():
            raise FileNotFoundError(f"no such model file: {args.model}")
        try:
            model = keras.saving.load_model(args.model)
        except TypeError as error:  # Keras: a class it cannot locate
            raise ValueError(
                f"{args.model} cannot be loaded here ({str(error).splitlines()[0]}); a model "
                "with a feature extractor of your own loads after importing the module that "
                "registers it: add --import MODULE"
            ) from None
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
        if args.tile_size is not None:
            detections = model.predict_tiled(pixels, args.tile_size, stride=args.tile_stride)
        else:
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
