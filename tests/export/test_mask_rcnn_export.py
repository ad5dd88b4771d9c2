"""Mask R-CNN export: the SavedModel serves `detection_masks` as the TF OD API's exporter does
(each detection's mask in its box's frame, `predict`'s `"box_masks"`) for every input type;
`FrozenDetector` returns the masks; TFLite refuses the model."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import tiny_mask_rcnn

from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.export import FrozenDetector
from kdet.export import export_saved_model
from kdet.export import export_tflite
from kdet.export.saved_model import tf_od_api_outputs
from kdet.models.faster_rcnn.mask_head import paste_masks

MAX_DETECTIONS = 10
MASK_SIZE = 8
OUTPUT_SHAPES = {
    "detection_boxes": [None, MAX_DETECTIONS, 4],
    "detection_scores": [None, MAX_DETECTIONS],
    "detection_classes": [None, MAX_DETECTIONS],
    "num_detections": [None],
    "detection_masks": [None, MAX_DETECTIONS, MASK_SIZE, MASK_SIZE],
}


@pytest.fixture(scope="module")
def model():
    return tiny_mask_rcnn()


@pytest.fixture(scope="module")
def batch():
    return images(2)


@pytest.fixture(scope="module")
def predicted(model, batch):
    """The Keras model's predictions of `batch`, checked to hold what the tests need: both
    classes (whose masks differ), padding rows, masks that are not all alike."""
    want = model.predict_on_batch(batch)
    assert set(np.unique(want["labels"])) == {-1, 1, 2}
    valid = want["labels"] > 0
    assert want["box_masks"][valid].std() > 0.05
    return want


def _assert_served_as_predicted(served, want):
    """An export's outputs (numpy) equal `predict`'s: the detections, `detection_masks` its
    `box_masks` (zeros on padding rows), and pasting them into the image its `masks`."""
    assert_same_detections(
        from_tf_od_api_outputs(served, IMAGE_SIZE, IMAGE_SIZE),
        {key: want[key] for key in ("boxes", "labels", "confidences", "num_detections")},
    )
    assert served["detection_masks"].dtype == np.float32
    np.testing.assert_allclose(served["detection_masks"], want["box_masks"], atol=1e-5)
    padding = want["labels"] < 0
    assert (served["detection_masks"][padding] == 0).all()
    # What a user of the TF OD API's export does (`reframe_box_masks_to_image_masks`).
    pasted = paste_masks(served["detection_masks"], served["detection_boxes"], IMAGE_SIZE,
                         IMAGE_SIZE).numpy()
    np.testing.assert_allclose(pasted, want["masks"], atol=1e-4)


def test_saved_model_serves_the_box_frame_masks_of_predict(model, batch, predicted, tmp_path):
    export_saved_model(model, tmp_path, progress=False)
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    assert {name: (spec.dtype, spec.shape.as_list())
            for name, spec in serve.structured_outputs.items()} == {
        name: (tf.float32, shape) for name, shape in OUTPUT_SHAPES.items()
    }
    served = {name: value.numpy() for name, value in serve(input_tensor=tf.constant(batch)).items()}
    _assert_served_as_predicted(served, predicted)


@pytest.mark.parametrize("input_type", ["encoded_image_string_tensor", "tf_example"])
def test_file_input_types_serve_the_same_masks(model, batch, predicted, input_type, tmp_path):
    export_saved_model(model, tmp_path, input_type, progress=False)
    files = [encode_image(image, "png") for image in batch]
    if input_type == "tf_example":
        files = [create_tf_example(png, IMAGE_SIZE, IMAGE_SIZE, [], [], []).SerializeToString()
                 for png in files]
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    assert serve.structured_outputs["detection_masks"].shape.as_list() == OUTPUT_SHAPES[
        "detection_masks"]
    served = serve(input_tensor=tf.constant(files))
    _assert_served_as_predicted({name: value.numpy() for name, value in served.items()},
                                predicted)


def test_padding_rows_of_detection_masks_are_zeros(model):
    # One detection, then padding rows whose box masks are not zeros.
    labels = np.full([1, MAX_DETECTIONS], -1)
    labels[0, 0] = 2
    detections = {
        "boxes": tf.where(labels[..., None] > 0, [0.1, 0.2, 0.3, 0.4], -1.0),
        "labels": tf.constant(labels, tf.int32),
        "confidences": tf.where(labels > 0, 0.5, 0.0),
        "num_detections": tf.constant([1]),
        "box_masks": tf.fill([1, MAX_DETECTIONS, MASK_SIZE, MASK_SIZE], 0.75),
    }
    masks = tf_od_api_outputs(detections, model)["detection_masks"].numpy()
    assert masks.shape == (1, MAX_DETECTIONS, MASK_SIZE, MASK_SIZE)
    assert (masks[0, 0] == 0.75).all()
    assert (masks[0, 1:] == 0).all()


def test_frozen_detector_predicts_the_masks_too(model, batch, predicted):
    got = FrozenDetector(model, progress=False)(batch)
    assert_same_detections({key: got[key] for key in ("boxes", "labels", "confidences",
                                                      "num_detections")},
                           {key: predicted[key] for key in ("boxes", "labels", "confidences",
                                                            "num_detections")})
    assert got["masks"].shape == (2, MAX_DETECTIONS, IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_allclose(got["masks"], predicted["masks"], atol=1e-4)
    np.testing.assert_allclose(got["box_masks"], predicted["box_masks"], atol=1e-5)


def test_tflite_refuses_mask_rcnn_as_the_tf_od_api_does(model, tmp_path):
    with pytest.raises(ValueError, match="SSD and CenterNet models only; got MaskRCNN.*"
                                         "Mask R-CNN either.*export_saved_model"):
        export_tflite(model, tmp_path / "mask_rcnn.tflite", progress=False)
    assert not (tmp_path / "mask_rcnn.tflite").exists()
