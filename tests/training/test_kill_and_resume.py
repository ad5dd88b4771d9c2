"""`kdet train` killed with SIGKILL mid-run, then started again with the same command."""

import signal
import time

import tiny_pipeline
from kdet_process import run_kdet
from kdet_process import start_kdet
from kdet.training import trainer
from kdet.utils import verified_files

TIMEOUT_SECONDS = 240


def _train_args(config, model_dir):
    return ["train", "--pipeline_config_path", config, "--model_dir", model_dir,
            "--checkpoint_every_n", "5"]


def test_sigkill_then_the_same_command_resumes_from_the_last_checkpoint(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=400)
    model_dir = tmp_path / "model"
    process = start_kdet(_train_args(config, model_dir))
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not trainer.list_checkpoints(model_dir) or (
            trainer.list_checkpoints(model_dir)[-1][0] < 10
        ):
            assert process.poll() is None, process.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint at step 10 in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = trainer.list_checkpoints(model_dir)
    assert all(verified_files.is_verified(path) for _, path in killed_at)
    last_step = killed_at[-1][0]
    assert last_step < 400  # killed mid-run

    returncode, output = run_kdet(_train_args(config, model_dir), timeout=TIMEOUT_SECONDS)
    assert returncode == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    # The newest intact checkpoint at the kill (a half-written one never counts) is where the
    # second run starts: no step trained twice, none skipped.
    assert summary.startswith(f"trained steps {last_step}..400 in"), summary
    steps = [step for step, _ in trainer.list_checkpoints(model_dir)]
    assert steps[-1] == 400 and all(b - a == 5 for a, b in zip(steps, steps[1:]))
    assert all(verified_files.is_verified(path) for _, path in trainer.list_checkpoints(model_dir))
