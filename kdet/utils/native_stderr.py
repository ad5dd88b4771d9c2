"""Hiding what TensorFlow's C++ side prints while it starts, and its C++ info logs."""

import contextlib
import os


@contextlib.contextmanager
def native_stderr_hidden():
    """Redirects file descriptor 2 to /dev/null for the duration of the block.

    TensorFlow prints a start-up banner (oneDNN notice, CUDA probe, CPU features) from C++ on
    import and on device discovery, before absl logging is initialized, so neither
    `TF_CPP_MIN_LOG_LEVEL` nor Python's `sys.stderr` can silence it; only the descriptor can.
    Python exceptions raised in the block still propagate and print after it.
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# TensorFlow's C++ log level kdet starts TensorFlow with, unless the user set one: 2 keeps
# errors and drops info and warning lines (`I0000 … tf_record_dataset_op.cc …`), which are
# TensorFlow's own diagnostics, not the user's to act on. Set `TF_CPP_MIN_LOG_LEVEL=0` to see
# them all.
TF_CPP_MIN_LOG_LEVEL = "2"


def quiet_tensorflow_start():
    """Imports TensorFlow and discovers its devices with nothing printed by its C++ side.

    Sets `TF_CPP_MIN_LOG_LEVEL` (unless already set), which TensorFlow reads once, when it is
    first imported; then imports TensorFlow and lists the devices with file descriptor 2
    hidden: the import prints a banner (oneDNN, CPU features) and device discovery a CUDA probe
    (`E0000 … failed call to cuInit`) on machines without a GPU, both before the log level
    applies. Listing the devices does not initialize them, so logical devices and memory growth
    can still be configured afterwards. `import kdet` and the `kdet` command call this first.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_MIN_LOG_LEVEL)
    with native_stderr_hidden():
        import tensorflow as tf

        tf.config.list_physical_devices()
