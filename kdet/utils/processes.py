"""Whether a process exists: how kdet tells a killed run's leftovers from a live run's files."""

import os


def process_exists(pid):
    """Whether a process with this pid is running (this one included).

    A process of another user counts as running; so does any pid on Windows, where
    `os.kill(pid, 0)` would stop the process instead of asking about it.

    Args:
        pid: int.

    Returns:
        bool.
    """
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # another user's, or not askable
        return True
    return True
