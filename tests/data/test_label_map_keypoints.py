"""`keypoints { id label }` of label map items."""

import pytest

from kdet.data.errors import DataError
from kdet.data.label_map import KeypointItem
from kdet.data.label_map import LabelMapItem
from kdet.data.label_map import num_keypoints_of
from kdet.data.label_map import read_label_map
from kdet.data.label_map import read_label_map_items
from kdet.data.label_map import read_label_map_keypoints
from kdet.data.label_map import write_label_map

# The layout of the TF OD API's CenterNet keypoint label maps (keypoint ids need not start at 0
# nor be contiguous: they index the records' per-object keypoints).
POSE = """\
item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
  keypoints {
    id: 0
    label: "nose"
  }
  keypoints: { id: 2 label: 'right_eye' }
  keypoints { label: "left_eye" id: 1 }
}
item { id: 2 name: "ball" }
"""


def write(tmp_path, text):
    path = tmp_path / "label_map.pbtxt"
    path.write_text(text)
    return path


def test_reads_keypoints_per_class_in_file_order(tmp_path):
    path = write(tmp_path, POSE)
    assert read_label_map_keypoints(path) == {
        1: (KeypointItem(0, "nose"), KeypointItem(2, "right_eye"), KeypointItem(1, "left_eye"))
    }
    ids, labels = zip(*read_label_map_keypoints(path)[1])
    assert ids == (0, 2, 1) and labels == ("nose", "right_eye", "left_eye")
    assert num_keypoints_of(read_label_map_keypoints(path)) == 3
    # The box fields read as before.
    assert read_label_map_items(path)[0] == LabelMapItem(1, "/m/01g317", "person")
    assert read_label_map(path) == {1: "/m/01g317", 2: "ball"}


def test_label_map_without_keypoints(tmp_path):
    path = write(tmp_path, "item { id: 1 name: 'cat' }")
    assert read_label_map_keypoints(path) == {}
    assert num_keypoints_of({}) == 0


def test_write_round_trips_keypoints(tmp_path):
    path = tmp_path / "out.pbtxt"
    write_label_map(
        {1: "person", 2: "ball"},
        path,
        display_names={1: "Person"},
        keypoints={1: ["nose", "left_eye"]},
    )
    assert read_label_map_keypoints(path) == {
        1: (KeypointItem(0, "nose"), KeypointItem(1, "left_eye"))
    }
    assert read_label_map_items(path)[0] == LabelMapItem(1, "person", "Person")
    # (id, label) pairs keep their ids.
    write_label_map({1: "person"}, path, keypoints={1: [(4, "nose"), (2, "eye")]})
    assert read_label_map_keypoints(path)[1] == (KeypointItem(4, "nose"), KeypointItem(2, "eye"))


@pytest.mark.parametrize(
    "keypoints, message",
    [
        ("keypoints { id: 0 }", "line 1: keypoints has no 'label'"),
        ("keypoints { label: 'a' }", "needs an 'id' >= 0"),
        ("keypoints { id: -1 label: 'a' }", "needs an 'id' >= 0"),
        ("keypoints { id: 0 label: 'a' } keypoints { id: 0 label: 'b' }", "repeats the id"),
        ("keypoints { id: 0 label: 'a' } keypoints { id: 1 label: 'a' }", "repeats the id or"),
        ("keypoints { id: 0 name: 'a' }", "unknown keypoints field 'name'"),
        ("keypoints { id: 0 label: 'a' ", "line 1: file ends early"),
    ],
)
def test_bad_keypoints_name_file_and_line(tmp_path, keypoints, message):
    path = write(tmp_path, f"item {{ id: 1 name: 'p' {keypoints} }}")
    with pytest.raises(DataError, match=message):
        read_label_map_keypoints(path)


def test_write_refuses_bad_keypoints(tmp_path):
    with pytest.raises(DataError, match="class ids \\[3\\] that are not in the label map"):
        write_label_map({1: "person"}, tmp_path / "x.pbtxt", keypoints={3: ["nose"]})
    with pytest.raises(DataError, match="distinct ids >= 0 and distinct non-empty labels"):
        write_label_map({1: "person"}, tmp_path / "x.pbtxt", keypoints={1: ["nose", "nose"]})
