"""Training for a number of steps into a model directory: checkpoints, TensorBoard, resume.

`train` is what `kdet train` runs: `model.fit` on an endless dataset, a checkpoint every
`checkpoint_every_n` steps, TensorBoard scalars, and a restart that resumes from the newest
intact checkpoint. The step count is the optimizer's `iterations`, which checkpoints carry.

What it writes into the model directory (names: `kdet.training.model_dir`):

- `ckpt-<step>.weights.h5` (+ `.sha256`): model and optimizer state, written atomically;
  the newest `max_to_keep` are kept.
- `train/`: TensorBoard event files: losses, learning rate and steps per second by step, and
  a few training images with predicted and ground-truth boxes every `log_images_every_n` steps.

A NaN or infinite loss stops training with `NonFiniteLossError` naming the step, before any
checkpoint of the broken state is written.
"""

import logging
import math
import os
import pathlib
import shutil
import time
import warnings

import keras
import tensorflow as tf

from kdet.layers.image_resizer import image_part
from kdet.training import model_dir as model_dir_layout
from kdet.training.model_dir import checkpoint_path
from kdet.utils.folder_lock import folder_lock
from kdet.utils.model_step import optimizer_step
from kdet.utils.verified_files import checksum_path
from kdet.utils.verified_files import checksum_status
from kdet.utils.verified_files import record_sha256
from kdet.utils.verified_files import recorded_sha256
from kdet.utils.verified_files import remove_dead_runs_files
from kdet.utils.verified_files import write_verified

logger = logging.getLogger(__name__)

_LOGGED_IMAGES = 4  # training images drawn to TensorBoard


def list_checkpoints(model_dir):
    """`[(step, path)]` of the checkpoint files in `model_dir`, oldest first (not checked)."""
    model_dir = pathlib.Path(model_dir)
    found = []
    if model_dir.is_dir():
        for path in model_dir.iterdir():
            step = model_dir_layout.checkpoint_step(path)
            if step is not None:
                found.append((step, path))
    return sorted(found)


def latest_checkpoint(model_dir):
    """The newest usable checkpoint of `model_dir`, or `None`.

    A checkpoint is usable when it matches its recorded sha256. One whose `.sha256` is
    missing, empty or unreadable (e.g. only the `.weights.h5` files were copied) is checked
    instead by reading every array of it (`weights_file_error`): if that works it is used,
    with a warning, and its checksum is recorded again; if not it is skipped with a warning.
    A newer file that does not match its recorded sha256 is skipped with a warning. Skipped
    files stay where they are (the rotation of `CheckpointEveryNSteps` never deletes them).

    Returns:
        `(step, path)` or `None`.
    """
    for step, path in reversed(list_checkpoints(model_dir)):
        status = checksum_status(path)
        if status == "verified":
            return step, path
        if status == "damaged":
            warnings.warn(
                f"{path} does not match the sha256 in {checksum_path(path).name}: it is damaged "
                "or incomplete and is skipped (left in place).",
                stacklevel=2,
            )
            continue
        if status != "unrecorded":
            continue
        error = weights_file_error(path)
        if error is not None:
            warnings.warn(
                f"{path} has no readable {checksum_path(path).name} and cannot be read "
                f"({error}): it is skipped (left in place).",
                stacklevel=2,
            )
            continue
        warnings.warn(
            f"{path} has no readable {checksum_path(path).name}; every array in it was read, "
            "so it is used and its checksum is recorded again.",
            stacklevel=2,
        )
        try:
            record_sha256(path)
        except OSError:  # a read-only model_dir still resumes, evaluates and exports
            pass
        return step, path
    return None


