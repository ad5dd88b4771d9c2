"""`kdet convert` under re-runs, failures, kills and hostile input (issue 14; the probe report's
rows 1a-1d): an output is replaced only by a complete new one, leftovers of killed runs go, one
bad entry never stops a conversion that skips bad input, and annotations cannot read images from
outside the image folder."""

import json
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from PIL import Image

from kdet import cli
from kdet.data import read_tfrecords
from kdet.data import sharded_tfrecord_writer
from kdet.data.converters import convert_coco
from kdet.data.converters import convert_csv
from kdet.data.converters import convert_voc
from kdet.data.converters import create_example_from_arrays
from kdet.data.errors import DataError
from kdet.data.sharded_tfrecord_writer import ShardedTFRecordWriter
from kdet.data.sharded_tfrecord_writer import shard_paths
from test_converters_voc import write_png
from test_converters_voc import write_voc


def records(paths):
    return [record.numpy() for record in tf.data.TFRecordDataset(paths)]


def write_output(output, num_shards, content):
    with ShardedTFRecordWriter(output, num_shards) as writer:
        for index in range(max(num_shards, 2)):
            writer.write(b"%s-%d" % (content, index))
    return writer.paths


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def dead_pid():
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- Item 2 / defect 4: a new num_shards replaces every file of the old output -------------


@pytest.mark.parametrize("before, after", [(3, 1), (1, 3), (3, 2), (2, 4)])
def test_a_new_num_shards_replaces_every_old_shard(tmp_path, before, after):
    output = tmp_path / "trees.record"
    write_output(output, before, b"old")
    paths = write_output(output, after, b"new")
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path) for path in paths]
    read = sorted(records([str(path) for path in tmp_path.glob("trees.record*")]))
    assert read == [b"new-%d" % i for i in range(max(after, 2))]


def test_only_kdets_names_of_the_same_output_are_replaced(tmp_path):
    kept = ["trees.record.sha256", "trees.record-1-of-2", "trees.record-00000-of-00002.bak",
            "trees.records", "other.record-00000-of-00002"]
    for name in kept:
        (tmp_path / name).write_text("kept")
    write_output(tmp_path / "trees.record", 2, b"old")
    write_output(tmp_path / "trees.record", 1, b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["trees.record"])


def test_kdet_convert_with_fewer_shards_leaves_no_stale_shard(data_dir, tmp_path, capsys):
    """The report's reproduction: --num_shards 3, then the default; the README's glob."""
    output = tmp_path / "s" / "trees.record"
    base = ["convert", "voc", str(data_dir / "deepforest"), "--output", str(output),
            "--no_progress"]
    assert cli.main(base + ["--num_shards", "3"]) == 0
    assert cli.main(base) == 0
    assert sorted(os.listdir(output.parent)) == ["label_map.pbtxt", "trees.record"]
    dataset = read_tfrecords(str(output) + "*", batch_size=1, image_size=(64, 64), num_epochs=1)
    assert sum(1 for _ in dataset) == 2
    capsys.readouterr()


# --- Defect 17: a failing rename never leaves old and new shards mixed ----------------------


def fail_replace_call(monkeypatch, failing_calls):
    """Makes the given 1-based calls of `os.replace` raise; returns the list of all calls."""
    calls = []
    real_replace = os.replace

    def replace(source, target):
        calls.append((os.path.basename(source), os.path.basename(target)))
        if len(calls) in failing_calls:
            raise OSError(f"simulated failure of os.replace call {len(calls)}")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("before, after", [(3, 3), (3, 2), (1, 2)])
def test_a_failing_rename_puts_the_old_output_back(tmp_path, monkeypatch, before, after):
    output = tmp_path / "trees.record"
    write_output(output, before, b"old")
    old = snapshot(tmp_path)
    num_renames = before + after  # old files aside, then new files in
    for failing in range(1, num_renames + 1):
        with monkeypatch.context() as patch:
            calls = fail_replace_call(patch, {failing})
            with pytest.raises(OSError, match=f"os.replace call {failing}"):
                write_output(output, after, b"new")
        assert len(calls) >= failing
        assert snapshot(tmp_path) == old, f"failure at rename {failing}"  # no temp file left


