"""The images `predict` takes, and `Results`: the detections of one image without padding.

`ObjectDetector.predict` and `predict_on_batch` take what users have at hand, not only
`[batch, height, width, 3]` arrays: one `[height, width, 3]` image, 2-D or 1-channel grayscale,
RGBA (alpha dropped, as `kdet predict` does), and a list of images of different sizes. Each
distinct size is predicted as a batch of its own and the rows come back in the order given,
boxes in pixels of their own image. Anything else is refused with one line naming the
expected shape.

`Results` is the per-image view for notebooks (as Ultralytics' `Results` and torchvision's
per-image dicts): the valid detections only, with class names, `draw()`, `save(path)` and
`to_dict()`. `ObjectDetector.detect_images` returns one per image.
"""

import inspect
import pathlib

import keras
import numpy as np
import tensorflow as tf

# Channel counts of the images `predict` takes: grayscale, RGB, RGBA.
_CHANNELS = (1, 3, 4)


def _shape_error(caller, shape, hint=""):
    return ValueError(
        f"{caller} takes images [batch, height, width, 3] (or one [height, width, 3] image, or "
        f"a list of images; grayscale and RGBA are converted); got shape {tuple(shape)}{hint}."
    )


def rgb_images(images, caller="predict"):
    """A batch of grayscale, RGB or RGBA images as RGB; graph-friendly.

    Grayscale is repeated over three channels; RGBA loses its alpha channel (Pillow's
    `convert("RGB")`, what `kdet predict` does to image files). Shapes are checked statically.

    Args:
        images: `[batch, height, width, channels]` with 1, 3 or 4 channels, any dtype.
        caller: str, named in the error.

    Returns:
        `[batch, height, width, 3]`, same dtype.

    Raises:
        ValueError: `images` is not of rank 4 with 1, 3 or 4 channels.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise _shape_error(caller, images.shape)
    channels = images.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(images)
    if channels == 4:
        return images[..., :3]
    if channels == 3:
        return images
    if channels is not None:
        raise _shape_error(caller, images.shape)
    # Channels unknown until run time (e.g. a retraced `predict_function` relaxed the shape).
    rgb = tf.cond(
        tf.equal(tf.shape(images)[-1], 1),
        lambda: tf.tile(images, [1, 1, 1, 3]),
        lambda: images[..., :3],
    )
    rgb.set_shape(images.shape[:-1].concatenate([3]))
    return rgb


def _as_batch(image, caller):
    """An image or a batch (numpy or tensor) → `[batch, height, width, channels]`."""
    shape = tuple(image.shape)
    if len(shape) == 2:  # one grayscale image
        return image[None, :, :, None]
    if len(shape) == 3:
        if shape[-1] not in _CHANNELS:
            raise _shape_error(
                caller,
                shape,
                "; a batch of grayscale images? Add a channel axis: images[..., None]",
            )
        return image[None]
    if len(shape) == 4 and shape[-1] in _CHANNELS:
        return image
    raise _shape_error(caller, shape)


def _passed_to_keras(x):
    """Inputs `predict` leaves to Keras as they are: datasets, generators, dicts."""
    return (
        isinstance(x, (tf.data.Dataset, keras.utils.PyDataset, dict))
        or inspect.isgenerator(x)
        or (hasattr(x, "__next__") and not hasattr(x, "shape"))
    )


def image_groups(x, caller):
    """The images of `x` grouped into same-size batches, or `None` to leave `x` to Keras.

    Args:
        x: a batch `[batch, height, width, channels]`, one image `[height, width, channels]`
            or `[height, width]`, or a list/tuple of images (and batches) of any sizes;
            numpy arrays, tensors or anything `np.asarray` reads (e.g. Pillow images).
            Channels are 1, 3 or 4. A `tf.data.Dataset`, `keras.utils.PyDataset`, generator or
            dict gives `None`.
        caller: str, named in errors, e.g. `"SSD.predict"`.

    Returns:
        `None`, or a list of `(rows, batch)`: `rows` the positions of the batch's images in
        the input order, `batch` `[len(rows), height, width, 3]` (grayscale and RGBA made
        RGB by `rgb_images`).

    Raises:
        ValueError: a shape that is none of these, in one line naming `[batch, H, W, 3]`.
    """
    if _passed_to_keras(x):
        return None
    if not isinstance(x, (list, tuple)):
        if not isinstance(x, (tf.Tensor, tf.Variable)):
            x = np.asarray(x)
        batch = _as_batch(x, caller)
        return [(list(range(batch.shape[0])), _rgb(batch, caller))]
    if not x:
        raise _shape_error(caller, (0,), " (an empty list)")
    groups = {}
    row = 0
    for item in x:
        batch = _as_batch(np.asarray(keras.ops.convert_to_numpy(item)), caller)
        rows, batches = groups.setdefault(batch.shape[1:], ([], []))
        rows.extend(range(row, row + batch.shape[0]))
        batches.append(batch)
        row += batch.shape[0]
    return [
        (rows, _rgb(np.concatenate(batches), caller)) for rows, batches in groups.values()
    ]


def _rgb(batch, caller):
    """`batch` with 3 channels, converted here so that Keras traces `predict` for RGB only."""
    return batch if batch.shape[-1] == 3 else rgb_images(batch, caller).numpy()


def predict_groups(run, x, caller, **kwargs):
    """`run` (Keras's `predict` or `predict_on_batch`) on the images of `x`, one call per size.

    Args:
        run: callable taking a `[batch, height, width, channels]` array (and `kwargs`) and
            returning the predictions dict.
        x: what `image_groups` takes.
        caller: str, named in errors.
        **kwargs: passed to `run`.

    Returns:
        The predictions dict `{"boxes": [N, max_detections, 4], "labels", "confidences",
        "num_detections"}` with one row per input image in the order given, boxes in pixels of
        that image. Outputs of each image's size (a Mask R-CNN's `"masks"` `[N, max_detections,
        height, width]`) are padded with zeros at the bottom and right to the largest image.
    """
    groups = image_groups(x, caller)
    if groups is None:
        return run(x, **kwargs)
    if len(groups) == 1:
        return run(groups[0][1], **kwargs)
    outputs = [run(batch, **kwargs) for _, batch in groups]
    order = np.argsort(np.concatenate([rows for rows, _ in groups]), kind="stable")
    return {
        key: _padded_concatenation([keras.ops.convert_to_numpy(output[key]) for output in outputs])[
            order
        ]
        for key in outputs[0]
    }


def _padded_concatenation(arrays):
    """`arrays` (same rank) concatenated on their first axis, each first padded with zeros at
    the end of its other axes to the largest size there."""
    shape = np.max([array.shape for array in arrays], axis=0)
    return np.concatenate([
        np.pad(array, [(0, 0)] + [(0, size - own) for size, own in zip(shape[1:], array.shape[1:])])
        for array in arrays
    ])


class Results:
    """The detections of one image, without padding: boxes, labels, names, scores.

    The per-image view of the predictions dict, for notebooks and scripts (as Ultralytics'
    `Results` and torchvision's per-image dicts). Usually made by
    `ObjectDetector.detect_images` or `Results.from_predictions`.

    Args:
        boxes: float `[K, 4]` in `bounding_box_format` (pixels of `image` unless `rel_*`).
        labels: int `[K]` label-map ids (1-based).
        scores: float `[K]` confidences.
        image: optional `[height, width, 3]` RGB image the boxes belong to, pixel values
            0..255; `draw` and `save` need it.
        label_map: optional dict `{id: name}`; ids missing from it are named by the id.
        bounding_box_format: str, Keras box format of `boxes`. Defaults to `"yxyx"`.

    Attributes:
        boxes, labels, scores: numpy arrays (float32 `[K, 4]`, int32 `[K]`, float32 `[K]`),
            best score first as the model returned them.
        names: list of K str, the class name of each detection.
        image, label_map, bounding_box_format: as given.

    Example:
    ```python
    model = kdet.zoo.load("ssd_mobilenet_v2_coco")
    label_map = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").label_map
    results = model.detect_images([photo, other_photo], label_map=label_map, score_threshold=0.5)
    results[0].names           # ['cat']
    results[0].boxes           # [[ymin, xmin, ymax, xmax]] in pixels of photo
    results[0].save("runs/cat.jpg")
    ```
    """

    def __init__(
        self, boxes, labels, scores, image=None, label_map=None, bounding_box_format="yxyx"
    ):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, np.int32).reshape(-1)
        self.scores = np.asarray(scores, np.float32).reshape(-1)
        if not len(self.boxes) == len(self.labels) == len(self.scores):
            raise ValueError(
                f"boxes, labels and scores must have one row per detection; got "
                f"{len(self.boxes)}, {len(self.labels)} and {len(self.scores)} rows"
            )
        self.image = None if image is None else np.asarray(keras.ops.convert_to_numpy(image))
        self.label_map = dict(label_map or {})
        self.bounding_box_format = bounding_box_format

    @classmethod
    def from_predictions(
        cls,
        predictions,
        images=None,
        label_map=None,
        bounding_box_format="yxyx",
        score_threshold=None,
    ):
        """One `Results` per image of a predictions dict (`predict`, `predict_tiled`, …).

        Args:
            predictions: `{"boxes": [B, M, 4], "labels": [B, M], "confidences": [B, M],
                "num_detections": [B]}`, padded past `num_detections` (rows with label -1 are
                dropped too).
            images: optional `[B, height, width, 3]` or a list of B images, kept for `draw`.
            label_map: optional dict `{id: name}`.
            bounding_box_format: str, format of the predicted boxes (the model's). Defaults to
                `"yxyx"`.
            score_threshold: optional float; detections scoring below it are dropped.

        Returns:
            A list of B `Results`.
        """
        arrays = {
            key: np.asarray(keras.ops.convert_to_numpy(predictions[key]))
            for key in ("boxes", "labels", "confidences", "num_detections")
        }
        results = []
        for b in range(len(arrays["boxes"])):
            rows = np.arange(arrays["labels"].shape[1])
            keep = (rows < arrays["num_detections"][b]) & (arrays["labels"][b] >= 0)
            if score_threshold is not None:
                keep &= arrays["confidences"][b] >= score_threshold
            results.append(
                cls(
                    arrays["boxes"][b][keep],
                    arrays["labels"][b][keep],
                    arrays["confidences"][b][keep],
                    image=None if images is None else images[b],
                    label_map=label_map,
                    bounding_box_format=bounding_box_format,
                )
            )
        return results

    @property
    def names(self):
        """The class name of each detection: `label_map[label]`, or the id as a string."""
        return [self.label_map.get(int(label), str(int(label))) for label in self.labels]

    def __len__(self):
        """The number of detections."""
        return len(self.labels)

    def __repr__(self):
        shown = 5
        found = ", ".join(
            f"{name} {score:.2f}"
            for name, score in zip(self.names[:shown], self.scores[:shown], strict=True)
        ) + (", …" if len(self) > shown else "")
        size = "" if self.image is None else f", image {self.image.shape[0]}x{self.image.shape[1]}"
        count = f"{len(self)} detection{'' if len(self) == 1 else 's'}"
        return f"Results({count}{': ' + found if found else ''}{size})"

    def draw(self, **kwargs):
        """The image with every detection drawn (`kdet.visualization.draw_detections`).

        Args:
            **kwargs: passed to `draw_detections` (`score_threshold` defaults to 0: the
                results were thresholded when they were made; `color`, `line_thickness`, …).

        Returns:
            uint8 `[height, width, 3]`.
        """
        from kdet.visualization import draw_detections

        if self.image is None:
            raise ValueError(
                "these Results have no image to draw on; make them with "
                "model.detect_images(images) or Results.from_predictions(..., images=images)"
            )
        kwargs.setdefault("score_threshold", 0.0)
        return draw_detections(
            self.image,
            {"boxes": self.boxes, "labels": self.labels, "confidences": self.scores},
            label_map=self.label_map,
            bounding_box_format=self.bounding_box_format,
            **kwargs,
        )

    def save(self, path, **kwargs):
        """Saves `draw(**kwargs)` to `path` (format from the extension), creating its folder.

        Returns:
            `path` as a `pathlib.Path`.
        """
        from kdet.visualization import save_image

        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(self.draw(**kwargs), path)
        return path

    def to_dict(self):
        """The detections as plain Python lists (JSON-ready).

        Returns:
            `{"boxes": [[4 floats]] in bounding_box_format, "labels": [ids], "names": [str],
            "scores": [floats], "bounding_box_format": str}`.
        """
        return {
            "boxes": self.boxes.tolist(),
            "labels": self.labels.tolist(),
            "names": self.names,
            "scores": self.scores.tolist(),
            "bounding_box_format": self.bounding_box_format,
        }


def detect_images(model, images, label_map=None, score_threshold=None, batch_size=None):
    """`model.predict` on images of any sizes → one `Results` per image (see `Results`).

    Args:
        model: a `kdet.models.ObjectDetector`.
        images: one image, a batch, or a list of images of any sizes (what `predict` takes:
            grayscale and RGBA are converted).
        label_map: optional dict `{id: name}` or path of a `.pbtxt` label map.
        score_threshold: optional float; detections scoring below it are left out.
        batch_size: optional int, passed to `predict`.

    Returns:
        A list of `Results`, one per image in the order given, each holding its RGB image.
    """
    caller = f"{type(model).__name__}.detect_images"
    groups = image_groups(images, caller)
    if groups is None:
        raise ValueError(
            f"{caller} takes images (an array or a list of arrays), not {type(images).__name__}; "
            "for a dataset use predict, then Results.from_predictions"
        )
    if label_map is not None and not isinstance(label_map, dict):
        from kdet.data.label_map import read_label_map

        label_map = read_label_map(label_map)
    results = [None] * sum(len(rows) for rows, _ in groups)
    for rows, batch in groups:
        predictions = model.predict(batch, batch_size=batch_size, verbose=0)
        found = Results.from_predictions(
            predictions, batch, label_map, model.bounding_box_format, score_threshold
        )
        for row, result in zip(rows, found, strict=True):
            results[row] = result
    return results
