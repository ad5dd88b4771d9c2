"""A conversion that writes nothing, and empty records read back: clear errors, never an empty
file, never a hang."""

import json
import os

import pytest
import tensorflow as tf
from PIL import Image

from kdet import cli
from kdet.data import read_tfrecords
from kdet.data.converters import convert_coco
from kdet.data.converters import convert_voc
from kdet.data.errors import DataError
from test_converters_voc import write_png
from test_converters_voc import write_voc


@pytest.fixture
def voc_layout(tmp_path):
    """The Pascal VOC layout: `Annotations/*.xml` beside `JPEGImages/*.jpg`."""
    root = tmp_path / "VOC"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem in ("a", "b"):
        write_png(root / "JPEGImages" / f"{stem}.jpg")
        write_voc(root / "Annotations" / f"{stem}.xml", f"{stem}.jpg", [("cat", 1, 2, 30, 20)])
    return root


def test_voc_layout_finds_the_sibling_jpegimages_without_image_dir(voc_layout, tmp_path):
    summary = convert_voc(voc_layout / "Annotations", tmp_path / "out.record", progress=False)
    assert summary.num_images == 2 and summary.skipped == [] and summary.notes == []
    assert sum(1 for _ in tf.data.TFRecordDataset(summary.output_paths)) == 2


def test_the_voc_root_instead_of_its_annotations_folder_says_which_folder(voc_layout, tmp_path):
    with pytest.raises(DataError) as info:
        convert_voc(voc_layout, tmp_path / "out.record", progress=False)
    assert str(info.value) == (
        f"{voc_layout} has no .xml files; expected Pascal VOC annotations (the Pascal VOC "
        f"layout keeps them in {voc_layout / 'Annotations'}: convert that folder)"
    )


def test_no_image_found_is_an_error_and_writes_nothing(voc_layout, tmp_path):
    os.rename(voc_layout / "JPEGImages", voc_layout / "images")
    output = tmp_path / "out" / "train.record"
    with pytest.raises(DataError) as info:
        convert_voc(voc_layout / "Annotations", output, progress=False)
    message = str(info.value)
    assert message.startswith(f"{voc_layout / 'Annotations'}: no image converted")
    assert f"nothing was written to {output}" in message
    assert "all 2 image(s) were skipped" in message
    assert f"{voc_layout / 'JPEGImages' / 'a.jpg'} does not exist" in message
    assert "--image_dir" in message and "JPEGImages/" in message
    assert os.listdir(output.parent) == []  # no record, no temporary file, no label map

    # With --image_dir it converts.
    summary = convert_voc(
        voc_layout / "Annotations", output, image_dir=voc_layout / "images", progress=False
    )
    assert summary.num_images == 2


def test_a_failed_conversion_keeps_an_existing_record(voc_layout, tmp_path):
    output = tmp_path / "train.record"
    convert_voc(voc_layout / "Annotations", output, progress=False)
    before = output.read_bytes()
    with pytest.raises(DataError, match="no image converted"):
        convert_voc(
            voc_layout / "Annotations", output, image_dir=tmp_path / "nowhere", progress=False
        )
    assert output.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["VOC", "label_map.pbtxt", "train.record"]


def test_kdet_convert_exits_with_an_error_when_nothing_is_converted(voc_layout, tmp_path, capsys):
    os.rename(voc_layout / "JPEGImages", voc_layout / "images")
    output = tmp_path / "train.record"
    argv = ["convert", "voc", str(voc_layout / "Annotations"), "--output", str(output),
            "--no_progress"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "kdet convert: error: " in captured.err and "--image_dir" in captured.err
    assert "Label map" not in captured.out
    assert not output.exists()


def test_coco_without_any_image_is_an_error(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 32, "width": 48}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances.json: no image converted.*--image_dir"):
        convert_coco(tmp_path / "instances.json", tmp_path / "x.record", progress=False)
    assert not (tmp_path / "x.record").exists()


def test_the_label_map_line_says_none_when_no_box_has_a_class(tmp_path):
    write_png(tmp_path / "a.png")
    write_voc(tmp_path / "a.xml", "a.png", [])
    summary = convert_voc(tmp_path / "a.xml", tmp_path / "x.record", progress=False)
    assert summary.num_images == 1
    assert "Label map: none (no box has a class)" in summary.format()
    assert "given as a dict" not in summary.format()
    summary = convert_voc(
        tmp_path / "a.xml", tmp_path / "y.record", label_map={1: "cat"}, progress=False
    )
    assert "Label map: (given as a dict)" in summary.format()


@pytest.mark.parametrize("num_epochs", [0, 1])
def test_reading_empty_records_is_an_error_naming_the_files(tmp_path, num_epochs):
    paths = [str(tmp_path / f"empty-{i}.record") for i in range(2)]
    for path in paths:
        tf.io.TFRecordWriter(path).close()
    # Checked when the dataset is made: iterating one that repeats forever would never return.
    with pytest.raises(DataError) as info:
        read_tfrecords(str(tmp_path / "empty-*.record"), batch_size=2, num_epochs=num_epochs)
    assert f"{paths[0]}, {paths[1]}: no record in these files" in str(info.value)


def test_the_image_folder_hint_comes_only_when_images_were_not_found(tmp_path):
    # Every image is there, but its class is not in the label map: where the images are
    # is not the problem, so the error does not send the user to --image_dir.
    annotations = tmp_path / "Annotations"
    annotations.mkdir()
    images = tmp_path / "JPEGImages"
    images.mkdir()
    Image.new("RGB", (32, 32)).save(images / "a.jpg")
    (annotations / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>32</width><height>32</height>"
        "<depth>3</depth></size><object><name>Dead</name><bndbox><xmin>2</xmin><ymin>2</ymin>"
        "<xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    with pytest.raises(DataError) as info:
        convert_voc(annotations, tmp_path / "out" / "a.record", label_map={1: "Tree"})
    assert "not in the label map" in str(info.value)
    assert "--image_dir" not in str(info.value)