def test_when_putting_back_fails_too_the_next_writer_completes_the_new_output(
    tmp_path, monkeypatch
):
    output = tmp_path / "trees.record"
    write_output(output, 3, b"old")
    fake_pid = dead_pid()
    with monkeypatch.context() as patch:
        patch.setattr(os, "getpid", lambda: fake_pid)
        fail_replace_call(patch, {5, 6})  # 2nd new shard in, then the first undo
        with pytest.raises(OSError, match="putting the earlier files back failed too") as info:
            write_output(output, 2, b"new")
    assert f"the next conversion to {output} completes it" in str(info.value)
    # A later run (another process) rolls the publication forward from its journal.
    removed = sharded_tfrecord_writer.remove_leftovers(output)
    assert any(".trees.record.publish-" in path for path in removed)
    assert sorted(os.listdir(tmp_path)) == [
        "trees.record-00000-of-00002", "trees.record-00001-of-00002"
    ]
    assert sorted(records(shard_paths(output, 2))) == [b"new-0", b"new-1"]


def test_fsync_before_the_renames_that_publish(tmp_path, monkeypatch):
    events = []
    real_replace = os.replace
    monkeypatch.setattr(
        sharded_tfrecord_writer, "fsync_file", lambda path: events.append(("fsync", path))
    )
    monkeypatch.setattr(
        sharded_tfrecord_writer, "fsync_folder", lambda path: events.append(("folder", path))
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(("replace", a)), real_replace(a, b))[1]
    )
    write_output(tmp_path / "x.record", 2, b"a")
    synced = [path for kind, path in events if kind == "fsync"]
    assert len(synced) == 2
    first_replace = next(i for i, (kind, _) in enumerate(events) if kind == "replace")
    assert all(events.index(("fsync", path)) < first_replace for path in synced)
    assert [path for kind, path in events if kind == "replace"] == synced
    assert events[-1] == ("folder", str(tmp_path))


# --- Item 9: leftovers of killed runs ---------------------------------------------------------


