import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kdet.data.converters import convert_voc
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map
from kdet.data.label_map import write_label_map
from kdet.data.tf_example import decode_tf_example


def decode_all(paths):
    return [
        {key: value.numpy() for key, value in decode_tf_example(record).items()}
        for record in tf.data.TFRecordDataset(paths)
    ]


def xml_boxes(xml_path):
    """Boxes and names straight from the XML: `[num, 4]` xyxy pixels."""
    root = ElementTree.parse(xml_path).getroot()
    objects = root.findall("object")
    keys = ("xmin", "ymin", "xmax", "ymax")
    boxes = [[float(o.find(f"bndbox/{key}").text) for key in keys] for o in objects]
    return np.array(boxes), [o.find("name").text for o in objects]


def test_bundled_deepforest_xml(data_dir, tmp_path):
    folder = data_dir / "deepforest"
    summary = convert_voc(folder, tmp_path / "out" / "trees.record", progress=False)

    label_map_path = str(tmp_path / "out" / "label_map.pbtxt")
    assert summary.label_map_path == label_map_path
    assert read_label_map(label_map_path) == {1: "Alive", 2: "Dead", 3: "Tree"}
    assert summary.num_images == 2
    assert summary.boxes_per_class == {"Tree": 61, "Dead": 28, "Alive": 9}
    assert summary.skipped == []
    # OSBS_029.xml names OSBS_029.tif; the converter used OSBS_029.png and said so.
    assert len(summary.notes) == 1 and "OSBS_029.tif not found; used" in summary.notes[0][1]
    assert summary.output_paths == [str(tmp_path / "out" / "trees.record")]
    assert sorted(os.listdir(tmp_path / "out")) == ["label_map.pbtxt", "trees.record"]

    records = decode_all(summary.output_paths)
    ids = {"Alive": 1, "Dead": 2, "Tree": 3}
    for record, stem, count in zip(records, ["OSBS_029", "SOAP_061"], [61, 37]):
        boxes, names = xml_boxes(folder / f"{stem}.xml")
        assert len(boxes) == count
        np.testing.assert_allclose(record["boxes"], boxes[:, [1, 0, 3, 2]] / 400.0, rtol=1e-6)
        assert record["texts"].astype(str).tolist() == names
        assert record["labels"].tolist() == [ids[name] for name in names]
        assert record["difficult"].tolist() == record["truncated"].tolist() == [0] * count
        np.testing.assert_array_equal(
            record["image"], np.asarray(Image.open(folder / f"{stem}.png").convert("RGB"))
        )
        assert record["filename"] == f"{stem}.png".encode()
        assert (record["height"], record["width"]) == (400, 400)
    assert records[0]["source_id"] == b"OSBS_029.tif"
    assert "Tree" in str(summary) and "61" in str(summary)


def test_given_label_map_dict_and_file_and_shards(data_dir, tmp_path):
    folder = data_dir / "deepforest"
    label_map = {5: "Tree", 7: "Dead", 9: "Alive", 11: "Stump"}
    summary = convert_voc(
        folder / "SOAP_061.xml", tmp_path / "a.record", label_map=label_map, progress=False
    )
    assert summary.label_map_path is None
    assert not (tmp_path / "label_map.pbtxt").exists()
    (record,) = decode_all(summary.output_paths)
    assert set(record["labels"].tolist()) == {7, 9}
    assert "Stump" in summary.format()

    path = write_label_map(label_map, tmp_path / "given.pbtxt")
    summary = convert_voc(
        folder, tmp_path / "b.record", label_map=path, num_shards=2, progress=False
    )
    assert summary.label_map_path == path
    assert summary.output_paths == [
        str(tmp_path / "b.record-00000-of-00002"),
        str(tmp_path / "b.record-00001-of-00002"),
    ]
    assert [len(decode_all(p)) for p in summary.output_paths] == [1, 1]
    assert set(decode_all(summary.output_paths[0])[0]["labels"].tolist()) == {5}


def write_png(path, height=32, width=48, seed=0):
    """Writes a random image (PNG unless the extension says otherwise) and returns its array."""
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


