import numpy as np
import pytest
import tensorflow as tf

from kdet.evaluation import detections_per_image
from kdet.evaluation import groundtruth_per_image


def test_batched_groundtruth_drops_padding_and_keeps_extras():
    groundtruth = {
        "boxes": tf.constant([[[0, 0, 10, 10], [-1] * 4], [[-1] * 4, [-1] * 4]], tf.float32),
        "classes": tf.constant([[2, -1], [-1, -1]]),  # the keras-cv spelling of "labels"
        "difficult": tf.constant([[True, False], [False, False]]),
    }
    first, second = groundtruth_per_image(groundtruth)
    np.testing.assert_array_equal(first["boxes"], [[0, 0, 10, 10]])
    np.testing.assert_array_equal(first["labels"], [2])
    np.testing.assert_array_equal(first["difficult"], [True])
    assert second["boxes"].shape == (0, 4) and second["labels"].shape == (0,)


def test_batched_detections_cut_at_num_detections():
    predictions = {
        "boxes": np.array([[[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]]], np.float32),
        "labels": np.array([[1, 2, -1]]),
        "confidences": np.array([[0.9, 0.5, -1.0]]),
        "num_detections": np.array([1]),
    }
    (image,) = detections_per_image(predictions)
    np.testing.assert_array_equal(image["boxes"], [[0, 0, 1, 1]])
    np.testing.assert_array_equal(image["confidences"], [0.9])
    # Without num_detections the -1 label marks the padding.
    del predictions["num_detections"]
    np.testing.assert_array_equal(detections_per_image(predictions)[0]["labels"], [1, 2])


def test_errors_name_the_image_and_field():
    with pytest.raises(ValueError, match=r"groundtruth\[1\] has label ids \[0\]"):
        groundtruth_per_image(
            [{"boxes": [], "labels": []}, {"boxes": [[0, 0, 1, 1]], "labels": [0]}]
        )
    with pytest.raises(KeyError, match=r"detections\[0\] has no 'confidences'"):
        detections_per_image([{"boxes": [[0, 0, 1, 1]], "labels": [1]}])
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        groundtruth_per_image([{"boxes": [[0, 0, 1, 1]] * 2, "labels": [1]}])
    with pytest.raises(ValueError, match=r"\[batch, num_boxes, 4\]"):
        groundtruth_per_image({"boxes": [[0, 0, 1, 1]], "labels": [1]})
