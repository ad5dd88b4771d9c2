"""`predict`'s fast path (`kdet.models.fast_prediction`): in-memory images go straight to a
traced `predict_step`, with the detections of Keras's own `predict`, traced once per dtype when
the model resizes every image to one size."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_ssd_extractor
import tiny_two_stage_extractor  # noqa: F401 (registers config_test_tiny_two_stage)

import kdet
from kdet.models.fast_prediction import resizes_to_one_size

IMAGE_SIZE = 64


def _keras_predict(model, images):
    """Keras's own `predict` (dataset, iterator, `predict_function`): the reference."""
    return keras.Model.predict(model, images, verbose=0)


def _assert_same_detections(got, want):
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)


def _images(rng, batch, height, width, dtype="uint8"):
    return rng.integers(0, 256, (batch, height, width, 3)).astype(dtype)


@pytest.fixture(scope="module")
def ssd():
    # score threshold 0: every anchor into the NMS, detections to compare
    model = tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE, score_threshold=0.0)
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


def _traces(model):
    return {
        key: function.experimental_get_tracing_count()
        for key, function in model._prediction_functions._functions.items()
    }


def test_fixed_size_model_traces_once_per_dtype_and_equals_keras_predict(ssd):
    rng = np.random.default_rng(0)
    inputs = [
        _images(rng, 1, 48, 64),
        _images(rng, 3, 90, 150),
        _images(rng, 2, 61, 40, "float32"),
    ]
    for images in inputs:
        got = ssd.predict(images, verbose=0)
        assert got["num_detections"].min() > 0
        _assert_same_detections(got, _keras_predict(ssd, images))
        _assert_same_detections(ssd.predict_on_batch(images), got)
    # Two sizes and batch sizes of uint8, one of float32: one trace each.
    assert sorted(_traces(ssd).values()) == [1, 1]


def test_predict_leaves_datasets_callbacks_and_large_arrays_to_keras(ssd):
    rng = np.random.default_rng(1)
    images = _images(rng, 3, 40, 56)
    want = _keras_predict(ssd, images)
    traces = _traces(ssd)

    class Count(keras.callbacks.Callback):
        batches = 0

        def on_predict_batch_end(self, batch, logs=None):
            Count.batches += 1

    _assert_same_detections(ssd.predict(images, callbacks=[Count()], verbose=0), want)
    assert Count.batches == 1  # Keras's loop ran
    # More images than one batch: Keras's batching, in order.
    _assert_same_detections(ssd.predict(images, batch_size=2, verbose=0), want)
    assert _traces(ssd) == traces  # neither went through the fast path


def test_eager_models_use_keras_predict():
    model = tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)
    model.compile(run_eagerly=True)
    images = _images(np.random.default_rng(2), 1, 40, 40)
    model.predict(images, verbose=0)
    model.predict_on_batch(images)
    assert _traces(model) == {}


def test_model_resizing_to_the_image_size_retraces_like_keras_and_equals_it():
    model = kdet.FasterRCNN(
        num_classes=2,
        feature_extractor=kdet.feature_extractors.build_feature_extractor(
            "config_test_tiny_two_stage"
        ),
        image_resizer=kdet.layers.KeepAspectRatioResizer(64, 96),
        first_stage_max_proposals=16,
        second_stage_batch_size=8,
    )
    model.build((None, 64, 80, 3))
    assert not resizes_to_one_size(model.image_resizer)
    rng = np.random.default_rng(3)
    for height, width in ((64, 80), (80, 64), (50, 120)):
        images = _images(rng, 1, height, width)
        _assert_same_detections(model.predict(images, verbose=0), _keras_predict(model, images))
    # Exact shapes for the first size, relaxed from the second on (reduce_retracing).
    assert list(_traces(model).values()) == [2]


@pytest.mark.parametrize(
    "resizer, one_size",
    [
        (kdet.layers.FixedShapeResizer(32, 48), True),
        (kdet.layers.KeepAspectRatioResizer(32, 48, pad_to_max_dimension=True), True),
        (kdet.layers.KeepAspectRatioResizer(32, 48), False),
        (None, False),
    ],
)
def test_resizes_to_one_size(resizer, one_size):
    assert resizes_to_one_size(resizer) is one_size


def test_traces_are_made_anew_when_keras_would_trace_predict_anew(ssd):
    images = _images(np.random.default_rng(4), 1, 40, 40)
    ssd.predict(images, verbose=0)
    traced = dict(ssd._prediction_functions._functions)
    ssd.predict(images, verbose=0)
    assert ssd._prediction_functions._functions == traced  # kept while Keras keeps its own
    ssd.predict_function = None  # what compile() and a quantization-aware rewrite do
    ssd.predict(images, verbose=0)
    functions = ssd._prediction_functions._functions
    key = (tf.uint8, False)
    assert list(functions) == [key] and functions[key] is not traced[key]