def test_leftovers_of_dead_processes_are_removed_others_kept(tmp_path):
    dead, live = dead_pid(), os.getppid()
    names = {
        f".trees.record.tmp-{dead}": True,
        f".trees.record-00001-of-00004.tmp-{dead}": True,
        f".trees.record-00001-of-00004.old-{dead}": True,
        f".trees.record.tmp-{live}": False,  # a conversion that still runs
        f".other.record.tmp-{dead}": False,  # another output
        f".trees.record.tmp-{dead}.keep": False,  # not kdet's naming
        f"trees.record.tmp-{dead}": False,
        f".trees.record.publish-{dead}": True,  # a journal written only partly
    }
    for name in names:
        (tmp_path / name).write_text("{")
    old_live = tmp_path / f".trees.record-00000-of-00002.tmp-{live}"
    old_live.write_text("x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_live, (two_days_ago, two_days_ago))  # pid reused by another process?
    with ShardedTFRecordWriter(tmp_path / "trees.record") as writer:
        writer.write(b"new")
    expected_removed = sorted([name for name, gone in names.items() if gone] + [old_live.name])
    assert sorted(os.path.basename(path) for path in writer.removed_leftovers) == (
        expected_removed
    )
    assert sorted(os.listdir(tmp_path)) == sorted(
        [name for name, gone in names.items() if not gone] + ["trees.record"]
    )


def test_a_killed_publication_is_completed_or_dropped_by_the_next_conversion(data_dir, tmp_path):
    """A run killed in the middle of its renames left its journal: the next conversion first
    puts that complete output in place (then replaces it); a run killed before it left only
    temporary files, which go."""
    output = tmp_path / "trees.record"
    write_output(output, 3, b"old")
    pid = dead_pid()
    new = shard_paths(output, 2)
    for path, content in zip(new, (b"killed-0", b"killed-1")):
        with tf.io.TFRecordWriter(f"{tmp_path}/.{os.path.basename(path)}.tmp-{pid}") as writer:
            writer.write(content)
    (tmp_path / f".trees.record.publish-{pid}").write_text(json.dumps({
        "new": [os.path.basename(path) for path in new],
        "old": [os.path.basename(path) for path in shard_paths(output, 3)],
    }))
    # Killed after moving the first old shard aside and putting the first new shard in.
    os.replace(f"{output}-00000-of-00003", f"{tmp_path}/.trees.record-00000-of-00003.old-{pid}")
    os.replace(f"{tmp_path}/.trees.record-00000-of-00002.tmp-{pid}", new[0])
    sharded_tfrecord_writer.remove_leftovers(output)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path) for path in new]
    assert records(new) == [b"killed-0", b"killed-1"]

    (tmp_path / f".trees.record.tmp-{pid}").write_bytes(b"half a record")
    (tmp_path / f".label_map.pbtxt.tmp-{pid}").write_bytes(b"item {")
    summary = convert_voc(data_dir / "deepforest", output, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["label_map.pbtxt", "trees.record"]
    assert summary.num_images == 2
    assert summary.notes[-1] == (str(output), (
        f"removed 2 temporary file(s) that killed conversions to {output} left: "
        f".trees.record.tmp-{pid}, .label_map.pbtxt.tmp-{pid}"
    ))


# --- Item 7: one bad entry is skipped, named by file and field --------------------------------


def voc_with(folder, stem, size="<width>48</width><height>32</height>", difficult="0"):
    write_png(folder / f"{stem}.png")
    (folder / f"{stem}.xml").write_text(
        f"<annotation><filename>{stem}.png</filename><size>{size}</size><object><name>cat"
        f"</name><difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>2</ymin>"
        "<xmax>30</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )


VOC_BAD = {
    "difficult nan": (dict(difficult="nan"),
                      "object 1: <difficult> is 'nan'; expected a whole number"),
    "difficult 1.5": (dict(difficult="1.5"),
                      "object 1: <difficult> is '1.5'; expected a whole number"),
    "width nan": (dict(size="<width>nan</width><height>32</height>"),
                  "<size>: <width> is 'nan'; expected a whole number"),
    "width inf": (dict(size="<width>inf</width><height>32</height>"),
                  "<size>: <width> is 'inf'; expected a whole number"),
    "height 1e400": (dict(size="<width>48</width><height>1e400</height>"),
                     "<size>: <height> is '1e400'; expected a whole number"),
}


@pytest.mark.parametrize("case", list(VOC_BAD))
def test_voc_non_finite_numbers_are_skipped_by_name(tmp_path, case):
    kwargs, expected = VOC_BAD[case]
    voc_with(tmp_path, "a")
    voc_with(tmp_path, "b", **kwargs)
    summary = convert_voc(tmp_path, tmp_path / "out" / "x.record", progress=False)
    assert summary.num_images == 1
    assert summary.skipped == [(str(tmp_path / "b.xml"), f"{tmp_path / 'b.xml'} {expected}")]
    with pytest.raises(DataError, match="expected a whole number"):
        convert_voc(tmp_path, tmp_path / "out2" / "x.record", on_error="raise", progress=False)
    assert not (tmp_path / "out2").exists() or os.listdir(tmp_path / "out2") == []


def coco_with(folder, image_fields=None, annotation_fields=None):
    write_png(folder / "a.png")
    write_png(folder / "b.png")
    images = [{"id": 1, "file_name": "a.png", "height": 32, "width": 48},
              {"id": 2, "file_name": "b.png", "height": 32, "width": 48, **(image_fields or {})}]
    annotations = [
        {"id": 10, "image_id": 2, "bbox": [1, 2, 20, 10], "category_id": 1, "iscrowd": 0,
         **(annotation_fields or {})},
    ]
    path = folder / "instances.json"
    path.write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cat"}]}
    ))  # json.dumps writes NaN and Infinity, as the probe's files had them
    return path


COCO_BAD = {
    "width NaN": (dict(width=float("nan")), None, "images[1] (id 2): 'width' is nan; expected a "
                  "finite number"),
    "width Infinity": (dict(width=float("inf")), None, "images[1] (id 2): 'width' is inf; "
                       "expected a finite number"),
    "height 32.5": (dict(height=32.5), None, "images[1] (id 2): 'height' is 32.5; expected a "
                    "whole number"),
    "file_name 5": (dict(file_name=5), None, "images[1] (id 2) 'file_name': the image file name "
                    "is 5; expected a non-empty string"),
    "file_name null": (dict(file_name=None), None, "images[1] (id 2) 'file_name': the image "
                       "file name is None; expected a non-empty string"),
    "iscrowd NaN": (None, dict(iscrowd=float("nan")), "annotations[0] (id 10): 'iscrowd' is "
                    "nan; expected a finite number"),
    "area NaN": (None, dict(area=float("nan")), "annotations[0] (id 10): 'area' is nan; "
                 "expected a finite number"),
}


