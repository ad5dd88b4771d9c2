"""Atomic writer of one TFRecord file or a set of TFRecord shards."""

import os

import tensorflow as tf


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


class ShardedTFRecordWriter:
    """Writes serialized records to `num_shards` TFRecord files that appear only when complete.

    Record `i` goes to shard `i % num_shards` (as in the TF OD API dataset tools). Each shard is
    written to a hidden temporary file in the output folder (`.NAME.tmp-<pid>`) and renamed to
    its final name by `close()`. Leaving a `with` block through an exception (or calling
    `abort()`) deletes the temporary files instead, so a crash never leaves a partial record
    file, and files that already exist at the final names are replaced only by the last rename.

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
        self.num_shards = num_shards
        self.paths = shard_paths(self.output_path, num_shards)
        self.num_records = 0
        self._temp_paths = [
            os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
            for path in self.paths
        ]
        folder = os.path.dirname(self.output_path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._writers = []
        try:
            for temp_path in self._temp_paths:
                self._writers.append(tf.io.TFRecordWriter(temp_path))
        except BaseException:
            self.abort()
            raise
        self._state = "open"

    def write(self, record):
        """Appends one record: serialized bytes or a `tf.train.Example`."""
        if self._state != "open":
            raise ValueError(f"the writer of {self.output_path} is {self._state}; cannot write")
        if hasattr(record, "SerializeToString"):
            record = record.SerializeToString()
        self._writers[self.num_records % self.num_shards].write(record)
        self.num_records += 1

    def close(self):
        """Finishes the shards and moves them to their final names.

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
            for temp_path, path in zip(self._temp_paths, self.paths):
                os.replace(temp_path, path)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.paths

    def abort(self):
        """Drops everything written so far: closes and deletes the temporary files."""
        for writer in self._writers:
            writer.close()
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
