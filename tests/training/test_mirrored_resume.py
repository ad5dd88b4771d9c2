"""`kdet train --strategy mirrored` resumes from the newest checkpoint of its model directory.

Restoring a checkpoint builds the optimizer's variables, which a model made under a
`MirroredStrategy` accepts only when they are created in that strategy's scope; a resumed
mirrored run once failed with `Need to be inside "with strategy.scope()"`.
"""

import tiny_pipeline
from kdet_process import run_kdet


def test_kdet_train_mirrored_resumes_on_two_replicas(tmp_path):
    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=4)
    argv = ["train", "--pipeline_config_path", config, "--model_dir", tmp_path / "m",
            "--strategy", "mirrored", "--checkpoint_every_n", "2"]
    code, output = run_kdet(argv + ["--num_train_steps", "2"], logical_cpus=2)
    assert code == 0, output[-3000:]
    code, output = run_kdet(argv, logical_cpus=2)
    assert code == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert summary.startswith("trained steps 2..4 in") and "on 2 replica(s)" in summary
    assert (tmp_path / "m" / "ckpt-4.weights.h5").is_file()
