"""R-FCN export: the SavedModel of a `kdet.RFCN` (position-sensitive box predictor, no crops
for the box classifier) serves `predict`'s detections with the TF OD API signature."""

import keras
import numpy as np
import tensorflow as tf
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import with_trained_looking_batch_norms

import kdet
from kdet.export import export_saved_model

MAX_DETECTIONS = 10


def tiny_rfcn():
    """A built R-FCN (2 classes, 20 proposals, 2 x 2 position-sensitive bins, 10 detection
    rows of which at most 8 are detections: 4 per class) for `IMAGE_SIZE` images on the config
    tests' tiny two-stage extractor.

    Its class logits are spread x 30, so that scores differ by more than rounding.
    """
    keras.utils.set_random_seed(0)
    model = kdet.RFCN(
        2,
        "config_test_tiny_two_stage",
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_max_proposals=20,
        roi_heads=kdet.models.faster_rcnn.RoIHeads(
            2,
            box_predictor=kdet.models.faster_rcnn.RFCNBoxPredictor(
                2, depth=8, crop_size=(4, 4), num_spatial_bins=(2, 2)
            ),
            non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(
                score_converter="softmax", score_threshold=0.0, max_detections_per_class=4,
                max_detections=MAX_DETECTIONS,
            ),
            name="roi_heads",
        ),
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    classes = model.roi_heads.box_predictor.class_predictions_conv
    classes.kernel.assign(classes.kernel * 30.0)
    return with_trained_looking_batch_norms(model)


def test_saved_model_serves_the_detections_of_predict(tmp_path):
    model = tiny_rfcn()
    batch = images(2)
    want = model.predict_on_batch(batch)
    # Both classes, padding rows, and scores that differ (mixed-up rows would show).
    assert set(np.unique(want["labels"])) == {-1, 1, 2}
    valid = want["confidences"][want["labels"] > 0]
    assert np.ptp(valid) > 0.05, valid
    export_saved_model(model, tmp_path, progress=False)
    serve = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    assert {name: spec.shape.as_list() for name, spec in serve.structured_outputs.items()} == {
        "detection_boxes": [None, MAX_DETECTIONS, 4],
        "detection_scores": [None, MAX_DETECTIONS],
        "detection_classes": [None, MAX_DETECTIONS],
        "num_detections": [None],
    }
    served = {name: value.numpy() for name, value in serve(input_tensor=tf.constant(batch)).items()}
    got = from_tf_od_api_outputs(served, IMAGE_SIZE, IMAGE_SIZE)
    assert_same_detections(
        got, {key: want[key] for key in ("boxes", "labels", "confidences", "num_detections")}
    )
    # Measured: the served scores equal predict's exactly, the boxes to 1e-5 px.
    np.testing.assert_allclose(got["confidences"], want["confidences"], atol=1e-6)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-3)