def weights_file_error(path):
    """Why a `.weights.h5` file cannot be read, or `None` if every array in it reads.

    The check behind using a checkpoint that has no sha256: a truncated or overwritten HDF5
    file fails to open or to read some array.
    """
    import h5py

    arrays = []
    try:
        with h5py.File(path, "r") as file:
            file.visititems(
                lambda name, item: arrays.append(item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError, …
        return f"{type(error).__name__}: {error}"
    if not arrays:
        return "it holds no weights"
    return None


def restore_checkpoint(model, path, input_shape):
    """Loads model and optimizer state from a checkpoint into `model` (built if needed).

    Args:
        model: a compiled `kdet.models.ObjectDetector`.
        path: a `ckpt-<step>.weights.h5` file.
        input_shape: the image batch shape to build the model with, e.g. `(None, 320, 320, 3)`.
    """
    # In the scope of the strategy the model was made under (as Keras's own build does): a
    # MirroredStrategy model refuses variables created outside it, so a resume would fail.
    with model.distribute_strategy.scope():
        if not model.built:
            model.build(input_shape)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


class CheckpointEveryNSteps(keras.callbacks.Callback):
    """Saves `ckpt-<step>.weights.h5` every `every_n` steps and at `num_steps`, then stops there.

    Files are written atomically with a sha256 next to them; only the newest `max_to_keep`
    stay. `step` is the optimizer's `iterations`, so numbering continues after a resume.

    Args:
        model_dir: folder of the checkpoints.
        every_n: int, steps between checkpoints.
        num_steps: int, the step at which training stops.
        max_to_keep: int. Defaults to 7 (the TF OD API's `checkpoint_max_to_keep`).
        write: bool. False on non-chief workers: they only stop at `num_steps`.
    """

    def __init__(self, model_dir, every_n, num_steps, max_to_keep=7, write=True):
        super().__init__()
        self.model_dir = pathlib.Path(model_dir)
        self.every_n = every_n
        self.num_steps = num_steps
        self.max_to_keep = max_to_keep
        self.write = write

    def on_train_batch_end(self, batch, logs=None):
        step = optimizer_step(self.model)
        if self.write and (step % self.every_n == 0 or step >= self.num_steps):
            self.save(step)
        if step >= self.num_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        # Training that ended before `num_steps` (the dataset ran out, a callback stopped it)
        # keeps its last steps too.
        step = optimizer_step(self.model)
        if self.write and 0 < step < self.num_steps:
            self.save(step)

    def save(self, step):
        path = checkpoint_path(self.model_dir, step)
        if checksum_status(path) != "verified":
            self._check_free_space(path)
            try:
                write_verified(path, self.model.save_weights)
            except OSError as error:
                raise CheckpointWriteError(self._write_failure(path, error)) from None
        self._rotate(step)

    def _needed_bytes(self):
        """Bytes a checkpoint takes: the newest one's size, or the variables' size + 10%."""
        newest = list_checkpoints(self.model_dir)
        if newest:
            return newest[-1][1].stat().st_size
        variables = [*self.model.weights, *self.model.optimizer.variables]
        return int(1.1 * sum(v.numpy().nbytes for v in variables)) + (1 << 20)

    def _check_free_space(self, path):
        """Stops before writing a checkpoint the disk has no room for (h5py fails badly then)."""
        needed = self._needed_bytes()
        if shutil.disk_usage(self.model_dir).free < needed:
            raise CheckpointWriteError(self._write_failure(path, None, needed))

    def _write_failure(self, path, error, needed=None):
        needed = self._needed_bytes() if needed is None else needed
        free = shutil.disk_usage(self.model_dir).free
        latest = latest_checkpoint(self.model_dir)
        reason = "not enough free space" if error is None else (error.strerror or str(error))
        return (
            f"cannot write checkpoint {path.name} in {self.model_dir}: {reason} (a checkpoint "
            f"takes about {_size(needed)}, {_size(free)} are free). Nothing was "
            "lost: "
            + (f"re-running resumes from {latest[1].name} (step {latest[0]})" if latest
               else "no checkpoint had been written yet")
            + " once there is room."
        )

    def _rotate(self, newest_step):
        """Deletes all but the newest `max_to_keep` checkpoints up to `newest_step`.

        Only checkpoints with a recorded sha256 (written by this class) are deleted: one
        without (copied, or its checksum lost) and any of a higher step stay.
        """
        rotated = [
            path
            for step, path in list_checkpoints(self.model_dir)
            if step <= newest_step and recorded_sha256(path) is not None
        ]
        for old in rotated[: -self.max_to_keep]:
            old.unlink(missing_ok=True)
            checksum_path(old).unlink(missing_ok=True)


def _size(num_bytes):
    """`"12.3 MB"`, or `"45 KB"` below a megabyte."""
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e6 else f"{num_bytes / 1e3:.0f} KB"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, …); the message names folder and space."""

    def __str__(self):
        return self.args[0]


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss (the message names the step)."""


#: After a non-finite loss, a checkpoint whose weights gave a loss over this many times the
#: lowest of the run's first `_REFERENCE_STEPS` losses counts as diverged.
DIVERGENCE_FACTOR = 100.0
_REFERENCE_STEPS = 5


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` as soon as a logged loss is NaN or infinite.

    Placed before `CheckpointEveryNSteps`, so the broken state is never saved. The loss of step
    `k` comes from the weights after `k - 1` updates, so the checkpoint of step `k - 1` (saved
    before its weights were ever evaluated) holds weights that gave the non-finite loss: it is
    set aside as `diverged-ckpt-<step>.weights.h5` (kept, never resumed from), as is any newer
    one, any whose weights are not all finite, and any of this run whose weights gave a
    diverging loss (over `DIVERGENCE_FACTOR` times the lowest loss of the run's first
    `_REFERENCE_STEPS` steps: finite weights of 1e8 are no better a start than NaNs). The
    message names the step, the bad losses and the last good checkpoint, which a re-run
    resumes from. (Keras's `TerminateOnNaN` only stops, silently for callers.)
    `ObjectDetector.fit` adds one without a `model_dir` unless its callbacks have one.

    Args:
        model_dir: folder of the checkpoints, named in the message; `None` (plain `fit`): no
            checkpoint is named. Defaults to `None`.
        write: bool. Whether this process may set checkpoints aside (the chief). Defaults to
            `True`.
    """

    def __init__(self, model_dir=None, write=True):
        super().__init__()
        self.model_dir = None if model_dir is None else pathlib.Path(model_dir)
        self.write = write
        self._loss_of_weights = {}  # step j → the loss the weights after j updates gave
        self._running_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._running_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = optimizer_step(self.model)
        if "loss" in logs:
            # Logs hold the epoch's running mean; this batch's loss came from the weights
            # after `step - 1` updates.
            mean = float(logs["loss"])
            self._loss_of_weights[step - 1] = (batch + 1) * mean - batch * self._running_mean
            self._running_mean = mean
        bad = {name: float(value) for name, value in logs.items() if not math.isfinite(float(value))}
        if not bad:
            return
        kept = ""
        if self.model_dir is not None:
            good, set_aside = self._last_good_checkpoint(step)
            kept = (
                f"; the last good checkpoint is {good[1]} (step {good[0]}: finite weights "
                "that gave a finite, non-diverging loss), which a re-run resumes from"
                if good
                else "; no checkpoint with finite weights that gave a finite, non-diverging loss "
            "was written (a re-run starts afresh)"
            )
            if set_aside:
                kept += (
                    f"; set aside (kept, never resumed from): {', '.join(set_aside)}"
                )
        losses = ", ".join(f"{name} is {value}" for name, value in bad.items())
        raise NonFiniteLossError(
            f"{losses} at step {step}: training stopped{kept}. Lower the learning rate "
            "(kdet lr_sweep suggests one), clip gradients (gradient_clipping_by_norm), or "
            "check the data for degenerate boxes."
        )

    def _last_good_checkpoint(self, step):
        """`((step, path) or None, [names set aside])` after a non-finite loss at `step`."""
        set_aside = []
        for checkpoint_step, path in list_checkpoints(self.model_dir):
            if checkpoint_step >= step - 1 and self.write:
                set_aside.append(_set_aside(path))
        while True:
            latest = latest_checkpoint(self.model_dir)
            if latest is None or (not self._diverged(latest[0]) and finite_weights(latest[1])):
                return latest, set_aside
            if not self.write:
                return None, set_aside
            set_aside.append(_set_aside(latest[1]))

    def _diverged(self, checkpoint_step):
        """Whether this run saw the weights of `checkpoint_step` give a diverging loss."""
        loss = self._loss_of_weights.get(checkpoint_step)
        if loss is None:  # saved before this run: it trained on from them then
            return False
        first = sorted(self._loss_of_weights)[:_REFERENCE_STEPS]
        reference = min(abs(self._loss_of_weights[step]) for step in first)
        return not math.isfinite(loss) or abs(loss) > DIVERGENCE_FACTOR * max(reference, 1e-3)


def finite_weights(path):
    """Whether every floating-point array of a `.weights.h5` file is finite."""
    import h5py
    import numpy as np

    finite = [True]

    def check(name, item):
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
            finite[0] = finite[0] and bool(np.isfinite(item[()]).all())

    with h5py.File(path, "r") as file:
        file.visititems(check)
    return finite[0]


def _set_aside(path):
    """Renames a checkpoint (and its `.sha256`) to `diverged-<name>`; returns the new name."""
    target = path.with_name(f"{model_dir_layout.DIVERGED_PREFIX}{path.name}")
    checksum = checksum_path(path)
    if checksum.exists():
        os.replace(checksum, checksum_path(target))
    os.replace(path, target)
    return target.name


class KeepTrainedWeights(keras.callbacks.Callback):
    """Keeps the trained weights in the model when the optimizer averages them (`use_ema`).

    Keras's `fit` ends by copying the optimizer's moving averages into the model. The TF OD API
    (`use_moving_average`, on by default) kept the averages beside the model and evaluated and
    exported the trained weights unless told otherwise; after a short run from scratch the
    averages are still close to the initial weights. So kdet undoes the copy: the model ends
    with the weights its final checkpoint holds; the averages stay in the optimizer.
    """

    def __init__(self):
        super().__init__()
        self._trained = None

    def on_epoch_end(self, epoch, logs=None):  # before fit's copy
        if self.model.optimizer.use_ema:
            self._trained = [weight.numpy() for weight in self.model.trainable_weights]

    def on_train_end(self, logs=None):  # after it
        if self._trained is not None:
            for weight, value in zip(self.model.trainable_weights, self._trained, strict=True):
                weight.assign(value)


def mean_between(seen, running_mean, earlier_seen, earlier_running_mean):
    """A metric's mean over steps `earlier_seen + 1 .. seen` of an epoch.

    Keras logs running means since the start of the epoch; two of them give the mean in
    between: `(seen * mean_seen - earlier_seen * mean_earlier) / (seen - earlier_seen)`.
    """
    total = seen * running_mean - earlier_seen * earlier_running_mean
    return total / (seen - earlier_seen)


class ScalarLogger(keras.callbacks.Callback):
    """Writes losses, the learning rate and steps per second to TensorBoard every `every_n` steps
    and at the last step.

    The losses are their means over the steps since the last write (Keras reports running
    means since the start of the epoch; the window mean is recovered from two of them). The
    step is the optimizer's `iterations`, so curves continue across resumed runs, where Keras's
    `TensorBoard` callback numbers batches from 0 in every `fit` call. `steps_per_second` is
    measured over the same window (wall time, data and callbacks included).

    Args:
        log_dir: folder of the event files.
        every_n: int. Defaults to 100.
    """

    def __init__(self, log_dir, every_n=100):
        super().__init__()
        self.log_dir = str(log_dir)
        self.every_n = every_n
        self._writer = None
        self._last = (0, {})
        self._last_time = None
        self._latest = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._last = (0, {})
        self._last_time = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._latest = (batch + 1, logs or {})
        step = optimizer_step(self.model)
        if step % self.every_n == 0:
            self._write(step, *self._latest)

    def on_train_end(self, logs=None):
        # The last steps too, so that a run shorter than `every_n` still has its curves.
        step = optimizer_step(self.model)
        if self._latest is not None and step % self.every_n:
            self._write(step, *self._latest)
        self._writer.close()

    def _write(self, step, seen, logs):
        last_seen, last_logs = self._last
        now = time.perf_counter()
        with self._writer.as_default(step=step):
            for name, running_mean in logs.items():
                window_mean = mean_between(
                    seen, float(running_mean), last_seen, last_logs.get(name, 0.0)
                )
                tf.summary.scalar(f"losses/{name}", window_mean)
            learning_rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            tf.summary.scalar("learning_rate", float(learning_rate))
            tf.summary.scalar("steps_per_second", (seen - last_seen) / (now - self._last_time))
        self._last = (seen, {name: float(value) for name, value in logs.items()})
        self._last_time = now


class TrainingImageLogger(keras.callbacks.Callback):
    """Logs a few training images with predicted and ground-truth boxes every `every_n` steps.

    The images are drawn with `kdet.visualization.draw_detection_gallery` (ground truth in
    green, predictions in magenta with "name score") and written as the TensorBoard image
    `train_images` at the optimizer step.

    Args:
        log_dir: folder of the event files.
        images: `[N, H, W, 3]` training images (as the model gets them).
        groundtruth: `{"boxes": [N, M, 4], "labels": [N, M]}` in the model's
            `bounding_box_format`, padded with -1.
        every_n: int, steps between images.
        label_map: optional `{id: name}` for captions.
    """

    def __init__(self, log_dir, images, groundtruth, every_n, label_map=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.images = images
        self.groundtruth = groundtruth
        self.every_n = every_n
        self.label_map = label_map
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        step = optimizer_step(self.model)
        if step % self.every_n:
            return
        from kdet.visualization import draw_detection_gallery  # matplotlib-free, but heavy

        # Resized images (keep_aspect_ratio_resizer inputs) are drawn with their padding,
        # which lies bottom/right of the pixels the boxes are in.
        gallery = draw_detection_gallery(
            image_part(self.images),
            self.model.predict_on_batch(self.images),
            self.groundtruth,
            label_map=self.label_map,
            bounding_box_format=self.model.bounding_box_format,
        )
        with self._writer.as_default(step=step):
            tf.summary.image("train_images", gallery[None])

    def on_train_end(self, logs=None):
        self._writer.close()


def is_chief(strategy=None):
    """Whether this process writes checkpoints and logs: true but for non-chief workers.

    Under `MultiWorkerMirroredStrategy` every worker trains, and the chief (task `chief`, or
    `worker` 0 of a cluster without one) alone writes to the model directory, as in
    `tf.distribute`'s multi-worker guide.

    Args:
        strategy: a `tf.distribute.Strategy`. Defaults to the current one.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def train(
    model,
    dataset,
    model_dir,
    num_steps,
    checkpoint_every_n=1000,
    max_to_keep=7,
    log_every_n=100,
    log_images_every_n=1000,
    label_map=None,
    callbacks=(),
    verbose="auto",
):
    """Trains a compiled detector to `num_steps` steps, resuming from `model_dir` if it can.

    If `model_dir` holds an intact checkpoint, model and optimizer state are restored from the
    newest one and training continues from its step; at `num_steps` or beyond nothing is
    trained. Otherwise training starts at step 0. Build and compile the model under the
    strategy's scope; with `MultiWorkerMirroredStrategy` every worker calls `train` with the
    same (shared) `model_dir`, and only the chief writes to it (`is_chief`).

    Args:
        model: a compiled `kdet.models.ObjectDetector`, built or not.
        dataset: a `tf.data.Dataset` of `(images, {"boxes", "labels"})` batches that does not
            run out (`.repeat()`), e.g. from `kdet.data.read_tfrecords`.
        model_dir: str or path-like; created if needed.
        num_steps: int, the total number of training steps.
        checkpoint_every_n: int. Defaults to 1000.
        max_to_keep: int, checkpoints kept. Defaults to 7.
        log_every_n: int, steps between TensorBoard scalars. Defaults to 100.
        log_images_every_n: int or None, steps between TensorBoard images of the first
            training images (at most 4) with predicted and ground-truth boxes; None: no images.
            Defaults to 1000.
        label_map: optional `{id: name}` for the image captions.
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s `verbose` (progress bar with the named losses). Defaults to `"auto"`.

    Returns:
        A dict: `"start_step"`, `"final_step"`, `"seconds"`, `"checkpoint"` (path of the last
        checkpoint) and `"losses"` (the named losses averaged over this call's steps, empty if
        nothing ran).

    Only one `train` runs on a `model_dir` at a time: it holds the folder's lock
    (`.kdet-train.lock`, dropped when the process ends, even by `kill -9`), and first removes
    the temporary files of earlier runs that were killed while writing a checkpoint.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite; the message names the step and the
            last good checkpoint.
        FolderLockedError: another process is training into `model_dir` (named).
        TrainingInputRanOutError: `dataset` ran out before `num_steps`; the steps done are
            checkpointed (a callback that stops training early is not an error).
        CheckpointWriteError: a checkpoint could not be written (e.g. the disk is full); the
            message names the folder, the space needed and the newest checkpoint.

    Example:
    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    summary = kdet.training.train(model, dataset.repeat(), "runs/shapes", num_steps=2000)
    ```
    """
    settings = dict(
        checkpoint_every_n=checkpoint_every_n, max_to_keep=max_to_keep, log_every_n=log_every_n,
        log_images_every_n=log_images_every_n, label_map=label_map, callbacks=callbacks,
        verbose=verbose,
    )
    model_dir = pathlib.Path(model_dir)
    chief = is_chief(model.distribute_strategy)  # the strategy the model was built under
    if not chief:
        return _train(model, dataset, model_dir, num_steps, chief, **settings)
    model_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(model_dir, model_dir_layout.LOCK_FILE, "kdet train"):
        remove_dead_runs_files(model_dir)
        return _train(model, dataset, model_dir, num_steps, chief, **settings)


def _train(model, dataset, model_dir, num_steps, chief, checkpoint_every_n, max_to_keep,
           log_every_n, log_images_every_n, label_map, callbacks, verbose):
    """`train` once `model_dir` is this process's (see there)."""
    latest = latest_checkpoint(model_dir)
    start_step = 0
    if latest is not None:
        restore_checkpoint(model, latest[1], image_part(dataset.element_spec[0]).shape)
        start_step = optimizer_step(model)
        if start_step != latest[0]:
            warnings.warn(
                f"{latest[1]} holds optimizer step {start_step}; continuing from there.",
                stacklevel=2,
            )
        logger.info("Resuming from %s (step %d).", latest[1], start_step)
    begin = time.perf_counter()
    losses = {}
    if start_step < num_steps:
        with warnings.catch_warnings():
            # kdet says it itself, with the checkpoint of the steps done (below).
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = _fit(model, dataset, num_steps - start_step, verbose=verbose, callbacks=[
                StopOnNonFiniteLoss(model_dir, write=chief),  # first: a broken state is never saved
                KeepTrainedWeights(),
                CheckpointEveryNSteps(
                    model_dir, checkpoint_every_n, num_steps, max_to_keep, write=chief
                ),
                *(_loggers(model, dataset, model_dir_layout.train_dir(model_dir), log_every_n,
                           log_images_every_n, label_map) if chief else []),
                *callbacks,
            ])
        losses = {name: values[-1] for name, values in history.history.items()}
    final = latest_checkpoint(model_dir)
    summary = {
        "start_step": start_step,
        "final_step": optimizer_step(model),
        "seconds": time.perf_counter() - begin,
        "checkpoint": None if final is None else final[1],
        "losses": losses,
    }
    if summary["final_step"] < num_steps and not model.stop_training:
        raise TrainingInputRanOutError(summary, num_steps)
    return summary


def _fit(model, dataset, steps, callbacks, verbose):
    """One epoch of `steps` steps (the dataset shuffles itself: Keras would only warn)."""
    return model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=callbacks,
                     verbose=verbose, shuffle=False)


