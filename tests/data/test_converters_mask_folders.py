"""`convert_mask_folders` and `kdet convert mask_folders`: `images/<stem>.<ext>` and
`masks/<stem>/<class>[_<anything>].png` (one binary PNG per object) → records with PNG masks and
boxes from the masks' extents. Also the other source of mask PNGs: Pascal VOC's
`SegmentationObject` (`convert_voc(include_masks=True)`, `kdet convert voc --include_masks`)."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_converters_voc import write_png
from test_converters_voc import write_voc

from kdet import cli
from kdet.data.converters import convert_mask_folders
from kdet.data.converters import convert_voc
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map
from kdet.data.tf_example import decode_tf_example

HEIGHT, WIDTH = 24, 32


def _mask(top, left, bottom, right, value=255):
    mask = np.zeros([HEIGHT, WIDTH], np.uint8)
    mask[top:bottom, left:right] = value
    return mask


def write_dataset(root, masks, image_size=(HEIGHT, WIDTH), image_extension="png"):
    """`root/images/<stem>.<ext>` (random pixels) and `root/masks/<stem>/<file>` for
    `masks` `{stem: {file name: uint8 array, or a Pillow image}}`; returns `root/masks`."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for stem, files in masks.items():
        pixels = rng.integers(0, 255, [*image_size, 3], np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{stem}.{image_extension}")
        if files is None:  # an image without a mask folder
            continue
        (root / "masks" / stem).mkdir(parents=True)
        for name, mask in files.items():
            image = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
            image.save(root / "masks" / stem / name)
    (root / "masks").mkdir(exist_ok=True)
    return root / "masks"


def read(path):
    return [decode_tf_example(serialized, mask_type="png")
            for serialized in tf.data.TFRecordDataset(str(path))]


def test_masks_boxes_classes_and_a_derived_label_map(tmp_path):
    palette = Image.fromarray(_mask(2, 3, 6, 9, value=1), mode="P")  # indices 0/1
    palette.putpalette([0, 0, 0, 255, 0, 0])
    rgba = np.zeros([HEIGHT, WIDTH, 4], np.uint8)
    rgba[..., 3] = 255  # opaque everywhere: only the colour is the object
    rgba[10:20, 0:32, 1] = 200
    masks = write_dataset(tmp_path, {
        "a": {"car_1.png": _mask(4, 5, 10, 12), "car_2.png": _mask(0, 20, 24, 32, value=1),
              "person.png": palette, "car_3.png": _mask(0, 0, 0, 0)},  # the last one empty
        "b": {"person_0007.png": Image.fromarray(rgba)},
        "c": None,
    })
    summary = convert_mask_folders(masks, tmp_path / "out" / "train.record", progress=False)
    assert summary.num_images == 3
    assert summary.boxes_per_class == {"car": 2, "person": 2}
    assert read_label_map(tmp_path / "out" / "label_map.pbtxt") == {1: "car", 2: "person"}
    notes = [message for _, message in summary.notes]
    assert any("car_3.png: empty mask" in note for note in notes), notes
    assert any("1 image(s) have no mask folder" in note and "c.png" in note for note in notes)
    a, b, c = read(tmp_path / "out" / "train.record")
    assert a["texts"].numpy().tolist() == [b"car", b"car", b"person"]
    np.testing.assert_array_equal(a["labels"], [1, 1, 2])
    # Boxes: the masks' extents, [ymin, xmin, ymax + 1, xmax + 1] / size.
    np.testing.assert_allclose(
        a["boxes"], np.array([[4, 5, 10, 12], [0, 20, 24, 32], [2, 3, 6, 9]])
        / [HEIGHT, WIDTH, HEIGHT, WIDTH], atol=1e-6)
    np.testing.assert_array_equal(
        a["masks"], [_mask(4, 5, 10, 12, 1), _mask(0, 20, 24, 32, 1), _mask(2, 3, 6, 9, 1)])
    np.testing.assert_array_equal(b["masks"], [_mask(10, 0, 20, 32, 1)])
    assert a["source_id"].numpy() == b"a"
    assert c["masks"].shape == (0, HEIGHT, WIDTH) and c["labels"].shape == (0,)


def test_a_given_label_map_takes_class_names_with_underscores(tmp_path):
    masks = write_dataset(tmp_path, {"x": {"traffic_light_3.png": _mask(1, 1, 5, 5),
                                           "traffic_2.png": _mask(6, 6, 9, 9)}})
    summary = convert_mask_folders(masks, tmp_path / "x.record", progress=False,
                                   label_map={1: "traffic", 2: "traffic_light"})
    assert summary.boxes_per_class == {"traffic": 1, "traffic_light": 1}
    (x,) = read(tmp_path / "x.record")
    assert x["texts"].numpy().tolist() == [b"traffic", b"traffic_light"]  # file name order


def test_a_mask_of_another_size_names_both_files(tmp_path):
    masks = write_dataset(tmp_path, {"a": {"car.png": np.zeros([HEIGHT, WIDTH + 1], np.uint8)},
                                     "b": {"car.png": _mask(1, 1, 4, 4)}})
    with pytest.raises(DataError, match=r"masks/a/car.png is 33x24 but its image \S*images/"
                                         r"a.png is 32x24 \(width x height\)"):
        convert_mask_folders(masks, tmp_path / "out.record", progress=False, on_error="raise")
    assert not (tmp_path / "out.record").exists()
    # Skipped by default, the other image written.
    summary = convert_mask_folders(masks, tmp_path / "out.record", progress=False)
    assert summary.num_images == 1 and "33x24" in summary.skipped[0][1]


def test_masks_without_an_image_and_bad_pngs_are_errors(tmp_path):
    masks = write_dataset(tmp_path, {"a": {"car.png": _mask(1, 1, 4, 4)},
                                     "b": {"car.png": _mask(1, 1, 4, 4)}})
    (masks / "orphan").mkdir()
    (masks / "a" / "dog.png").write_bytes(b"not a png")
    summary = convert_mask_folders(masks, tmp_path / "out.record", progress=False)
    reasons = [reason for _, reason in summary.skipped]
    assert summary.num_images == 1 and len(reasons) == 2
    assert any("orphan: no image orphan.<ext>" in reason for reason in reasons), reasons
    assert any("dog.png: cannot be decoded as a PNG mask" in reason for reason in reasons)


def test_kdet_convert_mask_folders(tmp_path, capsys):
    masks = write_dataset(tmp_path / "data", {"a": {"cat_1.png": _mask(3, 4, 8, 9)}},
                          image_extension="jpg")
    (tmp_path / "data" / "photos").symlink_to(tmp_path / "data" / "images")
    assert cli.main(["convert", "mask_folders", str(masks), "--image_dir",
                     str(tmp_path / "data" / "photos"), "--output", str(tmp_path / "m.record"),
                     "--no_progress"]) == 0
    assert "Wrote 1 images with 1 boxes" in capsys.readouterr().out
    (a,) = read(tmp_path / "m.record")
    np.testing.assert_array_equal(a["masks"], [_mask(3, 4, 8, 9, 1)])
    assert cli.main(["convert", "mask_folders", str(masks), "--output",
                     str(tmp_path / "n.record"), "--allow_outside_image_dir"]) != 0
    assert "mask_folders reads the images of --image_dir only" in capsys.readouterr().err
    assert not (tmp_path / "n.record").exists()


def _segmentation_object(numbers):
    """A Pascal VOC `SegmentationObject`-style palette PNG image of `numbers` `[H, W]`."""
    image = Image.fromarray(numbers.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [224, 224, 192] * 252)
    return image


def test_voc_segmentation_object_pngs_give_the_instance_masks(tmp_path, capsys):
    """The VOC layout: object k of an XML is palette index k of SegmentationObject/<stem>.png
    (255: borders, in no object); XML files without a PNG are left out with a note."""
    voc = tmp_path / "VOC2012"
    for folder in ("Annotations", "JPEGImages", "SegmentationObject"):
        (voc / folder).mkdir(parents=True)
    numbers = np.zeros([32, 48], np.uint8)
    numbers[2:20, 1:30] = 1
    numbers[20:32, 10:40] = 2
    numbers[19, 1:30] = 255  # a border
    _segmentation_object(numbers).save(voc / "SegmentationObject" / "a.png")
    for stem in ("a", "b"):
        write_png(voc / "JPEGImages" / f"{stem}.jpg")
        write_voc(voc / "Annotations" / f"{stem}.xml", f"{stem}.jpg",
                  [("cat", 1, 2, 30, 20), ("dog", 10, 20, 40, 32)])
    assert cli.main(["convert", "voc", str(voc / "Annotations"), "--output",
                     str(tmp_path / "voc.record"), "--include_masks", "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert "Wrote 1 images with 2 boxes" in printed
    assert "left out 1 annotation(s) without a SegmentationObject PNG" in printed
    (a,) = read(tmp_path / "voc.record")
    np.testing.assert_array_equal(a["masks"], [numbers == 1, numbers == 2])
    # A PNG numbering more objects than the XML has, or of another size, is bad input.
    numbers[0, 0] = 3
    _segmentation_object(numbers).save(voc / "SegmentationObject" / "a.png")
    with pytest.raises(DataError, match="a.png numbers objects up to 3 but .*a.xml has 2"):
        convert_voc(voc / "Annotations", tmp_path / "x.record", include_masks=True,
                    on_error="raise", progress=False)
    _segmentation_object(numbers[:, :40]).save(voc / "SegmentationObject" / "a.png")
    with pytest.raises(DataError, match=r"a.png is 40x32 but its image \S*a.jpg is 48x32"):
        convert_voc(voc / "Annotations", tmp_path / "x.record", include_masks=True,
                    on_error="raise", progress=False)
