"""COCO instances (and person keypoints) JSON → TFRecords of TF OD API `tf.train.Example`s."""

import collections
import json
import numbers
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
from kdet.data.label_map import validate_label_map


def convert_coco(
    json_path,
    output_path,
    image_dir=None,
    label_map=None,
    num_shards=1,
    on_error="skip",
    progress=True,
    class_map=None,
    allow_outside_image_dir=False,
    include_masks=False,
):
    """Converts a COCO instances JSON file to TFRecords like the TF OD API's
    `create_coco_tf_record.py`.

    One record per entry of `images`, in file order, images without annotations included (zero
    boxes). Boxes (`bbox`, `[x, y, width, height]` in pixels) are stored normalized; `iscrowd`
    goes to `image/object/is_crowd` and `area` to `image/object/area`. Crowd boxes are kept with
    their flag, as the TF OD API does. `image/source_id` is the COCO image id, which COCO
    evaluation matches on. The COCO category ids are the label ids and the category names the
    class names (the TF OD API's 90-id COCO label map), unless `label_map` is given.

    Keypoints (a COCO person keypoints JSON, e.g. `person_keypoints_val2017.json`): when
    categories list `keypoints` names, every object gets K keypoints (K: the longest list) in
    `image/object/keypoint/x|y` (normalized), `/visibility` (COCO `v`), `/num` and `/text`, as
    the TF OD API's `create_coco_tf_record.py --*_keypoint_annotations_file` writes them; an
    object without `keypoints` gets K not-labelled ones (v = 0). A derived label map lists the
    category's keypoint names (`keypoints { id label }`). Labelled keypoints must lie inside
    the image (up to 1 px, clipped).

    Instance masks (`include_masks=True`, as `create_coco_tf_record.py --include_masks`): each
    annotation's `segmentation` — polygons `[[x1, y1, x2, y2, …], …]` (the parts merged),
    uncompressed RLE `{"counts": [...], "size": [h, w]}` or compressed RLE (`counts` a string) —
    is rasterized by pycocotools (`frPyObjects`, `decode`) and stored as one PNG of 0/1 per
    object in `image/object/mask` (read it with `mask_type: PNG_MASKS`). An annotation without
    a usable segmentation makes the image bad.

    Images are checked as in `convert_voc`: they must decode completely and have the JSON
    `width`/`height`; boxes at most 1 px outside the image are clipped, others (and empty
    boxes) make the image bad. Unlike the TF OD API script, which silently drops such
    annotations, the whole image is skipped (or the conversion stops), so no image is written
    with some of its objects missing.

    Args:
        json_path: str or path-like. The COCO instances JSON (`images`, `categories`,
            optionally `annotations`).
        output_path: str or path-like. The TFRecord file, or the shard prefix when
            `num_shards > 1`.
        image_dir: str or path-like. Folder the `file_name`s are relative to; defaults to the
            JSON file's folder.
        label_map: a `.pbtxt` path or a dict `{id: name}`: category names are looked up in it.
            Defaults to `None`: the JSON `categories` are the label map, written as
            `label_map.pbtxt` next to `output_path`.
        num_shards: int. Number of output files. Defaults to `1`.
        on_error: `"skip"` or `"raise"`, see `convert_voc`. Defaults to `"skip"`.
        progress: bool. Show a progress bar. Defaults to `True`.
        class_map: optional dict `{class name: new name, or None}`: merges classes (`{"Alive":
            "Tree", "Dead": "Tree"}`) or leaves a class's boxes out (`{"Unsure": None}`) before
            the label map is applied; classes it does not name keep their names, and a name
            no box has is an error. The derived label map then numbers the new names 1..K
            in sorted order instead of keeping the COCO category ids. Defaults to `None`.
        allow_outside_image_dir: bool. Read images whose `file_name` is absolute or leads out
            of `image_dir` with `..`. Defaults to `False`: such an image is bad input.
        include_masks: bool. Write each object's `segmentation` as a PNG instance mask.
            Defaults to `False`.

    Returns:
        A `ConversionSummary`.

    Raises:
        DataError: with `on_error="raise"` for any bad image or annotation; always when the
            JSON itself is unreadable or lacks `images`/`categories`.

    Example:
    >>> summary = kdet.data.convert_coco("annotations/instances_val2017.json",
    ...                                  "out/coco_val.record", image_dir="val2017",
    ...                                  num_shards=10)
    """
    check_on_error(on_error)
    json_path = os.fspath(json_path)
    data = _load_json(json_path)
    categories = _categories(data, json_path)
    keypoint_names = _keypoint_names(data, json_path)
    image_ids = _image_ids(data, json_path)
    by_image = _annotations_by_image(data, json_path)
    image_folder = os.fspath(image_dir) if image_dir is not None else os.path.dirname(json_path)
    summary = ConversionSummary()
    finder = ImageFinder(allow_outside_image_dir)
    annotations = []
    for index, image in enumerate(data["images"]):
        source = f"{json_path} images[{index}]"
        try:
            annotations.append(
                _read_image_entry(
                    image, by_image, categories, image_folder, finder, source, json_path,
                    summary.notes, keypoint_names, include_masks,
                )
            )
        except DataError as error:
            handle_error(on_error, source, error, summary)
    orphans = sum(len(entries) for key, entries in by_image.items() if key not in image_ids)
    if orphans:
        summary.notes.append(
            (json_path, f"{json_path}: ignored {orphans} annotation(s) of image ids not in images")
        )
    return write_annotations(
        annotations,
        output_path,
        label_map,
        num_shards,
        on_error,
        progress,
        summary,
        class_map,
        input_path=json_path,
        image_hint=image_folder_hint(image_folder, "the JSON file"),
        keypoint_labels={categories[i]: names for i, names in keypoint_names.items()},
        derived_label_map=categories,
    )


