import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kdet.data.converters import create_example_from_arrays
from kdet.data.converters import write_tfrecord
from kdet.data.errors import DataError
from kdet.data.label_map import write_label_map
from kdet.data.tf_example import decode_tf_example

LABEL_MAP = {1: "cat", 2: "dog"}


def decode(example):
    return {k: v.numpy() for k, v in decode_tf_example(example.SerializeToString()).items()}


def image_array(height=40, width=80):
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "box_format, boxes",
    [
        ("xyxy", [[8, 4, 40, 20], [0, 0, 80, 40]]),
        ("yxyx", [[4, 8, 20, 40], [0, 0, 40, 80]]),
        ("xywh", [[8, 4, 32, 16], [0, 0, 80, 40]]),
        ("center_xywh", [[24, 12, 32, 16], [40, 20, 80, 40]]),
        ("rel_yxyx", [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]]),
    ],
)
def test_box_formats_give_the_same_record(box_format, boxes):
    example = create_example_from_arrays(
        image_array(), boxes, ["dog", "cat"], LABEL_MAP, box_format=box_format, image_format="png"
    )
    record = decode(example)
    np.testing.assert_allclose(record["boxes"], [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], atol=1e-6)
    assert record["labels"].tolist() == [2, 1]
    assert record["texts"].tolist() == [b"dog", b"cat"]
    np.testing.assert_array_equal(record["image"], image_array())  # PNG is lossless
    assert record["format"] == b"png"


def test_image_as_bytes_or_path_is_stored_as_is(tmp_path):
    encoded = png_bytes(image_array())
    (tmp_path / "img.png").write_bytes(encoded)
    from_bytes = create_example_from_arrays(encoded, [[0, 0, 8, 8]], [2], LABEL_MAP, filename="x")
    from_path = create_example_from_arrays(tmp_path / "img.png", [[0, 0, 8, 8]], [2], LABEL_MAP)
    for example, filename in ((from_bytes, b"x"), (from_path, b"img.png")):
        record = decode(example)
        assert example.features.feature["image/encoded"].bytes_list.value[0] == encoded
        assert record["labels"].tolist() == [2]
        assert record["texts"].tolist() == [b"dog"]
        assert record["filename"] == record["source_id"] == filename
        assert (record["height"], record["width"]) == (40, 80)


def test_jpeg_array_zero_boxes_and_label_map_file(tmp_path):
    path = write_label_map(LABEL_MAP, tmp_path / "map.pbtxt")
    example = create_example_from_arrays(image_array()[..., 0], np.zeros((0, 4)), [], path)
    record = decode(example)
    assert record["format"] == b"jpeg"
    assert record["boxes"].shape == (0, 4)
    assert record["image"].shape == (40, 80, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=["zebra"]), "image box 0: class 'zebra' is not in the label map"),
        (dict(labels=[3]), "image box 0: label id 3 is not in the label map"),
        (dict(boxes=[[0, 0, 90, 10]]), "box 0: box (xmin, ymin, xmax, ymax) = (0, 0, 90, 10) lies"),
        (dict(boxes=[[10, 0, 5, 10]]), "is empty or inverted"),
        (dict(boxes=[[0, 0, 5]]), "boxes have shape (1, 3); expected [num_boxes, 4]"),
        (dict(labels=["cat", "dog"]), "got 1 boxes and 2 labels"),
        (dict(image=np.zeros((4, 4, 3), np.float32)), "expected uint8 [height, width, 3]"),
        (dict(image=png_bytes(image_array())[:100]), "image bytes cannot be decoded"),
    ],
)
def test_bad_input(kwargs, message):
    arguments = dict(image=image_array(), boxes=[[0, 0, 10, 10]], labels=["cat"])
    arguments.update(kwargs)
    with pytest.raises(DataError) as info:
        create_example_from_arrays(label_map=LABEL_MAP, **arguments)
    assert message in str(info.value)


def test_write_tfrecord_round_trip_and_crash(tmp_path):
    examples = [
        create_example_from_arrays(image_array(), [[0, 0, 8, 8]], [label], LABEL_MAP)
        for label in (1, 2, 2)
    ]
    paths = write_tfrecord(iter(examples), tmp_path / "out" / "train.record", num_shards=2)
    assert paths == [str(tmp_path / "out" / f"train.record-0000{i}-of-00002") for i in (0, 1)]
    labels = [
        decode_tf_example(r)["labels"].numpy().tolist() for r in tf.data.TFRecordDataset(paths)
    ]
    assert sorted(labels) == [[1], [2], [2]]

    def crashing():
        yield examples[0]
        raise DataError("bad sample")

    with pytest.raises(DataError, match="bad sample"):
        write_tfrecord(crashing(), tmp_path / "crash" / "train.record")
    assert os.listdir(tmp_path / "crash") == []
