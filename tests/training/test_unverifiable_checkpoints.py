"""Checkpoints whose `.sha256` is missing, empty or unreadable are checked, used and never
deleted: training resumes from them (after reading every array, with a warning) instead of
restarting at step 0 and rotating the good checkpoints away."""

import pytest

from test_trainer import _dataset
from test_trainer import _model

from kdet.training import trainer
from kdet.utils import verified_files


def _steps(model_dir):
    return [step for step, _ in trainer.list_checkpoints(model_dir)]


@pytest.fixture
def trained(tmp_path):
    """A model_dir with ckpt-2, ckpt-4 and ckpt-6."""
    trainer.train(_model(), _dataset(), tmp_path, num_steps=6, checkpoint_every_n=2, verbose=0)
    assert _steps(tmp_path) == [2, 4, 6]
    return tmp_path


def _damage_checksums(model_dir, how):
    for _, path in trainer.list_checkpoints(model_dir):
        checksum = verified_files.checksum_path(path)
        if how == "missing":
            checksum.unlink()
        elif how == "empty":
            checksum.write_bytes(b"")
        else:
            checksum.write_bytes(b"\x9c\xff\x00 not a checksum")


@pytest.mark.parametrize("how", ["missing", "empty", "binary"])
def test_resumes_from_the_newest_checkpoint_without_a_readable_checksum(trained, how):
    _damage_checksums(trained, how)
    with pytest.warns(UserWarning, match=r"ckpt-6\.weights\.h5 has no readable .*every array"):
        assert trainer.latest_checkpoint(trained) == (6, trainer.checkpoint_path(trained, 6))
    # Its checksum is recorded again; the older ones are left as they were.
    assert verified_files.checksum_status(trainer.checkpoint_path(trained, 6)) == "verified"


def test_rotation_never_deletes_a_checkpoint_without_a_checksum(trained):
    _damage_checksums(trained, "missing")
    model = _model()
    with pytest.warns(UserWarning, match="has no readable"):
        summary = trainer.train(model, _dataset(), trained, num_steps=12, checkpoint_every_n=2,
                                max_to_keep=2, verbose=0)
    assert (summary["start_step"], summary["final_step"]) == (6, 12)
    # ckpt-2 and ckpt-4 (no checksum) stay; of the rest only the newest two are kept.
    assert _steps(trained) == [2, 4, 10, 12]


def test_an_unreadable_checkpoint_without_a_checksum_is_skipped_and_kept(trained):
    _damage_checksums(trained, "empty")
    newest = trainer.checkpoint_path(trained, 6)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"ckpt-6\.weights\.h5 has no readable .*cannot be read"):
        assert trainer.latest_checkpoint(trained)[0] == 4
    assert newest.exists()


def test_the_zoo_cache_rebuilds_a_file_whose_checksum_is_empty_or_binary(tmp_path):
    path = tmp_path / "weights.h5"
    verified_files.write_verified(path, lambda temp: temp.write_bytes(b"weights"))
    assert verified_files.is_verified(path)
    for content in (b"", b"\x9c\xff"):
        verified_files.checksum_path(path).write_bytes(content)
        with pytest.warns(UserWarning, match="records none"):
            assert not verified_files.is_verified(path)


def test_a_checkpoint_with_a_wrong_checksum_is_not_named_cached(trained):
    verified_files.checksum_path(trainer.checkpoint_path(trained, 6)).write_text("0" * 64)
    with pytest.warns(UserWarning, match="does not match") as caught:
        assert trainer.latest_checkpoint(trained)[0] == 4
    assert not any("Cached file" in str(warning.message) for warning in caught)