def _load_json(json_path):
    try:
        with open(json_path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise DataError(f"{json_path} does not exist; expected a COCO instances JSON") from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"{json_path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise DataError(
            f"{json_path}: the JSON is nested too deeply for Python's parser; expected a COCO "
            "instances JSON (a few levels of objects and lists)"
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"{json_path}: not UTF-8 text (byte {error.start}: {error.reason}); expected a COCO "
            "instances JSON"
        ) from None
    if not (
        isinstance(data, dict)
        and all(isinstance(data.get(key), list) for key in ("images", "categories"))
        and isinstance(data.get("annotations", []), list)
    ):
        raise DataError(
            f"{json_path}: expected a COCO instances JSON object with the lists 'images', "
            "'categories' and (optionally) 'annotations'"
        )
    return data


def _categories(data, json_path):
    label_map = {}
    for index, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise DataError(f"{json_path} categories[{index}]: expected {{'id': …, 'name': …}}")
        label_map[category["id"]] = category["name"]
    return validate_label_map(label_map, f"{json_path} categories")


def _keypoint_names(data, json_path):
    """`{category id: [keypoint names]}` of the categories that list `keypoints`."""
    names = {}
    for index, category in enumerate(data["categories"]):
        points = category.get("keypoints")
        if points is None:
            continue
        if not isinstance(points, list) or not all(isinstance(n, str) and n for n in points):
            raise DataError(
                f"{json_path} categories[{index}]: 'keypoints' is {points!r}; expected a list "
                "of keypoint names"
            )
        if len(set(points)) < len(points):
            raise DataError(f"{json_path} categories[{index}]: 'keypoints' repeats a name")
        if points:
            names[category["id"]] = points
    return names


def _read_keypoints(annotation, names, num_keypoints, where):
    """`(keypoints [K, 2] (y, x) pixels, visibilities [K])` of one annotation: its COCO
    `keypoints` `[x1, y1, v1, …]` for the `names` of its category, padded to `num_keypoints`
    with not-labelled ones."""
    points = np.zeros([num_keypoints, 2])
    visibilities = np.zeros([num_keypoints], np.int64)
    values = annotation.get("keypoints")
    if values is None:
        return points, visibilities
    if not names or not isinstance(values, list) or len(values) != 3 * len(names):
        expected = f"3 * {len(names)} values [x1, y1, v1, …]" if names else "none"
        raise DataError(
            f"{where}: 'keypoints' has {len(values) if isinstance(values, list) else values!r}"
            f" values; expected {expected} (its category's keypoints)"
        )
    for index in range(len(names)):
        x, y = (_number(v, where, "keypoints") for v in values[3 * index : 3 * index + 2])
        visibility = _integer(values[3 * index + 2], where, "keypoints")
        if visibility not in (0, 1, 2):
            raise DataError(
                f"{where}: keypoint {index} ({names[index]}) has visibility {visibility}; "
                "expected 0 (not labelled), 1 (labelled, not visible) or 2 (visible)"
            )
        points[index], visibilities[index] = (y, x), visibility
    return points, visibilities


