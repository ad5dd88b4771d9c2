import math

import keras
import numpy as np
import pytest

from kdet.training import CosineDecayWithWarmup
from kdet.training import ExponentialDecayWithBurnin
from kdet.training import ManualStepping


def _rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_exponential_decay_staircase_burnin_and_floor():
    # TF OD API exponential_decay_with_burnin: the decay counts the steps after the burn-in,
    # and the floor holds in both phases (the burn-in rate 0.01 is raised to 0.02).
    schedule = ExponentialDecayWithBurnin(
        0.1, decay_steps=10, decay_factor=0.5, burnin_learning_rate=0.01, burnin_steps=5,
        min_learning_rate=0.02,
    )
    np.testing.assert_allclose(
        _rates(schedule, [0, 4, 5, 14, 15, 24, 25, 35, 100]),
        [0.02, 0.02, 0.1, 0.1, 0.05, 0.05, 0.025, 0.02, 0.02],
        rtol=1e-6,
    )
    below_floor = ExponentialDecayWithBurnin(
        0.1, decay_steps=10, decay_factor=0.5, burnin_learning_rate=0.03, burnin_steps=5,
    )
    np.testing.assert_allclose(
        _rates(below_floor, [0, 4, 5, 15, 25]), [0.03, 0.03, 0.1, 0.05, 0.025], rtol=1e-6
    )


def test_exponential_decay_continuous_and_default_burnin_rate():
    schedule = ExponentialDecayWithBurnin(
        0.1, decay_steps=10, decay_factor=0.5, staircase=False, burnin_steps=3
    )
    np.testing.assert_allclose(
        _rates(schedule, [0, 2, 8, 18]), [0.1, 0.1, 0.1 * 0.5**0.5, 0.1 * 0.5**1.5], rtol=1e-6
    )


def test_cosine_decay_warmup_hold_and_end():
    schedule = CosineDecayWithWarmup(
        0.04, total_steps=100, warmup_learning_rate=0.01, warmup_steps=10, hold_base_rate_steps=10
    )
    expected = [
        0.01,  # step 0: warm-up start
        0.025,  # halfway through the warm-up
        0.04, 0.04,  # steps 10 and 20: holding the base rate
        0.5 * 0.04 * (1 + math.cos(math.pi * 40 / 80)),
        0.0,  # total_steps
        0.0,  # after it
    ]
    np.testing.assert_allclose(_rates(schedule, [0, 5, 10, 20, 60, 100, 150]), expected, atol=1e-7)


def test_cosine_decay_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="learning_rate_base .* must be at least"):
        CosineDecayWithWarmup(0.01, 100, warmup_learning_rate=0.1, warmup_steps=10)
    with pytest.raises(ValueError, match="total_steps .* must be at least"):
        CosineDecayWithWarmup(0.1, 100, warmup_steps=101)


def test_cosine_decay_checks_only_what_the_tf_od_api_checks():
    # Without warm-up steps the warm-up rate is unused, so it may exceed the base rate.
    no_warmup = CosineDecayWithWarmup(0.01, 100, warmup_learning_rate=0.1, warmup_steps=0)
    np.testing.assert_allclose(_rates(no_warmup, [0, 50, 100]), [0.01, 0.005, 0.0], atol=1e-7)
    # A hold reaching past total_steps holds the base rate until total_steps, then 0.
    long_hold = CosineDecayWithWarmup(0.1, 100, warmup_steps=80, hold_base_rate_steps=30,
                                      warmup_learning_rate=0.0)
    np.testing.assert_allclose(
        _rates(long_hold, [0, 40, 80, 95, 100, 101]), [0.0, 0.05, 0.1, 0.1, 0.1, 0.0],
        atol=1e-7,
    )


def test_manual_stepping_with_and_without_warmup():
    plain = ManualStepping([5, 10], [0.1, 0.01, 0.001])
    np.testing.assert_allclose(
        _rates(plain, [0, 4, 5, 9, 10, 50]), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6
    )
    warm = ManualStepping([4, 10], [0.0, 0.2, 0.02], warmup=True)
    np.testing.assert_allclose(
        _rates(warm, [0, 1, 3, 4, 9, 10]), [0.0, 0.05, 0.15, 0.2, 0.2, 0.02], rtol=1e-6
    )


def test_manual_stepping_first_boundary_zero_is_a_rate_from_step_zero():
    # faster_rcnn_resnet101_coco.config: initial_learning_rate 0.0003 and schedule { step: 0
    # learning_rate: .0003 } { step: 900000 … 3e-5 } { step: 1200000 … 3e-6 }.
    schedule = ManualStepping([0, 900000, 1200000], [0.0003, 0.0003, 0.00003, 0.000003])
    np.testing.assert_allclose(
        _rates(schedule, [0, 1, 899999, 900000, 1200000]),
        [0.0003, 0.0003, 0.0003, 0.00003, 0.000003],
        rtol=1e-6,
    )
    # The initial rate is never used: a different one changes nothing.
    other_initial = ManualStepping([0, 10], [5.0, 0.1, 0.01])
    np.testing.assert_allclose(_rates(other_initial, [0, 9, 10]), [0.1, 0.1, 0.01], rtol=1e-6)
    # warmup over a first boundary of 0 has nothing to warm up over.
    warm = ManualStepping([0, 10], [5.0, 0.1, 0.01], warmup=True)
    np.testing.assert_allclose(_rates(warm, [0, 5, 10]), [0.1, 0.1, 0.01], rtol=1e-6)


@pytest.mark.parametrize(
    "boundaries, rates, match",
    [([-1, 5], [1.0, 0.1, 0.01], "increase strictly from 0"),
     ([5, 5], [1.0, 0.1, 0.01], "increase"), ([0, 0], [1.0, 0.1, 0.01], "increase"),
     ([5], [1.0], "one more value")],
)
def test_manual_stepping_rejects_bad_boundaries(boundaries, rates, match):
    with pytest.raises(ValueError, match=match):
        ManualStepping(boundaries, rates)


@pytest.mark.parametrize(
    "schedule",
    [
        ExponentialDecayWithBurnin(0.1, 10, 0.5, burnin_steps=3, min_learning_rate=0.01),
        CosineDecayWithWarmup(0.04, 100, 0.01, 10, 5),
        ManualStepping([4, 10], [0.0, 0.2, 0.02], warmup=True),
    ],
)
def test_schedules_drive_an_optimizer_and_round_trip(schedule):
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
    steps = [0, 3, 7, 12, 60]
    np.testing.assert_allclose(_rates(restored, steps), _rates(schedule, steps), rtol=1e-6)
    optimizer = keras.optimizers.SGD(schedule)
    variable = keras.Variable(1.0)
    optimizer.apply_gradients([(keras.ops.ones(()), variable)])
    np.testing.assert_allclose(variable.numpy(), 1.0 - float(schedule(0)), rtol=1e-6)
