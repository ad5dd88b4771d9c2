"""Files written atomically with a sha256 next to them, so damaged or partial ones are caught.

A file written with `write_verified` gets a sibling `<file>.sha256` in `sha256sum` format and
appears under its name only once complete, so `is_verified` (and `sha256sum -c`) catch a
half-written or damaged file. kdet's zoo cache and training checkpoints use them.
"""

import hashlib
import os
import pathlib
import re
import warnings

from kdet.utils.processes import process_exists

_CHUNK_BYTES = 1 << 20
_SHA256_HEX = re.compile(rb"[0-9a-fA-F]{64}")


def file_sha256(path):
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(path):
    """`<path>.sha256`: where `write_verified` records the sha256 of `path`."""
    path = pathlib.Path(path)
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path):
    """The sha256 recorded in `<path>.sha256`, or `None` if it is missing or unreadable.

    An empty file, one that is not text, or one whose first word is not 64 hex digits records
    nothing (it is treated as missing, never as an error).

    Args:
        path: str or path-like, a file written by `write_verified`.

    Returns:
        str (lowercase hex) or `None`.
    """
    try:
        words = checksum_path(path).read_bytes().split()
    except FileNotFoundError:
        return None
    if not words or not _SHA256_HEX.fullmatch(words[0]):
        return None
    return words[0].decode("ascii").lower()


def checksum_status(path):
    """How `path` stands against the sha256 recorded next to it.

    Returns:
        `"verified"` (it matches), `"damaged"` (a sha256 is recorded and does not match),
        `"unrecorded"` (the `.sha256` is missing, empty or unreadable) or `"missing"` (no
        file at `path`).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return "missing"
    expected = recorded_sha256(path)
    if expected is None:
        return "unrecorded"
    return "verified" if file_sha256(path) == expected else "damaged"


def record_sha256(path):
    """(Re)writes `<path>.sha256` for the file as it is now, atomically."""
    path = pathlib.Path(path)
    temp_checksum = checksum_path(path.with_name(f".tmp-{os.getpid()}-{path.name}"))
    try:
        _write_synced(temp_checksum, f"{file_sha256(path)}  {path.name}\n".encode())
        os.replace(temp_checksum, checksum_path(path))
    finally:
        temp_checksum.unlink(missing_ok=True)


def is_verified(path):
    """Whether `path` exists and matches the sha256 recorded next to it.

    A file that exists but does not match, or whose checksum is missing, empty or unreadable,
    gets a warning: it is damaged or incomplete, and the caller rebuilds it (`write_verified`
    replaces it). For files that must not be rebuilt (checkpoints) use `checksum_status`.

    Args:
        path: str or path-like, a file written by `write_verified`.

    Returns:
        bool.
    """
    path = pathlib.Path(path)
    status = checksum_status(path)
    if status in ("verified", "missing"):
        return status == "verified"
    checksum = checksum_path(path)
    warnings.warn(
        f"Cached file {path} has sha256 {file_sha256(path)}, but {checksum} "
        + (
            f"records {recorded_sha256(path)}"
            if status == "damaged"
            else "is missing" if not checksum.exists() else "records none"
        )
        + ": it is damaged or incomplete and will be rebuilt.",
        stacklevel=2,
    )
    return False


def _write_synced(path, data):
    """Writes bytes to `path` and flushes them to disk before returning."""
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def fsync_file(path):
    """Flushes a written file's content to disk (before a rename publishes it)."""
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def fsync_folder(path):
    """Flushes a folder's entries (a rename into it) to disk; a no-op where unsupported."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_verified(path, write):
    """Writes a file atomically and records its sha256 next to it.

    `write(temp_path)` writes the content to a temporary name in the same folder (it keeps the
    suffixes of `path`, e.g. `.weights.h5`, which Keras requires). The temporary file is renamed
    to `path` only once complete and its checksum is in place, so readers see either no file or
    a complete one with its `<path>.sha256`. Both are flushed to disk (fsync) before the
    renames, and the folder after them, so a power loss cannot publish a partial file.

    Args:
        path: str or path-like. The file to create; its folder is created if needed.
        write: callable taking a `pathlib.Path` and writing the file there.

    Returns:
        `pathlib.Path`, `path`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    temp_checksum = checksum_path(temp_path)
    try:
        write(temp_path)
        fsync_file(temp_path)
        _write_synced(temp_checksum, f"{file_sha256(temp_path)}  {path.name}\n".encode())
        os.replace(temp_checksum, checksum_path(path))
        os.replace(temp_path, path)
        fsync_folder(path.parent)
    finally:
        temp_path.unlink(missing_ok=True)
        temp_checksum.unlink(missing_ok=True)
    return path


_TEMP_NAME = re.compile(r"^\.tmp-(\d+)-")


def remove_dead_runs_files(folder):
    """Removes the temporary files `write_verified` left in `folder` in runs that died.

    A run killed while writing leaves `.tmp-<pid>-<name>` (and its `.sha256`); those of a pid
    that is no longer running are removed. Returns the names removed.
    """
    removed = []
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP_NAME.match(path.name)
        pid = int(match.group(1)) if match else None
        if match and path.is_file() and pid != os.getpid() and not process_exists(pid):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return sorted(removed)

