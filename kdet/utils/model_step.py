"""The training step a model is at, read from its optimizer.

Here rather than in `kdet.training`, so that evaluation (which logs by step) does not depend on
training.
"""


def optimizer_step(model):
    """The optimizer's `iterations` as an int (the training step); 0 without an optimizer.

    Args:
        model: a Keras model, compiled or not.

    Returns:
        int.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return 0
    # `.numpy()`: under a multi-worker strategy `iterations` is a MirroredVariable, which
    # `int()` cannot convert.
    return int(optimizer.iterations.numpy())
