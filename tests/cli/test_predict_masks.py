"""`kdet predict` and `kdet.inference` on an exported Mask R-CNN: the SavedModel's box-frame
`detection_masks` come back pasted into the image, as `kdet.MaskRCNN.predict`'s `"masks"`, and
the run folder carries them (COCO RLE `segmentation` in the JSON, masks drawn)."""

import json
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import kdet.inference
from kdet import cli
from kdet import visualization
from kdet.export import export_saved_model
from kdet.inference.loaded_detector import _keras_detect

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "export"))
from tiny_detectors import images
from tiny_detectors import tiny_mask_rcnn

# `kdet export`'s SavedModel pastes to within 1e-4 of `predict` (test_mask_rcnn_export.py):
# a binarized pixel may differ only where the probability is that close to 0.5.
PROBABILITY_TOLERANCE = 1e-4
MASK_THRESHOLD = 0.5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`(SavedModel folder, image file, the Keras model's valid detections of it, the model)`."""
    root = tmp_path_factory.mktemp("mask_rcnn")
    model = tiny_mask_rcnn()
    image = images(1, seed=3)[0]
    path = root / "shapes.png"
    Image.fromarray(image).save(path)
    predicted = model.predict_on_batch(image[None])
    count = int(predicted["num_detections"][0])
    want = {key: np.asarray(predicted[key])[0, :count]
            for key in ("boxes", "labels", "confidences", "masks")}
    # Both classes, masks with objects in them and not all alike.
    assert set(want["labels"]) == {1, 2}
    binary = want["masks"] > MASK_THRESHOLD
    assert binary.any(axis=(1, 2)).sum() >= 2 and (~binary).any()
    export_saved_model(model, root / "saved_model", progress=False)
    return root / "saved_model", path, want, model


def _assert_same_masks(got, want):
    """Binarized masks equal but for pixels whose probability is within the export's tolerance
    of the threshold (there, float rounding may put them on either side)."""
    assert got.shape == want.shape
    differ = (got > MASK_THRESHOLD) != (want > MASK_THRESHOLD)
    borderline = np.abs(want - MASK_THRESHOLD) <= PROBABILITY_TOLERANCE
    assert not (differ & ~borderline).any(), f"{differ.sum()} pixels differ"


def test_loaded_saved_model_detects_the_masks_of_predict(exported):
    saved_model, path, want, model = exported
    image = kdet.inference.read_image(path)
    for detector in (kdet.inference.load_detector(saved_model),
                     kdet.inference.LoadedDetector(_keras_detect(model), {}, "Keras", model)):
        got = detector.detect(image)
        np.testing.assert_array_equal(got["labels"], want["labels"])
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-2)
        assert got["masks"].shape == (len(want["labels"]), *image.shape[:2])
        np.testing.assert_allclose(got["masks"], want["masks"], atol=PROBABILITY_TOLERANCE)
        _assert_same_masks(got["masks"], want["masks"])
        # A score threshold leaves out the lower rows, masks too (both paste only those kept).
        threshold = np.median(want["confidences"])
        kept = want["confidences"] >= threshold
        assert 0 < kept.sum() < len(kept)
        some = detector.detect(image, score_threshold=threshold)
        np.testing.assert_array_equal(some["labels"], want["labels"][kept])
        np.testing.assert_array_equal(some["masks"], got["masks"][kept])


def test_kdet_predict_writes_rle_segmentations_and_draws_the_masks(exported, tmp_path):
    saved_model, path, want, _ = exported
    output = tmp_path / "runs"
    assert cli.main(["predict", str(path), "--model", str(saved_model), "--output_dir",
                     str(output), "--score_threshold", "0"]) == 0
    (found,) = json.loads((output / "detections.json").read_text()).values()
    assert [d["label"] for d in found] == want["labels"].tolist()
    rles = [dict(d["segmentation"], counts=d["segmentation"]["counts"].encode()) for d in found]
    decoded = mask_utils.decode(rles).transpose(2, 0, 1)
    _assert_same_masks(decoded.astype(np.float32), want["masks"])
    # The drawn image is the one with the masks filled, not the boxes-only drawing.
    drawn = np.asarray(Image.open(output / "shapes_detections.jpg"), np.float32)
    image = np.asarray(Image.open(path))
    detections = {key: want[key] for key in ("boxes", "labels", "confidences")}
    errors = [
        np.abs(drawn - visualization.draw_detections(
            image, shown, score_threshold=0.0, bounding_box_format="yxyx")).mean()
        for shown in (dict(detections, masks=want["masks"]), detections)
    ]
    assert errors[0] < errors[1] / 2, errors
