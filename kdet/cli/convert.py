"""`kdet convert`: annotated images (Pascal VOC, COCO JSON, CSV, mask folders) to TFRecords."""


def add_convert_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert annotated images (Pascal VOC, COCO JSON, CSV, mask folders) to TFRecords",
        description=(
            "Convert annotated images to sharded TFRecords of tf.train.Example with the TF Object "
            "Detection API keys. With no --label_map, one is derived from the class names and "
            "written next to the output as label_map.pbtxt."
        ),
    )
    parser.add_argument(
        "source",
        choices=("voc", "coco", "csv", "mask_folders"),
        help="annotation format: 'voc' (a folder of Pascal VOC XML files), 'coco' (a COCO "
        "instances JSON file), 'csv' (columns image_path,xmin,ymin,xmax,ymax,label in pixels) "
        "or 'mask_folders' (one binary PNG per object, MASKS/<image stem>/<class>[_<any>].png; "
        "boxes from the masks, written as PNG instance masks)",
    )
    parser.add_argument(
        "input",
        help="the VOC XML folder, COCO JSON file, CSV file, or folder of mask folders",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="output TFRecord path; with --num_shards N > 1 the files are OUTPUT-0000i-of-0000N",
    )
    parser.add_argument(
        "--image_dir",
        default=None,
        help="folder with the images (default: next to the annotation files; for VOC also "
        "the sibling JPEGImages/ folder of the Pascal VOC layout; for mask_folders the "
        "images/ folder beside the masks folder)",
    )
    parser.add_argument(
        "--allow_outside_image_dir",
        action="store_true",
        help="read images that annotations name with an absolute path or a path going up out "
        "of the image folder with '..' (default: such an image is bad input, see --on_error)",
    )
    parser.add_argument(
        "--label_map",
        default=None,
        help="label map .pbtxt; class names not in it are bad input (default: derive one)",
    )
    parser.add_argument(
        "--class_map",
        default=None,
        metavar="OLD=NEW,...",
        help="rename classes before the label map applies, e.g. 'Alive=Tree,Dead=Tree' "
        "merges two classes; 'Unsure=' leaves that class's boxes out (default: none, every "
        "class keeps its name)",
    )
    parser.add_argument("--num_shards", type=int, default=1, help="number of output files")
    parser.add_argument(
        "--include_masks",
        action="store_true",
        help="coco: write each object's segmentation (polygons or RLE) as a PNG instance mask "
        "(image/object/mask), as the TF OD API's create_coco_tf_record --include_masks; voc: "
        "the objects of the SegmentationObject/<name>.png beside the XML folder (annotations "
        "without one are left out); mask_folders always writes its masks",
    )
    parser.add_argument(
        "--on_error",
        choices=("skip", "raise"),
        default="skip",
        help="bad image or annotation: skip that image and count it in the summary (default), "
        "or stop with an error and write nothing; a conversion in which no image is left is "
        "an error either way",
    )
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run_convert)


def run_convert(args):
    from kdet.data import converters

    convert = {
        "voc": converters.convert_voc,
        "coco": converters.convert_coco,
        "csv": converters.convert_csv,
        "mask_folders": converters.convert_mask_folders,
    }[args.source]
    if args.num_shards < 1:
        raise ValueError(f"--num_shards must be at least 1, got {args.num_shards}")
    if args.include_masks and args.source == "csv":
        raise ValueError("--include_masks reads COCO segmentations; csv has none (nor the "
                         "SegmentationObject PNGs of VOC)")
    masks = args.include_masks and args.source in ("coco", "voc")
    options = {"include_masks": True} if masks else {}
    if args.source == "mask_folders":
        if args.allow_outside_image_dir:
            raise ValueError("--allow_outside_image_dir: mask_folders reads the images of "
                             "--image_dir only")
    else:
        options["allow_outside_image_dir"] = args.allow_outside_image_dir
    summary = convert(
        args.input,
        args.output,
        image_dir=args.image_dir,
        label_map=args.label_map,
        num_shards=args.num_shards,
        on_error=args.on_error,
        progress=not args.no_progress,
        class_map=_parse_class_map(args.class_map) if args.class_map else None,
        **options,
    )
    print(summary)
    return 0


def _parse_class_map(text):
    """`--class_map 'Alive=Tree,Dead=Tree,Unsure='` → `{"Alive": "Tree", "Dead": "Tree",
    "Unsure": None}`."""
    class_map = {}
    for pair in text.split(","):
        old, equals, new = (part.strip() for part in pair.partition("="))
        if not equals or not old:
            raise ValueError(
                f"--class_map {text!r}: expected OLD=NEW pairs separated by commas (NEW empty "
                f"to leave OLD's boxes out); got {pair!r}"
            )
        if old in class_map:
            raise ValueError(f"--class_map {text!r}: {old!r} is mapped twice")
        class_map[old] = new or None
    return class_map
