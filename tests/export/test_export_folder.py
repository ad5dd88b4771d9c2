"""`publish_export` and `recover_export_folder`: a kill at any step of the swap loses nothing.

The kills are real: a forked child publishes a (small, synthetic) export and SIGKILLs itself
right before its k-th file-system step (rename, exchange, unlink, rmdir), for every k.
"""

import json
import os
import signal
import subprocess
import sys
import warnings

import pytest

from kdet.export import export_folder
from kdet.export.export_folder import MANIFEST
from kdet.export.export_folder import publish_export
from kdet.export.export_folder import read_manifest
from kdet.export.export_folder import recover_export_folder
from kdet.export.export_folder import staging_folder

OLD = {
    "saved_model": {"saved_model.pb": b"old graph", "variables/variables.index": b"old"},
    "checkpoint": {"ckpt-3.weights.h5": b"old weights", "ckpt-3.weights.h5.sha256": b"old"},
    "pipeline.config": b"old config",
    "model.tflite": b"old tflite",
}
NEW = {
    "saved_model": {"saved_model.pb": b"new graph", "fingerprint.pb": b"new",
                    "variables/variables.index": b"new"},
    "checkpoint": {"ckpt-7.weights.h5": b"new weights", "ckpt-7.weights.h5.sha256": b"new"},
    "pipeline.config": b"new config",
}


def _write(path, spec):
    if isinstance(spec, bytes):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(spec)
    else:
        path.mkdir(parents=True, exist_ok=True)
        for name, content in spec.items():
            _write(path / name, content)


def _read(path):
    """What `_write` wrote at `path` (None if nothing), as a comparable nest."""
    if path.is_symlink() or not os.path.lexists(path):
        return None
    if path.is_file():
        return path.read_bytes()
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            files[os.path.relpath(full, path)] = open(full, "rb").read()
    return files


def _flat(spec):
    return spec if isinstance(spec, bytes) else _read_spec(spec)


def _read_spec(spec, prefix=""):
    files = {}
    for name, content in spec.items():
        if isinstance(content, bytes):
            files[prefix + name] = content
        else:
            files.update(_read_spec(content, prefix + name + "/"))
    return files


def _earlier_export(output):
    _write(output, OLD)
    (output / MANIFEST).write_text(json.dumps({"entries": list(OLD)}))
    (output / "notes.txt").write_text("mine")


def _publish_killed_before_step(output, step, exchange):
    """Publishes NEW over `output` in a child that SIGKILLs itself before its `step`-th step.

    Returns:
        Whether the child was killed (False: it finished before reaching `step`).
    """
    pid = os.fork()
    if pid == 0:  # the child: file operations only, no TensorFlow
        try:
            count = [0]

            def counted(function):
                def step_of_the_swap(*args, **kwargs):
                    count[0] += 1
                    if count[0] == step:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return function(*args, **kwargs)

                return step_of_the_swap

            staging = staging_folder(output)
            _write(staging, NEW)
            for name in ("rename", "replace", "unlink", "rmdir"):
                setattr(os, name, counted(getattr(os, name)))
            export_folder._exchange = counted(export_folder._exchange)
            if not exchange:
                export_folder._renameat2 = None
            publish_export(output, staging, list(NEW))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _exchange_works(folder):
    (folder / "a").write_text("a")
    (folder / "b").mkdir()
    try:
        return export_folder._exchange(folder / "a", folder / "b") and (folder / "b").is_file()
    finally:
        for name in ("a", "b"):
            export_folder._remove(folder / name)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_kill_at_any_step_leaves_a_usable_export_and_the_next_run_completes_it(
    tmp_path, exchange
):
    if exchange and not _exchange_works(tmp_path):
        pytest.skip("this file system cannot exchange paths atomically")
    old = {name: _flat(spec) for name, spec in OLD.items()}
    new = {name: _flat(spec) for name, spec in NEW.items()}
    rolled_forward = mixed = 0
    for step in range(1, 200):
        output = tmp_path / f"killed_before_step_{step}"
        _earlier_export(output)
        if not _publish_killed_before_step(output, step, exchange):
            break
        # At the kill: every entry is the complete old or the complete new one.
        state = {name: _read(output / name) for name in ["saved_model", "checkpoint",
                                                         "pipeline.config", "model.tflite"]}
        for name in new:
            # Without an atomic exchange, an entry is missing between two renames.
            if exchange or state[name] is not None:
                assert state[name] in (old[name], new[name]), (step, name)
        mixed += 0 < sum(state[name] == new[name] for name in new) < len(new)
        if state["model.tflite"] is None:  # the stale entry goes only once all are new
            assert all(state[name] == new[name] for name in new), step
        assert (output / "notes.txt").read_text() == "mine"
        journal = any(path.name.startswith(".kdet-export.journal-") and
                      path.name.endswith(".json") for path in output.iterdir())

        done = recover_export_folder(output)
        assert ("completed the export that process" in " ".join(done)) == journal, step
        finished = sorted(path.name for path in output.iterdir())
        if journal or state["pipeline.config"] == new["pipeline.config"]:
            rolled_forward += 1
            assert finished == [MANIFEST, "checkpoint", "notes.txt", "pipeline.config",
                                "saved_model"], step
            assert {name: _read(output / name) for name in new} == new, step
            assert read_manifest(output) == list(NEW)
        else:  # killed before the journal was written: the earlier export, untouched
            assert finished == sorted([MANIFEST, "notes.txt", *OLD]), step
            assert {name: _read(output / name) for name in old} == old, step
    else:
        pytest.fail("the publish never finished")
    assert step > 10 and rolled_forward > 5 and mixed > 0, (step, rolled_forward, mixed)


