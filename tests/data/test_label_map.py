import os

import pytest

from kdet.data.errors import DataError
from kdet.data.label_map import LabelMapItem
from kdet.data.label_map import create_categories
from kdet.data.label_map import format_label_map
from kdet.data.label_map import label_map_from_names
from kdet.data.label_map import name_to_id
from kdet.data.label_map import read_label_map
from kdet.data.label_map import read_label_map_items
from kdet.data.label_map import validate_label_map
from kdet.data.label_map import write_label_map

# Hand-written in the styles of the TF OD API's data/*.pbtxt files: mscoco_label_map.pbtxt
# (name + display_name, double quotes), pet_label_map.pbtxt (single quotes, id after name),
# plus comments, one-line items and the extra StringIntLabelMapItem fields kdet skips.
TF_OD_API_STYLE = """\
# COCO style
item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
}
item {
  name: "/m/0199g"
  id: 2
  display_name: "bicycle"
}

# Pets style, with the opening brace on its own line
item
{
  name: 'Abyssinian'   # trailing comment
  id: 3
}
item { id: 4 name: 'american_bulldog' display_name: 'American bulldog' }
item: {
  id: 5
  name: 'face'
  frequency: FREQUENT
  instance_count: 12
  ancestor_ids: 1
  ancestor_ids: [2, 3]
  descendant_ids: 4
  keypoints {
    id: 0
    label: "left_eye"
  }
  keypoints { id: 1 label: "right_eye" }
}
"""


def write(tmp_path, text, name="label_map.pbtxt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_tf_od_api_style_file(tmp_path):
    path = write(tmp_path, TF_OD_API_STYLE)
    assert read_label_map_items(path) == [
        LabelMapItem(1, "/m/01g317", "person"),
        LabelMapItem(2, "/m/0199g", "bicycle"),
        LabelMapItem(3, "Abyssinian", None),
        LabelMapItem(4, "american_bulldog", "American bulldog"),
        LabelMapItem(5, "face", None),
    ]
    assert read_label_map(path) == {
        1: "/m/01g317",
        2: "/m/0199g",
        3: "Abyssinian",
        4: "american_bulldog",
        5: "face",
    }


def test_read_sorts_by_id_and_unescapes(tmp_path):
    path = write(tmp_path, "item { id: 7 name: 'b\\'s' }\nitem { id: 2 name: \"a \\\"q\\\"\" }\n")
    assert list(read_label_map(path).items()) == [(2, 'a "q"'), (7, "b's")]


def test_write_read_round_trip(tmp_path):
    label_map = {3: "tree", 1: "cat's toy", 2: 'dog "rex"', 10: "back\\slash"}
    path = write_label_map(label_map, tmp_path / "sub" / "map.pbtxt", display_names={1: "Toy"})
    assert path == str(tmp_path / "sub" / "map.pbtxt")
    assert read_label_map(path) == label_map
    assert list(read_label_map(path)) == [1, 2, 3, 10]
    assert read_label_map_items(path)[0] == LabelMapItem(1, "cat's toy", "Toy")
    # Atomic write: no temporary file is left next to the label map.
    assert os.listdir(tmp_path / "sub") == ["map.pbtxt"]


def test_format_is_tf_od_api_style():
    assert format_label_map({2: "dog", 1: "cat"}, display_names={2: "Dog"}) == (
        "item {\n  id: 1\n  name: 'cat'\n}\n\nitem {\n  id: 2\n  name: 'dog'\n"
        "  display_name: 'Dog'\n}\n"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("item { id: 0 name: 'background' }", "line 1: item id 0 is invalid"),
        ("item { id: -2 name: 'x' }", "line 1: item id -2 is invalid"),
        ("item { id: 1.5 name: 'x' }", "line 1: 'id' must be an integer, got '1.5'"),
        ("item { id: 'one' name: 'x' }", "'id' must be an integer"),
        (
            "item {\n id: 1\n name: 'a'\n}\nitem {\n id: 1\n name: 'b'\n}",
            "line 5: id 1 is already used at line 1",
        ),
        (
            "item { id: 1 name: 'a' }\n\nitem { id: 2 name: 'a' }",
            "line 3: name 'a' is already used at line 1",
        ),
        ("item {\n id: 1\n name: ''\n}", "line 1: item has no 'name'"),
        ("item {\n id: 1\n}", "line 1: item has no 'name'"),
        ("item {\n name: 'a'\n}", "line 1: item has no 'id'"),
        (
            "item {\n id: 1\n name: 'a'\n colour: 'red'\n}",
            "line 4: unknown label map field 'colour'",
        ),
        ("item {\n id: 1\n name: cat\n}", "line 3: 'name' must be a quoted string, got 'cat'"),
        ("item {\n id: 1\n id: 2\n name: 'a'\n}", "line 3: field 'id' is set twice"),
        (
            "item {\n id: 1\n name: 'a'\n",
            "file ends early; expected '}' closing the item opened at line 1",
        ),
        ("items { id: 1 name: 'a' }", "line 1: expected 'item {', got 'items'"),
        ("item { id: 1 name: 'a' } $", "line 1: unexpected character '$'"),
        ("# only a comment\n", "has no items"),
    ],
)
def test_invalid_files_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_label_map(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_label_map(tmp_path / "nope.pbtxt")


@pytest.mark.parametrize(
    "label_map, message",
    [
        ({0: "background"}, "id 0 is invalid"),
        ({"1": "a"}, "id '1' is invalid"),
        ({1.0: "a"}, "id 1.0 is invalid"),
        ({1: ""}, "expected a non-empty str"),
        ({1: "a", 2: "a"}, "names ['a'] are used by more than one id"),
    ],
)
def test_validate_and_write_reject_bad_dicts(tmp_path, label_map, message):
    with pytest.raises(DataError) as info:
        validate_label_map(label_map)
    assert message in str(info.value)
    with pytest.raises(DataError):
        write_label_map(label_map, tmp_path / "map.pbtxt")
    assert not (tmp_path / "map.pbtxt").exists()


def test_write_rejects_display_names_of_unknown_ids(tmp_path):
    with pytest.raises(DataError, match=r"ids \[5\]"):
        write_label_map({1: "a"}, tmp_path / "map.pbtxt", display_names={5: "E"})


def test_helpers():
    label_map = label_map_from_names(["Tree", "Dead", "Alive", "Dead", "Tree"])
    assert label_map == {1: "Alive", 2: "Dead", 3: "Tree"}
    assert name_to_id(label_map) == {"Alive": 1, "Dead": 2, "Tree": 3}
    assert create_categories({3: "c", 1: "a"}) == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}]
    assert label_map_from_names([]) == {}
