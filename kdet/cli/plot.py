"""`kdet plot`: training curves, precision/recall curves and per-class AP of a model directory."""


def add_plot_parser(subparsers):
    parser = subparsers.add_parser(
        "plot",
        help="plot a model directory's training curves and evaluation results",
        description="Plot what kdet train and kdet eval logged in a model directory: "
        "training_curves.png (losses, learning rate and mAP by step, from the TensorBoard logs "
        "in MODEL_DIR/train and MODEL_DIR/eval) and, when MODEL_DIR/eval/precision_recall.json "
        "exists, precision_recall.png (per-class precision/recall curves) and "
        "average_precision.png (AP per class, sorted, with the mean). The PNGs are also logged "
        "as TensorBoard images in MODEL_DIR/plots, at the last step logged.",
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="the --model_dir of kdet train / kdet eval (read: train/, eval/)",
    )
    parser.add_argument(
        "--output_dir", help="folder for the PNGs, created if needed (default: MODEL_DIR)"
    )
    parser.set_defaults(run=run_plot)


def run_plot(args):
    import pathlib

    from kdet import plots

    model_dir = pathlib.Path(args.model_dir)
    output_dir = pathlib.Path(args.output_dir) if args.output_dir else model_dir
    log_dir = model_dir / "plots"
    curves = plots.read_training_curves(model_dir)
    figures = [("training_curves", plots.plot_training_curves(curves), plots.last_step(curves))]
    precision_recall_path = model_dir / "eval" / "precision_recall.json"
    if precision_recall_path.exists():
        figures += evaluation_figures(precision_recall_path)
    for name, figure, step in figures:
        path = plots.save_figure(figure, output_dir / f"{name}.png", log_dir, step=step)
        print(f"wrote {path}")
    print(f"logged {len(figures)} image(s) to TensorBoard in {log_dir}")
    return 0


def evaluation_figures(path):
    """`[(name, figure, step)]`: precision/recall curves and AP bars of a precision_recall.json.

    Empty, with a note, when no class has ground truth (every AP undefined).
    """
    import math

    from kdet import plots

    result = plots.read_precision_recall(path)
    classes, iou, step = result["classes"], result["iou_threshold"], result["step"]
    average_precisions = {name: curve["average_precision"] for name, curve in classes.items()}
    if all(math.isnan(ap) for ap in average_precisions.values()):
        print(f"no precision/recall plots: no class in {path} has ground truth")
        return []
    title = f"average precision per class at IoU {iou:g}, step {step}"
    return [
        ("precision_recall", plots.plot_precision_recall(classes, iou), step),
        ("average_precision", plots.plot_average_precision(average_precisions, title), step),
    ]
