import csv

import numpy as np
import pytest

from kdet.datasets import DEEPFOREST_LABEL_MAP
from kdet.datasets import deepforest
from kdet.datasets import quokka
from kdet.datasets import sample_data_dir


def test_sample_data_dir_is_the_bundled_folder(data_dir):
    assert sample_data_dir().resolve() == data_dir.resolve()
    assert (sample_data_dir() / "deepforest" / "OSBS_029.xml").is_file()


@pytest.mark.parametrize(
    "name, expected_counts", [("OSBS_029", {"Tree": 61}), ("SOAP_061", {"Alive": 9, "Dead": 28})]
)
def test_deepforest_tiles(name, expected_counts):
    image, y = deepforest(name)
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    assert y["boxes"].dtype == np.float32 and y["labels"].dtype == np.int32
    names, counts = np.unique(y["class_names"], return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist())) == expected_counts
    assert [DEEPFOREST_LABEL_MAP[label] for label in y["labels"]] == y["class_names"]
    boxes = y["boxes"]
    assert np.all(boxes >= 0) and np.all(boxes <= 400)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def test_deepforest_boxes_match_the_bundled_csv(data_dir):
    # The CSV is an independent copy of the annotations, in xyxy order.
    _, y = deepforest("SOAP_061")
    with open(data_dir / "deepforest" / "SOAP_061.csv") as f:
        rows = list(csv.DictReader(f))
    expected = [[float(r[k]) for k in ("ymin", "xmin", "ymax", "xmax")] for r in rows]
    np.testing.assert_array_equal(y["boxes"], expected)
    assert y["class_names"] == [r["label"] for r in rows]
    np.testing.assert_array_equal(y["boxes"][0], [105, 149, 129, 173])
    assert y["labels"][0] == 3  # Dead


def test_deepforest_unknown_name():
    with pytest.raises(ValueError, match="OSBS_029"):
        deepforest("NOPE_000")


def test_quokka():
    image, y = quokka()
    assert image.shape == (643, 960, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(y["boxes"], [[50, 148, 642, 550]])
    np.testing.assert_array_equal(y["labels"], [1])
    assert y["class_names"] == ["animal"]