def test_a_failed_step_puts_the_earlier_export_back(tmp_path, monkeypatch):
    output = tmp_path / "out"
    _earlier_export(output)
    staging = staging_folder(output)
    _write(staging, NEW)
    rename = export_folder._rename

    def failing_rename(source, target):  # the stale model.tflite cannot be moved aside
        if source == output / "model.tflite":
            raise OSError("disk full")
        rename(source, target)

    monkeypatch.setattr(export_folder, "_rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        publish_export(output, staging, list(NEW))
    assert sorted(path.name for path in output.iterdir()) == sorted(
        [MANIFEST, "notes.txt", *OLD]
    )
    assert {name: _read(output / name) for name in OLD} == {
        name: _flat(spec) for name, spec in OLD.items()
    }


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_leftovers_of_dead_runs_are_removed_and_nothing_else(tmp_path):
    output, outside = tmp_path / "out", tmp_path / "outside"
    _earlier_export(output)
    _write(outside, {"precious.txt": b"keep"})
    dead, alive = _dead_pid(), os.getppid()
    kept = [f".kdet-export.tmp-{alive}", ".kdet-export.tmp-x", ".kdet-export.tmp-1.bak"]
    for name in [f".kdet-export.tmp-{dead}", *kept]:
        _write(output / name, {"saved_model.pb": b"x"})
    (output / f".kdet-export.journal-{dead}.json.tmp").write_text("{")
    # A crafted leftover that is a symlink out of the folder: the link goes, not its target.
    os.symlink(outside, output / f".kdet-export.old-{dead}")

    recover_export_folder(output)
    assert sorted(path.name for path in output.iterdir()) == sorted(
        [MANIFEST, "notes.txt", *OLD, *kept]
    )
    assert (outside / "precious.txt").read_bytes() == b"keep"


def test_a_journal_of_a_running_export_stops_the_next_one(tmp_path):
    output = tmp_path / "out"
    _earlier_export(output)
    alive = os.getppid()
    (output / f".kdet-export.journal-{alive}.json").write_text("{}")
    with pytest.raises(RuntimeError, match=f"another kdet export \\(process {alive}\\)"):
        recover_export_folder(output)


def test_manifest_entries_are_only_kdets_own_names_inside_the_folder(tmp_path):
    output = tmp_path / "exports" / "out"
    _earlier_export(output)
    (tmp_path / "exports" / "victim.txt").write_text("precious")
    (tmp_path / "absolute.txt").write_text("precious")
    (output / "model.tflite").unlink()
    os.symlink(tmp_path / "absolute.txt", output / "model.tflite")
    entries = ["../victim.txt", str(tmp_path / "absolute.txt"), "notes.txt", "saved_model/..",
               "model.tflite", 5, "saved_model"]
    (output / MANIFEST).write_text(json.dumps({"entries": entries}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_manifest(output) == ["saved_model"]
    messages = "\n".join(str(warning.message) for warning in caught)
    for entry in entries[:4]:
        assert f"entry {entry!r} ignored" in messages
    assert "'model.tflite' is a symlink" in messages

    staging = staging_folder(output)
    _write(staging, NEW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        publish_export(output, staging, list(NEW))
    assert (tmp_path / "exports" / "victim.txt").read_text() == "precious"
    assert (tmp_path / "absolute.txt").read_text() == "precious"
    assert (output / "notes.txt").read_text() == "mine"
    assert (output / "model.tflite").is_symlink()


def test_the_staged_export_is_fsynced_before_anything_is_renamed(tmp_path, monkeypatch):
    output = tmp_path / "out"
    _earlier_export(output)
    staging = staging_folder(output)
    _write(staging, NEW)
    events = []
    monkeypatch.setattr(export_folder, "fsync_file", lambda path: events.append(("file", path)))
    fsync_folder = export_folder.fsync_folder
    monkeypatch.setattr(export_folder, "fsync_folder",
                        lambda path: (events.append(("folder", str(path))), fsync_folder(path)))
    replace, rename = os.replace, os.rename
    monkeypatch.setattr(os, "replace", lambda *args: (events.append(("rename",)), replace(*args)))
    monkeypatch.setattr(os, "rename", lambda *args: (events.append(("rename",)), rename(*args)))
    exchange = export_folder._exchange
    monkeypatch.setattr(export_folder, "_exchange",
                        lambda *args: (events.append(("rename",)), exchange(*args))[1])
    publish_export(output, staging, list(NEW))

    first_rename = events.index(("rename",))
    synced = {path for kind, path in events[:first_rename]}
    staged_files = [str(staging / name) for name in _read_spec(NEW)] + [str(staging / MANIFEST)]
    staged_folders = [str(staging), str(staging / "saved_model"),
                      str(staging / "saved_model" / "variables"), str(staging / "checkpoint")]
    assert set(staged_files + staged_folders) <= synced
