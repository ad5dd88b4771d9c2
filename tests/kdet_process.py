"""`kdet` commands in processes of their own, with the tests' tiny extractor registered.

The mirrored-strategy commands must not run in the test process: a new `MirroredStrategy`
there collides with the session's on collective-op instance keys (see `conftest.py`).
"""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 300

# Splits the CPU into `LOGICAL_CPUS` devices first, as conftest does, then runs `kdet`.
_KDET = """
import os, sys
import tensorflow as tf
count = int(os.environ["LOGICAL_CPUS"])
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * count)
import tiny_ssd_extractor
from kdet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_kdet(args, logical_cpus=1):
    """Starts `kdet ARGS…`; returns the `subprocess.Popen` (stdout and stderr merged)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "LOGICAL_CPUS": str(logical_cpus),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    return subprocess.Popen(
        [sys.executable, "-c", _KDET, *map(str, args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def run_kdet(args, logical_cpus=1, timeout=TIMEOUT_SECONDS):
    """Runs `kdet ARGS…` to the end; returns `(exit code, output)`; always reaps the process."""
    process = start_kdet(args, logical_cpus)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output
