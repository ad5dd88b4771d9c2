"""Instance masks in TF OD API records: `image/object/mask`, PNG and numerical."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from kdet.data import DataError
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import decode_tf_example
from kdet.data.tf_example import encode_image

REFERENCE = pathlib.Path(__file__).parent / "tfod_reference" / "coco_masks"
PNG = encode_image(np.zeros([6, 8, 3], np.uint8), "png")
BOXES = [[0.0, 0.0, 1.0, 1.0], [0.1, 0.1, 0.5, 0.5]]
MASKS = np.zeros([2, 6, 8], np.uint8)
MASKS[0, 1:3, 2:5] = 1
MASKS[1, 4:, :3] = 255  # any nonzero value is the object


def example(**kwargs):
    return create_tf_example(PNG, 6, 8, BOXES, [1, 2], ["a", "b"], **kwargs)


def decode_masks(example, mask_type):
    serialized = example if isinstance(example, bytes) else example.SerializeToString()
    return decode_tf_example(serialized, mask_type=mask_type)["masks"].numpy()


@pytest.mark.parametrize("mask_type", ["png", "numerical"])
def test_round_trip(mask_type):
    record = example(masks=MASKS, mask_type=mask_type)
    values = record.features.feature["image/object/mask"]
    if mask_type == "png":
        assert len(values.bytes_list.value) == 2 and values.bytes_list.value[0][:4] == b"\x89PNG"
    else:
        assert len(values.float_list.value) == 2 * 6 * 8
    masks = decode_masks(record, mask_type)
    assert masks.dtype == np.uint8
    np.testing.assert_array_equal(masks, MASKS > 0)
    # Without mask_type the masks are not read.
    assert "masks" not in decode_tf_example(record.SerializeToString())


def test_no_boxes_no_masks():
    record = create_tf_example(PNG, 6, 8, [], [], [], masks=np.zeros([0, 6, 8]))
    assert decode_masks(record, "png").shape == (0, 6, 8)
    assert decode_masks(record, "numerical").shape == (0, 6, 8)


@pytest.mark.parametrize(
    "masks, message",
    [
        (MASKS[:1], r"masks have shape \(1, 6, 8\); expected \[2 boxes, 6, 8\]"),
        (np.zeros([2, 8, 6]), r"masks have shape \(2, 8, 6\)"),
        (np.full([2, 6, 8], np.nan), "NaN"),
    ],
)
def test_create_checks_masks(masks, message):
    with pytest.raises(DataError, match=message):
        example(masks=masks, filename="x.png")


def test_mask_count_and_type_errors():
    with pytest.raises(ValueError, match="mask_type must be one of"):
        example(masks=MASKS, mask_type="PNG_MASKS")
    record = example(masks=MASKS)
    with pytest.raises(ValueError, match="mask_type must be one of"):
        decode_masks(record, "rle")
    # A box without its mask fails, naming the record.
    record = example(masks=MASKS, filename="two_boxes.png")
    del record.features.feature["image/object/mask"].bytes_list.value[1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="two_boxes.png"):
        decode_masks(record, "png")


@pytest.mark.parametrize("mask_type", ["png", "numerical"])
def test_records_of_the_tf_od_api_decode_identically(mask_type):
    """`create_coco_tf_record.py --include_masks` records (and their numerical copy) decode as
    the TF OD API's `TfExampleDecoder(load_instance_masks=True, instance_mask_type=...)` does
    (its float32 0/1 values)."""
    expected = np.load(REFERENCE / "decoded.npz")
    records = tf.data.TFRecordDataset(str(REFERENCE / f"{mask_type}_masks.record"))
    count = 0
    for index, serialized in enumerate(records):
        decoded = decode_tf_example(serialized, mask_type=mask_type)
        want = expected[f"{mask_type}_masks_{index}"]
        assert decoded["masks"].shape == want.shape
        np.testing.assert_array_equal(decoded["masks"].numpy().astype(np.float32), want)
        np.testing.assert_allclose(decoded["boxes"], expected[f"boxes_{index}"])
        count += 1
    assert count == 3
    assert expected["png_masks_0"].sum() > 0 and expected["png_masks_1"].sum() > 0
