"""Draws detections and ground truth on images, and plots galleries for notebooks.

`draw_detections` draws one image (boxes, captions, keypoints and instance masks),
`draw_detection_gallery`
tiles a batch into one image with ground truth and predictions overlaid in two colours,
`plot_detections` puts a batch in a matplotlib figure with ground truth and predictions side by
side. Charts of metrics and training logs are in `kdet.plots`.

`keras.visualization.draw_bounding_boxes` / `plot_bounding_box_gallery` are not used: on
Keras 3.15 they need OpenCV (`cv2`), which kdet does not depend on, have no score threshold,
caption only ids present in `class_mapping`, draw every box of a call in one colour, and plot
through pyplot's global state. Drawing here uses Pillow, and galleries build a bare
`matplotlib.figure.Figure`, so no pyplot backend is chosen or changed.
"""

import io
import math
import pathlib

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

_DRAWN_KEYS = ("boxes", "labels", "classes", "confidences", "num_detections")
_DRAWN_KEYS += ("keypoints", "keypoint_scores", "keypoint_visibilities", "masks")
# Instance masks are blended into the image at this opacity (the TF OD API's
# `draw_mask_on_image_array` default).
MASK_ALPHA = 0.4
# Keypoint dots are this many pixels in radius by default.
KEYPOINT_RADIUS = 3
# The RGB colour of ground-truth boxes in drawings and galleries: green, which with the
# predictions' magenta is complementary and told apart with the common colour-vision
# deficiencies.
GROUNDTRUTH_COLOR = (0, 255, 0)
# The RGB colour of predicted boxes in drawings and galleries: magenta.
PREDICTION_COLOR = (255, 0, 255)
# tab10 without its grey, so no class colour blends into grey backgrounds or padding.
_PALETTE = tuple(
    tuple(int(round(255 * c)) for c in rgb)
    for i, rgb in enumerate(matplotlib.colormaps["tab10"].colors)
    if i != 7
)


