"""Loaders for the real annotated sample images bundled with kdet (no network needed)."""

import importlib.resources
import json
import pathlib

import numpy as np
from PIL import Image

from kdet.data.converters.voc import read_voc_xml

# The label map `{id: name}` of the `deepforest` tiles.
DEEPFOREST_LABEL_MAP = {1: "Tree", 2: "Alive", 3: "Dead"}
# The label map `{id: name}` of the `quokka` photo.
QUOKKA_LABEL_MAP = {1: "animal"}
_DEEPFOREST_NAMES = ("OSBS_029", "SOAP_061")


def sample_data_dir():
    """Path of the folder holding kdet's bundled sample data (`kdet/datasets/data`).

    Found through the installed package, so it works after a non-editable install.

    Returns:
        A `pathlib.Path`.

    Example:
    >>> sorted(p.name for p in kdet.datasets.sample_data_dir().iterdir())
    ['README.md', 'deepforest', 'quokka.jpg', 'quokka_annotations.json']
    """
    return pathlib.Path(str(importlib.resources.files(__package__).joinpath("data")))


def deepforest(name):
    """Loads a bundled DeepForest tile: a 400×400 NEON aerial image with tree-crown boxes.

    `"OSBS_029"` has 61 `Tree` boxes; `"SOAP_061"` has 9 `Alive` and 28 `Dead` boxes. Labels
    follow `DEEPFOREST_LABEL_MAP = {1: "Tree", 2: "Alive", 3: "Dead"}`. Data: the `deepforest`
    package (MIT licence), imagery courtesy of NEON; see `data/README.md`.

    Args:
        name: str. `"OSBS_029"` or `"SOAP_061"`.

    Returns:
        A tuple `(image, y)`: `image` uint8 `[400, 400, 3]`; `y = {"boxes": float32 [N, 4]
        yxyx in pixels, "labels": int32 [N], "class_names": list of N str}`.

    Example:
    >>> image, y = kdet.datasets.deepforest("SOAP_061")
    >>> image.shape, y["boxes"].shape
    ((400, 400, 3), (37, 4))
    """
    if name not in _DEEPFOREST_NAMES:
        raise ValueError(
            f"Unknown deepforest sample {name!r}; expected one of {list(_DEEPFOREST_NAMES)}."
        )
    folder = sample_data_dir() / "deepforest"
    boxes, class_names = _read_voc_boxes(folder / f"{name}.xml")
    return _load_image(folder / f"{name}.png"), _annotations(
        boxes, class_names, DEEPFOREST_LABEL_MAP, folder / f"{name}.xml"
    )


def quokka():
    """Loads the bundled quokka photo (643×960) with its one `animal` box.

    Labels follow `QUOKKA_LABEL_MAP = {1: "animal"}`. Data: the `imgaug` package (MIT
    licence); see `data/README.md`.

    Returns:
        A tuple `(image, y)`: `image` uint8 `[643, 960, 3]`; `y = {"boxes": float32 [1, 4]
        yxyx in pixels, "labels": int32 [1], "class_names": ["animal"]}`.

    Example:
    >>> image, y = kdet.datasets.quokka()
    >>> y["boxes"]
    array([[ 50., 148., 642., 550.]], dtype=float32)
    """
    annotation_path = sample_data_dir() / "quokka_annotations.json"
    records = json.loads(annotation_path.read_text())["bounding_boxes"]
    boxes = [(r["y1"], r["x1"], r["y2"], r["x2"]) for r in records]
    class_names = [r["label"] for r in records]
    return _load_image(sample_data_dir() / "quokka.jpg"), _annotations(
        boxes, class_names, QUOKKA_LABEL_MAP, annotation_path
    )


def _load_image(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _read_voc_boxes(path):
    """Boxes (yxyx pixels) and class names of the `<object>`s of a Pascal VOC XML file."""
    annotation = read_voc_xml(path)
    return annotation["boxes"][:, [1, 0, 3, 2]], annotation["names"]


def _annotations(boxes, class_names, label_map, source):
    ids = {name: label for label, name in label_map.items()}
    unknown = sorted(set(class_names) - set(ids))
    if unknown:
        raise ValueError(
            f"{source}: class names {unknown} are not in the label map {label_map}."
        )
    return {
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "labels": np.asarray([ids[name] for name in class_names], np.int32),
        "class_names": class_names,
    }
