"""Two workers on 127.0.0.1 train one model with MultiWorkerMirroredStrategy and agree."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

JOB = pathlib.Path(__file__).with_name("_multi_worker_job.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 300


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_end_with_identical_weights_and_only_the_chief_writes(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                ),
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
                ),
                "CUDA_VISIBLE_DEVICES": "",
            }
            processes.append(subprocess.Popen(
                [sys.executable, str(JOB), str(tmp_path / "model"),
                 str(tmp_path / f"worker_{index}.npz"), "4"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        outputs = [process.communicate(timeout=TIMEOUT_SECONDS)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]

    chief, other = (np.load(tmp_path / f"worker_{index}.npz") for index in range(2))
    assert int(chief["final_step"]) == int(other["final_step"]) == 4
    names = [name for name in chief.files if name.startswith("arr_")]
    assert names and names == [name for name in other.files if name.startswith("arr_")]
    for name in names:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    checkpoints = sorted(path.name for path in (tmp_path / "model").glob("ckpt-*.weights.h5"))
    assert checkpoints == ["ckpt-2.weights.h5", "ckpt-4.weights.h5"]
