import importlib
import time

import numpy as np
import pytest

from kdet.datasets import shapes
from kdet.datasets import shapes_label_map

# `kdet.datasets.shapes` is the function; the module is only reachable through the importer.
shapes_module = importlib.import_module("kdet.datasets.shapes")


def _valid_rows(labels):
    return labels > 0


def test_output_shapes_dtypes_and_padding():
    images, y = shapes(num_images=32, image_size=64, seed=3, max_boxes=5)
    assert images.shape == (32, 64, 64, 3) and images.dtype == np.uint8
    assert y["boxes"].shape == (32, 5, 4) and y["boxes"].dtype == np.float32
    assert y["labels"].shape == (32, 5) and y["labels"].dtype == np.int32
    valid = _valid_rows(y["labels"])
    # Real boxes come first; the rest are rows of -1.
    assert np.all(np.sort(valid, axis=1)[:, ::-1] == valid)
    assert np.all(y["boxes"][~valid] == -1) and np.all(y["labels"][~valid] == -1)
    boxes = y["boxes"][valid]
    assert np.all(boxes >= 0) and np.all(boxes <= 64)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert set(np.unique(y["labels"][valid])) == {1, 2, 3}


def test_deterministic_from_seed():
    images_a, y_a = shapes(8, 48, seed=7)
    images_b, y_b = shapes(8, 48, seed=7)
    images_c, y_c = shapes(8, 48, seed=8)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(y_a["boxes"], y_b["boxes"])
    np.testing.assert_array_equal(y_a["labels"], y_b["labels"])
    assert not np.array_equal(images_a, images_c)


def test_counts_sizes_and_overlap_vary():
    image_size = 128
    _, y = shapes(128, image_size, seed=0)
    valid = _valid_rows(y["labels"])
    counts = valid.sum(axis=1)
    assert counts.min() == 0 and counts.max() >= 7  # some empty images, some crowded ones
    boxes = y["boxes"]
    sides = np.sqrt((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))
    relative_sides = sides[valid] / image_size
    assert relative_sides.min() < 0.12 and relative_sides.max() > 0.45
    heights, widths = (boxes[..., 2] - boxes[..., 0])[valid], (boxes[..., 3] - boxes[..., 1])[valid]
    assert heights.max() <= 0.6 * image_size + 1 and widths.max() <= 0.6 * image_size + 1
    # Placement allows 25% overlap of the drawing slots; tight boxes lose at most 2 rows of a
    # >= 10-pixel slot, so their overlap stays below 0.25 / 0.8.
    for image_boxes in boxes[counts >= 2]:
        image_boxes = image_boxes[image_boxes[:, 0] >= 0]
        areas = (image_boxes[:, 2] - image_boxes[:, 0]) * (image_boxes[:, 3] - image_boxes[:, 1])
        for i in range(len(image_boxes)):
            for j in range(i):
                top_left = np.maximum(image_boxes[i, :2], image_boxes[j, :2])
                bottom_right = np.minimum(image_boxes[i, 2:], image_boxes[j, 2:])
                intersection = np.prod(np.clip(bottom_right - top_left, 0, None))
                assert intersection <= 0.32 * min(areas[i], areas[j])


def test_boxes_are_tight_around_drawn_pixels(monkeypatch):
    # A flat background makes the drawn pixels exactly the non-background pixels.
    monkeypatch.setattr(shapes_module, "_TEXTURE_OCTAVES", ())
    monkeypatch.setattr(shapes_module, "_PIXEL_NOISE", 0.0)
    images, y = shapes(64, 64, seed=5, max_boxes=2, num_classes=4)
    single = np.flatnonzero(_valid_rows(y["labels"]).sum(axis=1) == 1)
    assert len(single) >= 3
    for i in single:
        colours, counts = np.unique(images[i].reshape(-1, 3), axis=0, return_counts=True)
        background = colours[np.argmax(counts)]
        rows, cols = np.nonzero(np.any(images[i] != background, axis=-1))
        expected = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
        np.testing.assert_array_equal(y["boxes"][i, 0], expected)


def test_shape_kinds_fill_their_boxes_differently(monkeypatch):
    monkeypatch.setattr(shapes_module, "_TEXTURE_OCTAVES", ())
    monkeypatch.setattr(shapes_module, "_PIXEL_NOISE", 0.0)
    images, y = shapes(200, 64, seed=2, max_boxes=1, num_classes=4, min_size=16)
    fill = {1: [], 2: [], 3: [], 4: []}
    for i in np.flatnonzero(_valid_rows(y["labels"]).sum(axis=1) == 1):
        y0, x0, y1, x1 = y["boxes"][i, 0].astype(int)
        crop = images[i, y0:y1, x0:x1]
        colours, counts = np.unique(images[i].reshape(-1, 3), axis=0, return_counts=True)
        background = colours[np.argmax(counts)]
        fill[int(y["labels"][i, 0])].append(np.mean(np.any(crop != background, axis=-1)))
    # Fraction of the box covered: rectangle 1, ellipse pi/4, triangle 1/2, and a cross with
    # bars of relative width t ~ U(0.24, 0.44) covers 2t - t^2, 0.56 on average.
    assert np.mean(fill[1]) == 1.0
    assert abs(np.mean(fill[2]) - np.pi / 4) < 0.05
    assert abs(np.mean(fill[3]) - 0.5) < 0.06
    assert abs(np.mean(fill[4]) - 0.56) < 0.05


def test_num_classes_limits_labels_and_label_map():
    _, y = shapes(16, 32, seed=1, num_classes=1)
    assert set(np.unique(y["labels"])) <= {-1, 1}
    assert shapes_label_map() == {1: "rectangle", 2: "ellipse", 3: "triangle"}
    assert shapes_label_map(4)[4] == "cross"
    with pytest.raises(ValueError, match="num_classes.*between 1 and 4"):
        shapes(1, 32, num_classes=5)
    with pytest.raises(ValueError, match="num_classes"):
        shapes_label_map(0)


def test_invalid_sizes_are_rejected():
    with pytest.raises(ValueError, match="min_size"):
        shapes(1, 32, min_size=20, max_size=10)
    with pytest.raises(ValueError, match="image_size"):
        shapes(1, 8)


def test_512_images_of_128_are_fast():
    start = time.perf_counter()
    images, _ = shapes(512, 128)
    assert images.shape == (512, 128, 128, 3)
    assert time.perf_counter() - start < 10.0