class _NotebookFigure(Figure):
    """A `Figure` that Jupyter shows as a PNG when it ends a cell or is passed to `display`.

    IPython renders a bare `Figure` as an image only after `%matplotlib inline` registered its
    formatter; `_repr_png_` is IPython's own fallback hook, so no backend is needed.
    """

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def draw_detections(
    image,
    detections,
    label_map=None,
    score_threshold=0.5,
    bounding_box_format="yxyx",
    color=None,
    line_thickness=2,
    font_size=None,
    captions=True,
    keypoint_edges=None,
    keypoint_score_threshold=None,
    keypoint_radius=KEYPOINT_RADIUS,
    mask_threshold=0.5,
    mask_alpha=MASK_ALPHA,
):
    """Draws boxes with "name score" captions, their keypoints and masks, on one image.

    Works for predictions and for ground truth: without `"confidences"` every valid box is
    drawn and its caption is the class name alone. Padding rows (label -1, or rows past
    `num_detections`) and boxes scoring under `score_threshold` are skipped. The input image is
    left unchanged.

    With `"keypoints"`, each drawn box also gets its keypoints as dots in the box's colour,
    joined by `keypoint_edges` lines, as the TF OD API draws them: a keypoint is drawn when
    its coordinates are finite and its `"keypoint_scores"` reaches `keypoint_score_threshold`
    (predictions) or its `"keypoint_visibilities"` is > 0 (ground truth); an edge when both
    its ends are.

    With `"masks"`, each drawn box's instance mask is filled with the box's colour at
    `mask_alpha` opacity where it exceeds `mask_threshold` (0/1 ground truth, or predicted
    probabilities), as the TF OD API's `draw_mask_on_image_array` draws them.

    Args:
        image: uint8 or float `[height, width, 3]` (or `[1, height, width, 3]`), pixel values
            0..255.
        detections: dict for this image, unbatched or batched with batch 1:
            - `"boxes"`: float `[num_boxes, 4]` in `bounding_box_format`, padded with -1.
            - `"labels"` (or `"classes"`): int `[num_boxes]` label-map ids, padded with -1.
            - `"confidences"` (optional): float `[num_boxes]`.
            - `"num_detections"` (optional): int scalar, the number of valid rows.
            - `"keypoints"` (optional): float `[num_boxes, K, 2]`, (y, x) in the unit of
              `bounding_box_format` (pixels, or relative for `rel_` formats).
            - `"keypoint_scores"` or `"keypoint_visibilities"` (optional): `[num_boxes, K]`.
            - `"masks"` (optional): `[num_boxes, height, width]` in pixels of `image` (uint8,
              bool or float).
        label_map: dict `{id: name}`. Ids missing from it are captioned with the id. Defaults
            to `None` (captions show ids).
        score_threshold: float. Boxes with a confidence below this are not drawn; ignored
            when `detections` has no `"confidences"`. Defaults to `0.5`.
        bounding_box_format: str. A Keras box format name (`"yxyx"`, `"xyxy"`, `"xywh"`,
            `"rel_yxyx"`, …). Defaults to `"yxyx"` (pixels of `image`).
        color: RGB tuple for every box, or `None` for a distinct colour per class. Defaults to
            `None`.
        line_thickness: int. Box line width in pixels, drawn inside the box. Defaults to `2`.
        font_size: int. Caption size in pixels, or `None` to scale with the image (at least
            10). Defaults to `None`.
        captions: bool. `False` draws the boxes alone. Defaults to `True`.
        keypoint_edges: sequence of `(start, end)` keypoint indices joined by a line of
            `line_thickness` (TF OD API `eval_config.keypoint_edge`), or None. Indices outside
            `[0, K)` are skipped. Defaults to None.
        keypoint_score_threshold: float. Keypoints scoring below this are not drawn. Defaults
            to `score_threshold`, as in the TF OD API.
        keypoint_radius: int. Radius of the keypoint dots in pixels. Defaults to
            `KEYPOINT_RADIUS` (3).
        mask_threshold: float. Mask pixels above this are filled. Defaults to `0.5`.
        mask_alpha: float in [0, 1]. Opacity of the mask fill. Defaults to `MASK_ALPHA` (0.4).

    Returns:
        uint8 numpy array `[height, width, 3]`.

    Example:
    ```python
    image, y = kdet.datasets.quokka()
    drawn = kdet.visualization.draw_detections(image, y, label_map={1: "animal"})
    kdet.visualization.save_image(drawn, "quokka_boxes.png")
    ```
    """
    pixels = _to_uint8_image(image)
    height, width = pixels.shape[:2]
    boxes, labels, confidences, keypoints, masks = _valid_boxes(
        detections,
        score_threshold,
        bounding_box_format,
        height,
        width,
        score_threshold if keypoint_score_threshold is None else keypoint_score_threshold,
    )
    # Lowest scores first, so the most confident boxes and captions end up on top.
    order = np.argsort(confidences, kind="stable")
    if masks is not None:
        for i in order:
            box_color = tuple(color) if color is not None else _class_color(labels[i])
            _fill_mask(pixels, masks[i] > mask_threshold, box_color, mask_alpha)
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size or max(10, round(min(height, width) / 30)))
    label_map = label_map or {}
    for i in order:
        box_color = tuple(color) if color is not None else _class_color(labels[i])
        x1, y1, x2, y2 = _pixel_corners(boxes[i], height, width)
        draw.rectangle((x1, y1, x2, y2), outline=box_color, width=line_thickness)
        if keypoints is not None:
            _draw_keypoints(
                draw, *keypoints[i], keypoint_edges, box_color, keypoint_radius, line_thickness
            )
        if captions:
            caption = str(label_map.get(labels[i], labels[i]))
            if "confidences" in detections:
                caption += f" {confidences[i]:.2f}"
            _draw_caption(draw, caption, (x1, y1), box_color, font)
    return np.asarray(canvas)


