"""`kdet.training.FusedAdam`: Keras Adam's update, variables and saving, with TF's fused kernel.

With betas whose `1 - beta` is exact in float32 (0.5, 0.75) the fused kernel and Keras's
`keras.ops` update agree to the bit; with the default betas they differ only by the float32
rounding of `1 - beta_2` (Keras rounds the float64 difference, the kernel subtracts in float32):
measured here over 3 steps, relative to each tensor's largest change, 1.3e-5 on the velocities,
0.8-1.2e-5 on the variables, 2e-7 on the momentums.
"""

import keras
import numpy as np
import tensorflow as tf

import kdet
from kdet.training import FusedAdam

EXACT_BETAS = {"beta_1": 0.5, "beta_2": 0.75}


SHAPES = [(3, 3, 3, 4), (4,), (4, 3), (3,)]  # a conv and a dense layer's kernels and biases


def _model():
    """A small conv + dense regressor, seeded: `[B, 12, 12, 3]` -> `[B, 3]`."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _compiled(optimizer, steps=1):
    """`_model()` compiled with `optimizer`, after `steps` eager `apply` of seeded gradients."""
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(1)
    for _ in range(steps):
        gradients = [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
        optimizer.apply(gradients, model.trainable_variables)
    return model


def _applied(optimizer_class, steps=3, strategy=None, **kwargs):
    """`optimizer_class(learning_rate=0.01, **kwargs)` after `steps` `apply` on `SHAPES`
    variables, each step with other seeded gradients; under `strategy` in a `tf.function`
    (every replica the same gradients, which the optimizer sums), else eagerly.

    Returns:
        The optimizer; `trained`: the trained variables; `initial_state`: `_state` before.
    """
    rng = np.random.default_rng(0)
    values = [rng.normal(size=shape).astype("float32") for shape in SHAPES]
    gradients = [[rng.normal(size=shape).astype("float32") for shape in SHAPES]
                 for _ in range(steps)]
    with strategy.scope() if strategy else tf.init_scope():
        variables = [keras.Variable(value, name=f"w{i}") for i, value in enumerate(values)]
        optimizer = optimizer_class(learning_rate=0.01, **kwargs)
        optimizer.build(variables)
    optimizer.trained = variables
    optimizer.initial_state = _state(optimizer)
    if strategy is None:
        for step in gradients:
            optimizer.apply(step, variables)
    else:
        # tf.identity: the gradients on each replica's device, as computed ones are.
        def replica_apply(step):
            optimizer.apply([tf.identity(gradient) for gradient in step], variables)

        apply = tf.function(lambda step: strategy.run(replica_apply, (step,)))
        for step in gradients:
            apply(step)
    return optimizer


def _state(trained):
    """`(path, value)` of the weights and optimizer variables of a model or `_applied`."""
    if isinstance(trained, keras.Model):
        variables = [*trained.weights, *trained.optimizer.variables]
    else:
        variables = [*trained.trained, *trained.variables]
    return [(v.path, np.array(v)) for v in variables]


def _relative_errors(expected, actual):
    """Per variable of two `_applied`, keyed by `expected`'s paths, the change of the `apply`
    steps compared: `max |change of actual - change of expected| / max |change of expected|`.
    """
    changes = [[(path, value - initial) for (path, value), (_, initial)
                in zip(_state(optimizer), optimizer.initial_state)]
               for optimizer in (expected, actual)]
    assert len(changes[0]) == len(changes[1])
    return {path: float(np.max(np.abs(a - e)) / max(float(np.max(np.abs(e))), 1e-30))
            for (path, e), (_, a) in zip(*changes)}


def test_update_equals_keras_adam():
    options = {"use_ema": True, "ema_momentum": 0.9, "clipnorm": 0.05, "weight_decay": 0.1,
               "epsilon": 1e-3}
    errors = _relative_errors(_applied(keras.optimizers.Adam, **EXACT_BETAS, **options),
                              _applied(FusedAdam, **EXACT_BETAS, **options))
    assert max(errors.values()) <= 1e-6


def test_default_betas_differ_only_by_float32_rounding():
    errors = _relative_errors(_applied(keras.optimizers.Adam), _applied(FusedAdam))
    assert max(errors.values()) > 0  # the default betas do round differently
    momentum = max(error for path, error in errors.items() if path.endswith("_momentum"))
    assert momentum < 1e-6 and max(errors.values()) < 3e-5


def test_float16_variables_take_keras_update():
    """In float16 the kernel's `1 - beta_2` would be 2.4% off: Keras's update, to the bit."""
    results = []
    for optimizer_class in (keras.optimizers.Adam, FusedAdam):
        variable = keras.Variable(np.linspace(-1, 1, 6), dtype="float16")
        optimizer = optimizer_class(learning_rate=0.01, epsilon=1e-3)
        for gradient in ([0.5, -1, 2, 0.1, -0.2, 1], [1, 1, -1, 0.3, 0.2, 2]):
            optimizer.apply([np.array(gradient, "float16")], [variable])
        results.append([np.array(v) for v in [variable, *optimizer.variables]])
    for expected, actual in zip(*results):
        np.testing.assert_array_equal(expected, actual)


def test_mirrored_strategy_equals_keras_adam(two_replica_strategy):
    options = {"use_ema": True, "ema_momentum": 0.9, **EXACT_BETAS}
    errors = _relative_errors(_applied(keras.optimizers.Adam, 2, two_replica_strategy, **options),
                              _applied(FusedAdam, 2, two_replica_strategy, **options))
    assert max(errors.values()) <= 1e-6


def test_keras_file_round_trip(tmp_path):
    model = _compiled(FusedAdam(0.01, epsilon=1e-5, use_ema=True))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is FusedAdam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for (path, value), (loaded_path, loaded_value) in zip(_state(model), _state(loaded)):
        assert path.split("/")[-1] == loaded_path.split("/")[-1]
        np.testing.assert_array_equal(value, loaded_value)


def test_weights_files_interchange_with_keras_adam(tmp_path):
    """A `.weights.h5` of a model trained with Keras Adam resumes with FusedAdam: same variables
    in the same order (so the converse holds too)."""
    trained = _compiled(keras.optimizers.Adam(0.01), steps=2)
    trained.save_weights(tmp_path / "ckpt.weights.h5")
    resumed = _compiled(FusedAdam(0.01), steps=0)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(tmp_path / "ckpt.weights.h5")
    assert int(resumed.optimizer.iterations) == 2
    for (_, value), (_, resumed_value) in zip(_state(trained), _state(resumed)):
        np.testing.assert_array_equal(value, resumed_value)


def test_exported_from_kdet_training():
    assert kdet.training.FusedAdam is FusedAdam
    assert issubclass(FusedAdam, keras.optimizers.Adam)
