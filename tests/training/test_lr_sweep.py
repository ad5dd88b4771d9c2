"""kdet.training.lr_sweep: an exponential learning-rate ramp on a copy of the model."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tiny_ssd_extractor

import kdet
from kdet.training import lr_sweep
from kdet.training import plot_lr_sweep

IMAGE_SIZE = 64


def _model():
    # A tiny user extractor: the sweep's loop is what is checked (a MobileNetV2 0.35 body cost
    # ~8 s of tracing per sweep).
    model = tiny_ssd_extractor.tiny_ssd(image_size=IMAGE_SIZE)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return model


def _dataset():
    images, y = kdet.datasets.shapes(16, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=2)
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), y)).batch(4).repeat()


def test_sweep_ramps_the_rate_keeps_the_model_and_suggests_a_rate(tmp_path):
    model = _model()
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    before = [w.numpy().copy() for w in model.weights]
    result = lr_sweep(model, _dataset(), min_lr=1e-5, max_lr=1e-1, num_steps=8)
    rates = np.array(result["learning_rates"])
    assert len(rates) == len(result["losses"]) == len(result["smoothed_losses"]) == 8
    np.testing.assert_allclose(rates, 1e-5 * 1e4 ** (np.arange(8) / 8), rtol=1e-5)
    assert not result["diverged"]
    assert 1e-6 <= result["suggested_learning_rate"] <= 1e-2
    best = int(np.argmin(result["smoothed_losses"]))
    assert result["suggested_learning_rate"] == pytest.approx(rates[best] / 10)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new)
    plot_lr_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_stops_when_the_loss_diverges():
    result = lr_sweep(_model(), _dataset(), min_lr=1e-2, max_lr=1e6, num_steps=30)
    assert result["diverged"]
    assert len(result["losses"]) < 30


def test_bad_range_and_uncompiled_model_are_errors():
    with pytest.raises(ValueError, match="0 < min_lr < max_lr"):
        lr_sweep(_model(), _dataset(), min_lr=1.0, max_lr=0.1)
    model = kdet.SSD(
        num_classes=2,
        feature_extractor="ssd_mobilenet_v2",
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
    )
    with pytest.raises(ValueError, match="compiled model"):
        lr_sweep(model, _dataset())


def test_noise_in_the_first_steps_is_not_divergence():
    from kdet.training.lr_sweep import ExponentialRamp
    from kdet.training.lr_sweep import _LossRecorder

    class Model:
        stop_training = False

    recorder = _LossRecorder(ExponentialRamp(1e-6, 1.0, 100), smoothing=0.9, divergence_factor=4.0)
    recorder.set_model(Model())
    losses = [300.0, 3000.0, 290.0] + [280.0] * 9 + [1e5]  # noisy start, then a real blow-up
    for batch, _ in enumerate(losses):
        recorder.on_train_batch_end(batch, {"loss": np.mean(losses[: batch + 1])})
        if batch < 12:
            assert not recorder.model.stop_training, batch
    assert recorder.model.stop_training and recorder.diverged