def _segmentation_mask(segmentation, height, width, where):
    """uint8 `[height, width]` 0/1 mask of a COCO `segmentation` (polygons, uncompressed or
    compressed RLE), rasterized by pycocotools as COCO's own `annToMask` does."""
    from pycocotools import mask as coco_mask

    def rle_of(value):
        if not isinstance(value.get("size"), list) or list(value["size"]) != [height, width]:
            raise DataError(
                f"{where}: the RLE 'segmentation' has size {value.get('size')!r}; expected "
                f"[{height}, {width}], the image's [height, width]"
            )
        counts = value.get("counts")
        if isinstance(counts, str):
            return {"size": [height, width], "counts": counts.encode("ascii")}
        if isinstance(counts, list) and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
        ):
            if sum(counts) != height * width:
                raise DataError(
                    f"{where}: the RLE 'segmentation' counts add up to {sum(counts)} pixels; "
                    f"expected {height * width} ({height}x{width})"
                )
            return coco_mask.frPyObjects(value, height, width)
        raise DataError(
            f"{where}: the RLE 'segmentation' has counts {str(counts)[:40]!r}; expected a list "
            "of run lengths or a compressed RLE string"
        )

    if isinstance(segmentation, dict):
        try:
            return coco_mask.decode(rle_of(segmentation)).astype(np.uint8)
        except (ValueError, TypeError) as error:
            raise DataError(f"{where}: the RLE 'segmentation' cannot be decoded: {error}") from None
    if isinstance(segmentation, list) and segmentation:
        polygons = []
        for part in segmentation:
            if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
                raise DataError(
                    f"{where}: a 'segmentation' polygon is {str(part)[:60]}; expected a list "
                    "[x1, y1, x2, y2, ...] of at least 3 points"
                )
            polygons.append([_number(v, where, "segmentation") for v in part])
        masks = coco_mask.decode(coco_mask.frPyObjects(polygons, height, width))
        return np.amax(masks, axis=2).astype(np.uint8)
    raise DataError(
        f"{where}: 'segmentation' is {str(segmentation)[:60]}; expected polygons "
        "[[x1, y1, …], …] or an RLE {'counts', 'size'} (include_masks needs one per object)"
    )


def _image_ids(data, json_path):
    counts = collections.Counter(
        str(image.get("id")) for image in data["images"] if isinstance(image, dict)
    )
    duplicates = sorted(image_id for image_id, count in counts.items() if count > 1)
    if duplicates:
        raise DataError(f"{json_path}: image ids {duplicates[:10]} appear more than once in images")
    return set(counts)


def _annotations_by_image(data, json_path):
    by_image = collections.defaultdict(list)
    for index, annotation in enumerate(data.get("annotations", [])):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise DataError(f"{json_path} annotations[{index}]: expected an object with image_id")
        by_image[str(annotation["image_id"])].append((index, annotation))
    return by_image


def _number(value, where, key):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise DataError(f"{where}: '{key}' is {value!r}; expected a finite number")
    return float(value)


def _integer(value, where, key):
    number = _number(value, where, key)
    if number != int(number):
        raise DataError(f"{where}: '{key}' is {value!r}; expected a whole number")
    return int(number)


def _read_image_entry(
    image, by_image, categories, image_folder, finder, source, json_path, notes, keypoint_names,
    include_masks=False,
):
    if not isinstance(image, dict):
        raise DataError(f"{source}: expected an object with id, file_name, width, height")
    missing = [key for key in ("id", "file_name", "width", "height") if key not in image]
    if missing:
        raise DataError(f"{source}: missing {', '.join(repr(key) for key in missing)}")
    source_id = str(image["id"])
    entry = f"{source} (id {source_id})"
    size = tuple(_integer(image[key], entry, key) for key in ("height", "width"))
    boxes, names, box_sources, is_crowd, area = [], [], [], [], []
    num_keypoints = max(map(len, keypoint_names.values()), default=0)
    keypoints, visibilities, masks = [], [], []
    for index, annotation in by_image.get(source_id, []):
        where = f"{json_path} annotations[{index}] (id {annotation.get('id')})"
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"{where}: 'bbox' is {bbox!r}; expected [x, y, width, height]")
        x, y, width, height = (_number(value, where, "bbox") for value in bbox)
        category_id = annotation.get("category_id")
        if not isinstance(category_id, int) or category_id not in categories:
            raise DataError(
                f"{where}: category_id {category_id!r} is not the id of an entry of categories"
            )
        boxes.append([x, y, x + width, y + height])
        names.append(categories[category_id])
        box_sources.append(f"{where} ({names[-1]})")
        is_crowd.append(_integer(annotation.get("iscrowd", 0), where, "iscrowd"))
        area.append(_number(annotation.get("area", width * height), where, "area"))
        if num_keypoints:
            points, flags = _read_keypoints(
                annotation, keypoint_names.get(category_id), num_keypoints, where
            )
            keypoints.append(points)
            visibilities.append(flags)
        if include_masks:
            masks.append(_segmentation_mask(annotation.get("segmentation"), *size, where))
    extras = {"is_crowd": is_crowd, "area": area}
    if include_masks:
        extras["masks"] = masks
    image_extras = {}
    if num_keypoints:
        extras.update(keypoints=keypoints, keypoint_visibilities=visibilities)
        # Names per object only when one list names them all (COCO: the person keypoints).
        lists = {tuple(names_) for names_ in keypoint_names.values()}
        if len(lists) == 1:
            image_extras["keypoint_names"] = list(lists.pop())
    image_path = finder.find(image_folder, image["file_name"], f"{entry} 'file_name'", notes)
    return AnnotatedImage(
        source=f"{source} (id {source_id}, {image['file_name']})",
        image_path=image_path,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        names=names,
        box_sources=box_sources,
        source_id=source_id,
        size=size,
        extras=extras,
        image_extras=image_extras,
    )
