"""kdet.training.train: checkpoints every N steps, TensorBoard scalars, resume after a crash."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kdet
import tiny_ssd_extractor
from kdet.training import trainer
from kdet.utils import verified_files

IMAGE_SIZE = 64


class _Crash(RuntimeError):
    pass


class _CrashAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise _Crash(f"simulated crash at step {self.step}")


def _model(weights=None):
    model = kdet.SSD(
        num_classes=2,
        feature_extractor=tiny_ssd_extractor.NAME,
        image_resizer=kdet.layers.FixedShapeResizer(IMAGE_SIZE, IMAGE_SIZE),
        anchor_generator=kdet.layers.SSDAnchorGenerator(num_layers=2, min_scale=0.2, max_scale=0.6),
    )
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return model


def _dataset():
    """One batch, repeated: every step sees the same data, so a resumed run can match."""
    images, y = kdet.datasets.shapes(4, IMAGE_SIZE, num_classes=2, max_boxes=3, seed=1)
    return tf.data.Dataset.from_tensors((images.astype("float32"), y)).repeat()


def _scalars(log_dir):
    return {tag: dict(zip(*curve)) for tag, curve in kdet.plots.read_scalars(log_dir).items()}


def _image_steps(log_dir, tag):
    return sorted(
        event.step
        for path in log_dir.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == tag
    )


def test_train_checkpoints_every_n_steps_logs_scalars_and_stops_at_num_steps(tmp_path):
    model = _model()
    summary = trainer.train(
        model, _dataset(), tmp_path, num_steps=6, checkpoint_every_n=2, max_to_keep=2,
        log_every_n=2, log_images_every_n=3, verbose=0,
    )
    assert (summary["start_step"], summary["final_step"]) == (0, 6)
    assert int(model.optimizer.iterations) == 6
    assert [step for step, _ in trainer.list_checkpoints(tmp_path)] == [4, 6]
    assert summary["checkpoint"] == trainer.checkpoint_path(tmp_path, 6)
    assert verified_files.is_verified(summary["checkpoint"])
    assert not (tmp_path / "ckpt-2.weights.h5.sha256").exists()
    assert set(summary["losses"]) == {"loss", "localization_loss", "classification_loss"}

    scalars = _scalars(tmp_path / "train")
    assert set(scalars["losses/loss"]) == {2, 4, 6}
    assert scalars["learning_rate"] == pytest.approx({2: 0.01, 4: 0.01, 6: 0.01})
    assert all(np.isfinite(value) for value in scalars["losses/loss"].values())
    assert set(scalars["steps_per_second"]) == {2, 4, 6}
    assert all(value > 0 for value in scalars["steps_per_second"].values())
    assert _image_steps(tmp_path / "train", "train_images") == [3, 6]
    # Window means over the three windows average to the run's mean loss.
    assert np.mean(list(scalars["losses/loss"].values())) == pytest.approx(
        summary["losses"]["loss"], rel=1e-4
    )


def test_a_crashed_run_resumes_from_its_last_checkpoint_and_ends_where_an_unbroken_one_does(
    tmp_path,
):
    initial = _model().get_weights()
    unbroken = _model(initial)
    trainer.train(unbroken, _dataset(), tmp_path / "unbroken", num_steps=6,
                  checkpoint_every_n=2, verbose=0)

    crashed = _model(initial)
    with pytest.raises(_Crash):
        trainer.train(crashed, _dataset(), tmp_path / "run", num_steps=6, checkpoint_every_n=2,
                      callbacks=[_CrashAtStep(5)], verbose=0)
    assert [step for step, _ in trainer.list_checkpoints(tmp_path / "run")] == [2, 4]

    resumed = _model()  # fresh weights: everything must come from the checkpoint
    summary = trainer.train(resumed, _dataset(), tmp_path / "run", num_steps=6,
                            checkpoint_every_n=2, verbose=0)
    assert (summary["start_step"], summary["final_step"]) == (4, 6)
    for ours, reference in zip(resumed.weights, unbroken.weights, strict=True):
        np.testing.assert_allclose(ours, reference, atol=1e-5, err_msg=ours.path)


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path):
    trainer.train(_model(), _dataset(), tmp_path, num_steps=4, checkpoint_every_n=2, verbose=0)
    newest = trainer.checkpoint_path(tmp_path, 4)
    newest.write_bytes(newest.read_bytes()[:-64])
    with pytest.warns(UserWarning, match="damaged or incomplete"):
        assert trainer.latest_checkpoint(tmp_path) == (2, trainer.checkpoint_path(tmp_path, 2))


def test_a_finished_run_trains_no_further(tmp_path):
    trainer.train(_model(), _dataset(), tmp_path, num_steps=2, checkpoint_every_n=2, verbose=0)
    model = _model()
    summary = trainer.train(model, _dataset(), tmp_path, num_steps=2, checkpoint_every_n=2,
                            verbose=0)
    assert (summary["start_step"], summary["final_step"], summary["losses"]) == (2, 2, {})


class _SpikeAt(keras.optimizers.schedules.LearningRateSchedule):
    """0.01, except a learning rate of 1e12 for the update of step `spike` (1-based)."""

    def __init__(self, spike):
        self.spike = spike

    def __call__(self, step):  # `step`: updates done before this one
        return tf.where(tf.equal(step + 1, self.spike), 1e12, 0.01)


def test_a_non_finite_loss_names_a_checkpoint_whose_weights_gave_a_finite_loss(tmp_path):
    # The update of step 3 blows the weights up; ckpt-3 is saved before any loss is computed
    # from them; step 4's loss (from ckpt-3's weights) is the first non-finite one.
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(_SpikeAt(3)))
    with pytest.raises(trainer.NonFiniteLossError, match=r"at step (\d+): training stopped") as info:
        trainer.train(model, _dataset(), tmp_path, num_steps=8, checkpoint_every_n=1, verbose=0)
    bad_step = int(info.value.args[0].split("at step ")[1].split(":")[0])
    assert bad_step == 4
    good = trainer.checkpoint_path(tmp_path, 2)
    assert f"the last good checkpoint is {good} (step 2" in str(info.value)
    assert "diverged-ckpt-3.weights.h5" in str(info.value)
    # ckpt-3 is kept under another name; the newest checkpoint, resumed from, is ckpt-2.
    assert (tmp_path / "diverged-ckpt-3.weights.h5").is_file()
    assert trainer.latest_checkpoint(tmp_path) == (2, good)
    assert trainer.finite_weights(good)

    resumed = _model()
    resumed.compile(optimizer=keras.optimizers.SGD(_SpikeAt(-1)))  # the same state, no spike
    summary = trainer.train(resumed, _dataset(), tmp_path, num_steps=6, checkpoint_every_n=2,
                            verbose=0)
    assert (summary["start_step"], summary["final_step"]) == (2, 6)
    assert all(np.isfinite(value) for value in summary["losses"].values())


def test_with_moving_averages_the_model_ends_with_its_trained_weights(tmp_path):
    # The TF OD API default use_moving_average: Keras's fit would end by copying the averages
    # (decay 0.9999: still the initial weights) into the model.
    initial = _model().get_weights()
    model = _model(initial)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9, use_ema=True, ema_momentum=0.9999)
    model.compile(optimizer=optimizer)
    summary = trainer.train(model, _dataset(), tmp_path, num_steps=4, verbose=0)
    # Restored as a resume does, with the same optimizer (its averages included).
    from_checkpoint = _model()
    from_checkpoint.compile(optimizer=keras.optimizers.SGD.from_config(optimizer.get_config()))
    trainer.restore_checkpoint(from_checkpoint, summary["checkpoint"],
                              (None, IMAGE_SIZE, IMAGE_SIZE, 3))
    for ours, saved in zip(model.get_weights(), from_checkpoint.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, saved)
    assert any(not np.allclose(ours, start) for ours, start in zip(model.get_weights(), initial))


def test_a_run_shorter_than_log_every_n_still_logs_its_last_step(tmp_path):
    trainer.train(_model(), _dataset(), tmp_path, num_steps=3, log_every_n=100, verbose=0)
    scalars = _scalars(tmp_path / "train")
    assert set(scalars["losses/loss"]) == set(scalars["steps_per_second"]) == {3}


def test_a_dataset_that_runs_out_is_an_error_and_its_steps_are_checkpointed(tmp_path):
    import warnings

    finite = _dataset().take(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(trainer.TrainingInputRanOutError, match="ran out of data at step 3 of 10"):
            trainer.train(_model(), finite, tmp_path, num_steps=10, checkpoint_every_n=5,
                          verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]  # kdet says it once
    assert [step for step, _ in trainer.list_checkpoints(tmp_path)] == [3]


def test_checkpoints_whose_weights_gave_a_diverging_loss_are_not_named_good(tmp_path):
    # The report's case: finite but exploding weights (loss 1e4, 1e9 before the inf) are no
    # start for a re-run; the last checkpoint whose weights gave an ordinary loss is.
    model = _model()
    for step in range(1, 5):
        model.save_weights(trainer.checkpoint_path(tmp_path, step))
        verified_files.record_sha256(trainer.checkpoint_path(tmp_path, step))
    guard = trainer.StopOnNonFiniteLoss(tmp_path)
    guard.set_model(model)
    guard.on_epoch_begin(0)
    batch_losses = [5.0, 6.0, 1e4, 1e9, float("inf")]  # from the weights of steps 0..4
    running = 0.0
    with pytest.raises(trainer.NonFiniteLossError) as info:
        for batch, loss in enumerate(batch_losses):
            running += (loss - running) / (batch + 1)
            model.optimizer.iterations.assign(batch + 1)
            guard.on_train_batch_end(batch, {"loss": running})
    message = str(info.value)
    assert "at step 5" in message
    assert f"the last good checkpoint is {trainer.checkpoint_path(tmp_path, 1)} (step 1" in message
    assert trainer.latest_checkpoint(tmp_path)[0] == 1
    assert sorted(p.name for p in tmp_path.glob("diverged-*.h5")) == [
        "diverged-ckpt-2.weights.h5", "diverged-ckpt-3.weights.h5", "diverged-ckpt-4.weights.h5"
    ]
