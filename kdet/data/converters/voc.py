"""Pascal VOC XML annotations → TFRecords of TF OD API `tf.train.Example`s."""

import os
import xml.etree.ElementTree as ElementTree

import numpy as np

from kdet.data.converters._common import AnnotatedImage
from kdet.data.converters._common import ImageFinder
from kdet.data.converters._common import MaskFile
from kdet.data.converters._common import check_on_error
from kdet.data.converters._common import handle_error
from kdet.data.converters._common import image_header_size
from kdet.data.converters._common import read_png_mask
from kdet.data.converters._common import write_annotations
from kdet.data.converters.conversion_summary import ConversionSummary
from kdet.data.errors import DataError

_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
# The value Pascal VOC's segmentation PNGs mark object borders and void pixels with.
VOC_VOID = 255


def convert_voc(
    xml_dir,
    output_path,
    image_dir=None,
    label_map=None,
    num_shards=1,
    on_error="skip",
    progress=True,
    class_map=None,
    allow_outside_image_dir=False,
    include_masks=False,
    segmentation_dir=None,
):
    """Converts Pascal VOC XML annotations to TFRecords like the TF OD API's
    `create_pascal_tf_record.py`.

    Each XML file (sorted by name) becomes one record: the image named by `<filename>` (stored as
    is, not re-encoded), its `<object>` boxes normalized by the image size, the class name and
    label-map id, and the VOC `difficult`, `truncated` and `pose` (as `image/object/view`) flags.
    When the named image is missing, a file with the same stem and a common image extension is
    used instead and the summary notes it (the bundled DeepForest XML names `OSBS_029.tif` for
    `OSBS_029.png`).

    Instance masks (`include_masks=True`): Pascal VOC's `SegmentationObject/<xml stem>.png`
    numbers the objects of an image in the order of its XML `<object>`s (palette index k:
    object k; 0 background; 255 borders and void, in no object). Each object's mask (the
    pixels of its number) is stored as a PNG of 0/1 in `image/object/mask` (read with
    `mask_type: PNG_MASKS`). Only the VOC segmentation subset has these PNGs: the XML files
    without one are left out, and a note says how many. A PNG must have the image's size and
    no number beyond the XML's object count; an object without pixels is kept (its box is
    the XML's) and noted.

    Every image is checked before it is written: TensorFlow must decode it completely, as
    `read_tfrecords` will, and it must match the XML `<size>`; the `<filename>` must stay inside
    the image folder (see `allow_outside_image_dir`); sizes and flags must be whole numbers;
    boxes must satisfy `0 <= xmin < xmax <= width`, `0 <= ymin < ymax <= height` (boxes at most
    1 px outside are clipped and noted); class names must be in the label map.

    Args:
        xml_dir: str or path-like. A folder of `.xml` files, or one `.xml` file.
        output_path: str or path-like. The TFRecord file, or the shard prefix when
            `num_shards > 1` (`OUT-00000-of-00004`, …).
        image_dir: str or path-like. Folder of the images. Defaults to `None`: each XML file's
            folder, then its sibling `JPEGImages/` (the Pascal VOC layout, `Annotations/` and
            `JPEGImages/` side by side).
        label_map: a `.pbtxt` path or a dict `{id: name}`. Defaults to `None`: ids 1..K are given
            to the sorted class names and the label map is written as `label_map.pbtxt` next to
            `output_path` (an existing, different one there is an error rather than overwritten).
        num_shards: int. Number of output files. Defaults to `1`.
        on_error: `"skip"` (leave the bad image out, record it in `summary.skipped` and warn) or
            `"raise"` (raise `kdet.data.DataError`; no output file is left). Defaults to `"skip"`.
        progress: bool. Show a progress bar. Defaults to `True`.
        class_map: optional dict `{class name: new name, or None}`: merges classes (`{"Alive":
            "Tree", "Dead": "Tree"}`) or leaves a class's boxes out (`{"Unsure": None}`) before
            the label map is applied; classes it does not name keep their names, and a name
            no box has is an error. Defaults to `None`.
        allow_outside_image_dir: bool. Read images the XML names with an absolute path or a
            path leading out of the image folder with `..`. Defaults to `False`: such an image
            is bad input (skipped or raised, naming the XML file and the path).
        include_masks: bool. Write the instance masks of `SegmentationObject` PNGs. Defaults
            to `False`.
        segmentation_dir: str or path-like. Folder of the `SegmentationObject` PNGs. Defaults
            to `None`: the `SegmentationObject/` folder beside each XML file's folder (the
            Pascal VOC layout).

    Returns:
        A `ConversionSummary`; `print(summary)` shows the per-class table.

    Raises:
        DataError: with `on_error="raise"` for any bad image or annotation; always when
            `xml_dir` has no XML file, the label map is invalid, or no image could be
            converted (nothing is written then).

    Example:
    >>> summary = kdet.data.convert_voc("VOC2012/Annotations", "out/voc.record",
    ...                                 image_dir="VOC2012/JPEGImages", num_shards=4)
    >>> print(summary)
    """
    check_on_error(on_error)
    summary = ConversionSummary()
    finder = ImageFinder(allow_outside_image_dir)
    annotations, without_masks = [], []
    for xml_path in _xml_files(os.fspath(xml_dir)):
        if image_dir is None:
            folders = _default_image_folders(xml_path)
        else:
            folders = [os.fspath(image_dir)]
        masks = None
        if include_masks:
            masks = _segmentation_png(xml_path, segmentation_dir)
            if not os.path.isfile(masks):
                without_masks.append(masks)
                continue
        try:
            annotation = _read_voc_xml(xml_path, folders, finder, summary.notes)
            if masks is not None:
                annotation.extras["masks"] = _object_masks(annotation, masks, summary.notes)
            annotations.append(annotation)
        except DataError as error:
            handle_error(on_error, xml_path, error, summary)
    if without_masks:
        summary.notes.append((os.fspath(xml_dir), (
            f"include_masks: left out {len(without_masks)} annotation(s) without a "
            f"SegmentationObject PNG (not in the VOC segmentation subset), e.g. "
            f"{without_masks[0]}"
        )))
    return write_annotations(
        annotations,
        output_path,
        label_map,
        num_shards,
        on_error,
        progress,
        summary,
        class_map,
        input_path=os.fspath(xml_dir),
        image_hint=(
            f"Looked for the images in {image_dir}; pass the folder that holds them as "
            "--image_dir (image_dir= in Python)."
            if image_dir is not None
            else "Without --image_dir (image_dir= in Python) the images are looked for next to "
            "the XML files and in their sibling JPEGImages/ folder (the Pascal VOC layout); pass "
            "--image_dir IMAGES when they are elsewhere."
        ),
    )


