"""ObjectDetector.predict_tiled: overlapping tiles, boxes mapped back, merged per class."""

import numpy as np
import pytest

import kdet
from kdet.models.tiled_prediction import _tile_starts

TREES = "faster_rcnn_mobilenet_v2_deepforest"


@pytest.fixture(scope="module")
def osbs():
    return kdet.datasets.deepforest("OSBS_029")[0]


@pytest.fixture(scope="module")
def trees():
    """The zoo's tree detector, loaded once for the tests that leave it as it is."""
    return kdet.zoo.load(TREES)


def _detections(predictions, index=0):
    """`(boxes, labels, confidences)` of one image, sorted by confidence then box."""
    count = predictions["num_detections"][index]
    boxes = np.asarray(predictions["boxes"][index, :count])
    labels = np.asarray(predictions["labels"][index, :count])
    scores = np.asarray(predictions["confidences"][index, :count])
    order = np.lexsort([*boxes.T[::-1], -scores])
    return boxes[order], labels[order], scores[order]


def _assert_same(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-3)


def test_tile_starts_cover_the_axis_with_the_last_tile_flush():
    assert _tile_starts(400, 200, 100) == [0, 100, 200]
    assert _tile_starts(450, 200, 100) == [0, 100, 200, 250]
    assert _tile_starts(450, 200, 200) == [0, 200, 250]
    assert _tile_starts(150, 200, 100) == [0]


def test_one_tile_gives_the_models_own_detections(osbs, trees):
    model = trees
    whole = model.predict(osbs[None], verbose=0)
    # Re-merging detections the model already merged at its own NMS threshold keeps them all.
    nms = model.roi_heads.non_max_suppression
    tiled = model.predict_tiled(osbs, tile_size=512, iou_threshold=nms.iou_threshold)
    assert tiled["num_detections"][0] == whole["num_detections"][0] > 10
    assert tiled["boxes"].shape == (1, tiled["num_detections"][0], 4)
    _assert_same(_detections(tiled), _detections(whole))


def test_tile_boxes_map_back_into_the_image_in_the_models_box_format(osbs):
    # Two copies of the tile side by side, one tile each: the right copy's detections are the
    # left's shifted by 400 px in x, in the model's xywh format. A model of its own: the box
    # format is read when `predict` is traced.
    model = kdet.zoo.load(TREES)
    model.bounding_box_format = "xywh"
    single = _detections(model.predict(osbs[None], verbose=0))
    pair = np.concatenate([osbs, osbs], axis=1)
    tiled = model.predict_tiled(
        pair,
        tile_size=400,
        stride=400,
        iou_threshold=model.roi_heads.non_max_suppression.iou_threshold,
    )
    boxes, labels, scores = _detections(tiled)
    right = boxes[:, 0] >= 400
    assert right.sum() == (~right).sum() == len(single[0])
    _assert_same((boxes[~right], labels[~right], scores[~right]), single)
    shifted = single[0] + np.array([400, 0, 0, 0], np.float32)
    _assert_same((boxes[right], labels[right], scores[right]), (shifted, *single[1:]))
    assert np.all(np.diff(tiled["confidences"][0]) <= 0)


def test_overlapping_tiles_merge_duplicates(osbs, trees):
    model = trees
    # Stride 100 on a 400x400 image: 9 tiles of 200x200, each tree seen by up to 4 of them.
    tiled = model.predict_tiled(osbs, tile_size=200, stride=100, iou_threshold=0.5)
    boxes, _, scores = _detections(tiled)
    confident = boxes[scores > 0.5]
    assert len(confident) > 10
    tops = np.maximum(confident[:, None, :2], confident[None, :, :2])
    bottoms = np.minimum(confident[:, None, 2:], confident[None, :, 2:])
    intersection = np.prod(np.clip(bottoms - tops, 0, None), axis=-1)
    area = np.prod(confident[:, 2:] - confident[:, :2], axis=-1)
    iou = intersection / (area[:, None] + area[None, :] - intersection)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.5
    assert np.all((boxes >= -1e-3) & (boxes <= 400 + 1e-3))


def test_bad_arguments_are_named(trees):
    model = trees
    one_image = r"one image \[height, width, 3\]; got shape \(2, 8, 8, 3\)"
    with pytest.raises(ValueError, match=one_image):
        model.predict_tiled(np.zeros([2, 8, 8, 3]), tile_size=4)
    with pytest.raises(ValueError, match="tile_size must be a positive int or"):
        model.predict_tiled(np.zeros([8, 8, 3]), tile_size=0)
    pair = r"stride must be a positive int or \(height, width\); got \(1, 2, 3\)"
    with pytest.raises(ValueError, match=pair):
        model.predict_tiled(np.zeros([8, 8, 3]), tile_size=4, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="stride 5 is larger than tile_size 4: pixels between"):
        model.predict_tiled(np.zeros([8, 8, 3]), tile_size=4, stride=5)


def test_no_detection_in_any_tile_gives_an_empty_result():
    import tiny_ssd_extractor

    model = kdet.SSD(
        num_classes=2, feature_extractor=tiny_ssd_extractor.NAME,
        image_resizer=kdet.layers.FixedShapeResizer(64, 64),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
        score_threshold=1.0,  # no sigmoid score passes
    )
    # Taller than a tile, narrower than one: 3 tiles of 40x30.
    tiled = model.predict_tiled(np.zeros([100, 30, 3], "uint8"), tile_size=40, stride=30)
    assert tiled["num_detections"].tolist() == [0]
    assert tiled["boxes"].shape == (1, 0, 4)
    assert tiled["labels"].shape == tiled["confidences"].shape == (1, 0)
