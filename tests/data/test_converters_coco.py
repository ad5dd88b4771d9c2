import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kdet.data.converters import convert_coco
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map
from kdet.data.tf_example import decode_tf_example


def decode_all(paths):
    return [
        {key: value.numpy() for key, value in decode_tf_example(record).items()}
        for record in tf.data.TFRecordDataset(paths)
    ]


def write_jpeg(path, height, width):
    array = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path, quality=90)


def coco_dataset(folder):
    """Three images (one without annotations), a crowd box, non-contiguous category ids."""
    (folder / "images").mkdir(parents=True)
    for name, height, width in [("a.jpg", 40, 60), ("b.jpg", 30, 30), ("c.jpg", 20, 10)]:
        write_jpeg(folder / "images" / name, height, width)
    return {
        "images": [
            {"id": 11, "file_name": "a.jpg", "height": 40, "width": 60},
            {"id": 7, "file_name": "b.jpg", "height": 30, "width": 30},
            {"id": 3, "file_name": "c.jpg", "height": 20, "width": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "bbox": [6, 4, 30, 20], "category_id": 18, "iscrowd": 0,
             "area": 500.5},
            {"id": 2, "image_id": 7, "bbox": [0, 0, 30, 30], "category_id": 1, "iscrowd": 1,
             "area": 800.0},
            {"id": 3, "image_id": 11, "bbox": [0, 0, 60, 40], "category_id": 1, "iscrowd": 0,
             "area": 2400.0},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"},
                       {"id": 90, "name": "toothbrush"}],
    }


def write_json(folder, data, name="instances.json"):
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def test_converts_like_create_coco_tf_record(tmp_path):
    data = coco_dataset(tmp_path / "coco")
    json_path = write_json(tmp_path / "coco", data)
    summary = convert_coco(
        json_path, tmp_path / "out" / "coco.record", image_dir=tmp_path / "coco" / "images",
        progress=False,
    )
    assert summary.num_images == 3
    assert summary.boxes_per_class == {"dog": 1, "person": 2}
    # The COCO category ids are the label ids.
    assert read_label_map(summary.label_map_path) == {1: "person", 18: "dog", 90: "toothbrush"}
    assert summary.label_map_path == str(tmp_path / "out" / "label_map.pbtxt")
    a, b, c = decode_all(summary.output_paths)
    np.testing.assert_allclose(a["boxes"], [[0.1, 0.1, 0.6, 0.6], [0, 0, 1, 1]], rtol=1e-6)
    assert a["labels"].tolist() == [18, 1]
    assert a["texts"].tolist() == [b"dog", b"person"]
    np.testing.assert_allclose(a["area"], [500.5, 2400.0])
    assert a["is_crowd"].tolist() == [0, 0]
    assert (a["source_id"], a["filename"]) == (b"11", b"a.jpg")
    # Crowd boxes are kept with their flag, as in the TF OD API.
    assert b["is_crowd"].tolist() == [1]
    assert b["labels"].tolist() == [1]
    # An image without annotations is written with zero boxes.
    assert c["boxes"].shape == (0, 4)
    assert (c["height"], c["width"]) == (20, 10)
    assert "toothbrush" in summary.format()


def test_image_dir_defaults_to_the_json_folder_and_label_map_by_name(tmp_path):
    data = coco_dataset(tmp_path / "coco")
    for image in data["images"]:
        image["file_name"] = "images/" + image["file_name"]
    data["annotations"].append({"id": 9, "image_id": 999, "bbox": [0, 0, 1, 1], "category_id": 1})
    json_path = write_json(tmp_path / "coco", data)
    summary = convert_coco(
        json_path, tmp_path / "x.record", label_map={1: "dog", 2: "person", 3: "toothbrush"},
        num_shards=2, progress=False,
    )
    assert summary.num_images == 3
    assert summary.label_map_path is None
    assert any("ignored 1 annotation(s) of image ids not in images" in n for _, n in summary.notes)
    a, c = decode_all(summary.output_paths[0])
    assert a["labels"].tolist() == [1, 2]
    assert decode_all(summary.output_paths[1])[0]["labels"].tolist() == [2]


