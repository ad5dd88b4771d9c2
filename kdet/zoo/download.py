"""Downloads and `.tar.gz` extraction for the zoo: complete files or none, archives unpacked safely.

- `download(url, path)`: streams `url` into a temporary file next to `path` with a progress
  bar, checks its length, and renames it to `path` only when complete; returns its sha256.
- `extract_tar_gz(archive, target)`: unpacks into a staging folder next to `target`, renamed
  to `target` only when every member is out. Only regular files and folders are unpacked: an
  absolute or `..` member path, a symbolic or hard link, a device or FIFO, more than
  `max_members` members or more than `max_bytes` bytes refuse the whole archive.

kdet checks members itself rather than through `tarfile`'s `filter="data"`, which Python has
only from 3.10.12 / 3.11.4 on (kdet supports 3.10): the checks are the same on every Python, and
the byte limit counts what is written, not what member headers claim.
"""

import gzip
import hashlib
import http.client
import os
import pathlib
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib

from kdet.utils.progress import progress_bar
from kdet.utils.verified_files import fsync_file
from kdet.utils.verified_files import fsync_folder

DEFAULT_TIMEOUT = 60.0
# The largest TF detection zoo archives unpack to about 2 GB and hold a few dozen files.
MAX_EXTRACTED_BYTES = 16 << 30
MAX_MEMBERS = 10_000
_CHUNK_BYTES = 1 << 20
_MB = 1 << 20


class ArchiveError(ValueError):
    """A downloaded or given archive that is incomplete, damaged or unsafe to unpack."""


class DownloadError(ConnectionError):
    """A URL that could not be downloaded (offline, refused, timed out, HTTP error, cut short).

    Attributes:
        url: str, the URL.
    """

    def __init__(self, message, url):
        super().__init__(message)
        self.url = url


def temporary_path(path):
    """`<folder>/.tmp-<pid>-<name>`: where a file or folder is written before it appears as
    `path` (the zoo's other temporary files use the same pattern)."""
    path = pathlib.Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def download(url, path, timeout=DEFAULT_TIMEOUT, progress=True, hint=""):
    """Downloads `url` to `path`, which appears only once complete.

    The bytes go to a temporary file in `path`'s folder, which is flushed to disk and renamed
    to `path` once the server's `Content-Length` (when it sends one) is met. An existing
    `path` is replaced.

    Args:
        url: str. `http://`, `https://` or `file://`.
        path: str or path-like, the file to create; its folder is created if needed.
        timeout: float, seconds to wait for the server to connect or send more bytes.
            Defaults to `DEFAULT_TIMEOUT`.
        progress: bool. Draw a progress bar (in MB) on stderr. Defaults to `True`.
        hint: str appended to the error of a failed download (what to do instead).

    Returns:
        str, the hex sha256 of the file.

    Raises:
        DownloadError: the URL could not be reached or read (the error names it and why), or
            it sent fewer bytes than announced. Nothing is left at `path` or beside it.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = temporary_path(path)
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with open(temp_path, "wb") as file, progress_bar(
                description=f"downloading {path.name}", unit="MB",
                total=None if expected is None else expected / _MB, enabled=progress,
            ) as bar:
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk) / _MB)
        if expected is not None and received != expected:
            raise DownloadError(
                f"The download of {url} was cut short: {received} of {expected} bytes "
                f"arrived.{hint}", url,
            )
        fsync_file(temp_path)
        os.replace(temp_path, path)
        fsync_folder(path.parent)
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"{url} answered HTTP {error.code} ({error.reason}).{hint}", url
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError,
            http.client.HTTPException) as error:
        if isinstance(error, DownloadError):
            raise
        reason = getattr(error, "reason", None) or error
        raise DownloadError(f"Could not download {url}: {reason}.{hint}", url) from None
    finally:
        temp_path.unlink(missing_ok=True)
    return digest.hexdigest()


def extract_tar_gz(archive, target, max_bytes=MAX_EXTRACTED_BYTES, max_members=MAX_MEMBERS):
    """Unpacks a `.tar.gz` archive into the new folder `target`, all or nothing.

    Members go to a staging folder next to `target` that is renamed to `target` at the end;
    on any error it is removed and `target` is left as it was. `target` must not exist yet.

    Args:
        archive: str or path-like, the `.tar.gz` file.
        target: str or path-like, the folder to create.
        max_bytes: int, the most bytes the members may hold in all. Defaults to
            `MAX_EXTRACTED_BYTES` (16 GiB).
        max_members: int, the most members (files and folders). Defaults to `MAX_MEMBERS`.

    Returns:
        `pathlib.Path`, `target`.

    Raises:
        ArchiveError: naming `archive` (and the member): not a gzip-compressed tar, truncated
            or corrupted, a member that is absolute, has a `..`, is a link, a device or a
            FIFO, or the archive exceeds `max_members` or `max_bytes`.
        FileExistsError: `target` exists.
    """
    archive, target = pathlib.Path(archive), pathlib.Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists; extract {archive} to a new folder.")
    staging = temporary_path(target)
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run of this process id
    staging.mkdir(parents=True)
    try:
        _extract_members(archive, staging, max_bytes, max_members)
        os.replace(staging, target)
        fsync_folder(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_members(archive, folder, max_bytes, max_members):
    members, written = 0, 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                members += 1
                if members > max_members:
                    raise ArchiveError(
                        f"{archive} holds more than {max_members} members; a zoo archive holds "
                        "a few dozen (pass a larger max_members if it is really yours)."
                    )
                relative = _member_path(archive, member)
                if member.isdir():
                    (folder / relative).mkdir(parents=True, exist_ok=True)
                    continue
                destination = folder / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(destination, "wb") as file:
                    for chunk in iter(lambda: source.read(_CHUNK_BYTES), b""):
                        written += len(chunk)
                        if written > max_bytes:
                            raise ArchiveError(
                                f"{archive} unpacks to more than {max_bytes} bytes (at member "
                                f"{member.name!r}); pass a larger max_bytes if it is really "
                                "yours."
                            )
                        file.write(chunk)
            # Read to the end of the gzip stream: its length and CRC are checked there.
            while tar.fileobj.read(_CHUNK_BYTES):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ArchiveError(
            f"{archive} is not a complete .tar.gz archive (truncated or corrupted): {error}"
        ) from None


_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_path(archive, member):
    """The member's path relative to the extraction folder, after the safety checks."""
    name = member.name
    path = pathlib.PurePosixPath(name)
    if path.is_absolute() or _DRIVE.match(name) or "\\" in name:
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path; refused.")
    if ".." in path.parts:
        raise ArchiveError(f"{archive}: member {name!r} leads out of the folder ('..'); refused.")
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise ArchiveError(
            f"{archive}: member {name!r} is a {kind} link (to {member.linkname!r}); zoo archives "
            "hold files and folders only, links are refused."
        )
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(
            f"{archive}: member {name!r} is a device, FIFO or other special file; refused."
        )
    return path