@pytest.mark.parametrize("case", list(COCO_BAD))
def test_coco_bad_numbers_and_file_names_are_skipped_by_name(tmp_path, case):
    image_fields, annotation_fields, expected = COCO_BAD[case]
    json_path = coco_with(tmp_path, image_fields, annotation_fields)
    summary = convert_coco(json_path, tmp_path / "out" / "x.record", progress=False)
    assert summary.num_images == 1
    assert [message for _, message in summary.skipped] == [f"{json_path} {expected}"]
    with pytest.raises(DataError) as info:
        convert_coco(json_path, tmp_path / "out" / "y.record", on_error="raise", progress=False)
    assert str(info.value) == f"{json_path} {expected}"


def test_coco_json_nested_too_deeply_is_one_line(tmp_path, capsys):
    json_path = tmp_path / "deep.json"
    json_path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(DataError, match=f"{json_path}: the JSON is nested too deeply"):
        convert_coco(json_path, tmp_path / "x.record", progress=False)
    argv = ["convert", "coco", str(json_path), "--output", str(tmp_path / "x.record"),
            "--no_progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kdet convert: error: {json_path}: the JSON is nested too deeply")
    assert len(err.strip().splitlines()) == 1


def test_csv_field_over_the_limit_is_one_line_naming_the_row(tmp_path, capsys):
    write_png(tmp_path / "a.png")
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,30,20,cat\n"
                        f"a.png,1,2,30,20,{'x' * 140000}\n")
    expected = f"{csv_path} line 3: field larger than field limit (131072)"
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        convert_csv(csv_path, tmp_path / "x.record", progress=False)
    argv = ["convert", "csv", str(csv_path), "--output", str(tmp_path / "x.record"),
            "--no_progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kdet convert: error: {expected}") and len(err.splitlines()) == 1


def test_an_image_tensorflow_cannot_decode_is_skipped(tmp_path):
    """The report's defect 7: a 1-bit BMP decodes in Pillow, not in TensorFlow."""
    voc_with(tmp_path, "a")
    Image.new("1", (96, 64)).save(tmp_path / "b.bmp")
    write_voc(tmp_path / "b.xml", "b.bmp", [("cat", 10, 10, 50, 40)], size=(64, 96))
    summary = convert_voc(tmp_path, tmp_path / "out" / "a.record", progress=False)
    assert summary.num_images == 1
    [(source, message)] = summary.skipped
    assert source == str(tmp_path / "b.xml")
    assert message == (
        f"{tmp_path / 'b.xml'}: image {tmp_path / 'b.bmp'} cannot be decoded (truncated or "
        "corrupt?) by TensorFlow, which reads it in training: Number of channels inherent in "
        "the image must be 1, 3 or 4, was 0. If the file is fine, save it as PNG or JPEG "
        "(TensorFlow does not read every variant, e.g. a 1-bit BMP)"
    )
    dataset = read_tfrecords(summary.output_paths, batch_size=1, image_size=(32, 32), num_epochs=1)
    assert sum(1 for _ in dataset) == 1
    with pytest.raises(DataError, match=r"cannot be decoded \(truncated or corrupt\?\) by Tens"):
        create_example_from_arrays((tmp_path / "b.bmp").read_bytes(), [], [], {1: "cat"})


# --- Item 10: image paths stay inside the image folder --------------------------------------


