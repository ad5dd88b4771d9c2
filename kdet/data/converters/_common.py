"""Shared steps of the dataset converters: find and check images and boxes, apply the label map
policy and the error policy, write the records."""

import dataclasses
import io
import os
import re
import sys

import numpy as np
from tqdm import tqdm

from kdet.data.converters.conversion_summary import ConversionSummary
from kdet.data.errors import DataError
from kdet.data.label_map import label_map_from_names
from kdet.data.label_map import name_to_id
from kdet.data.label_map import read_label_map
from kdet.data.label_map import validate_label_map
from kdet.data.label_map import write_label_map
from kdet.data.sharded_tfrecord_writer import ShardedTFRecordWriter
from kdet.data.sharded_tfrecord_writer import remove_leftovers
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import image_format_of

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Annotation tools often round a box edge on the image border one pixel out (VOC boxes are
# 1-based, xmax == width + 1 happens); such boxes are clipped, anything further out is an error.
CLIP_TOLERANCE_PX = 1.0
LABEL_MAP_FILENAME = "label_map.pbtxt"
ON_ERROR_CHOICES = ("skip", "raise")


@dataclasses.dataclass
class AnnotatedImage:
    """One image and its boxes as read from the annotation source, not yet checked."""

    source: str  # names the image in messages, e.g. "a.xml" or "train.csv rows 2-5"
    image_path: str
    boxes: np.ndarray  # float64 [num_boxes, 4], xyxy in pixels
    names: list  # class name per box
    box_sources: list  # per box, where it came from, e.g. "a.xml object 3" or "train.csv row 7"
    source_id: str
    size: tuple | None = None  # (height, width) the annotation declares, if any
    # Per-box create_tf_example kwargs; "keypoints" per box is float [K, 2] (y, x) in pixels.
    extras: dict = dataclasses.field(default_factory=dict)
    image_extras: dict = dataclasses.field(default_factory=dict)  # per-image kwargs


def check_on_error(on_error):
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")


def handle_error(on_error, source, error, summary):
    """Applies the error policy to one bad image: raise, or record it and warn."""
    if on_error == "raise":
        raise error
    summary.skipped.append((source, str(error)))
    tqdm.write(f"WARNING: skipped {source}: {error}", file=sys.stderr)


class ImageFinder:
    """Finds an image file by name, falling back to a file with the same stem and a common image
    extension (`.jpg .jpeg .png .bmp .gif`, any case) when the named file is missing.

    Names are confined to the image folder: an absolute name, or one whose `..` parts lead out
    of the folder, is a `DataError` unless `allow_outside_image_dir=True`. The check is on the
    name the annotation gives (the untrusted part); symlinks inside the folder are followed,
    since whoever laid out the folder made them (dataset caches store files as symlinks).
    """

    def __init__(self, allow_outside_image_dir=False):
        self.allow_outside_image_dir = allow_outside_image_dir
        self._stems = {}  # folder → {stem: [file names]}, listed once per folder

    def find(self, folders, name, source, notes):
        """The path of image `name` in the first of `folders` (a folder or a list) holding it.

        The exact name is looked for in every folder before the same-stem fallback is tried
        (folder by folder); a fallback is recorded in `notes`.

        Raises:
            DataError: naming `source` and every path tried, or the name when it is not a
                non-empty string or leads outside the folder(s).
        """
        folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        folders = [os.fspath(folder) for folder in folders]
        name = self._checked_name(name, folders, source)
        paths = [os.path.join(folder, name) for folder in folders]
        for path in paths:
            if os.path.isfile(path):
                return path
        stem = os.path.splitext(os.path.basename(name))[0]
        for path in paths:
            folder = os.path.dirname(path)
            candidates = self._same_stem(folder, stem)
            if candidates:
                found = os.path.join(folder, candidates[0])
                notes.append((source, f"{source}: image {name} not found; used {found}"))
                return found
        tried = " or ".join(paths)
        raise DataError(
            f"{source}: image file {tried} {_NO_SUCH_IMAGE} {' '.join(IMAGE_EXTENSIONS)})"
        )

    def _checked_name(self, name, folders, source):
        """`name`, normalized (what is read is what was checked: `a/../b` is `b` even when `a`
        is a symlink); a `DataError` when it is not a file name inside the folder(s)."""
        if not isinstance(name, str) or not name.strip():
            raise DataError(
                f"{source}: the image file name is {name!r}; expected a non-empty string"
            )
        if "\0" in name:
            raise DataError(f"{source}: the image file name {name!r} contains a NUL character")
        normalized = os.path.normpath(name)
        if self.allow_outside_image_dir:
            return normalized
        if os.path.isabs(name) or os.path.splitdrive(name)[0] or normalized == os.pardir or (
            normalized.startswith(os.pardir + os.sep)
        ):
            where = " or ".join(folder or "." for folder in folders)
            raise DataError(
                f"{source}: the image path {name!r} leads outside the image folder {where} (an "
                "absolute path or one going up with '..'); pass --allow_outside_image_dir "
                "(allow_outside_image_dir=True in Python) to read images from anywhere"
            )
        return normalized

    def _same_stem(self, folder, stem):
        """Image files named `stem.<extension>` in `folder`, in `IMAGE_EXTENSIONS` order."""
        return self.images_by_stem(folder).get(stem, [])

    def images_by_stem(self, folder):
        """`{stem: [image file names]}` of the image files (`IMAGE_EXTENSIONS`, any case) in
        `folder` (none if it is missing), each stem's names in `IMAGE_EXTENSIONS` order;
        listed once per folder."""
        if folder not in self._stems:
            stems = {}
            if os.path.isdir(folder or "."):
                for file_name in os.listdir(folder or "."):
                    file_stem, extension = os.path.splitext(file_name)
                    if extension.lower() in IMAGE_EXTENSIONS:
                        rank = IMAGE_EXTENSIONS.index(extension.lower())
                        stems.setdefault(file_stem, []).append((rank, file_name))
            self._stems[folder] = {key: [n for _, n in sorted(v)] for key, v in stems.items()}
        return self._stems[folder]


def read_image(path, source):
    """Reads an image file and checks that it fully decodes.

    Returns:
        `(encoded bytes, image/format value, height, width)`.
    """
    with open(path, "rb") as file:
        encoded = file.read()
    return (encoded, *check_encoded_image(encoded, f"{source}: image {path}"))


def check_encoded_image(encoded, what):
    """Checks that encoded image bytes decode completely, the way training will read them.

    Pillow identifies the format and size (and refuses decompression bombs before anything is
    decoded); then TensorFlow decodes the whole image as `read_tfrecords` does
    (`tf.io.decode_image(..., channels=3)`), which catches truncated or corrupt files and the
    variants Pillow reads and TensorFlow does not (a 1-bit BMP), so a record never fails only
    in training.

    Returns:
        `(image/format value, height, width)`.
    """
    import tensorflow as tf
    from PIL import Image

    try:
        width, height = Image.open(io.BytesIO(encoded)).size
        image_format = image_format_of(encoded)
    # Pillow signals broken files with many exception types (OSError, SyntaxError, struct.error…).
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{what} cannot be decoded (truncated or corrupt?): {error}") from error
    try:
        shape = tf.io.decode_image(encoded, channels=3, expand_animations=False).shape
    except (tf.errors.OpError, ValueError) as error:
        reason = getattr(error, "message", str(error))  # without TensorFlow's node names:
        reason = " ".join(re.sub(r"\{\{function_node [^}]*\}\}|\[Op:\w+\]", "", reason).split())
        raise DataError(
            f"{what} cannot be decoded (truncated or corrupt?) by TensorFlow, which reads it in "
            f"training: {reason}. If the file is fine, save it as PNG or JPEG (TensorFlow does "
            "not read every variant, e.g. a 1-bit BMP)"
        ) from None
    if tuple(shape[:2]) != (height, width):
        raise DataError(
            f"{what}: TensorFlow decodes it as {shape[1]}x{shape[0]} but Pillow as "
            f"{width}x{height} (width x height); save it as PNG or JPEG"
        )
    return image_format, height, width


def image_header_size(path):
    """`(height, width)` of an image file, from its header (the pixels are checked when the
    record is written, by `read_image`).

    Raises:
        DataError: naming the file, when Pillow cannot identify it.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} cannot be decoded (truncated or corrupt?): {error}") from None
    return height, width


# Mask image modes whose last channel is transparency, left out of a mask's pixels.
_ALPHA_MODES = {"RGBA": "RGB", "LA": "L"}


def read_png_mask(path, image_path=None, image_size=None):
    """The pixels of a mask PNG as a 2-D integer array `[height, width]`: a palette PNG's
    indices (a Pascal VOC `SegmentationObject` PNG's object numbers), a grayscale PNG's
    values, and for colour PNGs 1 where any colour channel is nonzero (transparency left out).

    Args:
        path: the PNG file.
        image_path, image_size: the image the mask belongs to and its `(height, width)`
            (`image_header_size`): when given, the mask must have that size.

    Raises:
        DataError: naming the file, when it is not a PNG Pillow can decode, or naming it and
            its image when their sizes differ.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise DataError(f"{path}: a {image.format} file; expected a PNG mask")
            if image.mode in _ALPHA_MODES:
                image = image.convert(_ALPHA_MODES[image.mode])
            pixels = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot be decoded as a PNG mask ({error})") from None
    if pixels.ndim == 3:
        pixels = pixels.any(axis=-1)
    if image_size is not None and pixels.shape[:2] != tuple(image_size):
        height, width = image_size
        raise DataError(
            f"{path} is {pixels.shape[1]}x{pixels.shape[0]} but its image {image_path} is "
            f"{width}x{height} (width x height); expected a mask of the image's size"
        )
    return pixels.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class MaskFile:
    """One object's mask in a PNG file, read when its record is written (`np.asarray(mask)`:
    uint8 `[height, width]` 0/1), so that a conversion holds no more than one image's masks.

    Args:
        path: the PNG file (see `read_png_mask`).
        index: None: the object is where the PNG is nonzero (a PNG per object); an int: where
            it equals `index` (a PNG of numbered objects, as Pascal VOC's `SegmentationObject`).
    """

    path: str
    index: int | None = None

    def __array__(self, dtype=None, copy=None):
        pixels = read_png_mask(self.path)
        mask = (pixels != 0) if self.index is None else (pixels == self.index)
        return mask.astype(dtype or np.uint8)


def check_boxes(boxes, height, width, box_sources):
    """Checks pixel boxes against the image and clips those out by at most 1 px.

    Args:
        boxes: float array `[num_boxes, 4]`, `xyxy` in pixels.
        height, width: int. The real image size.
        box_sources: list of str naming each box in error messages.

    Returns:
        `(clipped boxes, number of boxes that were clipped)`.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    limits = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.clip(boxes, 0.0, limits)
    for box, clipped_box, where in zip(boxes, clipped, box_sources):
        box_text = "box (xmin, ymin, xmax, ymax) = (" + ", ".join(f"{v:g}" for v in box) + ")"
        if not np.all(np.isfinite(box)):
            raise DataError(f"{where}: {box_text} is not finite")
        if np.max(np.abs(box - clipped_box)) > CLIP_TOLERANCE_PX:
            raise DataError(
                f"{where}: {box_text} lies outside the "
                f"{width}x{height} image; expected 0 <= xmin < xmax <= {width} and "
                f"0 <= ymin < ymax <= {height} (at most {CLIP_TOLERANCE_PX:g} px out)"
            )
        if clipped_box[0] >= clipped_box[2] or clipped_box[1] >= clipped_box[3]:
            raise DataError(
                f"{where}: {box_text} is empty or inverted; "
                "expected xmin < xmax and ymin < ymax"
            )
    num_clipped = int(np.sum(np.any(clipped != boxes, axis=-1)))
    return clipped, num_clipped


def lookup_labels(names, label_map, name_ids, box_sources):
    """Returns the label-map id of each class name; unknown names are a `DataError`."""
    ids = []
    for name, where in zip(names, box_sources):
        if name not in name_ids:
            known = list(label_map.values())
            shown = ", ".join(repr(n) for n in known[:20]) + (" …" if len(known) > 20 else "")
            raise DataError(
                f"{where}: class {name!r} is not in the label map; expected one of {shown}"
            )
        ids.append(name_ids[name])
    return ids


def normalized_keypoints(keypoints, visibilities, height, width, box_sources):
    """Checks pixel keypoints against the image and normalizes them.

    Labelled keypoints (visibility > 0) must be finite and inside the image, up to
    `CLIP_TOLERANCE_PX` (clipped); the coordinates of the others are written as they are
    (COCO stores 0, 0), as the TF OD API's `create_coco_tf_record.py` does.

    Args:
        keypoints: per box, float `[num_keypoints, 2]` (y, x) in pixels.
        visibilities: per box, int `[num_keypoints]`, COCO `v`.
        height, width: int. The real image size.
        box_sources: list of str naming each box in error messages.

    Returns:
        float32 `[num_boxes, num_keypoints, 2]` normalized (y, x).
    """
    limits = np.array([height, width], dtype=np.float64)
    normalized = []
    for points, flags, where in zip(keypoints, visibilities, box_sources):
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        labelled = np.asarray(flags).reshape(-1) > 0
        clipped = np.clip(points, 0.0, limits)
        bad = labelled & (
            ~np.all(np.isfinite(points), axis=-1)
            | (np.max(np.abs(points - clipped), axis=-1) > CLIP_TOLERANCE_PX)
        )
        if np.any(bad):
            index = int(np.argmax(bad))
            raise DataError(
                f"{where}: keypoint {index} (x, y) = ({points[index, 1]:g}, {points[index, 0]:g})"
                f" lies outside the {width}x{height} image (at most {CLIP_TOLERANCE_PX:g} px "
                "out) or is not finite"
            )
        normalized.append(np.where(labelled[:, None], clipped, points) / limits)
    num_keypoints = normalized[0].shape[0] if normalized else 0
    return np.asarray(normalized, dtype=np.float32).reshape(-1, num_keypoints, 2)


def make_example(encoded, image_format, height, width, boxes, ids, names, box_sources, **kwargs):
    """Checks `xyxy` pixel boxes (and pixel keypoints, when `kwargs` has them) and builds the
    `tf.train.Example` with normalized boxes (and keypoints).

    Returns:
        `(tf.train.Example, number of clipped boxes)`.
    """
    boxes, num_clipped = check_boxes(boxes, height, width, box_sources)
    if kwargs.get("keypoints") is not None:
        kwargs["keypoints"] = normalized_keypoints(
            kwargs["keypoints"], kwargs["keypoint_visibilities"], height, width, box_sources
        )
    # The TF OD API dataset tools divide pixel coordinates by the image size, no +1/-1 offset.
    xmin, ymin, xmax, ymax = (boxes / [width, height, width, height]).T
    example = create_tf_example(
        encoded,
        height,
        width,
        np.stack([ymin, xmin, ymax, xmax], axis=-1),
        ids,
        names,
        image_format=image_format,
        **kwargs,
    )
    return example, num_clipped


def resolve_label_map(label_map, derived, output_path):
    """Applies the label map policy.

    A given label map (path or dict) is used as is. Otherwise the one derived from the data is
    used and written as `label_map.pbtxt` next to the output — unless a different one is already
    there, which would silently renumber classes of records converted earlier.

    Returns:
        `(label map dict, path to write the derived label map to or None, path for the summary)`.
    """
    if isinstance(label_map, dict):
        return validate_label_map(label_map, "the label_map argument"), None, None
    if label_map is not None:
        return read_label_map(label_map), None, os.fspath(label_map)
    derived = validate_label_map(derived, "the label map derived from the data")
    if not derived:
        return derived, None, None
    path = os.path.join(os.path.dirname(os.fspath(output_path)), LABEL_MAP_FILENAME)
    if not os.path.exists(path):
        return derived, path, path
    try:
        existing = read_label_map(path)
    except DataError as error:
        raise DataError(
            f"{path} already exists and is not a valid label map ({error}); remove it, or pass "
            "label_map= to use another label map"
        ) from error
    if existing != derived:
        raise DataError(
            f"{path} already exists with a different label map {existing}; the data gives "
            f"{derived}. Convert with the existing one (kdet convert --label_map {path}, or "
            f"label_map={str(path)!r} in Python), or remove it"
        )
    return derived, None, path


def write_annotations(
    annotations,
    output_path,
    label_map,
    num_shards,
    on_error,
    progress,
    summary,
    class_map=None,
    input_path=None,
    image_hint="",
    keypoint_labels=None,
    derived_label_map=None,
):
    """Checks each annotated image, writes the good ones atomically and completes `summary`.

    A conversion that writes no image is a `DataError` (naming `input_path`, why the first
    image was skipped and `image_hint`): no record file is written and files already at the
    output paths are left as they are.

    Args:
        annotations: list of `AnnotatedImage`.
        output_path: the TFRecord output (prefix when sharded).
        label_map: the user's label map (path, dict) or None.
        num_shards, on_error, progress: as in the converters.
        summary: the `ConversionSummary` that already holds what parsing skipped or noted.
        class_map: optional dict, see `apply_class_map`; the derived label map is then
            derived from the new names.
        input_path: the annotations converted (a folder, JSON or CSV file), for messages.
        image_hint: str, where the converter looked for the images and how to point it
            elsewhere, added to the error when nothing is written.
        keypoint_labels: optional dict `{class name: keypoint labels}`, written as the
            `keypoints` of those classes in a derived label map.
        derived_label_map: dict `{id: name}` to use (and write) when `label_map` is None
            (e.g. a COCO file's categories). Defaults to the annotations' class names in
            order of first appearance, ids from 1 (`label_map_from_names`).

    Returns:
        `summary`, filled in.
    """
    if class_map:
        annotations = apply_class_map(annotations, class_map)
    if class_map or derived_label_map is None:
        derived_label_map = label_map_from_names(n for a in annotations for n in a.names)
    label_map, label_map_to_write, summary.label_map_path = resolve_label_map(
        label_map, derived_label_map, output_path
    )
    summary.label_map = label_map
    summary.boxes_per_class = {}
    name_ids = name_to_id(label_map)
    with ShardedTFRecordWriter(output_path, num_shards) as writer:
        removed = writer.removed_leftovers + remove_leftovers(
            os.path.join(os.path.dirname(os.fspath(output_path)), LABEL_MAP_FILENAME)
        )
        if removed:
            summary.notes.append(
                (
                    os.fspath(output_path),
                    f"removed {len(removed)} temporary file(s) that killed conversions to "
                    f"{os.fspath(output_path)} left: "
                    + ", ".join(os.path.basename(path) for path in removed),
                )
            )
        for annotation in tqdm(annotations, disable=not progress, unit="image", desc="convert"):
            try:
                example = _example_of(annotation, label_map, name_ids, summary)
            except DataError as error:
                handle_error(on_error, annotation.source, error, summary)
                continue
            writer.write(example)
            summary.num_images += 1
            for name in annotation.names:
                summary.boxes_per_class[name] = summary.boxes_per_class.get(name, 0) + 1
        if summary.num_images == 0:  # leaving the block through the error writes nothing
            raise _nothing_written(input_path, output_path, summary, image_hint)
    summary.output_paths = writer.paths
    if label_map_to_write:
        keypoints = {
            name_ids[name]: labels
            for name, labels in (keypoint_labels or {}).items()
            if name in name_ids
        }
        write_label_map(label_map, label_map_to_write, keypoints=keypoints)
    return summary


# How a skip for an image that cannot be found reads (the empty-conversion error looks for it).
_NO_SUCH_IMAGE = "does not exist (nor a file with the same name and one of the extensions"


def image_folder_hint(image_folder, annotations):
    """What the error of an empty conversion says about the image folder of COCO or CSV input."""
    return (
        f"Looked for the images in {image_folder or '.'} (--image_dir, image_dir= in Python; "
        f"default: the folder of {annotations})."
    )


def _nothing_written(input_path, output_path, summary, image_hint):
    """The `DataError` of a conversion in which every image was skipped (or none was found)."""
    skipped = summary.skipped
    if skipped:
        why = f"all {len(skipped)} image(s) were skipped; the first because: {skipped[0][1]}"
        if not any(_NO_SUCH_IMAGE in reason for _, reason in skipped):
            image_hint = ""  # the images were found: where they are is not the problem
    else:
        why = "it annotates no image"
    return DataError(
        f"{input_path}: no image converted, so nothing was written to {os.fspath(output_path)} "
        f"({why}). {image_hint}".rstrip()
    )


def apply_class_map(annotations, class_map):
    """Renames classes, merging or dropping them, before the label map is applied.

    Args:
        annotations: list of `AnnotatedImage`.
        class_map: dict `{class name in the data: new name, or None to leave its boxes out}`;
            classes it does not name keep their names.

    Returns:
        list of `AnnotatedImage` with the new names (and without the dropped boxes).

    Raises:
        DataError: when `class_map` names a class that no box has (a typo would otherwise
            silently keep the old name).
    """
    present = {name for annotation in annotations for name in annotation.names}
    unknown = sorted(set(class_map) - present)
    if unknown:
        raise DataError(
            f"class_map renames {unknown}, which no box has; the classes in the data are "
            f"{sorted(present)}"
        )
    mapped = []
    for annotation in annotations:
        names = [class_map.get(name, name) for name in annotation.names]
        keep = [index for index, name in enumerate(names) if name is not None]
        mapped.append(
            dataclasses.replace(
                annotation,
                boxes=np.asarray(annotation.boxes, np.float64).reshape(-1, 4)[keep],
                names=[names[index] for index in keep],
                box_sources=[annotation.box_sources[index] for index in keep],
                extras={
                    key: [values[index] for index in keep]
                    for key, values in annotation.extras.items()
                },
            )
        )
    return mapped


def exif_orientation(encoded):
    """The EXIF orientation tag of encoded image bytes (1, the stored orientation, if none)."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(encoded))
        if "exif" not in image.info:  # read from the header (a PNG's getexif() decodes it all)
            return 1
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  (a damaged EXIF block: the pixels were checked already)
        return 1


_EXIF_ORIENTATION = 0x0112
_EXIF_NOTE = (
    "has EXIF orientation {orientation}, which TensorFlow ignores: its boxes are taken in the "
    "stored pixel orientation ({width}x{height}), not as photo viewers show it"
)


def _example_of(annotation, label_map, name_ids, summary):
    encoded, image_format, height, width = read_image(annotation.image_path, annotation.source)
    orientation = exif_orientation(encoded)
    if annotation.size is not None and tuple(annotation.size) != (height, width):
        declared_height, declared_width = annotation.size
        exif = ""
        if orientation in (5, 6, 7, 8) and tuple(annotation.size) == (width, height):
            exif = _EXIF_NOTE.format(orientation=orientation, width=width, height=height)
            exif = f"; the image {exif}, so annotate the stored pixels (or save it rotated)"
        raise DataError(
            f"{annotation.source}: the annotation gives the image size {declared_width}x"
            f"{declared_height} (width x height) but {annotation.image_path} is {width}x{height}"
            f"{exif}"
        )
    if orientation != 1:
        summary.notes.append(
            (
                annotation.source,
                f"{annotation.source}: image {annotation.image_path} "
                + _EXIF_NOTE.format(orientation=orientation, width=width, height=height),
            )
        )
    ids = lookup_labels(annotation.names, label_map, name_ids, annotation.box_sources)
    example, num_clipped = make_example(
        encoded,
        image_format,
        height,
        width,
        annotation.boxes,
        ids,
        annotation.names,
        annotation.box_sources,
        filename=os.path.basename(annotation.image_path),
        source_id=annotation.source_id,
        **annotation.extras,
        **annotation.image_extras,
    )
    if num_clipped:
        summary.notes.append(
            (
                annotation.source,
                f"{annotation.source}: clipped {num_clipped} box(es) lying at most "
                f"{CLIP_TOLERANCE_PX:g} px outside the image",
            )
        )
    return example
