"""Atomic writer of one TFRecord file or a set of TFRecord shards.

The files of one output (`OUT`, or `OUT-0000i-of-0000N`) are published together: every shard is
written to a hidden temporary file (`.NAME.tmp-<pid>`) and flushed to disk, then the files an
earlier run left under the same base name are moved aside (`.NAME.old-<pid>`), the new ones
renamed into place and the old ones deleted. A failure in between puts the old files back, so
the folder holds the complete old output or the complete new one, never a mix, and never
stale shards of another `num_shards`. A journal (`.OUT.publish-<pid>`, written once every
shard is complete) lets the next writer of the same output finish a publication that a killed
process left half done, and remove the temporary files of dead processes.
"""

import json
import os
import re
import time

import tensorflow as tf

from kdet.utils.processes import process_exists
from kdet.utils.verified_files import fsync_file
from kdet.utils.verified_files import fsync_folder

# Leftovers of a process that still runs are kept unless they are older than this: a pid can
# be reused by an unrelated process, which must not keep them forever.
LEFTOVER_MAX_AGE_SECONDS = 24 * 3600
_SHARD_SUFFIX = r"-\d{5}-of-\d{5}"


def shard_paths(output_path, num_shards):
    """Returns the final file names `ShardedTFRecordWriter` writes.

    `output_path` itself when `num_shards == 1`, else `output_path-00000-of-00010`, … — the
    naming of the TF OD API's `open_sharded_output_tfrecords`.

    Example:
    >>> shard_paths("train.record", 2)
    ['train.record-00000-of-00002', 'train.record-00001-of-00002']
    """
    output_path = os.fspath(output_path)
    if num_shards == 1:
        return [output_path]
    return [f"{output_path}-{index:05d}-of-{num_shards:05d}" for index in range(num_shards)]


def output_files(output_path):
    """The files that make up an output at `output_path` now: `output_path` itself and any
    `output_path-0000i-of-0000N` shard (whatever `N`), sorted. These are what a new output of the
    same base name replaces.

    Example:
    >>> output_files("out/train.record")   # after an earlier run with num_shards=2
    ['out/train.record-00000-of-00002', 'out/train.record-00001-of-00002']
    """
    folder, base = _split(output_path)
    own_name = _own_name_pattern(base).fullmatch
    return [
        os.path.join(folder, name)
        for name in sorted(_listdir(folder))
        if own_name(name) and not os.path.isdir(os.path.join(folder, name))
    ]


def _own_name_pattern(base):
    """Matches `base` and its shard names `base-0000i-of-0000N`."""
    return re.compile(re.escape(base) + f"(?:{_SHARD_SUFFIX})?")


def remove_leftovers(output_path):
    """Removes what killed runs writing `output_path` left behind; returns the names removed.

    Only kdet's own hidden names for this output count (`.NAME.tmp-<pid>`, `.NAME.old-<pid>`,
    `.OUT.publish-<pid>`, with NAME the output or one of its shards), and only those of a
    process that no longer runs (or older than `LEFTOVER_MAX_AGE_SECONDS`). A publication that
    a killed process left half done (its journal is there) is completed first: its shards were
    all complete and on disk before it started, so its new output is put in place.
    """
    folder, base = _split(output_path)
    names = _listdir(folder)
    escaped = re.escape(base)
    journal = re.compile(rf"\.{escaped}\.publish-(\d+)")
    leftover = re.compile(rf"\.{escaped}(?:{_SHARD_SUFFIX})?\.(?:tmp|old)-(\d+)")
    removed = []
    for pattern in (journal, leftover):  # journals first: finishing one uses its temp files
        for name in sorted(names):
            match = pattern.fullmatch(name)
            path = os.path.join(folder, name)
            if not match or not os.path.lexists(path) or not _abandoned(path, int(match[1])):
                continue
            if pattern is journal:
                _finish_publication(folder, path, int(match[1]))
            if os.path.lexists(path):
                os.remove(path)
            removed.append(path)
    if removed:
        fsync_folder(folder or ".")
    return removed


def _split(output_path):
    output_path = os.fspath(output_path)
    return os.path.dirname(output_path), os.path.basename(output_path)


def _listdir(folder):
    try:
        return os.listdir(folder or ".")
    except (FileNotFoundError, NotADirectoryError):
        return []


def _abandoned(path, pid):
    """Whether a leftover of process `pid` may go: that process is gone, or the file is old."""
    if pid == os.getpid():
        return False
    try:
        if time.time() - os.lstat(path).st_mtime > LEFTOVER_MAX_AGE_SECONDS:
            return True
    except FileNotFoundError:
        return False
    return not process_exists(pid)


def _temp_name(name, kind, pid):
    return f".{name}.{kind}-{pid}"


def _finish_publication(folder, journal_path, pid):
    """Completes the publication of a killed process from its journal (rolls it forward)."""
    base = os.path.basename(journal_path)[1 : -len(f".publish-{pid}")]
    # Only names of this output's files are acted on: the journal is data in a folder that
    # others may write to, and must not make kdet move or delete anything else.
    own_name = _own_name_pattern(base).fullmatch
    try:
        with open(journal_path, encoding="utf-8") as file:
            journal = json.load(file)
        new, old = list(journal["new"]), list(journal["old"])
        written = os.stat(journal_path).st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return  # written only partly: the process died before it moved any file
    if not all(isinstance(name, str) and own_name(name) for name in new + old):
        return
    if any(os.stat(path).st_mtime > written for path in output_files(os.path.join(folder, base))):
        return  # a later run published this output since (possible if the pid was reused)
    for name in new:
        temp = os.path.join(folder, _temp_name(name, "tmp", pid))
        if os.path.exists(temp):
            os.replace(temp, os.path.join(folder, name))
    for name in set(old) - set(new):
        path = os.path.join(folder, name)
        if os.path.lexists(path):
            os.remove(path)


