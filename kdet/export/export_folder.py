"""Publishing an export into its output folder so that a kill at any instant loses nothing.

`kdet export` writes the new export into a staging folder inside the output folder, then
`publish_export` swaps its entries (`saved_model/`, `checkpoint/`, `pipeline.config`, …) in:

1. Every file and folder of the staging folder is fsynced.
2. A journal, `.kdet-export.journal-<pid>.json`, is written, fsynced and renamed into place: it
   names the staging folder, the entries, and the inode of each new entry. From here on the new
   export is complete on disk and is *rolled forward* by whoever finds the journal.
3. Each entry is exchanged with the old one by one atomic `renameat2(RENAME_EXCHANGE)` (Linux),
   so `OUTPUT/saved_model` is at every instant the complete old or the complete new SavedModel;
   the old entry lands in the staging folder. Where the exchange is not supported, the old entry
   is renamed aside and the new one renamed in (a window of two renames where the entry is
   missing; the journal completes it).
4. Entries of the earlier export that this one does not write (its `.kdet_export.json` lists
   them, e.g. a `model.tflite`) are moved aside, the journal is deleted, and the old entries are
   deleted with the staging folder.

If a step fails in process (disk full, permissions), the swapped entries are exchanged back and
the earlier export is as it was. If the process is killed, the next `kdet export` into the
folder (`recover_export_folder`) finds the journal of a dead process and completes the swap
(it knows each new entry by its inode), then removes every `.kdet-export.tmp-<pid>`,
`.kdet-export.old-<pid>` and journal left by dead processes. Only these names of kdet's are
touched, and only entries named in `EXPORT_ENTRIES`: a `.kdet_export.json` that lists anything
else (`../victim.txt`, an absolute path, a user's file) or a symlink is ignored with a warning.
"""

import ctypes
import errno
import json
import os
import pathlib
import re
import shutil
import warnings

from kdet.utils.processes import process_exists
from kdet.utils.verified_files import fsync_file
from kdet.utils.verified_files import fsync_folder

#: Lists, in the output folder, the entries an export wrote, so that the next export into the
#: same folder replaces them (and removes a `model.tflite` it does not write again).
MANIFEST = ".kdet_export.json"
#: Every name an export can write into its output folder; the only names a manifest may list.
EXPORT_ENTRIES = frozenset(
    {"saved_model", "checkpoint", "pipeline.config", "pipeline.yaml", "model.tflite", MANIFEST}
)

_PREFIX = ".kdet-export."
_LEFTOVER = re.compile(r"\.kdet-export\.(tmp|old|journal)-(\d+)(\.json(\.tmp)?)?")


class ExportInProgressError(RuntimeError):
    """Another live process is publishing an export into the same folder."""


def staging_folder(output, pid=None):
    """`OUTPUT/.kdet-export.tmp-<pid>`: where the export of process `pid` is written first."""
    return pathlib.Path(output) / f"{_PREFIX}tmp-{os.getpid() if pid is None else pid}"


def _aside_folder(output, pid):
    return pathlib.Path(output) / f"{_PREFIX}old-{pid}"


def _journal_path(output, pid):
    return pathlib.Path(output) / f"{_PREFIX}journal-{pid}.json"


def read_manifest(output):
    """The entries `OUTPUT/.kdet_export.json` lists that an export may replace.

    Only names in `EXPORT_ENTRIES` that are not symlinks count; anything else (a path such as
    `../victim.txt` or `/etc/passwd`, a user's file, a symlink, a manifest that is not kdet's
    JSON) is ignored with a warning that names it.

    Args:
        output: str or path-like, an export's output folder.

    Returns:
        list of str.
    """
    output = pathlib.Path(output)
    path = output / MANIFEST
    try:
        entries = json.loads(path.read_text())["entries"]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"{path}: not a kdet export manifest ({error}); ignored", stacklevel=2)
        return []
    if not isinstance(entries, list):
        warnings.warn(f"{path}: 'entries' is not a list; ignored", stacklevel=2)
        return []
    valid = []
    for name in entries:
        if not isinstance(name, str) or name not in EXPORT_ENTRIES or name == MANIFEST:
            warnings.warn(
                f"{path}: entry {name!r} ignored: an export only replaces its own entries "
                f"({', '.join(sorted(EXPORT_ENTRIES - {MANIFEST}))}) inside {output}",
                stacklevel=2,
            )
        elif (output / name).is_symlink():
            warnings.warn(
                f"{path}: entry {name!r} is a symlink, which kdet never writes; left alone",
                stacklevel=2,
            )
        else:
            valid.append(name)
    return valid


