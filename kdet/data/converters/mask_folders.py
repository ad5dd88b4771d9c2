"""Instance masks as one PNG per object, in a folder per image → TFRecords of TF OD API
`tf.train.Example`s with PNG instance masks.

The layout (as many segmentation tools and Kaggle datasets export it):

```
images/<stem>.<ext>                                   the image
masks/<stem>/<class name>[_<anything>].png            one binary PNG per object
```
"""

import os

import numpy as np

from kdet.data.converters._common import IMAGE_EXTENSIONS
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
from kdet.data.label_map import read_label_map
from kdet.data.label_map import validate_label_map

MASK_EXTENSION = ".png"
# The most image paths a note lists by name.
_LISTED = 10


def convert_mask_folders(
    mask_dir,
    output_path,
    image_dir=None,
    label_map=None,
    num_shards=1,
    on_error="skip",
    progress=True,
    class_map=None,
):
    """Converts images with one mask PNG per object to TFRecords with PNG instance masks.

    Every image of `image_dir` (`.jpg .jpeg .png .bmp .gif`, sorted by name) becomes one
    record. Its objects are the PNG files of `mask_dir/<image stem>/`, sorted by name, each
    named `<class name>.png` or `<class name>_<anything>.png` (`car_1.png`, `car_2.png`,
    `person_0007.png`): a pixel is the object where the PNG is nonzero (any channel;
    transparency ignored; a palette PNG by its indices). The box of an object is the extent of
    its mask, `[xmin, ymin, xmax + 1, ymax + 1]` in pixels (as pycocotools' `toBbox`), and the
    mask is stored as a PNG of 0/1 in `image/object/mask` (read it with `mask_type:
    PNG_MASKS`). Records are written as `convert_voc` writes them (image bytes as they are,
    class name and label-map id, `image/source_id` the stem).

    Checked, with errors naming the files: each mask must be a PNG of its image's size; a
    mask folder must have an image (`<stem>` with one of the extensions); two images of one
    stem are ambiguous. An empty mask (no nonzero pixel) has no box: it is left out and
    listed in `summary.notes` with its file name. An image without a mask folder is written
    without objects (a negative image), and the notes say how many.

    With a label map, a file name takes the longest class name of it that it starts with
    (followed by `_` or nothing), so class names may hold `_` (`traffic_light_3.png`);
    without one, the class name is the part before the first `_`.

    Args:
        mask_dir: str or path-like. The folder of mask folders, one per image stem.
        output_path: str or path-like. The TFRecord file, or the shard prefix when
            `num_shards > 1`.
        image_dir: str or path-like. The folder of the images. Defaults to the `images/`
            folder beside `mask_dir`.
        label_map: a `.pbtxt` path or a dict `{id: name}`. Defaults to `None`: ids 1..K for the
            sorted class names, written as `label_map.pbtxt` next to `output_path`.
        num_shards: int. Number of output files. Defaults to `1`.
        on_error: `"skip"` or `"raise"`, see `convert_voc`. Defaults to `"skip"`.
        progress: bool. Show a progress bar. Defaults to `True`.
        class_map: optional dict `{class name: new name, or None}`, see `convert_voc`.

    Returns:
        A `ConversionSummary`.

    Raises:
        DataError: with `on_error="raise"` for any bad image or mask; always when `mask_dir`
            or the image folder is missing, the label map is invalid, or no image could be
            converted.

    Example:
    >>> summary = kdet.data.converters.convert_mask_folders("data/masks", "out/train.record",
    ...                                                     image_dir="data/images")
    >>> print(summary)
    """
    check_on_error(on_error)
    mask_dir = os.fspath(mask_dir)
    if not os.path.isdir(mask_dir):
        raise DataError(f"{mask_dir} does not exist; expected a folder of mask folders, "
                        "<mask_dir>/<image stem>/<class name>[_<anything>].png")
    image_folder = (
        os.fspath(image_dir) if image_dir is not None
        else os.path.join(os.path.dirname(os.path.normpath(mask_dir)), "images")
    )
    if not os.path.isdir(image_folder):
        given = "" if image_dir is not None else " (the images/ folder beside the masks)"
        raise DataError(f"image folder {image_folder}{given} does not exist; pass the folder "
                        "of the images as --image_dir (image_dir= in Python)")
    class_names = _class_names_of(label_map)
    summary = ConversionSummary()
    images = {
        stem: names
        for stem, names in ImageFinder().images_by_stem(image_folder).items()
        if os.path.isfile(os.path.join(image_folder, names[0]))
    }
    for stem in sorted(set(_mask_folders(mask_dir)) - set(images)):
        folder = os.path.join(mask_dir, stem)
        handle_error(on_error, folder, DataError(
            f"{folder}: no image {stem}.<ext> in {image_folder} for these masks (looked for "
            f"the extensions {' '.join(IMAGE_EXTENSIONS)})"
        ), summary)
    annotations, negatives = [], []
    for stem in sorted(images):
        folder = os.path.join(mask_dir, stem)
        try:
            if len(images[stem]) > 1:
                raise DataError(
                    f"{folder}: the images {' and '.join(images[stem])} in {image_folder} share "
                    "the stem its masks belong to; keep one"
                )
            image_path = os.path.join(image_folder, images[stem][0])
            annotations.append(_read_mask_folder(folder, stem, image_path, class_names,
                                                 summary.notes))
            if not os.path.isdir(folder):
                negatives.append(image_path)
        except DataError as error:
            handle_error(on_error, folder, error, summary)
    if negatives:
        listed = ", ".join(negatives[:_LISTED]) + (" …" if len(negatives) > _LISTED else "")
        note = (f"{len(negatives)} image(s) have no mask folder in {mask_dir}: written without "
                f"objects: {listed}")
        summary.notes.append((mask_dir, note))
    return write_annotations(
        annotations,
        output_path,
        label_map,
        num_shards,
        on_error,
        progress,
        summary,
        class_map,
        input_path=mask_dir,
        image_hint=f"Looked for the images in {image_folder} (--image_dir, image_dir= in Python).",
    )


