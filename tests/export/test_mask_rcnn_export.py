"""Mask R-CNN export: the SavedModel serves `detection_masks` as the TF OD API's exporter does
(each detection's mask in its box's frame, `predict`'s `"box_masks"`) for every input type
and through `kdet export`; `FrozenDetector` returns the masks; TFLite refuses the model."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import tiny_mask_rcnn
from tiny_two_stage_extractor import TINY_FASTER_RCNN_CONFIG

from kdet import cli
from kdet.configs import load_pipeline
from kdet.data.tf_example import create_tf_example
from kdet.data.tf_example import encode_image
from kdet.export import FrozenDetector
from kdet.export import export_saved_model
from kdet.export import export_tflite
from kdet.export.saved_model import tf_od_api_outputs
from kdet.models.faster_rcnn.mask_head import paste_masks
from kdet.utils.verified_files import record_sha256

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


def test_tf_example_input_serves_the_same_masks(model, batch, predicted, tmp_path):
    # The file input types share one serving path (`encoded_image_string_tensor` is this
    # without the parsing), each image on its own.
    export_saved_model(model, tmp_path, "tf_example", progress=False)
    files = [create_tf_example(encode_image(image, "png"), IMAGE_SIZE, IMAGE_SIZE, [], [], [])
             .SerializeToString() for image in batch]
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


def test_kdet_export_of_a_mask_rcnn_config_serves_its_masks(tmp_path):
    """`kdet export` of a `number_of_stages: 3` config and a kdet checkpoint: the SavedModel's
    `detection_masks` are the restored model's `box_masks`."""
    tiny_config = TINY_FASTER_RCNN_CONFIG.replace(
        "second_stage_box_predictor { mask_rcnn_box_predictor { } }",
        "number_of_stages: 3\n    second_stage_box_predictor { mask_rcnn_box_predictor {"
        " predict_instance_masks: true mask_height: 8 mask_width: 8"
        " mask_prediction_conv_depth: 8 } }",
    )
    assert tiny_config != TINY_FASTER_RCNN_CONFIG
    config = tmp_path / "pipeline.config"
    config.write_text(tiny_config + "train_config { batch_size: 1 num_steps: 1 optimizer {"
                      " momentum_optimizer { learning_rate { constant_learning_rate {"
                      " learning_rate: 0.01 } } } } }\n")
    keras.utils.set_random_seed(0)
    pipeline = load_pipeline(config)
    model = pipeline.model
    model.compile(optimizer=pipeline.optimizer)
    model.build((1, 64, 64, 3))
    model.optimizer.build(model.trainable_variables)  # as a trained checkpoint holds it
    checkpoint = tmp_path / "model" / "ckpt-1.weights.h5"
    checkpoint.parent.mkdir()
    model.save_weights(checkpoint)
    record_sha256(checkpoint)
    assert cli.main(["export", "--pipeline_config_path", str(config), "--trained_checkpoint_dir",
                     str(checkpoint.parent), "--output_directory", str(tmp_path / "out")]) == 0
    batch = images(2, size=64)
    want = model.predict_on_batch(batch)
    served = tf.saved_model.load(str(tmp_path / "out" / "saved_model"))(tf.constant(batch))
    assert served["detection_masks"].shape == (2, 10, 8, 8)
    np.testing.assert_allclose(served["detection_masks"].numpy(), want["box_masks"], atol=1e-5)