def truncate_image(folder, data):
    path = folder / "images" / "b.jpg"
    path.write_bytes(path.read_bytes()[:200])


def remove_image(folder, data):
    os.remove(folder / "images" / "b.jpg")


def box_outside(folder, data):
    data["annotations"][1]["bbox"] = [5, 5, 30, 30]


def empty_box(folder, data):
    data["annotations"][1]["bbox"] = [5, 5, 0, 10]


def unknown_category(folder, data):
    data["annotations"][1]["category_id"] = 5


def size_mismatch(folder, data):
    data["images"][1]["height"] = 31


def bad_bbox(folder, data):
    data["annotations"][1]["bbox"] = [5, 5, "10"]


def missing_file_name(folder, data):
    del data["images"][1]["file_name"]


BOX = "box (xmin, ymin, xmax, ymax)"
BAD_CASES = {
    "truncated image": (truncate_image, "b.jpg cannot be decoded (truncated or corrupt?)"),
    "missing image": (remove_image, "b.jpg does not exist"),
    "box outside": (
        box_outside,
        f"annotations[1] (id 2) (person): {BOX} = (5, 5, 35, 35) lies outside the 30x30 image",
    ),
    "empty box": (empty_box, f"annotations[1] (id 2) (person): {BOX} = (5, 5, 5, 15) is empty"),
    "unknown category": (
        unknown_category,
        "annotations[1] (id 2): category_id 5 is not the id of an entry of categories",
    ),
    "size mismatch": (size_mismatch, "gives the image size 30x31 (width x height) but"),
    "bad bbox": (bad_bbox, "annotations[1] (id 2): 'bbox' is [5, 5, '10']; expected [x, y,"),
    "missing file_name": (missing_file_name, "images[1]: missing 'file_name'"),
}


@pytest.mark.parametrize("on_error", ["skip", "raise"])
@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input(tmp_path, case, on_error):
    folder = tmp_path / "coco"
    data = coco_dataset(folder)
    make_bad, message = BAD_CASES[case]
    make_bad(folder, data)
    json_path = write_json(folder, data)
    output = tmp_path / "out" / "x.record"
    kwargs = dict(image_dir=folder / "images", on_error=on_error, progress=False)
    if on_error == "raise":
        with pytest.raises(DataError) as info:
            convert_coco(json_path, output, **kwargs)
        assert message in str(info.value) and str(json_path) in str(info.value)
        assert not output.parent.exists() or os.listdir(output.parent) == []
        return
    summary = convert_coco(json_path, output, **kwargs)
    assert summary.num_images == 2
    ((source, reason),) = summary.skipped
    assert source.startswith(f"{json_path} images[1]")
    assert message in reason
    assert [r["source_id"] for r in decode_all(summary.output_paths)] == [b"11", b"3"]


def test_malformed_json_is_always_an_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,}\n]}')
    for on_error in ("skip", "raise"):
        with pytest.raises(DataError, match=r"bad.json: malformed JSON at line 2, column 12"):
            convert_coco(path, tmp_path / "x.record", on_error=on_error)
    path.write_text('{"images": []}')
    with pytest.raises(DataError, match="with the lists 'images', 'categories'"):
        convert_coco(path, tmp_path / "x.record")
    path.write_text('{"images": [], "categories": [{"id": 0, "name": "background"}]}')
    with pytest.raises(DataError, match="categories: id 0 is invalid"):
        convert_coco(path, tmp_path / "x.record")
    data = coco_dataset(tmp_path / "coco")
    data["images"][2]["id"] = 11
    with pytest.raises(DataError, match=r"image ids \['11'\] appear more than once"):
        convert_coco(write_json(tmp_path, data), tmp_path / "x.record")
    assert sorted(os.listdir(tmp_path)) == ["bad.json", "coco", "instances.json"]
