"""CenterNet export: the SavedModel and TFLite models serve the Keras model's detections and
keypoints with the TF OD API exporter's keypoint outputs; `FrozenDetector` runs it too."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import tiny_center_net

from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.export import FrozenDetector
from kdet.export import export_saved_model
from kdet.export import export_tflite
from kdet.export.saved_model import tf_od_api_outputs
from kdet.training.quantization import QuantizationAwareTraining

NUM_KEYPOINTS = 3
KEYPOINT_CLASS = 2
OUTPUT_SHAPES = {
    "detection_boxes": [None, 20, 4],
    "detection_scores": [None, 20],
    "detection_classes": [None, 20],
    "num_detections": [None],
    "detection_keypoints": [None, 20, NUM_KEYPOINTS, 2],
    "detection_keypoint_scores": [None, 20, NUM_KEYPOINTS],
}


@pytest.fixture(scope="module")
def model():
    return tiny_center_net()


@pytest.fixture(scope="module")
def batch():
    return images(2)


@pytest.fixture(scope="module")
def predicted(model, batch):
    """The Keras model's predictions of `batch`, checked to hold what the tests need."""
    want = model.predict_on_batch(batch)
    assert set(np.unique(want["labels"])) == {1, KEYPOINT_CLASS}
    scores = want["keypoint_scores"][want["labels"] == KEYPOINT_CLASS]
    assert (scores == 0.1).any() and (scores > 0.1).any()  # unmatched and snapped keypoints
    return want


def _assert_tf_od_api_outputs_equal(served, want):
    """The TF OD API outputs of an export (numpy) equal the Keras model's predictions: boxes
    within 1e-4 of the image, scores within 1e-4, classes exactly; keypoints normalized, zeros
    (and scores 0) for the class without keypoints."""
    assert_same_detections(
        from_tf_od_api_outputs(served, IMAGE_SIZE, IMAGE_SIZE),
        {key: want[key] for key in ("boxes", "labels", "confidences", "num_detections")},
    )
    np.testing.assert_allclose(served["detection_boxes"] * IMAGE_SIZE, want["boxes"],
                               atol=1e-4 * IMAGE_SIZE)
    has_keypoints = (want["labels"] == KEYPOINT_CLASS)[..., None]
    np.testing.assert_allclose(
        served["detection_keypoints"],
        np.where(has_keypoints[..., None], want["keypoints"] / IMAGE_SIZE, 0.0), atol=1e-4
    )
    np.testing.assert_allclose(
        served["detection_keypoint_scores"],
        np.where(has_keypoints, want["keypoint_scores"], 0.0), atol=1e-4
    )


def test_saved_model_serves_the_keypoints_of_predict_with_the_tf_od_api_signature(
    model, batch, predicted, tmp_path
):
    export_saved_model(model, tmp_path, progress=False)
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    assert {name: (spec.dtype, spec.shape.as_list())
            for name, spec in serve.structured_outputs.items()} == {
        name: (tf.float32, shape) for name, shape in OUTPUT_SHAPES.items()
    }
    served = {name: value.numpy() for name, value in serve(input_tensor=tf.constant(batch)).items()}
    _assert_tf_od_api_outputs_equal(served, predicted)


def test_tf_example_input_serves_the_same_keypoints(model, batch, predicted, tmp_path):
    export_saved_model(model, tmp_path, "tf_example", progress=False)
    examples = [
        create_tf_example(encode_image(image, "png"), IMAGE_SIZE, IMAGE_SIZE, [], [], [])
        .SerializeToString()
        for image in batch
    ]
    served = tf.saved_model.load(str(tmp_path))(tf.constant(examples))
    _assert_tf_od_api_outputs_equal({name: value.numpy() for name, value in served.items()},
                                    predicted)


def test_tflite_runs_the_center_net_postprocessing_with_builtin_ops(
    model, batch, predicted, tmp_path
):
    export_tflite(model, tmp_path / "center_net.tflite", progress=False)
    interpreter = _interpreter(tmp_path / "center_net.tflite")
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"MAX_POOL_2D", "TOPK_V2"} <= ops
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops)
    assert interpreter.get_signature_list()["serving_default"] == {
        "inputs": ["input_tensor"], "outputs": sorted(OUTPUT_SHAPES),
    }
    served = _run(interpreter, batch)
    for name, shape in OUTPUT_SHAPES.items():
        assert list(served[name].shape) == [2, *shape[1:]], name
    _assert_tf_od_api_outputs_equal(served, predicted)