@pytest.fixture
def outside(tmp_path):
    """A folder `data/` and an image `secret/private.png` beside it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "secret").mkdir()
    write_png(tmp_path / "secret" / "private.png", seed=1)
    write_png(tmp_path / "data" / "a.png")
    return tmp_path


@pytest.mark.parametrize("absolute", [False, True])
def test_voc_image_outside_the_folder_is_skipped_unless_allowed(outside, absolute):
    data = outside / "data"
    name = str(outside / "secret" / "private.png") if absolute else "../secret/private.png"
    write_voc(data / "a.xml", "a.png", [("cat", 1, 2, 30, 20)])
    write_voc(data / "b.xml", name, [("cat", 1, 2, 30, 20)])
    summary = convert_voc(data, outside / "out" / "x.record", progress=False)
    assert summary.num_images == 1
    assert summary.skipped == [(str(data / "b.xml"), (
        f"{data / 'b.xml'}: the image path {name!r} leads outside the image folder {data} or "
        f"{outside / 'JPEGImages'} (an absolute path or one going up with '..'); pass "
        "--allow_outside_image_dir (allow_outside_image_dir=True in Python) to read images "
        "from anywhere"
    ))]
    records_bytes = (outside / "out" / "x.record").read_bytes()
    assert (outside / "secret" / "private.png").read_bytes()[-200:] not in records_bytes
    summary = convert_voc(data, outside / "out" / "x.record", progress=False,
                          allow_outside_image_dir=True)
    assert summary.num_images == 2 and summary.skipped == []


def test_coco_and_csv_paths_are_confined_too_and_the_cli_flag_allows_them(outside, capsys):
    data = outside / "data"
    (data / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 32, "width": 48},
                   {"id": 2, "file_name": "sub/../../secret/private.png", "height": 32,
                    "width": 48}],
        "categories": [{"id": 1, "name": "cat"}],
    }))
    summary = convert_coco(data / "instances.json", outside / "o" / "c.record", progress=False)
    assert summary.num_images == 1
    assert "images[1] (id 2) 'file_name': the image path 'sub/../../secret/private.png' leads " \
        f"outside the image folder {data}" in summary.skipped[0][1]

    (data / "boxes.csv").write_text(
        "image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,30,20,cat\n"
        f"{outside / 'secret' / 'private.png'},1,2,30,20,cat\n"
    )
    capsys.readouterr()
    argv = ["convert", "csv", str(data / "boxes.csv"), "--output", str(outside / "o" / "v.record"),
            "--no_progress", "--on_error", "raise"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"boxes.csv rows of {str(outside / 'secret' / 'private.png')!r}" in err
    assert "leads outside the image folder" in err and len(err.splitlines()) == 1
    assert cli.main(argv + ["--allow_outside_image_dir"]) == 0
    assert "Wrote 2 images" in capsys.readouterr().out


def test_symlinks_inside_the_image_folder_are_followed(outside):
    """The check is on the annotation's name: a link the folder's owner made is read."""
    data = outside / "data"
    os.symlink(outside / "secret" / "private.png", data / "linked.png")
    write_voc(data / "b.xml", "linked.png", [("cat", 1, 2, 30, 20)])
    write_voc(data / "c.xml", "sub/../a.png", [("cat", 1, 2, 30, 20)])  # stays inside
    summary = convert_voc(data, outside / "out" / "x.record", progress=False)
    assert summary.num_images == 2 and summary.skipped == []


def test_a_nul_in_an_image_name_is_bad_input_not_a_crash(tmp_path):
    write_png(tmp_path / "a.png")
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("image_path,xmin,ymin,xmax,ymax,label\na.png,1,2,30,20,cat\n"
                        "b\0.png,1,2,30,20,cat\n")
    summary = convert_csv(csv_path, tmp_path / "x.record", progress=False)
    assert summary.num_images == 1
    assert "the image file name 'b\\x00.png' contains a NUL character" in summary.skipped[0][1]


# --- Rows of section 1 that were notes: EXIF orientation, reproducible bytes ------------------


def write_rotated_jpeg(path, height=32, width=48):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.new("RGB", (width, height), (200, 10, 10)).save(path, exif=exif.tobytes())


def test_exif_orientation_is_noted_and_named_in_a_swapped_size(tmp_path):
    write_rotated_jpeg(tmp_path / "a.jpg")
    write_voc(tmp_path / "a.xml", "a.jpg", [("cat", 1, 2, 30, 20)], size=(32, 48))
    write_rotated_jpeg(tmp_path / "b.jpg")
    write_voc(tmp_path / "b.xml", "b.jpg", [("cat", 1, 2, 20, 30)], size=(48, 32))  # as shown
    summary = convert_voc(tmp_path, tmp_path / "out" / "x.record", progress=False)
    assert summary.num_images == 1
    exif = ("has EXIF orientation 6, which TensorFlow ignores: its boxes are taken in the "
            "stored pixel orientation (48x32), not as photo viewers show it")
    assert summary.notes == [
        (str(tmp_path / "a.xml"), f"{tmp_path / 'a.xml'}: image {tmp_path / 'a.jpg'} {exif}")
    ]
    assert summary.skipped[0][1] == (
        f"{tmp_path / 'b.xml'}: the annotation gives the image size 32x48 (width x height) but "
        f"{tmp_path / 'b.jpg'} is 48x32; the image {exif}, so annotate the stored pixels (or "
        "save it rotated)"
    )


def test_records_are_serialized_in_a_deterministic_field_order(data_dir, tmp_path):
    """The same conversion gives the same bytes in every process (the feature map is otherwise
    serialized in hash order, which changes with PYTHONHASHSEED)."""
    summary = convert_voc(data_dir / "deepforest", tmp_path / "trees.record", progress=False)
    stored = records(summary.output_paths)
    assert len(stored) == 2
    for record in stored:
        assert tf.train.Example.FromString(record).SerializeToString(deterministic=True) == record


def test_a_journal_older_than_the_output_is_dropped_not_replayed(tmp_path, monkeypatch):
    """A later run published the output after the killed one (its pid was alive then): the
    killed run's shards must not come back over the newer output."""
    output = tmp_path / "trees.record"
    pid = dead_pid()
    with tf.io.TFRecordWriter(f"{tmp_path}/.trees.record.tmp-{pid}") as writer:
        writer.write(b"killed")
    journal = tmp_path / f".trees.record.publish-{pid}"
    journal.write_text(json.dumps({"new": ["trees.record"], "old": []}))
    os.utime(journal, (time.time() - 60, time.time() - 60))
    with monkeypatch.context() as patch:  # the later run: the pid then belonged to a live process
        patch.setattr(sharded_tfrecord_writer, "_abandoned", lambda path, pid: False)
        write_output(output, 1, b"later")
    assert len(sharded_tfrecord_writer.remove_leftovers(output)) == 2
    assert os.listdir(tmp_path) == ["trees.record"]
    assert records(str(output)) == [b"later-0", b"later-1"]