def fsync_tree(folder):
    """fsyncs every file and folder under `folder` (itself included), folders after contents."""
    for root, folders, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_folder(root)


def publish_export(output, staging, entries, keep=()):
    """Swaps the staged `entries` into `output` in place of the earlier export's.

    See the module docstring for the steps. Once the swap is done, or undone after an error,
    `staging` is removed; `discard_staging` removes it after an error before the swap began.

    Args:
        output: str or path-like, the output folder.
        staging: str or path-like, `staging_folder(output)`, holding `entries`.
        entries: list of names in `staging` (from `EXPORT_ENTRIES`); the manifest listing them
            is written and swapped in last.
        keep: paths that must stay even if the earlier manifest lists them (the config being
            exported from).
    """
    output, staging = pathlib.Path(output), pathlib.Path(staging)
    if not set(entries) <= EXPORT_ENTRIES - {MANIFEST}:
        raise ValueError(f"entries must be among {sorted(EXPORT_ENTRIES - {MANIFEST})}; got "
                         f"{entries!r}")
    keep = {pathlib.Path(path).resolve() for path in keep}
    stale = [
        name
        for name in read_manifest(output)
        if name not in entries and (output / name).resolve() not in keep
    ]
    entries = [*entries, MANIFEST]
    (staging / MANIFEST).write_text(json.dumps({"entries": entries[:-1]}) + "\n")
    fsync_tree(staging)
    pid = os.getpid()
    journal = {
        "staging": staging.name,
        "aside": _aside_folder(output, pid).name,
        "entries": {name: os.lstat(staging / name).st_ino for name in entries},
        "stale": stale,
    }
    _write_journal(output, pid, journal)
    done = []
    try:
        for name in entries:
            done.append(_swap_in(output, journal, name))
        for name in stale:
            if os.path.lexists(output / name):
                done.append(_move_aside(output, journal, name))
    except BaseException:
        # Should an undo fail too, the journal stays and the next export completes the swap.
        for undo in reversed(done):
            undo()
        _finish(output, pid, journal)
        raise
    _finish(output, pid, journal)


def recover_export_folder(output):
    """Completes the swap of a killed `kdet export` and removes what killed exports left.

    For each `.kdet-export.journal-<pid>.json` whose process is gone, the swap it describes is
    completed (entries already in place are recognized by inode); then each
    `.kdet-export.tmp-<pid>`, `.kdet-export.old-<pid>` (and a half-written journal) of a process
    that is gone is deleted. Names of running processes, and everything else, stay.

    Args:
        output: str or path-like, an export's output folder.

    Returns:
        list of str: one line per thing done, for the user.

    Raises:
        ExportInProgressError: another `kdet export` (its pid is alive) is publishing into
            `output`.
    """
    output, done = pathlib.Path(output), []
    if not output.is_dir():
        return done
    for path in sorted(output.iterdir()):
        match = _LEFTOVER.fullmatch(path.name)
        if not match or match.group(1) != "journal" or match.group(4):
            continue
        pid = int(match.group(2))
        if _other_process_alive(pid):
            raise ExportInProgressError(
                f"{output}: another kdet export (process {pid}) is publishing into this "
                f"folder ({path.name}); wait for it to finish"
            )
        try:
            journal = json.loads(path.read_text())
            _check_journal(journal)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            warnings.warn(f"{path}: unreadable export journal ({error}); removed", stacklevel=2)
            path.unlink()
            continue
        for name in journal["entries"]:
            try:
                _swap_in(output, journal, name)
            except FileNotFoundError as error:
                warnings.warn(f"{error}; {output / name} is left as it is", stacklevel=2)
        for name in journal["stale"]:
            if os.path.lexists(output / name):
                _move_aside(output, journal, name)
        _finish(output, pid, journal)
        done.append(f"completed the export that process {pid} was publishing when it ended")
    leftovers = []
    for path in sorted(output.iterdir()):
        match = _LEFTOVER.fullmatch(path.name)
        if match and not _other_process_alive(int(match.group(2))):
            _remove(path)
            leftovers.append(path.name)
    if leftovers:
        done.append(f"removed what ended exports left: {', '.join(leftovers)}")
    return done


