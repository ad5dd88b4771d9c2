"""Learning-rate range test: train briefly with an exponentially growing rate, watch the loss.

Before a long run, the rate at which the loss falls fastest, and the one where it blows up,
bound a good learning rate (Smith, "Cyclical Learning Rates for Training Neural Networks",
https://arxiv.org/abs/1506.01186). `lr_sweep` trains a copy of the model, so the model passed
in keeps its weights.
"""

import math

import keras
import numpy as np

from kdet.layers.image_resizer import image_part
from kdet.training.trainer import mean_between


@keras.saving.register_keras_serializable(package="kdet")
class ExponentialRamp(keras.optimizers.schedules.LearningRateSchedule):
    """`min_lr * (max_lr / min_lr) ** (step / num_steps)`: from `min_lr` to `max_lr`.

    Args:
        min_lr: float, the rate at step 0.
        max_lr: float, the rate at step `num_steps`.
        num_steps: int.
    """

    def __init__(self, min_lr, max_lr, num_steps):
        self.min_lr = min_lr
        self.max_lr = max_lr
        self.num_steps = num_steps

    def __call__(self, step):
        progress = keras.ops.cast(step, "float32") / self.num_steps
        return self.min_lr * keras.ops.power(self.max_lr / self.min_lr, progress)

    def get_config(self):
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "num_steps": self.num_steps}

# The smoothed loss of the first steps averages only a few batches, whose losses can differ 3x
# at a learning rate of 0 (e.g. per-batch box counts without `normalize_loss_by_num_matches`):
# a rise there is noise, not divergence. A non-finite loss stops the sweep at any step.
_STEPS_BEFORE_DIVERGENCE_CHECK = 10


class _LossRecorder(keras.callbacks.Callback):
    """Records (learning rate, loss) per step; stops once the smoothed loss diverges."""

    # A NaN loss ends the sweep quietly: `ObjectDetector.fit` adds no NaN guard of its own.
    stops_on_nonfinite_loss = True

    def __init__(self, schedule, smoothing, divergence_factor):
        super().__init__()
        self.schedule = schedule
        self.smoothing = smoothing
        self.divergence_factor = divergence_factor
        self.learning_rates, self.losses, self.smoothed = [], [], []
        self.diverged = False
        self._running_mean = 0.0
        self._average = 0.0

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the running mean over the epoch; the step's own loss is recovered.
        mean = float(logs["loss"])
        loss = mean_between(batch + 1, mean, batch, self._running_mean)
        self._running_mean = mean
        step = len(self.losses)
        self.learning_rates.append(float(self.schedule(step)))
        self.losses.append(loss)
        # Bias-corrected exponential moving average, as in Smith's and fastai's range tests.
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (step + 1))
        self.smoothed.append(smoothed)
        rising = (step >= _STEPS_BEFORE_DIVERGENCE_CHECK
                  and smoothed > self.divergence_factor * min(self.smoothed))
        if not math.isfinite(loss) or rising:
            self.diverged = True
            self.model.stop_training = True


def lr_sweep(
    model,
    dataset,
    min_lr=1e-6,
    max_lr=1.0,
    num_steps=100,
    smoothing=0.9,
    divergence_factor=4.0,
):
    """Runs a learning-rate range test on a copy of a compiled kdet detector.

    The copy (`from_config` + the model's weights, the same ones trainable) is compiled with
    the model's optimizer class and settings but an `ExponentialRamp` learning rate, and
    trained for at most `num_steps` steps; it stops early once the smoothed loss exceeds
    `divergence_factor` times its minimum (checked from the 11th step on) or is not finite.
    The suggested rate is a tenth of the rate at the smoothed loss's minimum: the loss still
    falls fast there and is far from diverging.

    Args:
        model: a compiled `kdet.models.ObjectDetector`; its weights are not changed.
        dataset: a `tf.data.Dataset` of `(images, {"boxes", "labels"})` batches with at least
            `num_steps` elements (e.g. repeated).
        min_lr: float. Defaults to `1e-6`.
        max_lr: float. Defaults to `1.0`.
        num_steps: int. Defaults to `100`.
        smoothing: float in [0, 1), the moving average's weight of the past. Defaults to `0.9`.
        divergence_factor: float. Defaults to `4.0`.

    Returns:
        A dict: `"learning_rates"`, `"losses"`, `"smoothed_losses"` (lists, one per step run),
        `"suggested_learning_rate"` (float) and `"diverged"` (bool: stopped early).

    Example:
    ```python
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9))
    result = kdet.training.lr_sweep(model, dataset.repeat(), num_steps=200)
    kdet.training.plot_lr_sweep(result, "lr_sweep.png")
    ```
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr; got min_lr={min_lr}, max_lr={max_lr}")
    if getattr(model, "optimizer", None) is None:
        raise ValueError("lr_sweep needs a compiled model (its optimizer is copied)")
    probe = type(model).from_config(model.get_config())
    input_shape = image_part(dataset.element_spec[0]).shape
    probe.build((None, *input_shape[1:]))
    if not model.built:
        model.build((None, *input_shape[1:]))
    probe.set_weights(model.get_weights())
    # Train what the model would train (e.g. after `select_trainable`): from_config does not
    # carry which variables are frozen.
    for weight, probe_weight in zip(model.weights, probe.weights):
        probe_weight.trainable = weight.trainable
    schedule = ExponentialRamp(min_lr, max_lr, num_steps)
    settings = {**model.optimizer.get_config(), "learning_rate": schedule}
    for key in ("name", "iterations"):
        settings.pop(key, None)
    probe.compile(optimizer=type(model.optimizer)(**settings))
    recorder = _LossRecorder(schedule, smoothing, divergence_factor)
    probe.fit(
        dataset, epochs=1, steps_per_epoch=num_steps, callbacks=[recorder], verbose=0,
        shuffle=False,
    )
    best = int(np.argmin(recorder.smoothed))
    return {
        "learning_rates": recorder.learning_rates,
        "losses": recorder.losses,
        "smoothed_losses": recorder.smoothed,
        "suggested_learning_rate": recorder.learning_rates[best] / 10.0,
        "diverged": recorder.diverged,
    }


def plot_lr_sweep(result, path):
    """Saves the loss-vs-learning-rate curve of `lr_sweep` as a PNG, the suggestion marked.

    Args:
        result: the dict `lr_sweep` returns.
        path: str or path-like of the PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.semilogx(result["learning_rates"], result["losses"], color="0.75", label="loss")
    axes.semilogx(result["learning_rates"], result["smoothed_losses"], label="smoothed loss")
    suggested = result["suggested_learning_rate"]
    axes.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested {suggested:.2g}")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("learning-rate range test")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
