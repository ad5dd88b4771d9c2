"""COCO person keypoints → records with `image/object/keypoint/*`, as the TF OD API writes them."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from kdet.data.converters import convert_coco
from kdet.data.converters import create_example_from_arrays
from kdet.data.errors import DataError
from kdet.data.label_map import read_label_map_keypoints
from kdet.data.tf_example import decode_tf_example

FIXTURE = pathlib.Path(__file__).parent / "coco_keypoints"
REFERENCE = pathlib.Path(__file__).parent / "tfod_reference" / "coco_keypoints"


def convert(tmp_path, data=None, **kwargs):
    json_path = FIXTURE / "person_keypoints.json"
    if data is not None:
        json_path = tmp_path / "keypoints.json"
        json_path.write_text(json.dumps(data))
    return convert_coco(
        json_path, tmp_path / "out" / "kp.record", image_dir=FIXTURE / "images",
        progress=False, **kwargs,
    )


def examples(paths):
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(paths)]


def fixture_data():
    return json.loads((FIXTURE / "person_keypoints.json").read_text())


def test_records_equal_those_of_tf_od_api_create_coco_tf_record(tmp_path):
    summary = convert(tmp_path)
    reference = examples(str(REFERENCE / "coco_keypoints.record"))
    mine = examples(summary.output_paths)
    assert len(mine) == len(reference) == 2
    for ours, theirs in zip(mine, reference):
        ours, theirs = ours.features.feature, theirs.features.feature
        assert "image/object/keypoint/x" in ours
        # kdet also writes the label ids; every feature the TF OD API writes is identical.
        assert set(ours) - set(theirs) == {"image/object/class/label"}
        for key in theirs:
            assert ours[key] == theirs[key], key


def test_keypoints_values_and_label_map(tmp_path):
    summary = convert(tmp_path)
    keypoints = read_label_map_keypoints(summary.label_map_path)
    assert list(keypoints) == [1]  # person; the ball has none
    assert [k.label for k in keypoints[1][:3]] == ["nose", "left_eye", "right_eye"]
    first, second = (decode_tf_example(r) for r in tf.data.TFRecordDataset(summary.output_paths))
    # a.jpg is 40x30: the nose at pixel (x 14, y 5) of person 11, right_eye labelled not visible.
    np.testing.assert_allclose(first["keypoints"][0, 0], [5 / 30, 14 / 40])
    assert first["keypoint_visibilities"][0, :3].numpy().tolist() == [2, 2, 1]
    # Person 12 has no labelled keypoint; in b.jpg the ball (no keypoints) gets 17 unlabelled.
    assert not first["keypoint_visibilities"][1].numpy().any()
    assert second["texts"].numpy().tolist() == [b"ball", b"person"]
    assert not second["keypoint_visibilities"][0].numpy().any()
    assert second["keypoint_visibilities"][1].numpy().sum() == 6


def test_box_only_coco_writes_no_keypoints(tmp_path):
    data = fixture_data()
    for category in data["categories"]:
        category.pop("keypoints", None)
    for annotation in data["annotations"]:
        annotation.pop("keypoints", None)
    summary = convert(tmp_path, data)
    assert all("image/object/keypoint/x" not in e.features.feature
               for e in examples(summary.output_paths))
    assert read_label_map_keypoints(summary.label_map_path) == {}


def test_class_map_keeps_keypoints_with_their_boxes(tmp_path):
    summary = convert(tmp_path, class_map={"ball": None})
    second = decode_tf_example(list(tf.data.TFRecordDataset(summary.output_paths))[1])
    assert second["texts"].numpy().tolist() == [b"person"]
    assert second["keypoint_visibilities"].numpy().sum() == 6


def set_keypoint(data, index, value):
    data["annotations"][0]["keypoints"][index] = value


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["annotations"][0]["keypoints"].pop(), "has 50 values; expected 3 \\* 17"),
        (lambda d: set_keypoint(d, 2, 3), r"keypoint 0 \(nose\) has visibility 3"),
        (lambda d: set_keypoint(d, 0, 45), r"keypoint 0 \(x, y\) = \(45, 5\) lies outside"),
        (lambda d: d["annotations"][2].update(keypoints=[1, 1, 2]), "expected none"),
        (lambda d: d["categories"][0].update(keypoints="nose"), "expected a list of keypoint"),
    ],
)
def test_bad_keypoints_name_the_annotation(tmp_path, edit, message):
    data = fixture_data()
    edit(data)
    with pytest.raises(DataError, match=message):
        convert(tmp_path, data, on_error="raise")


def test_keypoint_on_the_border_is_clipped(tmp_path):
    data = fixture_data()
    set_keypoint(data, 0, 40.5)  # half a pixel right of the 40 px wide image
    first = decode_tf_example(next(iter(tf.data.TFRecordDataset(
        convert(tmp_path, data).output_paths))))
    np.testing.assert_allclose(first["keypoints"][0, 0], [5 / 30, 1.0])


def test_create_example_from_arrays_with_keypoints():
    image = np.zeros([20, 40, 3], np.uint8)
    # One box, keypoints (y, x) in pixels like its xyxy box: visible, not labelled, on the border.
    example = create_example_from_arrays(
        image, [[4, 2, 30, 18]], ["person"], {1: "person"},
        keypoints=[[[5.0, 10.0], [np.nan, np.nan], [20.5, 40.0]]], image_format="png",
    )
    decoded = decode_tf_example(example.SerializeToString())
    np.testing.assert_allclose(decoded["keypoints"][0, ::2], [[0.25, 0.25], [1.0, 1.0]])
    assert decoded["keypoint_visibilities"].numpy().tolist() == [[2, 0, 2]]
    # Relative boxes take relative keypoints; explicit visibilities are kept.
    example = create_example_from_arrays(
        image, [[0.1, 0.1, 0.9, 0.9]], ["person"], {1: "person"}, box_format="rel_yxyx",
        keypoints=[[[0.5, 0.25]]], keypoint_visibilities=[[1]], image_format="png",
    )
    decoded = decode_tf_example(example.SerializeToString())
    np.testing.assert_allclose(decoded["keypoints"], [[[0.5, 0.25]]])
    assert decoded["keypoint_visibilities"].numpy().tolist() == [[1]]
    with pytest.raises(DataError, match="box 0: keypoint 0 .* lies outside the 40x20 image"):
        create_example_from_arrays(image, [[4, 2, 30, 18]], ["person"], {1: "person"},
                                   keypoints=[[[25.0, 10.0]]])
    with pytest.raises(DataError, match="expected \\[1 boxes, num_keypoints, 2"):
        create_example_from_arrays(image, [[4, 2, 30, 18]], ["person"], {1: "person"},
                                   keypoints=[[1.0, 2.0]])
