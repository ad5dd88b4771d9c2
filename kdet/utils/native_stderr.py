"""Hiding what TensorFlow's C++ side prints while it starts."""

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