@pytest.mark.parametrize("name", ["folder", "folder/"])
def test_an_output_that_is_a_folder_is_refused_before_anything_is_written(tmp_path, name):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="is a folder; expected the path of a record file"):
        ShardedTFRecordWriter(f"{tmp_path}/{name}")
    assert os.listdir(tmp_path / "folder") == [] and os.listdir(tmp_path) == ["folder"]


def test_a_crafted_journal_moves_or_deletes_nothing_outside_the_output(tmp_path):
    (tmp_path / "out").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    pid = dead_pid()
    (tmp_path / "out" / f".trees.record.tmp-{pid}").write_text("x")
    (tmp_path / "out" / f".trees.record.publish-{pid}").write_text(json.dumps(
        {"new": ["trees.record"], "old": ["../victim.txt", "notes.txt"]}
    ))
    sharded_tfrecord_writer.remove_leftovers(tmp_path / "out" / "trees.record")
    assert victim.read_text() == "precious"
    assert os.listdir(tmp_path / "out") == ["notes.txt"]


def test_the_label_map_is_fsynced_before_its_rename(tmp_path, monkeypatch):
    from kdet.data import label_map

    events = []
    real_replace = os.replace
    monkeypatch.setattr(label_map, "fsync_file", lambda path: events.append("fsync"))
    monkeypatch.setattr(label_map, "fsync_folder", lambda path: events.append("folder"))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    label_map.write_label_map({1: "cat"}, tmp_path / "label_map.pbtxt")
    assert events == ["fsync", "replace", "folder"]


def test_coco_json_that_is_not_utf8_names_the_file(tmp_path):
    json_path = tmp_path / "latin1.json"
    json_path.write_bytes('{"images": [], "categories": [{"id": 1, "name": "caf\xe9"}]}'.encode(
        "latin-1"))
    with pytest.raises(DataError, match=f"{json_path}: not UTF-8 text"):
        convert_coco(json_path, tmp_path / "x.record", progress=False)