def _segmentation_png(xml_path, segmentation_dir):
    """Where the `SegmentationObject` PNG of an XML file is: `<stem>.png` in
    `segmentation_dir`, or in the `SegmentationObject/` folder beside the XML file's folder."""
    folder = (
        os.fspath(segmentation_dir) if segmentation_dir is not None
        else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(xml_path))),
                          "SegmentationObject")
    )
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    return os.path.join(folder, f"{stem}.png")


def _object_masks(annotation, path, notes):
    """One `MaskFile` per object of `annotation` (XML order) in the `SegmentationObject` PNG
    `path`, checked against the image's size and the object count."""
    pixels = read_png_mask(
        path, annotation.image_path, image_header_size(annotation.image_path)
    )
    numbers = set(np.unique(pixels).tolist()) - {0, VOC_VOID}
    count = len(annotation.names)
    if numbers and max(numbers) > count:
        raise DataError(
            f"{path} numbers objects up to {max(numbers)} but {annotation.source} has {count} "
            "<object>(s); expected the objects numbered 1..N in XML order"
        )
    missing = sorted(set(range(1, count + 1)) - numbers)
    if missing:
        notes.append((path, f"{path}: object(s) {missing} of {annotation.source} have no "
                            "pixels (empty masks, boxes kept)"))
    return [MaskFile(path, number) for number in range(1, count + 1)]


def _default_image_folders(xml_path):
    """Where an XML file's image is looked for without `image_dir`: the XML file's folder, then
    the Pascal VOC layout's `JPEGImages/` beside it (`VOC2012/Annotations/x.xml` →
    `VOC2012/JPEGImages/`)."""
    folder = os.path.dirname(xml_path)
    return [folder, os.path.normpath(os.path.join(folder, os.pardir, "JPEGImages"))]


