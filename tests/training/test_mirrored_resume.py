"""`kdet train --strategy mirrored` resumes from the newest checkpoint of its model directory.

Restoring a checkpoint builds the optimizer's variables, which a model made under a
`MirroredStrategy` accepts only when they are created in that strategy's scope; a resumed
mirrored run once failed with `Need to be inside "with strategy.scope()"`.
"""

import tiny_pipeline
from kdet import cli


def test_kdet_train_mirrored_resumes_on_two_replicas(tmp_path, capsys):
    config = tiny_pipeline.write_pipeline(tmp_path, num_steps=4)
    argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "m"),
            "--strategy", "mirrored", "--checkpoint_every_n", "2"]
    assert cli.main(argv + ["--num_train_steps", "2"]) == 0
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("trained steps 2..4 in") and "on 2 replica(s)" in summary
    assert (tmp_path / "m" / "ckpt-4.weights.h5").is_file()
