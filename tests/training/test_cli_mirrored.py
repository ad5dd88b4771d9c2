"""`kdet train --strategy mirrored` on two logical CPUs, in a process of its own.

That one and two replicas give the same losses and weights is tested on the models themselves
(`tests/models/*/test_*.py`, `two_replica_strategy`); here the command line must really train
on both replicas and checkpoint.
"""

import h5py
import numpy as np

import tiny_pipeline
from kdet_process import run_kdet


def _checkpoint_arrays(path):
    """Every array of a `.weights.h5` checkpoint (model and optimizer state), by its h5 path."""
    arrays = {}

    def collect(name, item):  # returns None: visititems stops at the first other value
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as checkpoint:
        checkpoint.visititems(collect)
    return arrays


def test_kdet_train_mirrored_trains_on_two_replicas_and_checkpoints(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=3, learning_rate=0.001)
    code, output = run_kdet(
        ["train", "--pipeline_config_path", config, "--model_dir", tmp_path / "m",
         "--strategy", "mirrored", "--checkpoint_every_n", "1"], logical_cpus=2)
    assert code == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert summary.startswith("trained steps 0..3 in") and "on 2 replica(s)" in summary

    first, last = (_checkpoint_arrays(tmp_path / "m" / f"ckpt-{step}.weights.h5")
                   for step in (1, 3))
    kernels = [name for name in last if name.endswith("vars/0") and "optimizer" not in name]
    assert kernels
    for name in kernels:
        assert np.isfinite(last[name]).all(), name
        assert np.abs(last[name] - first[name]).max() > 0, name


def test_num_gpus_without_gpus_is_a_one_line_error(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path)
    code, output = run_kdet(
        ["train", "--pipeline_config_path", config, "--model_dir", tmp_path / "m",
         "--strategy", "mirrored", "--num_gpus", "2"])
    assert code == 2
    assert output.strip().splitlines()[-1].startswith(
        "kdet train: error: --num_gpus 2: this machine has 0 GPU(s)")
