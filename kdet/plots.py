"""Plots of a detector's training and evaluation, and saving them for TensorBoard.

- `read_scalars` / `read_training_curves` read the TensorBoard scalars of a model directory
  (`MODEL_DIR/train` from `kdet.training.train`, `MODEL_DIR/eval` from `kdet eval`), and
  `plot_training_curves` draws losses, learning rate and mAP by step.
- `read_precision_recall` reads `MODEL_DIR/eval/precision_recall.json`;
  `plot_precision_recall` draws its per-class curves and `plot_average_precision` the AP of
  each class as sorted bars.
- `evaluation_figures` draws both charts of a `precision_recall.json`.
- `save_figure` writes a figure (or an image such as
  `kdet.visualization.draw_detection_gallery`'s) as a PNG and logs it to TensorBoard;
  `save_model_dir_plots` writes every chart of a model directory (what `kdet plot` does).

Drawing on images lives in `kdet.visualization`; this module holds the charts. As there, every
figure is a `matplotlib.figure.Figure` on an Agg canvas, made without pyplot: no backend is
chosen or changed, nothing is left open in pyplot's figure list, plots work headless, and a
notebook shows a figure that ends a cell.
"""

import io
import json
import math
import pathlib
import re

import matplotlib
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util.tensor_util import make_ndarray

from kdet.training import model_dir as model_dir_layout
from kdet.visualization import _NotebookFigure
from kdet.visualization import _to_uint8_image

_LOSS_PREFIX = "losses/"
_TOTAL_LOSS = "loss"
_LEARNING_RATE = "learning_rate"
# The headline mAPs of `kdet eval` (COCO `DetectionBoxes_Precision/mAP`, `…/mAP@.50IOU`,
# Pascal `PascalBoxes_Precision/mAP@0.5IOU`, …), not the per-size "mAP (small)" variants.
_MAP_TAG = re.compile(r"\w*Precision/mAP(@[\d.]+IOU)?")
_MAX_LEGEND_ROWS = 25
_LINE_STYLES = ("-", "--", ":", "-.")


def read_scalars(log_dir):
    """Reads the scalars of the TensorBoard event files in `log_dir`.

    Takes TF2 `tf.summary.scalar` values (tensors marked with the `scalars` plugin) and TF1
    `simple_value`s; images, histograms and text are skipped, and so is a record cut short by
    a writer that is still running. When a step was logged more than once (a resumed run
    logs again the steps after its last checkpoint), the value written last wins.

    Args:
        log_dir: str or path, e.g. `MODEL_DIR/train`. Subfolders are not read.

    Returns:
        A dict `{tag: (steps, values)}`: int64 `[num_steps]` steps in increasing order and
        float64 `[num_steps]` values. Empty when `log_dir` has no event files.

    Example:
    ```python
    steps, losses = kdet.plots.read_scalars("runs/pets/train")["losses/loss"]
    ```
    """
    written = []  # (wall time, tag, step, value), in file order
    plugins = {}  # tag → plugin name
    for path in sorted(pathlib.Path(log_dir).glob("events.out.tfevents.*")):
        # `EventFileLoader` turns TF1 simple values into scalar tensors and stops quietly
        # at a truncated last record.
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                # Some writers put the plugin metadata on a tag's first value only.
                if value.metadata.plugin_data.plugin_name:
                    plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
                if plugins.get(value.tag) == "scalars" and value.HasField("tensor"):
                    number = make_ndarray(value.tensor)
                    if number.size == 1:
                        written.append((event.wall_time, value.tag, event.step, number.item()))
    by_tag = {}
    for _, tag, step, number in sorted(written, key=lambda entry: entry[0]):
        by_tag.setdefault(tag, {})[step] = number
    return {
        tag: (
            np.array(sorted(values), np.int64),
            np.array([values[step] for step in sorted(values)], np.float64),
        )
        for tag, values in by_tag.items()
    }