class ShardedTFRecordWriter:
    """Writes serialized records to `num_shards` TFRecord files that appear only when complete.

    Record `i` goes to shard `i % num_shards` (as in the TF OD API dataset tools). Each shard is
    written to a hidden temporary file in the output folder (`.NAME.tmp-<pid>`); `close()`
    flushes them to disk and publishes them as a whole in place of every file of the same base
    name (`OUT`, `OUT-0000i-of-0000N` for any `N`): shards of an earlier run with another
    `num_shards` go, and if a rename fails the earlier files are put back (see the module
    docstring). Leaving a `with` block through an exception (or calling `abort()`) deletes the
    temporary files instead, so a crash never leaves a partial record file. Creating a writer
    first removes what killed runs writing the same output left (`remove_leftovers`), listed in
    `removed_leftovers`.

    Args:
        output_path: str or path-like. The output file (`num_shards == 1`) or the shard prefix;
            its folder is created if needed.
        num_shards: int. Number of output files. Defaults to `1`.

    Example:
    >>> with ShardedTFRecordWriter("out/train.record", num_shards=2) as writer:
    ...     for example in examples:
    ...         writer.write(example.SerializeToString())
    >>> writer.paths
    ['out/train.record-00000-of-00002', 'out/train.record-00001-of-00002']
    """

    def __init__(self, output_path, num_shards=1):
        if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
            raise ValueError(f"num_shards must be an integer >= 1, got {num_shards!r}")
        self.output_path = os.fspath(output_path)
        if not os.path.basename(self.output_path) or os.path.isdir(self.output_path):
            raise ValueError(
                f"the output {self.output_path} is a folder; expected the path of a record "
                f"file, e.g. {os.path.join(self.output_path, 'train.record')}"
            )
        self.num_shards = num_shards
        self.paths = shard_paths(self.output_path, num_shards)
        self.num_records = 0
        self._folder = os.path.dirname(self.output_path)
        pid = os.getpid()
        self._temp_paths = [
            os.path.join(self._folder, _temp_name(os.path.basename(path), "tmp", pid))
            for path in self.paths
        ]
        self._journal_path = os.path.join(
            self._folder, _temp_name(os.path.basename(self.output_path), "publish", pid)
        )
        self._keep_temp_files = False
        if self._folder:
            os.makedirs(self._folder, exist_ok=True)
        self.removed_leftovers = remove_leftovers(self.output_path)
        self._writers = []
        try:
            for temp_path in self._temp_paths:
                self._writers.append(tf.io.TFRecordWriter(temp_path))
        except BaseException:
            self.abort()
            raise
        self._state = "open"

    def write(self, record):
        """Appends one record: serialized bytes or a `tf.train.Example` (serialized with a
        deterministic field order, so the same content gives the same bytes)."""
        if self._state != "open":
            raise ValueError(f"the writer of {self.output_path} is {self._state}; cannot write")
        if hasattr(record, "SerializeToString"):
            record = record.SerializeToString(deterministic=True)
        self._writers[self.num_records % self.num_shards].write(record)
        self.num_records += 1

    def close(self):
        """Finishes the shards and publishes them in place of the earlier files of this output.

        Returns:
            list of str. The final paths (`self.paths`).
        """
        if self._state == "closed":
            return self.paths
        if self._state == "aborted":
            raise ValueError(f"the writer of {self.output_path} was aborted; nothing to close")
        try:
            for writer in self._writers:
                writer.close()
            for temp_path in self._temp_paths:
                fsync_file(temp_path)
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.paths

    def _publish(self):
        """Moves the old files aside, the new ones in, then deletes the old ones; on a failure
        puts everything back as it was (the new files stay temporary and are deleted)."""
        pid = os.getpid()
        old = [os.path.basename(path) for path in output_files(self.output_path)]
        new = [os.path.basename(path) for path in self.paths]
        try:
            with open(self._journal_path, "w", encoding="utf-8") as file:
                json.dump({"new": new, "old": old}, file)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            if os.path.exists(self._journal_path):
                os.remove(self._journal_path)
            raise
        folder = self._folder or "."
        fsync_folder(folder)
        moved_aside, placed = [], []
        try:
            for name in old:
                aside = os.path.join(self._folder, _temp_name(name, "old", pid))
                os.replace(os.path.join(self._folder, name), aside)
                moved_aside.append((os.path.join(self._folder, name), aside))
            for temp_path, path in zip(self._temp_paths, self.paths):
                os.replace(temp_path, path)
                placed.append((temp_path, path))
        except BaseException as error:
            try:
                for source, target in reversed(moved_aside + placed):
                    os.replace(target, source)
            except BaseException as restore_error:
                # Leave every file and the journal: the next writer of this output completes
                # the publication (all new shards are complete and on disk).
                self._keep_temp_files = True
                raise OSError(
                    f"publishing {self.output_path} failed ({error}) and putting the earlier "
                    f"files back failed too ({restore_error}); the next conversion to "
                    f"{self.output_path} completes it"
                ) from error
            os.remove(self._journal_path)
            raise
        fsync_folder(folder)
        for _, aside in moved_aside:
            os.remove(aside)
        os.remove(self._journal_path)
        fsync_folder(folder)

    def abort(self):
        """Drops everything written so far: closes and deletes the temporary files."""
        for writer in self._writers:
            writer.close()
        if not self._keep_temp_files:
            for temp_path in self._temp_paths:
                if os.path.exists(temp_path):
                    os.remove(temp_path)
        self._state = "aborted"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
