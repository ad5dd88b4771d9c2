"""Hiding what TensorFlow's C++ side prints while it starts, and its C++ info logs."""

import contextlib
import os
import sys

from kdet.utils.import_hooks import run_around_imports


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
    """TensorFlow starts with nothing printed by its C++ side, whoever imports it.

    Sets `TF_CPP_MIN_LOG_LEVEL` (unless already set), which TensorFlow reads once, when it is
    first imported. Then, when TensorFlow is imported (by anyone: kdet, Keras, the user), the
    import runs and the devices are listed with file descriptor 2 hidden: the import prints a
    banner (oneDNN, CPU features) and device discovery a CUDA probe (`E0000 … failed call to
    cuInit`) on machines without a GPU, both before the log level applies; if TensorFlow is
    already imported, only the listing is hidden. Listing the devices does not initialize
    them, so logical devices and memory growth can still be configured afterwards. Imports
    nothing itself: `import kdet` calls this.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_MIN_LOG_LEVEL)
    if "tensorflow" in sys.modules:
        with native_stderr_hidden():
            sys.modules["tensorflow"].config.list_physical_devices()
    else:
        run_around_imports(lambda name: name == "tensorflow", _tensorflow_starting)


@contextlib.contextmanager
def _tensorflow_starting(tensorflow):
    """Around TensorFlow's import: its start-up and device discovery with fd 2 hidden."""
    with native_stderr_hidden():
        yield
        tensorflow.config.list_physical_devices()