def discard_staging(output, staging):
    """Deletes `staging` unless an interrupted swap's journal still needs it."""
    if not _journal_path(output, os.getpid()).exists():
        _remove(staging)


def _check_journal(journal):
    """Raises ValueError unless every name in `journal` is one of kdet's own."""
    names = [journal["staging"], journal["aside"], *journal["entries"], *journal["stale"]]
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{name!r} is not a name")
    if not all(isinstance(inode, int) for inode in journal["entries"].values()):
        raise ValueError("an inode is not an integer")
    folders_ok = all(
        _LEFTOVER.fullmatch(journal[key]) and journal[key].startswith(_PREFIX + prefix)
        for key, prefix in (("staging", "tmp-"), ("aside", "old-"))
    )
    if not folders_ok or not set(journal["entries"]) | set(journal["stale"]) <= EXPORT_ENTRIES:
        raise ValueError("it names files that are not kdet's export entries")


def _write_journal(output, pid, journal):
    path = _journal_path(output, pid)
    temp = path.with_name(path.name + ".tmp")
    try:
        with open(temp, "w") as file:
            json.dump(journal, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_folder(output)


def _finish(output, pid, journal):
    """Deletes the journal (the swap is complete or undone), then the old entries."""
    _journal_path(output, pid).unlink(missing_ok=True)
    fsync_folder(output)
    for key in ("staging", "aside"):
        _remove(output / journal[key])


def _swap_in(output, journal, name):
    """Puts the new entry `name` (known by its inode) in place; returns how to undo it."""
    staged, target = output / journal["staging"] / name, output / name
    new_inode = journal["entries"][name]
    if _inode(target) == new_inode:
        return lambda: None  # already in place (a recovery after the swap of this entry)
    if _inode(staged) != new_inode:
        raise FileNotFoundError(f"{staged}: the new {name} of the interrupted export is gone")
    if not os.path.lexists(target):
        _rename(staged, target)
        fsync_folder(output)
        return lambda: _rename(target, staged)
    if _exchange(staged, target):
        fsync_folder(output)
        return lambda: _exchange(staged, target)
    undo_aside = _move_aside(output, journal, name)
    _rename(staged, target)
    fsync_folder(output)

    def undo():
        _rename(target, staged)
        undo_aside()

    return undo


def _move_aside(output, journal, name):
    aside = output / journal["aside"]
    aside.mkdir(exist_ok=True)
    _rename(output / name, aside / name)
    fsync_folder(output)
    return lambda: _rename(aside / name, output / name)


def _inode(path):
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        return None


def _rename(source, target):
    os.rename(source, target)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
except (AttributeError, OSError, TypeError):  # not Linux, or a C library before glibc 2.28
    _renameat2 = None


def _exchange(first, second):
    """Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).

    Returns:
        True when exchanged, False where the system or file system cannot exchange.
    """
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                  _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _other_process_alive(pid):
    """Whether `pid` is a running process other than this one.

    This process's own names are leftovers too: its exports run one after the other.
    """
    return pid != os.getpid() and process_exists(pid)


def _remove(path):
    """Deletes a file, a symlink (never what it points to) or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