def _interpreter(path):
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert; it still runs.
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=str(path))


def _run(interpreter, image_batch):
    """The TFLite model's outputs for each image of a batch, stacked like a batch."""
    detect = interpreter.get_signature_runner()
    results = [detect(input_tensor=image[np.newaxis]) for image in image_batch]
    return {name: np.concatenate([result[name] for result in results]) for name in OUTPUT_SHAPES}


def test_frozen_detector_predicts_the_keypoints_too(model, batch, predicted):
    got = FrozenDetector(model, progress=False)(batch)
    assert_same_detections(got, predicted)
    np.testing.assert_allclose(got["keypoints"], predicted["keypoints"], atol=1e-3)
    np.testing.assert_allclose(got["keypoint_scores"], predicted["keypoint_scores"], atol=1e-4)


def test_padding_rows_and_keypoints_of_classes_without_any_are_zeros(model):
    # Rows: a detection of the keypoint class, one of class 1 (no keypoints), then padding.
    labels = np.full([1, 20], -1)
    labels[0, :2] = [KEYPOINT_CLASS, 1]
    detections = {
        "boxes": tf.where(labels[..., None] > 0, [0.1, 0.2, 0.3, 0.4], -1.0),
        "labels": tf.constant(labels, tf.int32),
        "confidences": tf.where(labels > 0, 0.5, 0.0),
        "num_detections": tf.constant([2]),
        "keypoints": tf.where(labels[..., None, None] > 0, tf.fill([1, 20, 3, 2], 0.25), -1.0),
        "keypoint_scores": tf.where(labels[..., None] > 0, tf.fill([1, 20, 3], 0.5), 0.0),
    }
    outputs = {name: value.numpy() for name, value in tf_od_api_outputs(detections, model).items()}
    assert outputs["detection_classes"][0, :3].tolist() == [KEYPOINT_CLASS, 1, 0]
    assert outputs["detection_keypoints"][0, 0].tolist() == [[0.25, 0.25]] * NUM_KEYPOINTS
    assert outputs["detection_keypoint_scores"][0, 0].tolist() == [0.5] * NUM_KEYPOINTS
    for name in OUTPUT_SHAPES:
        if name != "num_detections":
            assert (outputs[name][0, 2:] == 0).all(), name
    assert (outputs["detection_keypoints"][0, 1] == 0).all()
    assert (outputs["detection_keypoint_scores"][0, 1] == 0).all()


def test_int8_quantizes_the_network_and_keeps_the_postprocessing_float(
    model, batch, predicted, tmp_path
):
    export_tflite(model, tmp_path / "int8.tflite", quantization="int8",
                  representative_images=images(8, seed=3), progress=False)
    interpreter = _interpreter(tmp_path / "int8.tflite")
    input_types = {}
    for op in interpreter._get_ops_details():
        tensor = interpreter._get_tensor_details(op["inputs"][0], 0)
        input_types.setdefault(op["op_name"], set()).add(tensor["dtype"])
    assert input_types["CONV_2D"] == {np.int8}
    for name in ("LOGISTIC", "MAX_POOL_2D", "TOPK_V2", "ARG_MIN"):
        assert input_types[name] == {np.float32}, name
    served = _run(interpreter, batch)
    # int8 heads: the scores move by quantization steps (and near-equal ones swap places).
    np.testing.assert_array_equal(served["num_detections"], predicted["num_detections"])
    np.testing.assert_allclose(served["detection_scores"], predicted["confidences"], atol=0.03)


def test_quantization_aware_center_net_is_refused_with_the_reason():
    model = tiny_center_net()
    QuantizationAwareTraining().apply(model)
    with pytest.raises(ValueError, match="quantization-aware CenterNet.*quantize the "
                                         "post-processing.*export_saved_model"):
        export_tflite(model, "unused.tflite")
