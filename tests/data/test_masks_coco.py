"""COCO segmentations (polygons, RLE) and arrays → PNG instance masks in records, and back."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageDraw
from pycocotools import mask as coco_mask

from kdet.data.converters import convert_coco
from kdet.data.converters import create_example_from_arrays
from kdet.data.errors import DataError
from kdet.data.tf_example import decode_tf_example

DATA = pathlib.Path(__file__).parent
FIXTURE = DATA / "coco_masks"
REFERENCE = DATA / "tfod_reference" / "coco_masks"
# imgaug's quokka and its annotations, shipped with kdet (kdet/datasets/data/README.md).
QUOKKA = DATA.parents[1] / "kdet" / "datasets" / "data"


def convert(tmp_path, json_path, image_dir, **kwargs):
    output = tmp_path / "out" / "masks.record"
    convert_coco(
        json_path, output, image_dir=image_dir, progress=False, include_masks=True, **kwargs
    )
    return [
        decode_tf_example(serialized, mask_type="png")
        for serialized in tf.data.TFRecordDataset(str(output))
    ]


def test_masks_equal_those_of_tf_od_api_create_coco_tf_record(tmp_path):
    """Polygons (two parts merged) and a crowd's uncompressed RLE give the masks the TF OD
    API's `create_coco_tf_record.py --include_masks` writes (as its decoder reads them)."""
    expected = np.load(REFERENCE / "decoded.npz")
    decoded = convert(tmp_path, FIXTURE / "instances.json", FIXTURE / "images")
    assert len(decoded) == 3
    for index, example in enumerate(decoded):
        np.testing.assert_array_equal(
            example["masks"].numpy().astype(np.float32), expected[f"png_masks_{index}"]
        )


def write_json(tmp_path, segmentation, size=(24, 32)):
    data = json.loads((FIXTURE / "instances.json").read_text())
    data["images"] = data["images"][:1]
    data["annotations"] = [{**data["annotations"][0], "segmentation": segmentation}]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_compressed_rle(tmp_path):
    mask = np.zeros([24, 32], np.uint8)
    mask[3:9, 4:20] = 1
    rle = coco_mask.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    (example,) = convert(tmp_path, write_json(tmp_path, rle), FIXTURE / "images")
    np.testing.assert_array_equal(example["masks"][0], mask)


@pytest.mark.parametrize(
    "segmentation, message",
    [
        (None, "'segmentation' is None; expected polygons"),
        ([[1, 1, 5, 5]], "at least 3 points"),
        ({"counts": [1, 2], "size": [24, 32]}, "add up to 3 pixels; expected 768"),
        ({"counts": "abc", "size": [10, 10]}, r"size \[10, 10\]; expected \[24, 32\]"),
    ],
)
def test_bad_segmentations_name_the_annotation(tmp_path, segmentation, message):
    with pytest.raises(DataError, match=r"annotations\[0\] \(id 1\).*" + message):
        convert(
            tmp_path, write_json(tmp_path, segmentation), FIXTURE / "images", on_error="raise"
        )


def test_the_quokka_polygon_converts_to_a_record_and_back_exactly(tmp_path):
    """issue 19: the imgaug quokka polygon → COCO JSON → record → the same mask."""
    annotations = json.loads((QUOKKA / "quokka_annotations.json").read_text())
    points = [(p["x"], p["y"]) for p in annotations["polygons"][0]["keypoints"]]
    polygon = [float(v) for point in points for v in point]
    xs, ys = polygon[0::2], polygon[1::2]
    width, height = Image.open(QUOKKA / "quokka.jpg").size
    data = {
        "images": [{"id": 1, "file_name": "quokka.jpg", "height": height, "width": width}],
        "categories": [{"id": 1, "name": "animal"}],
        "annotations": [{
            "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
            "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            "segmentation": [polygon],
        }],
    }
    json_path = tmp_path / "quokka.json"
    json_path.write_text(json.dumps(data))
    (example,) = convert(tmp_path, json_path, QUOKKA)
    mask = example["masks"].numpy()
    assert mask.shape == (1, height, width)
    # Exactly COCO's rasterization of the polygon (pycocotools, as COCO's annToMask)...
    expected = coco_mask.decode(coco_mask.frPyObjects([polygon], height, width))[..., 0]
    np.testing.assert_array_equal(mask[0], expected)
    # ...which is the polygon: an independent fill agrees but for edge pixels.
    drawn = Image.new("L", (width, height))
    ImageDraw.Draw(drawn).polygon(points, fill=1)
    drawn = np.asarray(drawn) > 0
    iou = np.sum(drawn & (mask[0] > 0)) / np.sum(drawn | (mask[0] > 0))
    assert iou > 0.99 and mask[0].sum() > 100_000


def test_create_example_from_arrays_with_masks():
    masks = np.zeros([1, 24, 32], bool)
    masks[0, 6:18, 4:16] = True
    example = create_example_from_arrays(
        np.zeros([24, 32, 3], np.uint8), [[4, 6, 16, 18]], ["cat"], {1: "cat"}, masks=masks,
        mask_type="numerical",
    )
    decoded = decode_tf_example(example.SerializeToString(), mask_type="numerical")
    np.testing.assert_array_equal(decoded["masks"], masks)
    with pytest.raises(DataError, match=r"img.png: masks have shape \(1, 32, 24\)"):
        create_example_from_arrays(
            np.zeros([24, 32, 3], np.uint8), [[4, 6, 16, 18]], ["cat"], {1: "cat"},
            masks=np.zeros([1, 32, 24]), filename="img.png",
        )
