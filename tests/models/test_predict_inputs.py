"""`predict` takes what users have (one image, lists of sizes, grayscale, RGBA); `Results`."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tiny_ssd_extractor

from kdet.models import Results

IMAGE_SIZE = 64
EXPECTED = r"takes images \[batch, height, width, 3\]"


@pytest.fixture(scope="module")
def model():
    # score threshold 0: every anchor into the NMS, detections to compare
    model = tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE, score_threshold=0.0)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


@pytest.fixture(scope="module")
def photos():
    """Two RGB uint8 images of different sizes: `[90, 150, 3]` and `[60, 40, 3]`."""
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, (90, 150, 3)).astype("uint8"),
        rng.integers(0, 256, (60, 40, 3)).astype("uint8"),
    )


def _assert_same(got, want):
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-4, err_msg=key)


def test_one_image_is_predicted_as_a_batch_of_one(model, photos):
    image = photos[0]
    want = model.predict(image[None], verbose=0)
    got = model.predict(image, verbose=0)
    assert got["boxes"].shape == (1, 100, 4)
    _assert_same(got, want)
    _assert_same(model.predict_on_batch(image), want)


def test_a_list_of_sizes_gives_rows_in_order_with_boxes_in_each_images_pixels(model, photos):
    big, small = photos
    got = model.predict([big, small, big], verbose=0)
    assert got["boxes"].shape == (3, 100, 4)
    for row, image in enumerate([big, small, big]):
        _assert_same({k: v[row] for k, v in got.items()},
                     {k: v[0] for k, v in model.predict(image[None], verbose=0).items()})
        valid = got["boxes"][row, : got["num_detections"][row]]
        assert valid.max(axis=0)[2] <= image.shape[0] + 1e-3  # ymax within its own height
        assert valid.max(axis=0)[3] <= image.shape[1] + 1e-3  # xmax within its own width
    on_batch = model.predict_on_batch([big, small])
    _assert_same({k: v[1] for k, v in on_batch.items()}, {k: v[1] for k, v in got.items()})


@pytest.mark.parametrize("layout", ["hw", "hw1", "1hw1", "rgba"])
def test_grayscale_and_rgba_are_made_rgb(model, photos, layout):
    image = photos[0]
    gray = image[..., 0]
    given, rgb = {
        "hw": (gray, np.repeat(gray[..., None], 3, -1)),
        "hw1": (gray[..., None], np.repeat(gray[..., None], 3, -1)),
        "1hw1": (gray[None, ..., None], np.repeat(gray[..., None], 3, -1)),
        "rgba": (np.concatenate([image, np.full_like(image[..., :1], 7)], -1), image),
    }[layout]
    want = model.predict(rgb[None], verbose=0)
    _assert_same(model.predict(given, verbose=0), want)
    _assert_same(model.predict_on_batch(given), want)


def test_a_dataset_of_grayscale_batches_is_made_rgb_in_the_graph(model, photos):
    gray = photos[0][None, ..., :1]
    got = model.predict(tf.data.Dataset.from_tensors(gray), verbose=0)
    _assert_same(got, model.predict(np.repeat(gray, 3, -1), verbose=0))


@pytest.mark.parametrize(
    "shape", [(2, 32, 32, 5), (4, 32, 32), (32,), (1, 2, 32, 32, 3), (32, 32, 2)]
)
def test_other_shapes_get_one_line_naming_the_expected_shape(model, shape):
    with pytest.raises(ValueError, match=EXPECTED) as info:
        model.predict(np.zeros(shape, "uint8"), verbose=0)
    assert str(shape) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match=EXPECTED):
        model.predict_on_batch(np.zeros(shape, "uint8"))
    with pytest.raises(ValueError, match=EXPECTED):
        model.predict([np.zeros((32, 32, 3), "uint8"), np.zeros(shape, "uint8")], verbose=0)


def test_detect_images_gives_unpadded_named_results_per_image(model, photos, tmp_path):
    big, small = photos
    results = model.detect_images([big, small[..., 0]], label_map={1: "circle"},
                                  score_threshold=0.3)
    predictions = model.predict([big, small[..., 0]], verbose=0)
    assert len(results) == 2
    for row, (result, image) in enumerate(zip(results, [big, small], strict=True)):
        count = predictions["num_detections"][row]
        keep = predictions["confidences"][row, :count] >= 0.3
        np.testing.assert_allclose(result.boxes, predictions["boxes"][row, :count][keep])
        np.testing.assert_array_equal(result.labels, predictions["labels"][row, :count][keep])
        np.testing.assert_allclose(result.scores, predictions["confidences"][row, :count][keep])
        assert len(result) == keep.sum() > 0
        assert result.names == ["circle" if label == 1 else str(label) for label in result.labels]
        assert result.image.shape == (*image.shape[:2], 3)
        drawn = result.draw()
        assert drawn.shape == result.image.shape and drawn.dtype == np.uint8
        assert (drawn != result.image).any()
    as_dict = json.loads(json.dumps(results[0].to_dict()))
    assert as_dict["names"] == results[0].names
    assert np.allclose(as_dict["boxes"], results[0].boxes)
    assert as_dict["bounding_box_format"] == "yxyx"
    path = results[1].save(tmp_path / "new" / "folder" / "small.png")
    assert path.is_file()
    shown = ", ".join(f"{n} {s:.2f}" for n, s in zip(results[0].names[:5], results[0].scores))
    assert repr(results[0]) == (
        f"Results({len(results[0])} detections: {shown}, …, image 90x150)"
    )
    assert model.detect_images(big)[0].boxes.shape == (100, 4)  # one image: a list of one


def test_results_from_predictions_and_label_map_files(model, photos, tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'circle' }\nitem { id: 2 name: 'square' }\n")
    named = model.detect_images(photos[0], label_map=str(label_map))[0]
    assert set(named.names) <= {"circle", "square"}
    predictions = model.predict(photos[0], verbose=0)
    (result,) = Results.from_predictions(predictions, bounding_box_format="yxyx")
    assert len(result) == predictions["num_detections"][0]
    assert result.names[0] == str(result.labels[0])
    with pytest.raises(ValueError, match="no image to draw on"):
        result.draw()
