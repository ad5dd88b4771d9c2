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
    from kdet import plots
    from kdet.training import model_dir as model_dir_layout

    written = plots.save_model_dir_plots(args.model_dir, args.output_dir)
    for path in written:
        print(f"wrote {path}")
    log_dir = model_dir_layout.plots_dir(args.model_dir)
    print(f"logged {len(written)} image(s) to TensorBoard in {log_dir}")
    return 0
