"""The TF OD API learning-rate schedules (`optimizer.proto`) as Keras `LearningRateSchedule`s.

Keras has exponential, piecewise-constant and cosine schedules, but not the TF OD API's
variants of them: a constant burn-in and a floor for exponential decay, a linear warm-up into
a manual step schedule, a hold at the base rate before cosine decay. A pipeline.config must
train the same here as there, so kdet implements these three with the TF OD API semantics.
"""

import math

import keras
import tensorflow as tf


def _step_as_float(step):
    return tf.cast(step, tf.float32)


@keras.saving.register_keras_serializable(package="kdet")
class ExponentialDecayWithBurnin(keras.optimizers.schedules.LearningRateSchedule):
    """TF OD API `exponential_decay_learning_rate`.

    During the first `burnin_steps` steps the rate is `burnin_learning_rate` (`0` means
    `initial_learning_rate`); from step `burnin_steps` on it is `initial_learning_rate *
    decay_factor ** ((step - burnin_steps) / decay_steps)`, the exponent floored when
    `staircase`. Neither phase goes below `min_learning_rate`. This is the TF OD API's
    `learning_schedules.exponential_decay_with_burnin` as its TF2 `optimizer_builder` calls it
    (the decay counts the steps after the burn-in, although its docstring still says the
    burn-in steps are included).

    Args:
        initial_learning_rate: float.
        decay_steps: int. Steps per decay by `decay_factor`, counted after the burn-in.
        decay_factor: float.
        staircase: bool. Decay in steps rather than continuously. Defaults to `True`.
        burnin_learning_rate: float. Defaults to `0.0` (no separate burn-in rate).
        burnin_steps: int. Defaults to `0`.
        min_learning_rate: float. The floor of the rate, burn-in included. Defaults to `0.0`.

    Example:
    ```python
    schedule = ExponentialDecayWithBurnin(0.004, decay_steps=800720, decay_factor=0.95)
    optimizer = keras.optimizers.RMSprop(schedule)
    ```
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        decay_factor,
        staircase=True,
        burnin_learning_rate=0.0,
        burnin_steps=0,
        min_learning_rate=0.0,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_factor = decay_factor
        self.staircase = staircase
        self.burnin_learning_rate = burnin_learning_rate
        self.burnin_steps = burnin_steps
        self.min_learning_rate = min_learning_rate

    def __call__(self, step):
        step = _step_as_float(step)
        exponent = (step - self.burnin_steps) / self.decay_steps
        if self.staircase:
            exponent = tf.floor(exponent)
        decayed = self.initial_learning_rate * tf.pow(self.decay_factor, exponent)
        burnin = self.burnin_learning_rate or self.initial_learning_rate
        rate = tf.where(step < self.burnin_steps, burnin, decayed)
        return tf.maximum(rate, self.min_learning_rate)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_factor": self.decay_factor,
            "staircase": self.staircase,
            "burnin_learning_rate": self.burnin_learning_rate,
            "burnin_steps": self.burnin_steps,
            "min_learning_rate": self.min_learning_rate,
        }


@keras.saving.register_keras_serializable(package="kdet")
class CosineDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """TF OD API `cosine_decay_learning_rate`.

    Linear warm-up from `warmup_learning_rate` to `learning_rate_base` over `warmup_steps`,
    then `hold_base_rate_steps` steps at `learning_rate_base`, then half a cosine down to 0 at
    `total_steps`, and 0 after it. A hold that reaches past `total_steps` holds the base rate
    until `total_steps`, as in the TF OD API.

    Args:
        learning_rate_base: float.
        total_steps: int. At least `warmup_steps`.
        warmup_learning_rate: float. At most `learning_rate_base` when `warmup_steps > 0`.
            Defaults to `0.0`.
        warmup_steps: int. Defaults to `0`.
        hold_base_rate_steps: int. Defaults to `0`.

    Example:
    ```python
    schedule = CosineDecayWithWarmup(0.04, total_steps=25000, warmup_learning_rate=0.013,
                                     warmup_steps=2000)
    ```
    """

    def __init__(
        self,
        learning_rate_base,
        total_steps,
        warmup_learning_rate=0.0,
        warmup_steps=0,
        hold_base_rate_steps=0,
    ):
        # The TF OD API's two checks; the warm-up rate matters only with warm-up steps.
        if warmup_steps > 0 and learning_rate_base < warmup_learning_rate:
            raise ValueError(
                f"learning_rate_base ({learning_rate_base}) must be at least "
                f"warmup_learning_rate ({warmup_learning_rate}) when warmup_steps > 0."
            )
        if total_steps < warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must be at least warmup_steps ({warmup_steps})."
            )
        self.learning_rate_base = learning_rate_base
        self.total_steps = total_steps
        self.warmup_learning_rate = warmup_learning_rate
        self.warmup_steps = warmup_steps
        self.hold_base_rate_steps = hold_base_rate_steps

    def __call__(self, step):
        step = _step_as_float(step)
        decay_start = self.warmup_steps + self.hold_base_rate_steps
        decay_steps = max(self.total_steps - decay_start, 1)
        progress = tf.clip_by_value((step - decay_start) / decay_steps, 0.0, 1.0)
        rate = 0.5 * self.learning_rate_base * (1.0 + tf.cos(math.pi * progress))
        if self.warmup_steps > 0:
            slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
            warmup = self.warmup_learning_rate + slope * step
            rate = tf.where(step < self.warmup_steps, warmup, rate)
        return tf.where(step > self.total_steps, 0.0, rate)

    def get_config(self):
        return {
            "learning_rate_base": self.learning_rate_base,
            "total_steps": self.total_steps,
            "warmup_learning_rate": self.warmup_learning_rate,
            "warmup_steps": self.warmup_steps,
            "hold_base_rate_steps": self.hold_base_rate_steps,
        }


@keras.saving.register_keras_serializable(package="kdet")
class ManualStepping(keras.optimizers.schedules.LearningRateSchedule):
    """TF OD API `manual_step_learning_rate`: `rates[i]` from step `boundaries[i - 1]` on.

    `rates[0]` (the config's `initial_learning_rate`) holds before `boundaries[0]`. A first
    boundary of 0 (`schedule { step: 0 … }`, as in the TF OD API's Faster R-CNN sample
    configs) means `rates[1]` from step 0: `rates[0]` is then never used. That is what those
    configs were written for (the TF OD API of 2017); the TF OD API since 2018 refuses them
    ("First step cannot be zero"), kdet runs them as written.

    With `warmup`, the rate goes linearly from `rates[0]` at step 0 to `rates[1]` at
    `boundaries[0]` (the TF OD API's warm-up); with a first boundary of 0 there is nothing to
    warm up over and `warmup` changes nothing.

    Args:
        boundaries: strictly increasing ints >= 0, the steps where the rate changes.
        rates: floats, one more than `boundaries`.
        warmup: bool. Defaults to `False`.

    Example:
    ```python
    # TF OD API: initial_learning_rate 0.0003, schedule { step: 900000 learning_rate: 3e-5 }
    schedule = ManualStepping([900000], [0.0003, 3e-5])
    # schedule { step: 0 learning_rate: 3e-4 } schedule { step: 900000 learning_rate: 3e-5 }
    schedule = ManualStepping([0, 900000], [0.0003, 0.0003, 3e-5])  # 3e-4 from step 0
    ```
    """

    def __init__(self, boundaries, rates, warmup=False):
        boundaries, rates = list(boundaries), list(rates)
        if any(b < 0 for b in boundaries) or any(
            later <= earlier for earlier, later in zip(boundaries, boundaries[1:])
        ):
            raise ValueError(f"boundaries must increase strictly from 0 on; got {boundaries}.")
        if len(rates) != len(boundaries) + 1:
            raise ValueError(
                f"rates needs one more value than boundaries; got {len(rates)} rates for "
                f"{len(boundaries)} boundaries."
            )
        self.boundaries = boundaries
        self.rates = rates
        self.warmup = warmup

    def __call__(self, step):
        step = _step_as_float(step)
        # The number of boundaries reached: a boundary at 0 is reached from step 0 on.
        index = tf.reduce_sum(
            tf.cast(step >= tf.constant(self.boundaries, tf.float32), tf.int32)
        )
        rate = tf.gather(tf.constant(self.rates, tf.float32), index)
        if self.warmup and self.boundaries and self.boundaries[0] > 0:
            first = self.boundaries[0]
            warmup = self.rates[0] + (self.rates[1] - self.rates[0]) * step / first
            rate = tf.where(step < first, warmup, rate)
        return rate

    def get_config(self):
        return {"boundaries": self.boundaries, "rates": self.rates, "warmup": self.warmup}