def _class_names_of(label_map):
    """The class names a given label map (path or dict) has, or None."""
    if label_map is None:
        return None
    if isinstance(label_map, dict):
        return list(validate_label_map(label_map, "the label_map argument").values())
    return list(read_label_map(label_map).values())


def _mask_folders(mask_dir):
    return [name for name in os.listdir(mask_dir) if os.path.isdir(os.path.join(mask_dir, name))]


def _class_name(file_stem, class_names, path):
    """The class of mask file `<class name>[_<anything>]`: the longest of `class_names` it
    starts with, or (without a label map, or when none fits) the part before the first `_`."""
    fitting = [name for name in class_names or []
               if file_stem == name or file_stem.startswith(name + "_")]
    name = max(fitting, key=len) if fitting else file_stem.split("_", 1)[0]
    if not name:
        raise DataError(f"{path}: the file name has no class name; expected "
                        "<class name>[_<anything>].png")
    return name


def _read_mask_folder(folder, stem, image_path, class_names, notes):
    """The `AnnotatedImage` of one image and the mask PNGs of its folder (none if it has no
    folder): boxes from the masks' extents, empty masks left out with a note."""
    height, width = image_header_size(image_path)
    files = sorted(
        name for name in (os.listdir(folder) if os.path.isdir(folder) else [])
        if name.lower().endswith(MASK_EXTENSION)
    )
    boxes, names, box_sources, masks = [], [], [], []
    for file_name in files:
        path = os.path.join(folder, file_name)
        mask = read_png_mask(path, image_path, (height, width)) != 0
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            notes.append((path, f"{path}: empty mask (no nonzero pixel): no object, left out"))
            continue
        name = _class_name(os.path.splitext(file_name)[0], class_names, path)
        boxes.append([columns[0], rows[0], columns[-1] + 1, rows[-1] + 1])
        names.append(name)
        box_sources.append(f"{path} ({name})")
        masks.append(MaskFile(path))
    return AnnotatedImage(
        source=folder if files else image_path,
        image_path=image_path,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        names=names,
        box_sources=box_sources,
        source_id=stem,
        size=(height, width),
        extras={"masks": masks},
    )
