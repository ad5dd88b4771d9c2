import numpy as np
import pytest
import tensorflow as tf

import kdet
from kdet.export import FrozenDetector

IMAGE_SIZE = 96


def _images(count=2, seed=0):
    return kdet.datasets.shapes(count, IMAGE_SIZE, seed=seed, max_boxes=4)[0]


def _with_trained_looking_batch_norms(model):
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


def _ssd():
    model = kdet.SSD(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.SSDMobileNetV2FeatureExtractor(
            depth_multiplier=0.35
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        score_threshold=0.0,
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    return _with_trained_looking_batch_norms(model)


def _op_types(graph_def):
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def _assert_same_detections(got, want):
    assert set(got) == set(want)
    np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_allclose(got["confidences"], want["confidences"], atol=1e-4)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-2)


def _assert_top_detections_found(got, want, top=10):
    """Each of `got`'s `top` best detections per image is in `want` (label, box, confidence).

    For random-init models whose many near-equal scores make the tail order fragile.
    """
    for image in range(len(got["boxes"])):
        count = want["num_detections"][image]
        for index in range(top):
            box_error = np.abs(want["boxes"][image, :count] - got["boxes"][image, index])
            confidence_error = np.abs(
                want["confidences"][image, :count] - got["confidences"][image, index]
            )
            found = (
                (want["labels"][image, :count] == got["labels"][image, index])
                & (box_error.max(-1) < 1e-2)
                & (confidence_error < 1e-4)
            )
            assert found.any(), f"image {image}: detection {index} of the frozen detector"


def test_ssd_frozen_detections_equal_the_models_with_batch_norms_folded():
    model = _ssd()
    frozen = FrozenDetector(model)
    ops = _op_types(frozen.graph_def)
    assert not ops & {"FusedBatchNormV3", "VarHandleOp", "ReadVariableOp"}
    assert {"Conv2D", "DepthwiseConv2dNative", "BiasAdd"} <= ops
    images = _images()
    got = frozen(images)
    assert got["num_detections"].min() > 0
    _assert_same_detections(got, model.predict_on_batch(images))


def test_frozen_detector_is_a_snapshot_and_takes_any_image_size_and_dtype():
    model = _ssd()
    frozen = FrozenDetector(model)
    images = np.concatenate([_images(), _images()], axis=2)  # 96 x 192
    before = model.predict_on_batch(images)
    for variable in model.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    _assert_same_detections(frozen(images), before)
    _assert_same_detections(frozen(images.astype("float32")), before)


def test_faster_rcnn_freezes_too():
    model = kdet.FasterRCNN(
        num_classes=3,
        feature_extractor=kdet.feature_extractors.build_feature_extractor(
            "faster_rcnn_mobilenet_v2", depth_multiplier=0.35
        ),
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        first_stage_max_proposals=20,
    )
    model.build((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    _with_trained_looking_batch_norms(model)
    images = _images()
    _assert_top_detections_found(FrozenDetector(model)(images), model.predict_on_batch(images))


@pytest.mark.parametrize("shape", [(96, 96, 3), (1, 96, 96, 1)])
def test_bad_image_shapes_are_rejected_with_the_expected_shape(shape):
    frozen = FrozenDetector(_ssd())
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]; got shape"):
        frozen(np.zeros(shape, "uint8"))
