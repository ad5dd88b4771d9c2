"""Building hyperparams templates without shifting the seeds of the layers' initializers."""

import random


def without_drawing_seeds(build):
    """Calls `build()` and restores Python's `random` state afterwards.

    A Keras initializer created without a seed draws one from Python's `random` when it is
    constructed. A component's default `ConvHyperparams` holds an initializer only as a
    template (each layer gets its own copy, which draws its own seed), so building the template
    must not move the sequence: under `keras.utils.set_random_seed`, default models then start
    from the same weights as before `conv_hyperparams` existed.

    Args:
        build: a function of no arguments.

    Returns:
        What `build()` returns.
    """
    state = random.getstate()
    try:
        return build()
    finally:
        random.setstate(state)
