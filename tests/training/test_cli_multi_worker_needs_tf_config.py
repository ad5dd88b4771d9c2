"""`kdet train --strategy multi_worker` without TF_CONFIG stops with one line, training nothing.

Without a cluster, `MultiWorkerMirroredStrategy` would train this process alone, so a worker
started without its TF_CONFIG would quietly write a model directory of its own.
"""

import tiny_pipeline
from kdet import cli


def test_multi_worker_without_tf_config_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tiny_pipeline.write_pipeline(tmp_path)
    argv = ["train", "--pipeline_config_path", str(config), "--model_dir", str(tmp_path / "m"),
            "--strategy", "multi_worker"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "kdet train: error: --strategy multi_worker needs TF_CONFIG (the cluster and this "
        "worker's task) set on every worker; see docs/training.md"
    )
    assert not (tmp_path / "m").exists()
