"""Files written atomically with a sha256 next to them, so damaged or partial ones are caught.

A file written with `write_verified` gets a sibling `<file>.sha256` in `sha256sum` format and
appears under its name only once complete, so `is_verified` (and `sha256sum -c`) catch a
half-written or damaged file. kdet's zoo cache and training checkpoints use them.
"""

import hashlib
import os
import pathlib
import warnings

_CHUNK_BYTES = 1 << 20


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


def is_verified(path):
    """Whether `path` exists and matches the sha256 recorded next to it.

    A file that exists but does not match, or has no checksum, gets a warning: it is damaged
    or incomplete, and the caller rebuilds it (`write_verified` replaces it).

    Args:
        path: str or path-like, a file written by `write_verified`.

    Returns:
        bool.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return False
    checksum = checksum_path(path)
    expected = checksum.read_text().split()[0] if checksum.exists() else None
    actual = file_sha256(path)
    if actual == expected:
        return True
    warnings.warn(
        f"Cached file {path} has sha256 {actual}, but {checksum} "
        + (f"records {expected}" if expected else "is missing")
        + ": it is damaged or incomplete and will be rebuilt.",
        stacklevel=2,
    )
    return False


def write_verified(path, write):
    """Writes a file atomically and records its sha256 next to it.

    `write(temp_path)` writes the content to a temporary name in the same folder (it keeps the
    suffixes of `path`, e.g. `.weights.h5`, which Keras requires). The temporary file is renamed
    to `path` only once complete and its checksum is in place, so readers see either no file or
    a complete one with its `<path>.sha256`.

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
        temp_checksum.write_text(f"{file_sha256(temp_path)}  {path.name}\n")
        os.replace(temp_checksum, checksum_path(path))
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
        temp_checksum.unlink(missing_ok=True)
    return path