def write_voc(path, filename, objects, size=(32, 48)):
    """`objects`: list of (name, xmin, ymin, xmax, ymax) as strings or numbers."""
    height, width = size
    parts = [f"<annotation><filename>{filename}</filename>"]
    parts.append(f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>")
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Left</pose><truncated>1</truncated>"
            f"<difficult>1</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    path.write_text("".join(parts) + "</annotation>")


@pytest.fixture
def voc_dir(tmp_path):
    """A good image `a` (sorted first, so a record is already written when `b` fails)."""
    folder = tmp_path / "voc"
    folder.mkdir()
    write_png(folder / "a.png")
    write_voc(folder / "a.xml", "a.png", [("cat", 1, 2, 30, 20), ("dog", 0, 0, 48, 32)])
    return folder


def break_truncated(folder):
    write_png(folder / "full.png")
    data = (folder / "full.png").read_bytes()
    (folder / "b.png").write_bytes(data[: len(data) // 2])
    write_voc(folder / "b.xml", "b.png", [("cat", 1, 1, 5, 5)])


def break_missing_image(folder):
    write_voc(folder / "b.xml", "b.jpg", [("cat", 1, 1, 5, 5)])


def break_box_outside(folder):
    write_png(folder / "b.png")
    write_voc(folder / "b.xml", "b.png", [("cat", 1, 1, 5, 5), ("cat", 10, 10, 50, 20)])


def break_inverted_box(folder):
    write_png(folder / "b.png")
    write_voc(folder / "b.xml", "b.png", [("cat", 30, 1, 20, 5)])


def break_unknown_class(folder):
    write_png(folder / "b.png")
    write_voc(folder / "b.xml", "b.png", [("zebra", 1, 1, 5, 5)])


def break_malformed_xml(folder):
    (folder / "b.xml").write_text(
        "<annotation>\n<filename>b.png</filename>\n<object>\n</annotation>"
    )


def break_size_mismatch(folder):
    write_png(folder / "b.png", height=20)
    write_voc(folder / "b.xml", "b.png", [("cat", 1, 1, 5, 5)])


def break_not_a_number(folder):
    write_png(folder / "b.png")
    write_voc(folder / "b.xml", "b.png", [("cat", "1", "1", "five", "5")])


BOX = "box (xmin, ymin, xmax, ymax)"
BAD_CASES = {
    "truncated image": (break_truncated, "b.png cannot be decoded (truncated or corrupt?)"),
    "missing image": (break_missing_image, "b.jpg does not exist (nor a file with the same name"),
    "box outside": (
        break_box_outside,
        f"b.xml object 2 (cat): {BOX} = (10, 10, 50, 20) lies outside the 48x32 image",
    ),
    "xmin > xmax": (
        break_inverted_box,
        f"b.xml object 1 (cat): {BOX} = (30, 1, 20, 5) is empty or inverted",
    ),
    "unknown class": (
        break_unknown_class,
        "b.xml object 1 (zebra): class 'zebra' is not in the label map; expected one of 'cat'",
    ),
    "malformed xml": (break_malformed_xml, "b.xml: malformed XML at line 4, column 3"),
    "size mismatch": (
        break_size_mismatch,
        "b.xml: the annotation gives the image size 48x32 (width x height) but",
    ),
    "not a number": (break_not_a_number, "b.xml object 1: <xmax> is 'five'; expected a number"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_skipped(voc_dir, tmp_path, case):
    make_bad, message = BAD_CASES[case]
    make_bad(voc_dir)
    output = tmp_path / "out" / "data.record"
    summary = convert_voc(
        voc_dir, output, label_map={1: "cat", 2: "dog"}, on_error="skip", progress=False
    )
    assert summary.num_images == 1
    assert summary.boxes_per_class == {"cat": 1, "dog": 1}
    ((source, reason),) = summary.skipped
    assert source.endswith("b.xml")
    assert message in reason
    assert "Skipped (1)" in summary.format()
    (record,) = decode_all(summary.output_paths)
    assert record["filename"] == b"a.png"
    np.testing.assert_allclose(
        record["boxes"], [[2 / 32, 1 / 48, 20 / 32, 30 / 48], [0, 0, 1, 1]], rtol=1e-6
    )
    assert record["difficult"].tolist() == record["truncated"].tolist() == [1, 1]


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_and_leaves_no_output(voc_dir, tmp_path, case):
    make_bad, message = BAD_CASES[case]
    make_bad(voc_dir)
    output = tmp_path / "out" / "data.record"
    label_map = write_label_map({1: "cat", 2: "dog"}, tmp_path / "given.pbtxt")
    with pytest.raises(DataError) as info:
        convert_voc(voc_dir, output, label_map=label_map, on_error="raise", progress=False)
    assert message in str(info.value)
    assert not output.parent.exists() or os.listdir(output.parent) == []


def test_boxes_at_most_one_pixel_out_are_clipped_and_noted(voc_dir, tmp_path):
    write_png(voc_dir / "b.png")
    write_voc(voc_dir / "b.xml", "b.png", [("cat", -1, 0.5, 49, 33)])
    summary = convert_voc(voc_dir, tmp_path / "x.record", progress=False)
    assert summary.skipped == []
    assert any("clipped 1 box(es)" in note for _, note in summary.notes)
    np.testing.assert_allclose(decode_all(summary.output_paths)[1]["boxes"], [[0.5 / 32, 0, 1, 1]])


def test_existing_different_label_map_is_not_overwritten(voc_dir, tmp_path):
    write_label_map({1: "dog", 2: "cat"}, tmp_path / "label_map.pbtxt")
    with pytest.raises(DataError, match="already exists with a different label map"):
        convert_voc(voc_dir, tmp_path / "x.record", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["label_map.pbtxt", "voc"]
    # The same label map is fine (and kept as it is).
    write_label_map({1: "cat", 2: "dog"}, tmp_path / "label_map.pbtxt", display_names={1: "Cat"})
    summary = convert_voc(voc_dir, tmp_path / "x.record", progress=False)
    assert summary.label_map_path == str(tmp_path / "label_map.pbtxt")
    assert "display_name: 'Cat'" in (tmp_path / "label_map.pbtxt").read_text()


def test_a_different_label_map_error_names_the_flag_and_the_argument(voc_dir, tmp_path):
    existing = tmp_path / "label_map.pbtxt"
    write_label_map({1: "dog", 2: "cat"}, existing)
    with pytest.raises(DataError) as info:
        convert_voc(voc_dir, tmp_path / "x.record", progress=False)
    assert f"kdet convert --label_map {existing}, or label_map='{existing}' in Python" in str(
        info.value
    )


def test_argument_errors(voc_dir, tmp_path):
    with pytest.raises(ValueError, match="on_error must be one of"):
        convert_voc(voc_dir, tmp_path / "x.record", on_error="ignore")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no .xml files"):
        convert_voc(tmp_path / "empty", tmp_path / "x.record")
    with pytest.raises(DataError, match="does not exist"):
        convert_voc(tmp_path / "nope", tmp_path / "x.record")


def test_same_stem_fallback_prefers_extensions_in_order_any_case(voc_dir, tmp_path):
    write_png(voc_dir / "b.PNG", seed=1)
    write_png(voc_dir / "b.jpg", seed=2)  # Pillow picks the format from the extension: JPEG
    write_voc(voc_dir / "b.xml", "b.tif", [("cat", 1, 1, 5, 5)])
    summary = convert_voc(voc_dir, tmp_path / "x.record", progress=False)
    xml_path = voc_dir / "b.xml"
    # .jpg comes before .png in the preference order.
    assert summary.notes == [
        (str(xml_path), f"{xml_path}: image b.tif not found; used {voc_dir / 'b.jpg'}")
    ]
    record = decode_all(summary.output_paths)[1]
    assert (record["filename"], record["source_id"]) == (b"b.jpg", b"b.tif")
    assert record["format"] == b"jpeg"

    os.remove(voc_dir / "b.jpg")
    summary = convert_voc(voc_dir, tmp_path / "y.record", progress=False)
    assert summary.notes[0][1].endswith("used " + str(voc_dir / "b.PNG"))


def test_summary_format(data_dir, tmp_path):
    summary = convert_voc(data_dir / "deepforest", tmp_path / "t.record", progress=False)
    summary.skipped.append(("x.xml", "x.xml: malformed XML at line 1, column 1: syntax error"))
    assert summary.num_boxes == 98
    assert summary.format().splitlines() == [
        f"Wrote 2 images with 98 boxes to 1 file(s): {tmp_path / 't.record'}",
        f"Label map: {tmp_path / 'label_map.pbtxt'}",
        "    id  class    boxes",
        "     1  Alive        9",
        "     2  Dead        28",
        "     3  Tree        61",
        "Skipped (1):",
        "  - x.xml: malformed XML at line 1, column 1: syntax error",
        "Notes (1):",
        f"  - {summary.notes[0][1]}",
    ]


def test_class_map_merges_and_drops_classes(data_dir, tmp_path):
    folder = data_dir / "deepforest"
    merged = convert_voc(folder, tmp_path / "merged" / "trees.record", progress=False,
                         class_map={"Alive": "Tree", "Dead": "Tree"})
    assert read_label_map(tmp_path / "merged" / "label_map.pbtxt") == {1: "Tree"}
    assert merged.boxes_per_class == {"Tree": 98}
    soap = decode_all(merged.output_paths)[1]
    assert soap["texts"].astype(str).tolist() == ["Tree"] * 37
    assert soap["labels"].tolist() == [1] * 37

    # Dropping Dead keeps the 9 Alive boxes of SOAP_061, with their own flags and coordinates.
    dropped = convert_voc(folder, tmp_path / "dropped" / "trees.record", progress=False,
                          class_map={"Dead": None})
    assert dropped.boxes_per_class == {"Tree": 61, "Alive": 9}
    assert read_label_map(tmp_path / "dropped" / "label_map.pbtxt") == {1: "Alive", 2: "Tree"}
    soap = decode_all(dropped.output_paths)[1]
    boxes, names = xml_boxes(folder / "SOAP_061.xml")
    alive = [index for index, name in enumerate(names) if name == "Alive"]
    np.testing.assert_allclose(soap["boxes"], boxes[alive][:, [1, 0, 3, 2]] / 400.0, rtol=1e-6)
    assert soap["difficult"].tolist() == [0] * 9

    with pytest.raises(DataError, match=r"class_map renames \['Daed'\], which no box has; the "
                       r"classes in the data are \['Alive', 'Dead', 'Tree'\]"):
        convert_voc(folder, tmp_path / "typo" / "trees.record", progress=False,
                    class_map={"Daed": "Tree"})
    assert not (tmp_path / "typo").exists()
