import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kdet.data.converters import convert_csv
from kdet.data.converters import convert_voc
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map
from kdet.data.tf_example import decode_tf_example

HEADER = "image_path,xmin,ymin,xmax,ymax,label\n"
LABEL_MAP = {1: "cat", 2: "dog"}


def decode_all(paths):
    return [
        {key: value.numpy() for key, value in decode_tf_example(record).items()}
        for record in tf.data.TFRecordDataset(paths)
    ]


def test_bundled_deepforest_csv_gives_the_same_records_as_the_xml(data_dir, tmp_path):
    folder = data_dir / "deepforest"
    # One CSV for both tiles, in the folder of the output; images come from image_dir.
    lines = [(folder / f"{stem}.csv").read_text().splitlines() for stem in ("OSBS_029", "SOAP_061")]
    csv_path = tmp_path / "both.csv"
    csv_path.write_text("\n".join(lines[0] + lines[1][1:]) + "\n")

    from_csv = convert_csv(csv_path, tmp_path / "csv" / "t.rec", image_dir=folder, progress=False)
    from_xml = convert_voc(folder, tmp_path / "xml" / "t.record", progress=False)

    assert from_csv.num_images == 2
    assert from_csv.boxes_per_class == {"Tree": 61, "Dead": 28, "Alive": 9}
    assert read_label_map(from_csv.label_map_path) == {1: "Alive", 2: "Dead", 3: "Tree"}
    assert len(from_csv.notes) == 1  # OSBS_029.tif → OSBS_029.png
    csv_records, xml_records = decode_all(from_csv.output_paths), decode_all(from_xml.output_paths)
    for csv_record, xml_record, count in zip(csv_records, xml_records, [61, 37]):
        assert csv_record["boxes"].shape == (count, 4)
        np.testing.assert_array_equal(csv_record["boxes"], xml_record["boxes"])
        np.testing.assert_array_equal(csv_record["labels"], xml_record["labels"])
        np.testing.assert_array_equal(csv_record["texts"], xml_record["texts"])
        np.testing.assert_array_equal(csv_record["image"], xml_record["image"])
    # The CSV has no VOC flags: absent keys decode as 0.
    assert csv_records[0]["difficult"].tolist() == [0] * 61


def write_png(path, height=32, width=48):
    array = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)


@pytest.fixture
def csv_dir(tmp_path):
    folder = tmp_path / "csv"
    (folder / "images").mkdir(parents=True)
    write_png(folder / "images" / "a.png")
    write_png(folder / "images" / "empty.png")
    write_png(folder / "images" / "negative.jpg")
    return folder


def test_grouping_order_empty_rows_and_extra_columns(csv_dir, tmp_path):
    (csv_dir / "boxes.csv").write_text(
        "label,image_path,xmin,ymin,xmax,ymax,score\n"
        "dog,images/a.png,0,0,48,32,0.5\n"
        "dog,images/empty.png,,,,,\n"
        "cat,images/a.png,1.5,2,30,20,0.9\n"
        "Tree,images/negative.png,0,0,0,0,\n"  # the DeepForest way to list a negative image
    )
    summary = convert_csv(csv_dir / "boxes.csv", tmp_path / "out.record", progress=False)
    assert summary.num_images == 3
    assert summary.boxes_per_class == {"dog": 1, "cat": 1}
    assert summary.label_map == {1: "cat", 2: "dog"}
    a, empty, negative = decode_all(summary.output_paths)
    np.testing.assert_allclose(a["boxes"], [[0, 0, 1, 1], [2 / 32, 1.5 / 48, 20 / 32, 30 / 48]])
    assert a["labels"].tolist() == [2, 1]
    assert a["source_id"] == b"images/a.png"
    assert empty["boxes"].shape == negative["boxes"].shape == (0, 4)
    assert negative["filename"] == b"negative.jpg"
    assert negative["format"] == b"jpeg"


def test_missing_columns_are_an_error_whatever_the_policy(csv_dir, tmp_path):
    (csv_dir / "boxes.csv").write_text("image_path,x1,y1,xmax,ymax\na.png,1,1,5,5\n")
    for on_error in ("skip", "raise"):
        with pytest.raises(DataError) as info:
            convert_csv(csv_dir / "boxes.csv", tmp_path / "out.record", on_error=on_error)
        assert "the header lacks the column(s) xmin, ymin, label" in str(info.value)
        assert str(csv_dir / "boxes.csv") in str(info.value)
    (csv_dir / "empty.csv").write_text("")
    with pytest.raises(DataError, match="lacks the column"):
        convert_csv(csv_dir / "empty.csv", tmp_path / "out.record")
    with pytest.raises(DataError, match="does not exist"):
        convert_csv(csv_dir / "nope.csv", tmp_path / "out.record")
    assert not (tmp_path / "out.record").exists()


def truncate(folder):
    data = (folder / "images" / "a.png").read_bytes()
    (folder / "images" / "b.png").write_bytes(data[: len(data) // 2])


BOX = "box (xmin, ymin, xmax, ymax)"
# (rows for image b, extra setup, message). Row numbers: header 1, image a rows 2-3.
BAD_CASES = {
    "truncated image": ("images/b.png,1,1,5,5,cat\n", truncate, "cannot be decoded"),
    "missing image": ("images/b.png,1,1,5,5,cat\n", None, "images/b.png does not exist"),
    "box outside": (
        "images/b.png,1,1,5,5,cat\nimages/b.png,40,1,50,5,cat\n",
        write_png,
        f"row 5 (cat): {BOX} = (40, 1, 50, 5) lies outside the 48x32 image",
    ),
    "xmin > xmax": (
        "images/b.png,6,1,5,5,cat\n",
        write_png,
        f"row 4 (cat): {BOX} = (6, 1, 5, 5) is empty or inverted",
    ),
    "unknown class": (
        "images/b.png,1,1,5,5,zebra\n",
        write_png,
        "row 4 (zebra): class 'zebra' is not in the label map",
    ),
    "not a number": (
        "images/b.png,1,one,5,5,cat\n",
        write_png,
        "row 4: xmin,ymin,xmax,ymax are 1,one,5,5; expected four numbers",
    ),
    "empty label": ("images/b.png,1,1,5,5,\n", write_png, "row 4: the label is empty"),
    "partly empty box": ("images/b.png,1,,5,5,cat\n", write_png, "expected four numbers"),
}


def make_bad_csv(csv_dir, case):
    rows, setup, message = BAD_CASES[case]
    if setup is write_png:
        write_png(csv_dir / "images" / "b.png")
    elif setup is not None:
        setup(csv_dir)
    path = csv_dir / "boxes.csv"
    path.write_text(HEADER + "images/a.png,1,2,30,20,cat\nimages/a.png,0,0,48,32,dog\n" + rows)
    return path, message


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_skipped(csv_dir, tmp_path, case):
    path, message = make_bad_csv(csv_dir, case)
    summary = convert_csv(path, tmp_path / "out.record", label_map=LABEL_MAP, progress=False)
    assert summary.num_images == 1
    ((source, reason),) = summary.skipped
    assert source == f"{path} rows of 'images/b.png' (first at line 4)"
    assert message in reason
    (record,) = decode_all(summary.output_paths)
    assert record["labels"].tolist() == [1, 2]


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_and_leaves_no_output(csv_dir, tmp_path, case):
    path, message = make_bad_csv(csv_dir, case)
    output = tmp_path / "out" / "x.record"
    with pytest.raises(DataError) as info:
        convert_csv(path, output, label_map=LABEL_MAP, on_error="raise", progress=False)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert not output.parent.exists() or os.listdir(output.parent) == []
