"""CSV box annotations (`image_path,xmin,ymin,xmax,ymax,label`) → TFRecords of TF OD API
`tf.train.Example`s."""

import csv
import os

import numpy as np

from kdet.data.converters._common import AnnotatedImage
from kdet.data.converters._common import ImageFinder
from kdet.data.converters._common import check_on_error
from kdet.data.converters._common import handle_error
from kdet.data.converters._common import image_folder_hint
from kdet.data.converters._common import write_annotations
from kdet.data.converters.conversion_summary import ConversionSummary
from kdet.data.errors import DataError

REQUIRED_COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")
_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


def convert_csv(
    csv_path,
    output_path,
    image_dir=None,
    label_map=None,
    num_shards=1,
    on_error="skip",
    progress=True,
    class_map=None,
    allow_outside_image_dir=False,
):
    """Converts a CSV of boxes (one row per box) to TFRecords.

    The CSV needs a header with the columns `image_path,xmin,ymin,xmax,ymax,label` (other columns
    are ignored; the DeepForest format). Coordinates are pixels. Rows are grouped by `image_path`
    into one record per image, in order of first appearance. A row whose four coordinates are all
    empty or all `0` marks an image without boxes (the DeepForest convention for negative
    images). Images are looked up and checked as in `convert_voc`, same-stem fallback included.

    Args:
        csv_path: str or path-like. The CSV file (UTF-8, a leading BOM is fine).
        output_path: str or path-like. The TFRecord file, or the shard prefix when
            `num_shards > 1`.
        image_dir: str or path-like. Folder `image_path` is relative to; defaults to the CSV
            file's folder.
        label_map: a `.pbtxt` path or a dict `{id: name}`. Defaults to `None`: derived from the
            sorted labels and written as `label_map.pbtxt` next to `output_path`.
        num_shards: int. Number of output files. Defaults to `1`.
        on_error: `"skip"` or `"raise"`, see `convert_voc`. Defaults to `"skip"`.
        progress: bool. Show a progress bar. Defaults to `True`.
        class_map: optional dict `{class name: new name, or None}`: merges classes (`{"Alive":
            "Tree", "Dead": "Tree"}`) or leaves a class's boxes out (`{"Unsure": None}`) before
            the label map is applied; classes it does not name keep their names, and a name
            no box has is an error. Defaults to `None`.
        allow_outside_image_dir: bool. Read images whose `image_path` is absolute or leads
            out of `image_dir` with `..`. Defaults to `False`: such an image is bad input.

    Returns:
        A `ConversionSummary`.

    Raises:
        DataError: with `on_error="raise"` for any bad image or row; always when the CSV is
            missing, empty or lacks a required column.

    Example:
    >>> summary = kdet.data.convert_csv("trees.csv", "out/trees.record", image_dir="tiles")
    >>> summary.boxes_per_class
    {'Tree': 61}
    """
    check_on_error(on_error)
    csv_path = os.fspath(csv_path)
    image_folder = os.fspath(image_dir) if image_dir is not None else os.path.dirname(csv_path)
    summary = ConversionSummary()
    finder = ImageFinder(allow_outside_image_dir)
    annotations = []
    for image_path, rows in _rows_by_image(csv_path).items():
        source = f"{csv_path} rows of {image_path!r} (first at line {rows[0][0]})"
        try:
            annotations.append(
                _read_rows(image_path, rows, csv_path, image_folder, finder, source, summary.notes)
            )
        except DataError as error:
            handle_error(on_error, source, error, summary)
    return write_annotations(
        annotations,
        output_path,
        label_map,
        num_shards,
        on_error,
        progress,
        summary,
        class_map,
        input_path=csv_path,
        image_hint=image_folder_hint(image_folder, "the CSV file"),
    )


def _rows_by_image(csv_path):
    """Returns `{image_path: [(line number, row dict), …]}` in order of first appearance."""
    if not os.path.isfile(csv_path):
        raise DataError(f"{csv_path} does not exist; expected a CSV of boxes")
    with open(csv_path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise DataError(
                f"{csv_path}: the header lacks the column(s) {', '.join(missing)}; expected a "
                f"header with {','.join(REQUIRED_COLUMNS)} (found {','.join(columns) or 'none'})"
            )
        reader.fieldnames = columns
        groups = {}
        try:
            for row in reader:
                key = (row["image_path"] or "").strip()
                groups.setdefault(key, []).append((reader.line_num, row))
        except csv.Error as error:
            raise DataError(
                f"{csv_path} line {reader.line_num + 1}: {error}; expected a CSV of boxes"
            ) from None
    return groups


def _read_rows(image_path, rows, csv_path, image_folder, finder, source, notes):
    if not image_path:
        raise DataError(f"{source}: image_path is empty")
    boxes, names, box_sources = [], [], []
    for line, row in rows:
        where = f"{csv_path} row {line}"
        fields = [(row[name] or "").strip() for name in _COORDINATES]
        if all(not field for field in fields) or all(field in ("0", "0.0") for field in fields):
            continue
        try:
            boxes.append([float(field) for field in fields])
        except ValueError:
            raise DataError(
                f"{where}: xmin,ymin,xmax,ymax are {','.join(fields)}; expected four numbers "
                "(or all four empty for an image without boxes)"
            ) from None
        label = (row["label"] or "").strip()
        if not label:
            raise DataError(f"{where}: the label is empty")
        names.append(label)
        box_sources.append(f"{where} ({label})")
    return AnnotatedImage(
        source=source,
        image_path=finder.find(image_folder, image_path, source, notes),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        names=names,
        box_sources=box_sources,
        source_id=image_path,
    )
