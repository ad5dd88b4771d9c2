"""Tiny detectors for the export tests, with batch-norm statistics that look trained."""

import pathlib
import sys

import keras
import numpy as np

import kdet

IMAGE_SIZE = 96
# The CenterNet tests' tiny extractor (`tiny_center_net.py`), one module whoever imports it.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "models" / "center_net"))


def images(count=2, seed=0, size=IMAGE_SIZE):
    """uint8 `[count, size, size, 3]` shapes images."""
    return kdet.datasets.shapes(count, size, seed=seed, max_boxes=4)[0]


def with_trained_looking_batch_norms(model):
    """Random batch-norm statistics, so that folding them into convolutions changes numbers."""
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
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


def tiny_center_net():
    """A built CenterNet (2 classes, 20 detections) for `IMAGE_SIZE` images on the CenterNet
    tests' 3-convolution extractor (`TinyCenterNetExtractor`, 8 filters, batch norms), with a
    3-keypoint task for class 2.

    Its heads look trained (center logits spread ×10, box-size bias +6 cells, keypoint heatmap
    bias -0.5): both classes are detected, with distinct scores, and some keypoints snap to
    heatmap peaks while others keep their regressed place.
    """
    from tiny_center_net import TinyCenterNetExtractor

    keras.utils.set_random_seed(1)
    head = {"num_filters": [8], "kernel_sizes": [3]}
    task = kdet.models.KeypointEstimationTask(
        "corners", 2, [0, 1, 2], keypoint_labels=["top_left", "center", "bottom_right"],
        heatmap_bias_init=-0.5,
        **{f"{name}_head_{field}": value
           for name in ("heatmap", "offset", "regress") for field, value in head.items()},
    )
    model = kdet.CenterNet(
        num_classes=2,
        feature_extractor=TinyCenterNetExtractor(
            filters=8, channel_means=(127.5,) * 3, channel_stds=(127.5,) * 3
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        keypoint_tasks=[task],
        max_box_predictions=20,
        **{f"{name}_head_{field}": value
           for name in ("center", "scale", "offset") for field, value in head.items()},
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    center = model.prediction_heads["object_center"][0].output_conv
    center.kernel.assign(center.kernel * 10.0)
    box_size = model.prediction_heads["box_scale"][0].output_conv
    box_size.bias.assign(box_size.bias + 6.0)
    return with_trained_looking_batch_norms(model)


def tiny_mask_rcnn():
    """A built Mask R-CNN (2 classes, 20 proposals, 8 x 8 masks, 10 detection rows of which
    at most 8 are detections: 4 per class) for `IMAGE_SIZE` images on the config tests' tiny
    two-stage extractor (`tests/tiny_two_stage_extractor.py`).

    Its mask head's last bias differs per class (-1 and +1), so that a mask taken from the
    wrong class shows.
    """
    import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)

    keras.utils.set_random_seed(0)
    model = kdet.MaskRCNN(
        2,
        "config_test_tiny_two_stage",
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_max_proposals=20,
        roi_heads=kdet.models.faster_rcnn.RoIHeads(
            2,
            kdet.layers.CropAndResizeRoIPooler(8),
            non_max_suppression=kdet.layers.MultiClassNonMaxSuppression(
                score_threshold=0.0, max_detections_per_class=4, max_detections=10
            ),
        ),
        mask_head=kdet.models.faster_rcnn.MaskHead(
            2, mask_height=8, mask_width=8, conv_depth=8, name="mask_head"
        ),
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    last = model.mask_head.predictor_layers[-1]
    last.bias.assign([-1.0, 1.0])
    return model