class TrainingInputRanOutError(ValueError):
    """The training dataset ran out before `num_steps`; the steps done are checkpointed.

    Attributes:
        summary: the dict `train` would have returned (`"checkpoint"` holds the steps done).
        num_steps: the steps asked for.
    """

    def __init__(self, summary, num_steps):
        self.summary = summary
        self.num_steps = num_steps
        step = summary["final_step"]
        saved = (
            f" (the model at step {step} is saved: {summary['checkpoint']})"
            if summary["checkpoint"] is not None
            else ""
        )
        super().__init__(
            f"the training dataset ran out of data at step {step} of {num_steps}{saved}; "
            "repeat it (dataset.repeat()) or train fewer steps"
        )


def _loggers(model, dataset, log_dir, log_every_n, log_images_every_n, label_map):
    """The chief's TensorBoard callbacks: scalars, and images of the dataset's first batch."""
    loggers = [ScalarLogger(log_dir, log_every_n)]
    if log_images_every_n:
        # Padded: resized images (keep_aspect_ratio_resizer inputs) differ in size.
        images, groundtruth = next(iter(dataset.unbatch().padded_batch(_LOGGED_IMAGES).take(1)))
        loggers.append(
            TrainingImageLogger(log_dir, images, groundtruth, log_images_every_n, label_map)
        )
    return loggers