def read_training_curves(model_dir):
    """Reads a model directory's losses, learning rate and mAPs by step.

    Args:
        model_dir: str or path: the `--model_dir` of `kdet train` / `kdet eval`, with
            TensorBoard logs in `train/` (tags `losses/<name>`, `learning_rate`) and `eval/`
            (metric names such as `DetectionBoxes_Precision/mAP`, by checkpoint step).

    Returns:
        A dict of three dicts `{name: (steps, values)}` (int64 and float64 `[num_steps]`):
        `"losses"` (`"loss"` is the total, the others the model's named losses),
        `"learning_rate"` and `"metrics"` (the headline mAPs: `*Precision/mAP` and
        `*Precision/mAP@<iou>IOU`; COCO's -1 for "no ground truth" becomes NaN). A group with
        nothing logged is empty.

    Raises:
        FileNotFoundError: `model_dir` is missing, or has none of these scalars in `train/`
            and `eval/`.
    """
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    train = read_scalars(model_dir_layout.train_dir(model_dir))
    evaluation = read_scalars(model_dir_layout.eval_dir(model_dir))
    losses = {
        tag[len(_LOSS_PREFIX) :]: curve
        for tag, curve in train.items()
        if tag.startswith(_LOSS_PREFIX)
    }
    metrics = {
        tag: (steps, np.where(values < 0, np.nan, values))
        for tag, (steps, values) in evaluation.items()
        if _MAP_TAG.fullmatch(tag)
    }
    learning_rate = {tag: curve for tag, curve in train.items() if tag == _LEARNING_RATE}
    if not losses and not learning_rate and not metrics:
        raise FileNotFoundError(
            f"{model_dir}: no losses or learning rate in {model_dir_layout.train_dir(model_dir)} "
            f"and no mAP in {model_dir_layout.eval_dir(model_dir)} (TensorBoard logs); train "
            "(kdet train) or evaluate "
            "(kdet eval) a model there first"
        )
    return {"losses": losses, "learning_rate": learning_rate, "metrics": metrics}


def last_step(curves):
    """The largest step in a `read_training_curves` result (0 when it holds none)."""
    return max(
        (int(steps[-1]) for group in curves.values() for steps, _ in group.values() if len(steps)),
        default=0,
    )


def plot_training_curves(curves, figsize=None):
    """Plots losses, learning rate and mAPs against the training step, one axes each.

    The total loss is the thick black line, each named loss a coloured one. Groups with
    nothing logged get no axes.

    Args:
        curves: the dict `read_training_curves` returns.
        figsize: `(width, height)` in inches. Defaults to 5 by 4 inches per axes.

    Returns:
        A `matplotlib.figure.Figure` with one axes per group that has data, in the order
        losses, learning rate, mAP.

    Example:
    ```python
    curves = kdet.plots.read_training_curves("runs/pets")
    kdet.plots.plot_training_curves(curves)  # shows in a notebook
    ```
    """
    panels = [
        (group, title)
        for group, title in (
            ("losses", "training losses"),
            ("learning_rate", "learning rate"),
            ("metrics", "evaluation mAP"),
        )
        if curves[group]
    ]
    if not panels:
        raise ValueError("`curves` holds no losses, learning rate or metrics to plot.")
    figure = _new_figure(figsize or (5.0 * len(panels), 4.0))
    for index, (group, title) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        # The total first, then by name: the legend's order does not depend on the logs'.
        for name in sorted(curves[group], key=lambda name: (name != _TOTAL_LOSS, name)):
            steps, values = curves[group][name]
            # A lone point (a run shorter than its logging interval) shows only as a marker.
            marker = "o" if group == "metrics" or len(steps) == 1 else None
            if group == "losses" and name == _TOTAL_LOSS:
                axes.plot(steps, values, color="black", linewidth=2, marker=marker, label="total",
                          zorder=3)
            else:
                axes.plot(steps, values, marker=marker, label=name)
        if group == "metrics":
            axes.set_ylim(0.0, 1.0)
        if group == "learning_rate":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        else:
            axes.legend(fontsize="small")
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    return figure


