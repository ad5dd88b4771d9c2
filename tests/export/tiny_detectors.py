"""Tiny detectors for the export tests, with batch-norm statistics that look trained."""

import keras
import numpy as np

import kdet

IMAGE_SIZE = 96


def images(count=2, seed=0, size=IMAGE_SIZE):
    """uint8 `[count, size, size, 3]` shapes images."""
    return kdet.datasets.shapes(count, size, seed=seed, max_boxes=4)[0]


def with_trained_looking_batch_norms(model):
    """Random batch-norm statistics, so that folding them into convolutions changes numbers."""
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers():
        if isinstance(layer, kdet.layers.FusedBatchNormalization):
            gamma, beta, mean, variance = (w.numpy() for w in layer.weights)
            layer.set_weights([
                gamma * rng.uniform(0.5, 1.5, gamma.shape),
                beta + rng.normal(0, 0.1, beta.shape),
                mean + rng.normal(0, 0.1, mean.shape),
                variance * rng.uniform(0.5, 1.5, variance.shape),
            ])
    return model


def tiny_ssd(image_resizer=None, non_max_suppression=None):
    """A built SSD MobileNetV2 (depth 0.35, 3 classes) for `IMAGE_SIZE` images."""
    # The same weights whatever ran before: random-init detections have near-equal scores.
    keras.utils.set_random_seed(0)
    model = kdet.SSD(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.SSDMobileNetV2FeatureExtractor(
            depth_multiplier=0.35
        ),
        image_resizer=image_resizer or kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        non_max_suppression=non_max_suppression
        or kdet.layers.MultiClassNonMaxSuppression(score_converter="sigmoid"),
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    return with_trained_looking_batch_norms(model)


def tiny_faster_rcnn():
    """A built Faster R-CNN MobileNetV2 (depth 0.35, 3 classes, 20 proposals)."""
    keras.utils.set_random_seed(0)
    model = kdet.FasterRCNN(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.build_feature_extractor(
            "faster_rcnn_mobilenet_v2", depth_multiplier=0.35
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_max_proposals=20,
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    return with_trained_looking_batch_norms(model)


def assert_same_detections(got, want):
    """kdet predictions dicts equal: labels and counts exactly, scores and pixel boxes closely."""
    assert set(got) == set(want)
    np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_allclose(got["confidences"], want["confidences"], atol=1e-4)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-2)


def assert_top_detections_found(got, want, top=10):
    """Each of `got`'s `top` best detections per image (all of them, if `want` has fewer) is in
    `want` (label, box, confidence).

    For random-init models whose many near-equal scores make the tail order fragile.
    """
    for image in range(len(got["boxes"])):
        count = want["num_detections"][image]
        shown = min(top, count)
        assert got["num_detections"][image] >= shown, f"image {image}: too few detections"
        for index in range(shown):
            box_error = np.abs(want["boxes"][image, :count] - got["boxes"][image, index])
            confidence_error = np.abs(
                want["confidences"][image, :count] - got["confidences"][image, index]
            )
            found = (
                (want["labels"][image, :count] == got["labels"][image, index])
                & (box_error.max(-1) < 1e-2)
                & (confidence_error < 1e-4)
            )
            assert found.any(), f"image {image}: detection {index} not found"


def from_tf_od_api_outputs(outputs, height, width):
    """The TF OD API outputs of an exported model → a kdet predictions dict in pixels.

    Padding rows (zeros) become kdet's padding (-1 boxes and labels, 0 confidence).
    """
    valid = np.arange(outputs["detection_scores"].shape[1]) < outputs["num_detections"][:, None]
    boxes = outputs["detection_boxes"] * [height, width, height, width]
    return {
        "boxes": np.where(valid[..., None], boxes, -1.0),
        "labels": np.where(valid, outputs["detection_classes"], -1).astype("int32"),
        "confidences": np.where(valid, outputs["detection_scores"], 0.0),
        "num_detections": outputs["num_detections"].astype("int32"),
    }