def plot_detections(
    images,
    predictions=None,
    y_true=None,
    label_map=None,
    score_threshold=0.5,
    bounding_box_format="yxyx",
    cols=None,
    figsize=None,
    path=None,
    keypoint_edges=None,
):
    """Plots a batch with its predictions, and its ground truth side by side when given.

    With `y_true`, each image gets two panels, "ground truth" then "predictions", drawn with
    the same per-class colours so matching classes are easy to spot. The figure is a bare
    `matplotlib.figure.Figure` rendered with Agg: it does not touch pyplot's current backend,
    displays when it is the last value of a notebook cell, and works headless.

    Args:
        images: uint8 or float `[batch, height, width, 3]`, pixel values 0..255.
        predictions: kdet's predictions dict, `"boxes"` `[batch, max_detections, 4]` in
            `bounding_box_format`, `"labels"` `[batch, max_detections]`, `"confidences"`
            `[batch, max_detections]`, optional `"num_detections"` `[batch]`; padded with -1;
            optional `"keypoints"` and `"keypoint_scores"`, `"masks"` `[batch, max_detections,
            height, width]`. `None` plots only `y_true`. Defaults to `None`.
        y_true: ground truth dict, `"boxes"` `[batch, num_boxes, 4]` in
            `bounding_box_format` and `"labels"` (or `"classes"`) `[batch, num_boxes]`, padded
            with -1; optional `"keypoints"` and `"keypoint_visibilities"`, `"masks"` `[batch,
            num_boxes, height, width]`. Defaults to `None`.
        label_map: dict `{id: name}` for captions. Defaults to `None` (captions show ids).
        score_threshold: float. Predictions below this are not drawn. Defaults to `0.5`.
        bounding_box_format: str. Keras box format of both dicts. Defaults to `"yxyx"`.
        cols: int. Images per row (each takes two panels when both dicts are given).
            Defaults to `min(batch, 4)`, or `min(batch, 2)` with both dicts.
        figsize: `(width, height)` in inches. Defaults to 4 inches per panel width.
        path: str or path. When given, the figure is also saved there as a PNG.
        keypoint_edges: sequence of `(start, end)` keypoint indices joined by lines when the
            dicts have `"keypoints"` (see `draw_detections`). Defaults to None.

    Returns:
        A `matplotlib.figure.Figure` with one axes per panel.

    Example:
    ```python
    detections = model.predict(images)
    kdet.visualization.plot_detections(images, detections, y_true=y, label_map=label_map)
    ```
    """
    images = _checked_batch(images, predictions, y_true, "plot_detections")
    panels = [
        (title, dicts)
        for title, dicts in (("ground truth", y_true), ("predictions", predictions))
        if dicts is not None
    ]
    batch, height, width = images.shape[:3]
    cols = cols or max(1, min(batch, 4 // len(panels)))
    rows = max(1, math.ceil(batch / cols))
    grid_cols = cols * len(panels)
    panel_width = 4.0
    figsize = figsize or (grid_cols * panel_width, rows * (panel_width * height / width + 0.4))
    figure = _NotebookFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    for b in range(batch):
        for p, (title, dicts) in enumerate(panels):
            axes = figure.add_subplot(rows, grid_cols, b * len(panels) + p + 1)
            drawn = draw_detections(
                images[b],
                _image_detections(dicts, b),
                label_map=label_map,
                score_threshold=score_threshold,
                bounding_box_format=bounding_box_format,
                keypoint_edges=keypoint_edges,
            )
            axes.imshow(drawn)
            axes.set_title(f"{b}: {title}", fontsize=10)
            axes.axis("off")
    if path is not None:
        figure.savefig(path, format="png")
    return figure


def draw_detection_gallery(
    images,
    predictions=None,
    y_true=None,
    label_map=None,
    score_threshold=0.5,
    bounding_box_format="yxyx",
    cols=None,
    groundtruth_color=GROUNDTRUTH_COLOR,
    prediction_color=PREDICTION_COLOR,
    line_thickness=2,
    spacing=4,
    keypoint_edges=None,
):
    """Tiles a batch into one image, ground truth and predictions drawn on each tile.

    Ground-truth boxes are drawn first in `groundtruth_color`, without captions, then the
    predictions over them in `prediction_color` with "name score" captions (`draw_detections`
    both times), so a missed object shows as a lone ground-truth box and a false detection as
    a lone prediction (`plot_detections` shows the ground-truth class names beside the
    predictions). The result is a plain RGB array: save it with `save_image`, log it with
    `kdet.plots.save_figure`, or show it in a notebook with `PIL.Image.fromarray(gallery)`.

    Args:
        images: uint8 or float `[batch, height, width, 3]`, pixel values 0..255.
        predictions: kdet's predictions dict, `"boxes"` `[batch, max_detections, 4]` in
            `bounding_box_format`, `"labels"` and `"confidences"` `[batch, max_detections]`,
            optional `"num_detections"` `[batch]`; padded with -1; optional `"keypoints"` and
            `"keypoint_scores"`, `"masks"` `[batch, max_detections, height, width]`.
            Defaults to `None`.
        y_true: ground truth dict, `"boxes"` `[batch, num_boxes, 4]` in `bounding_box_format`
            and `"labels"` (or `"classes"`) `[batch, num_boxes]`, padded with -1; optional
            `"keypoints"` and `"keypoint_visibilities"`, `"masks"` `[batch, num_boxes, height,
            width]` (masks filled in each box's colour, see `draw_detections`). Defaults to
            `None`.
        label_map: dict `{id: name}` for captions. Defaults to `None` (captions show ids).
        score_threshold: float. Predictions below this are not drawn. Defaults to `0.5`.
        bounding_box_format: str. Keras box format of both dicts. Defaults to `"yxyx"`.
        cols: int. Tiles per row. Defaults to `min(batch, 4)`.
        groundtruth_color: RGB tuple. Defaults to green `GROUNDTRUTH_COLOR`.
        prediction_color: RGB tuple. Defaults to magenta `PREDICTION_COLOR`.
        line_thickness: int. Box line width in pixels. Defaults to `2`.
        spacing: int. White pixels between tiles. Defaults to `4`.
        keypoint_edges: sequence of `(start, end)` keypoint indices joined by lines when the
            dicts have `"keypoints"` (see `draw_detections`). Defaults to None.

    Returns:
        uint8 numpy array `[rows * height + (rows - 1) * spacing,
        cols * width + (cols - 1) * spacing, 3]`, `rows = ceil(batch / cols)`, tiles in batch
        order row by row; cells past the batch stay white.

    Example:
    ```python
    predictions = model.predict(images)
    gallery = kdet.visualization.draw_detection_gallery(images, predictions, y, label_map)
    kdet.visualization.save_image(gallery, "gallery.png")
    ```
    """
    images = _checked_batch(images, predictions, y_true, "draw_detection_gallery")
    batch, height, width = images.shape[:3]
    cols = cols or min(batch, 4)
    rows = math.ceil(batch / cols)
    gallery = np.full(
        (rows * height + (rows - 1) * spacing, cols * width + (cols - 1) * spacing, 3),
        255,
        np.uint8,
    )
    layers = [(y_true, groundtruth_color, False), (predictions, prediction_color, True)]
    for b in range(batch):
        tile = images[b]
        for dicts, color, captions in layers:
            if dicts is not None:
                tile = draw_detections(
                    tile,
                    _image_detections(dicts, b),
                    label_map=label_map,
                    score_threshold=score_threshold,
                    bounding_box_format=bounding_box_format,
                    color=color,
                    line_thickness=line_thickness,
                    captions=captions,
                    keypoint_edges=keypoint_edges,
                )
        top, left = (b // cols) * (height + spacing), (b % cols) * (width + spacing)
        gallery[top : top + height, left : left + width] = tile
    return gallery


def save_image(image, path):
    """Saves an image, e.g. the output of `draw_detections`, with Pillow.

    Args:
        image: uint8 or float `[height, width, 3]`, pixel values 0..255.
        path: str or path; the extension picks the format (`.png`, `.jpg`, …). Missing
            parent folders are created.
    """
    pixels = _to_uint8_image(image)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _to_numpy(value):
    """`value` (a numpy array, a tensor, a nested list) as a numpy array: a numpy array as it
    is (TensorFlow and Keras are not imported for it), anything else through
    `keras.ops.convert_to_numpy`."""
    if isinstance(value, np.ndarray):
        return value
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def _to_uint8_image(image):
    pixels = _to_numpy(image)
    if pixels.ndim == 4 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(
            f"`image` must be RGB, shape [height, width, 3]; got shape {pixels.shape}."
        )
    if pixels.dtype == np.uint8:
        return pixels.copy()
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _checked_batch(images, predictions, y_true, caller):
    """`images` as a numpy `[batch, height, width, 3]` array, once the arguments are checked."""
    if predictions is None and y_true is None:
        raise ValueError(f"{caller} needs `predictions`, `y_true` or both; got neither.")
    images = _to_numpy(images)
    if images.ndim != 4:
        raise ValueError(
            f"`images` must be batched, shape [batch, height, width, 3]; got {images.shape}."
        )
    return images


def _image_detections(detections, index):
    """The drawn entries of a batched detections dict for image `index`."""
    return {key: value[index] for key, value in detections.items() if key in _DRAWN_KEYS}


def _fill_mask(pixels, mask, color, alpha):
    """Blends `color` into uint8 `pixels` `[height, width, 3]` where bool `mask` is set."""
    blended = (1.0 - alpha) * pixels[mask] + alpha * np.asarray(color, np.float64)
    pixels[mask] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _valid_boxes(
    detections, score_threshold, bounding_box_format, height, width, keypoint_score_threshold
):
    """Returns `xyxy` pixel boxes, int labels and confidences of the rows to draw, their
    keypoints: None without `"keypoints"`, else one `(points, drawn)` per row, (x, y) pixels
    `[K, 2]` and bool `[K]` (see `_drawn_keypoints`), and their masks: None without
    `"masks"`, else `[rows, height, width]`."""
    label_key = "labels" if "labels" in detections else "classes"
    if "boxes" not in detections or label_key not in detections:
        raise ValueError(
            "`detections` must have `boxes` and `labels` (or `classes`); "
            f"got keys {sorted(detections)}."
        )
    arrays = {
        key: _to_numpy(detections[key])
        for key in _DRAWN_KEYS
        if key in detections
    }
    if arrays["boxes"].ndim == 3:
        if arrays["boxes"].shape[0] != 1:
            raise ValueError(
                "draw_detections takes one image; got a batch of "
                f"{arrays['boxes'].shape[0]} (boxes shape {arrays['boxes'].shape}). "
                "Use plot_detections for batches."
            )
        arrays = {key: value[0] for key, value in arrays.items()}
    labels = arrays[label_key].astype(np.int64)
    boxes = arrays["boxes"]
    keep = labels >= 0
    if "confidences" in arrays:
        confidences = arrays["confidences"].astype(np.float32)
        keep &= confidences >= score_threshold
    else:
        confidences = np.ones(len(labels), np.float32)
    if "num_detections" in arrays:
        keep &= np.arange(len(labels)) < int(arrays["num_detections"])
    boxes = boxes[keep].astype(np.float32)
    if bounding_box_format == "yxyx":  # what convert_format does, without importing Keras
        boxes = boxes[:, [1, 0, 3, 2]]
    elif bounding_box_format != "xyxy":
        import keras

        boxes = keras.ops.convert_to_numpy(keras.utils.bounding_boxes.convert_format(
            boxes, bounding_box_format, "xyxy", height=height, width=width))
    keypoints = None
    if "keypoints" in arrays:
        points, drawn = _drawn_keypoints(
            arrays, len(labels), bounding_box_format, height, width, keypoint_score_threshold
        )
        keypoints = list(zip(points[keep], drawn[keep]))
    masks = None
    if "masks" in arrays:
        masks = arrays["masks"]
        if masks.shape != (len(labels), height, width):
            raise ValueError(
                f"`masks` must be [num_boxes, height, width] = [{len(labels)}, {height}, "
                f"{width}] (one mask per box, in pixels of the image); got {masks.shape}."
            )
        masks = masks[keep]
    return boxes, labels[keep], confidences[keep], keypoints, masks


def _drawn_keypoints(arrays, num_boxes, bounding_box_format, height, width, score_threshold):
    """(x, y) pixels `[num_boxes, K, 2]` of `arrays["keypoints"]` ((y, x) in the unit of
    `bounding_box_format`), and bool `[num_boxes, K]`: finite and scoring at least
    `score_threshold` (`"keypoint_scores"`) or labelled (`"keypoint_visibilities"` > 0)."""
    keypoints = arrays["keypoints"].astype(np.float64)
    shape = (num_boxes, -1, 2) if keypoints.size else (num_boxes, 0, 2)
    points = keypoints.reshape(shape)[..., ::-1]
    if bounding_box_format.startswith("rel_"):
        points = points * (width, height)
    drawn = np.isfinite(points).all(axis=-1)
    if "keypoint_scores" in arrays:
        drawn &= arrays["keypoint_scores"].reshape(drawn.shape) >= score_threshold
    elif "keypoint_visibilities" in arrays:
        drawn &= arrays["keypoint_visibilities"].reshape(drawn.shape) > 0
    return points, drawn


def _draw_keypoints(draw, points, drawn, edges, color, radius, line_width):
    """Draws the `drawn` ones of the (x, y) `points` as dots, and the `edges` between two
    drawn points as lines, on a Pillow `ImageDraw`."""
    for start, end in edges or ():
        if 0 <= start < len(points) and 0 <= end < len(points) and drawn[start] and drawn[end]:
            draw.line((*points[start], *points[end]), fill=color, width=line_width)
    for (x, y), visible in zip(points, drawn):
        if visible:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def _pixel_corners(box, height, width):
    # Clipped to the last pixel, so a box touching the image border keeps a visible edge.
    x1, y1, x2, y2 = np.round(box).astype(int)
    return (
        int(np.clip(x1, 0, width - 1)),
        int(np.clip(y1, 0, height - 1)),
        int(np.clip(x2, 0, width - 1)),
        int(np.clip(y2, 0, height - 1)),
    )


def _class_color(label):
    return _PALETTE[int(label) % len(_PALETTE)]


def _draw_caption(draw, caption, corner, box_color, font):
    """Draws `caption` on a filled box-coloured tag above the box, or inside it at the top."""
    left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
    text_width, text_height = right - left + 4, bottom - top + 4
    x, y = corner
    y = y - text_height if y >= text_height else y
    draw.rectangle((x, y, x + text_width - 1, y + text_height - 1), fill=box_color)
    # Black on light colours, white on dark ones (ITU-R BT.601 luma).
    luma = 0.299 * box_color[0] + 0.587 * box_color[1] + 0.114 * box_color[2]
    text_color = (0, 0, 0) if luma > 140 else (255, 255, 255)
    draw.text((x + 2 - left, y + 2 - top), caption, fill=text_color, font=font)