def read_precision_recall(path):
    """Reads and checks a `precision_recall.json` written by `kdet eval`.

    The file holds `{"step": int, "iou_threshold": float, "classes": {name: {"precision":
    [floats], "recall": [floats], "average_precision": float}}}`, one precision and recall per
    counted detection, by decreasing confidence. An average precision of `null` or `NaN` means
    the class has no ground truth.

    Args:
        path: str or path.

    Returns:
        The dict, with `"precision"` and `"recall"` as float64 numpy arrays and
        `"average_precision"` as a float (NaN for `null`).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not JSON of that layout; the message names the field.
    """
    path = pathlib.Path(path)
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(result, dict) or not isinstance(result.get("classes"), dict):
        raise ValueError(f'{path}: expected an object with a "classes" object')
    for field, kind, expected in (
        ("step", int, "an integer"), ("iou_threshold", (int, float), "a number")
    ):
        if not isinstance(result.get(field), kind):
            raise ValueError(f'{path}: expected {expected} in "{field}", got {result.get(field)!r}')
    for name, curve in result["classes"].items():
        result["classes"][name] = _checked_curve(curve, f'{path}: classes["{name}"]')
    return result


def _checked_curve(curve, where):
    """One class of `precision_recall.json` with numpy curves and a float AP, once checked."""
    if not isinstance(curve, dict) or not {"precision", "recall"} <= set(curve):
        raise ValueError(f'{where}: expected an object with "precision" and "recall" lists')
    arrays = {}
    for field in ("precision", "recall"):
        try:
            arrays[field] = np.asarray(curve[field], np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{field}: expected a list of numbers") from None
        if arrays[field].ndim != 1:
            raise ValueError(f"{where}.{field}: expected a list of numbers")
    if len(arrays["precision"]) != len(arrays["recall"]):
        raise ValueError(
            f"{where}: precision has {len(arrays['precision'])} values but recall has "
            f"{len(arrays['recall'])}; expected one of each per detection"
        )
    average_precision = curve.get("average_precision")
    if average_precision is not None and not isinstance(average_precision, (int, float)):
        raise ValueError(
            f"{where}.average_precision: expected a number, got {average_precision!r}"
        )
    average_precision = math.nan if average_precision is None else float(average_precision)
    return {**arrays, "average_precision": average_precision}


def plot_precision_recall(classes, iou_threshold=0.5, max_labeled=20, figsize=None):
    """Plots the precision/recall curve of each class on one axes, its AP in the legend.

    The legend lists classes by decreasing AP. With more than `max_labeled` classes, only the
    `max_labeled // 2` best and worst get a colour and a legend entry; the others are thin
    grey lines under one "N other classes" entry (`plot_average_precision` names them all).
    Classes without ground truth (AP NaN) are left out.

    Args:
        classes: dict `{class name: {"precision": [D], "recall": [D], "average_precision":
            float}}`, one point per detection by decreasing confidence: the `"classes"` of
            `read_precision_recall`.
        iou_threshold: float, shown in the title. Defaults to `0.5`.
        max_labeled: int. Defaults to `20`.
        figsize: `(width, height)` in inches. Defaults to 7 by 5 inches plus room for the
            legend.

    Returns:
        A `matplotlib.figure.Figure` with one axes.

    Example:
    ```python
    result = kdet.plots.read_precision_recall("runs/pets/eval/precision_recall.json")
    kdet.plots.plot_precision_recall(result["classes"], result["iou_threshold"])
    ```
    """
    ranked = _ranked_by_ap({name: curve["average_precision"] for name, curve in classes.items()})
    labeled, others = ranked, []
    if len(ranked) > max_labeled:
        half = max_labeled // 2
        labeled = ranked[:half] + ranked[len(ranked) - half :]
        others = [name for name, _ in ranked[half : len(ranked) - half]]
    legend_columns = max(1, math.ceil((len(labeled) + bool(others)) / _MAX_LEGEND_ROWS))
    figure = _new_figure(figsize or (7.0 + 2.6 * legend_columns, 5.0))
    axes = figure.add_subplot()
    for index, name in enumerate(others):
        axes.plot(
            classes[name]["recall"], classes[name]["precision"], color="0.8", linewidth=0.8,
            label=f"{len(others)} other classes" if index == 0 else None,
        )
    colors = matplotlib.colormaps["tab10"].colors
    for index, (name, average_precision) in enumerate(labeled):
        # Ten colours, then the same ten dashed, dotted, …: every labelled line differs.
        axes.plot(
            classes[name]["recall"], classes[name]["precision"], color=colors[index % 10],
            linestyle=_LINE_STYLES[index // 10 % len(_LINE_STYLES)],
            label=f"{name} (AP {average_precision:.3f})",
        )
    if ranked:
        # Best first in the legend; the grey entry, drawn first, goes last.
        handles, labels = axes.get_legend_handles_labels()
        order = list(range(bool(others), len(handles))) + [0] * bool(others)
        axes.legend(
            [handles[i] for i in order], [labels[i] for i in order], loc="upper left",
            bbox_to_anchor=(1.02, 1.0), ncols=legend_columns, fontsize="small",
        )
    mean = np.mean([ap for _, ap in ranked]) if ranked else math.nan
    axes.set_title(
        f"precision/recall at IoU {iou_threshold:g}: mAP {mean:.3f} over {len(ranked)} classes"
    )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0.0, 1.02)
    axes.set_ylim(0.0, 1.02)
    axes.grid(alpha=0.3)
    return figure


def plot_average_precision(average_precisions, title="average precision per class", figsize=None):
    """Plots the AP of each class as horizontal bars, best at the top, and their mean.

    Args:
        average_precisions: dict `{class name: AP}` (floats in [0, 1]). Classes with AP NaN
            (no ground truth) are left out, of the bars and of the mean.
        title: str. Defaults to `"average precision per class"`.
        figsize: `(width, height)` in inches. Defaults to 7 inches wide, 0.28 inch per class
            (3 inches at least).

    Returns:
        A `matplotlib.figure.Figure` with one axes: bars from top to bottom by decreasing AP,
        each labelled with its value, and a dashed vertical line at the mean AP.

    Example:
    ```python
    result = kdet.plots.read_precision_recall("runs/pets/eval/precision_recall.json")
    aps = {name: c["average_precision"] for name, c in result["classes"].items()}
    kdet.plots.plot_average_precision(aps)
    ```
    """
    ranked = _ranked_by_ap(average_precisions)
    if not ranked:
        raise ValueError(
            "`average_precisions` has no class with a defined AP (all NaN, or empty)."
        )
    names, values = zip(*ranked)
    figure = _new_figure(figsize or (7.0, max(3.0, 1.4 + 0.28 * len(ranked))))
    axes = figure.add_subplot()
    positions = np.arange(len(ranked))
    axes.barh(positions, values, color="tab:blue")
    axes.bar_label(axes.containers[0], fmt="%.3f", padding=2, fontsize="small")
    mean = float(np.mean(values))
    axes.axvline(mean, color="tab:red", linestyle="--", label=f"mean AP {mean:.3f}", zorder=1)
    axes.set_yticks(positions, names, fontsize="small")
    axes.set_ylim(len(ranked) - 0.5, -0.5)  # best at the top, no margin
    axes.set_xlim(0.0, 1.1)
    axes.set_xlabel("average precision")
    axes.set_title(title)
    # The shortest bars are at the bottom: their right end is free for the legend.
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return figure


def save_figure(figure, path, log_dir=None, tag=None, step=0):
    """Saves a figure or an image as a PNG, and logs it to TensorBoard when `log_dir` is given.

    The PNG's pixels are what TensorBoard shows (`tf.summary.image` of the decoded file).

    Args:
        figure: a `matplotlib.figure.Figure`, or an RGB image `[height, width, 3]` (e.g. from
            `kdet.visualization.draw_detection_gallery`).
        path: str or path of the PNG; its folder is created if needed.
        log_dir: str or path of the TensorBoard log folder, e.g. `MODEL_DIR/plots`. Defaults
            to `None` (not logged).
        tag: str, the image's TensorBoard tag. Defaults to the file name without `.png`.
        step: int, the step the image is logged at. Defaults to `0`.

    Returns:
        `path` as a `pathlib.Path`.

    Example:
    ```python
    figure = kdet.plots.plot_training_curves(kdet.plots.read_training_curves("runs/pets"))
    kdet.plots.save_figure(figure, "runs/pets/curves.png", log_dir="runs/pets/plots", step=2000)
    ```
    """
    path = pathlib.Path(path)
    buffer = io.BytesIO()
    if isinstance(figure, Figure):
        figure.savefig(buffer, format="png")
    else:
        Image.fromarray(_to_uint8_image(figure)).save(buffer, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    if log_dir is not None:
        image = tf.image.decode_png(buffer.getvalue(), channels=3)
        writer = tf.summary.create_file_writer(str(log_dir))
        with writer.as_default(step=step):
            tf.summary.image(tag or path.stem, image[tf.newaxis])
        writer.close()
    return path


def evaluation_figures(path, log=print):
    """The precision/recall curves and AP bars of a `precision_recall.json`.

    Args:
        path: str or path of a `precision_recall.json` (see `read_precision_recall`).
        log: callable taking one line, told when there is nothing to draw. Defaults to `print`.

    Returns:
        `[(name, figure, step)]`: `("precision_recall", plot_precision_recall(...), step)` and
        `("average_precision", plot_average_precision(...), step)`, `step` being the file's;
        empty, with a note to `log`, when no class has ground truth (every AP undefined).

    Example:
    ```python
    path = "runs/pets/eval/precision_recall.json"
    for name, figure, step in kdet.plots.evaluation_figures(path):
        kdet.plots.save_figure(figure, f"runs/pets/{name}.png")
    ```
    """
    result = read_precision_recall(path)
    classes, iou, step = result["classes"], result["iou_threshold"], result["step"]
    average_precisions = {name: curve["average_precision"] for name, curve in classes.items()}
    if all(math.isnan(ap) for ap in average_precisions.values()):
        log(f"no precision/recall plots: no class in {path} has ground truth")
        return []
    title = f"average precision per class at IoU {iou:g}, step {step}"
    return [
        ("precision_recall", plot_precision_recall(classes, iou), step),
        ("average_precision", plot_average_precision(average_precisions, title), step),
    ]


def save_model_dir_plots(model_dir, output_dir=None, log=print):
    """Writes the charts of a model directory as PNGs and logs them to TensorBoard.

    `training_curves.png` (`plot_training_curves`) and, when `MODEL_DIR/eval/
    precision_recall.json` exists, `precision_recall.png` and `average_precision.png`
    (`evaluation_figures`). Each is also logged as a TensorBoard image in `MODEL_DIR/plots`,
    at the last step its data has. What `kdet plot` does.

    Args:
        model_dir: str or path of a model directory (`kdet.training.model_dir`).
        output_dir: str or path of the folder for the PNGs, created if needed. Defaults to
            `model_dir`.
        log: callable taking one line (see `evaluation_figures`). Defaults to `print`.

    Returns:
        list of the `pathlib.Path`s written.

    Raises:
        FileNotFoundError: see `read_training_curves`.

    Example:
    ```python
    kdet.plots.save_model_dir_plots("runs/pets")  # runs/pets/training_curves.png, …
    ```
    """
    model_dir = pathlib.Path(model_dir)
    output_dir = pathlib.Path(output_dir) if output_dir is not None else model_dir
    curves = read_training_curves(model_dir)
    figures = [("training_curves", plot_training_curves(curves), last_step(curves))]
    precision_recall = model_dir_layout.precision_recall_path(model_dir_layout.eval_dir(model_dir))
    if precision_recall.exists():
        figures += evaluation_figures(precision_recall, log=log)
    log_dir = model_dir_layout.plots_dir(model_dir)
    return [
        save_figure(figure, output_dir / f"{name}.png", log_dir, step=step)
        for name, figure, step in figures
    ]


def _new_figure(figsize):
    figure = _NotebookFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _ranked_by_ap(average_precisions):
    """`[(name, AP)]` of the classes with a defined AP, by decreasing AP (ties: name order)."""
    defined = [(name, float(ap)) for name, ap in average_precisions.items() if not math.isnan(ap)]
    return sorted(defined, key=lambda item: (-item[1], item[0]))
