"""A model directory is one run's at a time, a full disk is one clear error, and files that
killed runs left behind are removed by the next run."""

import errno
import shutil
import subprocess
import sys

import pytest
from test_trainer import _dataset
from test_trainer import _model

from kdet.training import trainer
from kdet.utils.folder_lock import FolderLockedError
from kdet.utils.folder_lock import folder_lock


def _train(model_dir, num_steps=2, **kwargs):
    return trainer.train(_model(), _dataset(), model_dir, num_steps=num_steps,
                         checkpoint_every_n=2, verbose=0, **kwargs)


def test_a_second_run_on_a_model_dir_in_use_stops_naming_the_first(tmp_path):
    with folder_lock(tmp_path, ".kdet-train.lock", "kdet train"):
        with pytest.raises(FolderLockedError, match=r"in use by another kdet train \(pid \d+ on "):
            _train(tmp_path)
    assert trainer.list_checkpoints(tmp_path) == []
    assert _train(tmp_path)["final_step"] == 2  # released with the block


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kdet.utils.folder_lock import folder_lock\n"
         f"with folder_lock({str(tmp_path)!r}, '.kdet-train.lock', 'kdet train'):\n"
         "    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid} "):
            _train(tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert _train(tmp_path)["final_step"] == 2


def test_temp_files_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    left = [tmp_path / f".tmp-{dead_pid}-ckpt-5.weights.h5",
            tmp_path / f".tmp-{dead_pid}-ckpt-5.weights.h5.sha256"]
    for path in left:
        path.write_bytes(b"partial")
    live = tmp_path / f".tmp-1-ckpt-7.weights.h5"  # pid 1 is always running
    live.write_bytes(b"someone else's")
    _train(tmp_path)
    assert not any(path.exists() for path in left)
    assert live.exists()


def test_a_full_disk_stops_with_one_line_before_writing_and_keeps_the_older_checkpoints(
    tmp_path, monkeypatch
):
    _train(tmp_path, num_steps=2)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(trainer.shutil, "disk_usage",
                        lambda path: usage._replace(free=1000))
    with pytest.raises(trainer.CheckpointWriteError) as info:
        _train(tmp_path, num_steps=4)
    message = str(info.value)
    assert "cannot write checkpoint ckpt-4.weights.h5 in" in message
    assert "not enough free space" in message and "1 KB are free" in message
    assert "re-running resumes from ckpt-2.weights.h5 (step 2)" in message
    assert [step for step, _ in trainer.list_checkpoints(tmp_path)] == [2]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".tmp-")] == []


def test_a_write_that_fails_midway_is_one_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    model = _model()

    def fail(path):
        path.write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_weights", fail)
    with pytest.raises(trainer.CheckpointWriteError, match="No space left on device") as info:
        trainer.train(model, _dataset(), tmp_path, num_steps=2, checkpoint_every_n=2, verbose=0)
    assert "no checkpoint had been written yet" in str(info.value)
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == [
        ".kdet-train.lock"
    ]
