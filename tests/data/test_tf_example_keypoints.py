"""Keypoints in TF OD API records: `image/object/keypoint/x|y|visibility`."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import decode_tf_example
from kdet.data.tf_example import encode_image

REFERENCE = pathlib.Path(__file__).parent / "tfod_reference" / "coco_keypoints"
PNG = encode_image(np.zeros([8, 10, 3], np.uint8), "png")
BOXES = [[0.0, 0.0, 1.0, 1.0], [0.1, 0.1, 0.5, 0.5]]
KEYPOINTS = np.array(
    [[[0.1, 0.2], [np.nan, np.nan], [0.5, 0.6]], [[0.3, 0.4], [0.7, 0.8], [0.9, 0.1]]],
    np.float32,
)


def example(**kwargs):
    return create_tf_example(PNG, 8, 10, BOXES, [1, 1], ["p", "p"], **kwargs)


def decode(example, **kwargs):
    decoded = decode_tf_example(example.SerializeToString(), **kwargs)
    return decoded["keypoints"].numpy(), decoded["keypoint_visibilities"].numpy()


def test_round_trip_keeps_coordinates_and_coco_visibilities():
    record = example(
        keypoints=KEYPOINTS, keypoint_visibilities=[[2, 0, 1], [2, 2, 2]],
        keypoint_names=["a", "b", "c"],
    )
    feature = record.features.feature
    # Object-major, normalized, (y, x) split into the two TF OD API lists.
    np.testing.assert_allclose(feature["image/object/keypoint/x"].float_list.value[:3],
                               [0.2, np.nan, 0.6])
    assert list(feature["image/object/keypoint/num"].int64_list.value) == [2, 3]
    assert list(feature["image/object/keypoint/text"].bytes_list.value) == [b"a", b"b", b"c"] * 2
    keypoints, visibilities = decode(record)
    np.testing.assert_array_equal(keypoints, KEYPOINTS)
    np.testing.assert_array_equal(visibilities, [[2, 0, 1], [2, 2, 2]])
    keypoints, _ = decode(record, num_keypoints=3)
    assert keypoints.shape == (2, 3, 2)


def test_missing_visibilities_mean_visible_unless_nan_or_negative():
    keypoints = KEYPOINTS.copy()
    keypoints[1, 2] = [-0.1, 0.5]
    record = example(keypoints=keypoints)
    del record.features.feature["image/object/keypoint/visibility"]
    decoded, visibilities = decode(record)
    np.testing.assert_array_equal(visibilities, [[2, 0, 2], [2, 2, 0]])
    # Not-labelled keypoints decode as NaN, as in the TF OD API decoder.
    assert np.isnan(decoded[1, 2]).all()
    np.testing.assert_array_equal(decoded[0, 2], KEYPOINTS[0, 2])


def test_record_without_keypoints():
    record = example()
    assert "image/object/keypoint/x" not in record.features.feature
    keypoints, visibilities = decode(record)
    assert keypoints.shape == (2, 0, 2) and visibilities.shape == (2, 0)
    # With num_keypoints each box gets that many keypoints, none labelled.
    keypoints, visibilities = decode(record, num_keypoints=4)
    assert keypoints.shape == (2, 4, 2) and not visibilities.any()


def test_wrong_keypoint_count_names_the_record():
    record = create_tf_example(
        PNG, 8, 10, BOXES, [1, 1], ["p", "p"], filename="x.png", keypoints=KEYPOINTS
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="x.png") as error:
        decode(record, num_keypoints=4)
    assert "image/object/keypoint/x has" in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keypoints": KEYPOINTS[:1]}, r"shape \(1, 3, 2\); expected \[2 boxes"),
        ({"keypoints": KEYPOINTS, "keypoint_visibilities": [[2, 2], [2, 2]]}, "shape"),
        ({"keypoints": KEYPOINTS, "keypoint_visibilities": [[3, 2, 2], [2, 2, 2]]}, "COCO v"),
        ({"keypoints": KEYPOINTS, "keypoint_names": ["a"]}, "1 keypoint_names for 3"),
        ({"keypoint_visibilities": [[2, 2, 2]] * 2}, "without keypoints"),
    ],
)
def test_create_checks_keypoints(kwargs, message):
    with pytest.raises(ValueError, match=message):
        example(**kwargs)


def test_record_of_tf_od_api_create_coco_tf_record_decodes_identically():
    # Written and decoded by the TF OD API (tools/tfod_reference/make_keypoint_record.py).
    reference = np.load(REFERENCE / "decoded.npz")
    records = list(tf.data.TFRecordDataset(str(REFERENCE / "coco_keypoints.record")))
    assert len(records) == 2
    for index, serialized in enumerate(records):
        decoded = decode_tf_example(serialized, num_keypoints=17)
        np.testing.assert_allclose(decoded["boxes"], reference[f"boxes_{index}"])
        # NaN where not labelled, on both sides.
        np.testing.assert_array_equal(decoded["keypoints"], reference[f"keypoints_{index}"])
        np.testing.assert_array_equal(
            decoded["keypoint_visibilities"].numpy() > 0,
            reference[f"keypoint_visibilities_{index}"],
        )
    # Not-labelled (0), labelled not visible (1) and visible (2) are all in the record.
    first = decode_tf_example(records[0])["keypoint_visibilities"].numpy()
    assert set(first.ravel().tolist()) == {0, 1, 2}
