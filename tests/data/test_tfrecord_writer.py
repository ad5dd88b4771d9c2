import os

import pytest
import tensorflow as tf

from kdet.data.sharded_tfrecord_writer import ShardedTFRecordWriter
from kdet.data.sharded_tfrecord_writer import shard_paths


def read_records(path):
    return [record.numpy() for record in tf.data.TFRecordDataset(path)]


def test_single_file_keeps_the_exact_name(tmp_path):
    output = tmp_path / "out" / "train.record"
    with ShardedTFRecordWriter(output) as writer:
        for index in range(3):
            writer.write(b"record-%d" % index)
    assert writer.paths == [str(output)]
    assert writer.num_records == 3
    assert os.listdir(tmp_path / "out") == ["train.record"]
    assert read_records(str(output)) == [b"record-0", b"record-1", b"record-2"]


def test_shards_are_named_like_the_tf_od_api_and_filled_round_robin(tmp_path):
    output = str(tmp_path / "train.record")
    writer = ShardedTFRecordWriter(output, num_shards=3)
    for index in range(7):
        writer.write(b"%d" % index)
    paths = writer.close()
    assert paths == [
        f"{output}-00000-of-00003",
        f"{output}-00001-of-00003",
        f"{output}-00002-of-00003",
    ]
    assert paths == shard_paths(output, 3)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path) for path in paths]
    expected = [[b"0", b"3", b"6"], [b"1", b"4"], [b"2", b"5"]]
    assert [read_records(path) for path in paths] == expected
    assert sum(1 for _ in tf.data.TFRecordDataset(paths)) == 7


def test_accepts_examples_and_close_is_idempotent(tmp_path):
    example = tf.train.Example()
    example.features.feature["x"].int64_list.value.append(5)
    writer = ShardedTFRecordWriter(tmp_path / "one.record")
    writer.write(example)
    assert writer.close() == writer.close() == [str(tmp_path / "one.record")]
    assert read_records(str(tmp_path / "one.record")) == [example.SerializeToString()]
    with pytest.raises(ValueError, match="is closed; cannot write"):
        writer.write(b"late")


def test_files_appear_only_on_close(tmp_path):
    writer = ShardedTFRecordWriter(tmp_path / "data.record", num_shards=2)
    writer.write(b"a")
    pid = os.getpid()
    assert sorted(os.listdir(tmp_path)) == [
        f".data.record-00000-of-00002.tmp-{pid}",
        f".data.record-00001-of-00002.tmp-{pid}",
    ]
    writer.close()
    assert sorted(os.listdir(tmp_path)) == [
        "data.record-00000-of-00002",
        "data.record-00001-of-00002",
    ]


def test_crash_inside_with_leaves_no_partial_or_temp_files(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with ShardedTFRecordWriter(tmp_path / "data.record", num_shards=4) as writer:
            for index in range(10):
                writer.write(b"x" * 1000)
                if index == 5:
                    raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="aborted"):
        writer.close()


def test_existing_output_is_replaced_only_at_the_end(tmp_path):
    output = tmp_path / "data.record"
    with ShardedTFRecordWriter(output) as writer:
        writer.write(b"old")
    with pytest.raises(KeyboardInterrupt):
        with ShardedTFRecordWriter(output) as writer:
            writer.write(b"new")
            assert read_records(str(output)) == [b"old"]
            raise KeyboardInterrupt
    assert read_records(str(output)) == [b"old"]
    with ShardedTFRecordWriter(output) as writer:
        writer.write(b"new")
    assert read_records(str(output)) == [b"new"]
    assert os.listdir(tmp_path) == ["data.record"]


def test_zero_records_gives_empty_files(tmp_path):
    paths = ShardedTFRecordWriter(tmp_path / "empty.record", num_shards=2).close()
    assert [read_records(path) for path in paths] == [[], []]


@pytest.mark.parametrize("num_shards", [0, -1, 1.5, True, "2"])
def test_rejects_bad_num_shards(tmp_path, num_shards):
    with pytest.raises(ValueError, match="num_shards must be an integer >= 1"):
        ShardedTFRecordWriter(tmp_path / "x.record", num_shards=num_shards)
    assert os.listdir(tmp_path) == []