def _xml_files(xml_dir):
    if os.path.isfile(xml_dir):
        return [xml_dir]
    if not os.path.isdir(xml_dir):
        raise DataError(f"{xml_dir} does not exist; expected a folder of VOC .xml files")
    names = sorted(name for name in os.listdir(xml_dir) if name.lower().endswith(".xml"))
    if not names:
        annotations = os.path.join(xml_dir, "Annotations")
        hint = (
            f" (the Pascal VOC layout keeps them in {annotations}: convert that folder)"
            if os.path.isdir(annotations)
            else ""
        )
        raise DataError(f"{xml_dir} has no .xml files; expected Pascal VOC annotations{hint}")
    return [os.path.join(xml_dir, name) for name in names]


def _child_text(element, tag, where, default=None):
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if default is not None:
            return default
        raise DataError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _child_number(element, tag, where, default=None):
    text = _child_text(element, tag, where, default)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: <{tag}> is {text!r}; expected a number") from None


def _child_integer(element, tag, where, default=None):
    value = _child_number(element, tag, where, default)
    if not np.isfinite(value) or value != int(value):
        raise DataError(f"{where}: <{tag}> is {_child_text(element, tag, where, default)!r}; "
                        "expected a whole number")
    return int(value)


def read_voc_xml(xml_path):
    """Parses one Pascal VOC XML annotation file.

    Args:
        xml_path: str or path-like.

    Returns:
        A dict: `"filename"` (the `<filename>`), `"size"` (`(height, width)` or None),
        `"boxes"` float64 `[num_objects, 4]` `xyxy` pixels as written, `"names"` (class names),
        `"difficult"`, `"truncated"` (ints) and `"views"` (the `<pose>` strings).

    Raises:
        DataError: naming the file and object for malformed XML or missing/non-numeric fields.
    """
    xml_path = os.fspath(xml_path)
    try:
        root = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        line, column = error.position
        raise DataError(
            f"{xml_path}: malformed XML at line {line}, column {column + 1}: {error.msg}"
        ) from None
    if root.tag != "annotation":
        raise DataError(f"{xml_path}: the root element is <{root.tag}>; expected <annotation>")
    size = None
    if root.find("size") is not None:
        size_element = root.find("size")
        size = tuple(
            _child_integer(size_element, tag, f"{xml_path} <size>") for tag in ("height", "width")
        )
    annotation = {
        "filename": _child_text(root, "filename", xml_path),
        "size": size,
        "boxes": [],
        "names": [],
        "difficult": [],
        "truncated": [],
        "views": [],
    }
    for index, element in enumerate(root.findall("object"), start=1):
        where = f"{xml_path} object {index}"
        annotation["names"].append(_child_text(element, "name", where))
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise DataError(f"{where}: missing <bndbox>")
        annotation["boxes"].append([_child_number(bndbox, tag, where) for tag in _BOX_TAGS])
        annotation["difficult"].append(_child_integer(element, "difficult", where, "0"))
        annotation["truncated"].append(_child_integer(element, "truncated", where, "0"))
        annotation["views"].append(_child_text(element, "pose", where, default="Unspecified"))
    annotation["boxes"] = np.asarray(annotation["boxes"], dtype=np.float64).reshape(-1, 4)
    return annotation


def _read_voc_xml(xml_path, image_folders, finder, notes):
    """Parses one VOC XML file into an `AnnotatedImage` (boxes are checked later)."""
    annotation = read_voc_xml(xml_path)
    names = annotation["names"]
    return AnnotatedImage(
        source=xml_path,
        image_path=finder.find(image_folders, annotation["filename"], xml_path, notes),
        boxes=annotation["boxes"],
        names=names,
        box_sources=[f"{xml_path} object {i} ({name})" for i, name in enumerate(names, start=1)],
        source_id=annotation["filename"],
        size=annotation["size"],
        extras={
            "difficult": annotation["difficult"],
            "truncated": annotation["truncated"],
            "view": annotation["views"],
        },
    )
