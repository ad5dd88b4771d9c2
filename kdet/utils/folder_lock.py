"""An exclusive lock on a folder held by one process, released when that process ends.

`kdet train` holds one on its model directory, so that a second run on the same folder stops
with a message naming the first instead of both writing the same checkpoints. The lock is an
`fcntl.flock` on a file in the folder: the operating system drops it when the process exits,
however it exits (`kill -9` included), so a killed run never leaves it stuck. The file itself
stays and records who holds the lock (for the message); it is not the lock.
"""

import contextlib
import datetime
import os
import pathlib
import socket

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock (the message names it)."""


@contextlib.contextmanager
def folder_lock(folder, name, purpose):
    """Holds the exclusive lock `folder/name` for the duration of the `with` block.

    Args:
        folder: str or path-like, an existing folder.
        name: str, the lock file's name, e.g. `".kdet-train.lock"`.
        purpose: str, what holds it, for the messages, e.g. `"kdet train"`.

    Raises:
        FolderLockedError: another process holds the lock; the message names its pid, host
            and start time as it recorded them.
    """
    path = pathlib.Path(folder) / name
    if fcntl is None:
        yield path
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode("utf-8", "replace").strip()
            raise FolderLockedError(
                f"{folder} is in use by another {purpose} ({holder or 'holder unknown'}); "
                f"wait for it to end or use another folder (the lock goes when that process "
                f"ends, killed or not)"
            ) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        record = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode(), 0)
        yield path
    finally:
        os.close(descriptor)  # releases the flock
