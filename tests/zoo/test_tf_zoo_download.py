"""kdet.zoo.download and the TF zoo archive cache: downloads over a loopback HTTP server and
file:// URLs, trust-on-first-use checksums, safe unpacking. No test touches the network."""

import dataclasses
import hashlib
import os
import re
import tarfile

import pytest
from tf_zoo_archives import closed_port_url
from tf_zoo_archives import member
from tf_zoo_archives import serve
from tf_zoo_archives import tf2_archive_files
from tf_zoo_archives import write_tar_gz

from kdet.utils.verified_files import recorded_sha256
from kdet.zoo import tf_zoo
from kdet.zoo.download import ArchiveError
from kdet.zoo.download import DownloadError
from kdet.zoo.download import download
from kdet.zoo.download import extract_tar_gz
from kdet.zoo.tf_detection_zoo import get_tf_zoo_entry

NAME = "ssd_mobilenet_v2_320x320_coco17_tpu-8"


def _entry(url):
    """The catalog entry of NAME with its URL pointed at the test server."""
    return dataclasses.replace(get_tf_zoo_entry(NAME), url=url)


def _cache_files(cache_dir):
    """Every path under the model's cache folder, relative, sorted."""
    folder = tf_zoo.model_cache_dir(get_tf_zoo_entry(NAME), cache_dir)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def archive(tmp_path):
    return write_tar_gz(tmp_path / f"{NAME}.tar.gz", tf2_archive_files(NAME))


def test_download_writes_the_file_whole_and_returns_its_sha256(tmp_path, archive):
    data = archive.read_bytes()
    with serve({"/a.tar.gz": data}) as (base, requests):
        sha256 = download(f"{base}/a.tar.gz", tmp_path / "out" / "a.tar.gz", timeout=5,
                          progress=False)
    assert requests == ["/a.tar.gz"]
    assert (tmp_path / "out" / "a.tar.gz").read_bytes() == data
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path / "out") == ["a.tar.gz"]  # no temporary file left
    # file:// URLs work the same way.
    assert download(archive.as_uri(), tmp_path / "b.tar.gz", progress=False) == sha256


def test_a_download_cut_short_or_refused_leaves_nothing_and_names_the_url(tmp_path):
    with serve({"/a.tar.gz": b"x" * 1000}, lengths={"/a.tar.gz": 5000}) as (base, _):
        with pytest.raises(DownloadError, match=rf"download of {base}/a.tar.gz was cut short"):
            download(f"{base}/a.tar.gz", tmp_path / "a.tar.gz", timeout=5, progress=False)
        with pytest.raises(DownloadError, match=rf"{base}/missing.tar.gz answered HTTP 404"):
            download(f"{base}/missing.tar.gz", tmp_path / "a.tar.gz", timeout=5, progress=False)
    url = closed_port_url()
    with pytest.raises(DownloadError, match=rf"Could not download {url}: .*refused.* Do this"):
        download(url, tmp_path / "a.tar.gz", timeout=5, progress=False, hint=" Do this.")
    assert os.listdir(tmp_path) == []


def test_extract_unpacks_files_and_folders_into_a_new_folder(tmp_path, archive):
    target = extract_tar_gz(archive, tmp_path / "unpacked")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == sorted(tf2_archive_files(NAME))
    for name, data in tf2_archive_files(NAME).items():
        assert (target / name).read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == [archive.name, "unpacked"]
    with pytest.raises(FileExistsError, match="already exists"):
        extract_tar_gz(archive, target)


@pytest.mark.parametrize(
    "bad_member, problem",
    [
        (member("../evil.txt", size=3), r"member '../evil.txt' leads out of the folder"),
        (member("model/../../evil.txt", size=3), r"leads out of the folder"),
        (member("/etc/evil.txt", size=3), r"member '/etc/evil.txt' has an absolute path"),
        (member("model/link", tarfile.SYMTYPE, "/etc/passwd"),
         r"member 'model/link' is a symbolic link \(to '/etc/passwd'\)"),
        (member("model/link", tarfile.SYMTYPE, "../../outside"), r"is a symbolic link"),
        (member("model/hard", tarfile.LNKTYPE, "/etc/passwd"), r"is a hard link"),
        (member("model/dev", tarfile.CHRTYPE), r"member 'model/dev' is a device, FIFO"),
        (member("model/fifo", tarfile.FIFOTYPE), r"is a device, FIFO"),
    ],
)
def test_unsafe_members_refuse_the_whole_archive(tmp_path, bad_member, problem):
    path = write_tar_gz(tmp_path / "bad.tar.gz", tf2_archive_files(NAME), [bad_member])
    with pytest.raises(ArchiveError, match=rf"{re.escape(str(path))}: (.* )?{problem}"):
        extract_tar_gz(path, tmp_path / "out" / "unpacked")
    assert os.listdir(tmp_path / "out") == []  # no staging folder, no target
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_size_and_member_limits(tmp_path, archive):
    total = sum(map(len, tf2_archive_files(NAME).values()))
    with pytest.raises(ArchiveError, match=rf"unpacks to more than {total - 1} bytes"):
        extract_tar_gz(archive, tmp_path / "a", max_bytes=total - 1)
    extract_tar_gz(archive, tmp_path / "b", max_bytes=total)
    with pytest.raises(ArchiveError, match="holds more than 3 members"):
        extract_tar_gz(archive, tmp_path / "c", max_members=3)
    assert sorted(os.listdir(tmp_path)) == sorted([archive.name, "b"])


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_or_corrupted_archives_are_clear_errors(tmp_path, archive, keep):
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArchiveError, match=rf"{truncated} is not a complete .tar.gz archive"):
        extract_tar_gz(truncated, tmp_path / "t")
    corrupted = tmp_path / "corrupted.tar.gz"
    corrupted.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:110]) + data[110:])
    with pytest.raises(ArchiveError, match=rf"{corrupted} is not a complete .tar.gz archive"):
        extract_tar_gz(corrupted, tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == sorted([archive.name, truncated.name, corrupted.name])


def test_first_download_records_the_sha256_then_the_cache_is_used(tmp_path, archive):
    data = archive.read_bytes()
    with serve({f"/{NAME}.tar.gz": data}) as (base, requests):
        entry = _entry(f"{base}/{NAME}.tar.gz")
        located, sha256 = tf_zoo.fetch_tf_zoo_archive(entry, tmp_path, progress=False)
        again, same = tf_zoo.fetch_tf_zoo_archive(entry, tmp_path, progress=False)
    assert requests == [f"/{NAME}.tar.gz"] and same == sha256 == hashlib.sha256(data).hexdigest()
    assert again == located and located.kind == "tf2"
    folder = tf_zoo.model_cache_dir(entry, tmp_path)
    assert located.directory == folder / f"archive-{sha256[:16]}" / NAME
    assert recorded_sha256(folder / entry.archive_name) == sha256
    unpacked = [f"archive-{sha256[:16]}/{name}" for name in tf2_archive_files(NAME)]
    assert set(_cache_files(tmp_path)) >= {
        entry.archive_name, f"{entry.archive_name}.sha256", f"archive-{sha256[:16]}", *unpacked
    }


def test_a_different_archive_on_second_use_is_refused(tmp_path, archive):
    with serve({f"/{NAME}.tar.gz": archive.read_bytes()}) as (base, _):
        _, sha256 = tf_zoo.fetch_tf_zoo_archive(_entry(f"{base}/{NAME}.tar.gz"), tmp_path,
                                                progress=False)
    folder = tf_zoo.model_cache_dir(get_tf_zoo_entry(NAME), tmp_path)
    for path in folder.glob("archive-*"):  # the user cleared the unpacked archive ...
        tf_zoo_remove(path)
    (folder / f"{NAME}.tar.gz").unlink()  # ... and the archive: it is downloaded again
    files = tf2_archive_files(NAME)
    files[f"{NAME}/pipeline.config"] += b"# changed\n"
    changed = write_tar_gz(tmp_path / "changed.tar.gz", files).read_bytes()
    refused = (rf"has sha256 [0-9a-f]{{64}}, but .*{NAME}.tar.gz.sha256 recorded {sha256} when "
               "this model was first used")
    with serve({f"/{NAME}.tar.gz": changed}) as (base, _), pytest.raises(ArchiveError,
                                                                         match=refused):
        tf_zoo.fetch_tf_zoo_archive(_entry(f"{base}/{NAME}.tar.gz"), tmp_path, progress=False)
    assert _cache_files(tmp_path) == [f"{NAME}.tar.gz.sha256"]  # the record stays, nothing else
    # The same holds for an archive the user passes.
    with pytest.raises(ArchiveError, match="the archive changed or is damaged"):
        tf_zoo.fetch_tf_zoo_archive(get_tf_zoo_entry(NAME), tmp_path,
                                    archive=tmp_path / "changed.tar.gz", progress=False)
    located, _ = tf_zoo.fetch_tf_zoo_archive(get_tf_zoo_entry(NAME), tmp_path, archive=archive,
                                             progress=False)
    assert located.pipeline_config.is_file()


def tf_zoo_remove(path):
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()


def test_a_damaged_cached_archive_is_downloaded_again(tmp_path, archive):
    data = archive.read_bytes()
    with serve({f"/{NAME}.tar.gz": data}) as (base, requests):
        entry = _entry(f"{base}/{NAME}.tar.gz")
        tf_zoo.fetch_tf_zoo_archive(entry, tmp_path, progress=False)
        folder = tf_zoo.model_cache_dir(entry, tmp_path)
        for path in folder.glob("archive-*"):
            tf_zoo_remove(path)
        (folder / entry.archive_name).write_bytes(data[:-10])
        with pytest.warns(UserWarning, match="does not match the sha256 recorded on first use"):
            located, sha256 = tf_zoo.fetch_tf_zoo_archive(entry, tmp_path, progress=False)
    assert requests == [f"/{NAME}.tar.gz", f"/{NAME}.tar.gz"]
    assert sha256 == hashlib.sha256(data).hexdigest() and located.checkpoint_prefix.name == "ckpt-0"


def test_a_truncated_download_leaves_no_cache_entry(tmp_path, archive):
    data = archive.read_bytes()
    incomplete = rf"{NAME}.tar.gz is not a complete .tar.gz"
    with serve({f"/{NAME}.tar.gz": data[: len(data) // 2]}) as (base, _), pytest.raises(
        ArchiveError, match=incomplete
    ):
        tf_zoo.fetch_tf_zoo_archive(_entry(f"{base}/{NAME}.tar.gz"), tmp_path, progress=False)
    assert _cache_files(tmp_path) == []  # no archive, no record, no unpacked folder
    with serve({f"/{NAME}.tar.gz": data}) as (base, _):  # the next try starts afresh
        tf_zoo.fetch_tf_zoo_archive(_entry(f"{base}/{NAME}.tar.gz"), tmp_path, progress=False)


def test_offline_errors_name_the_url_and_how_to_use_an_archive_you_have(tmp_path, archive,
                                                                         monkeypatch):
    url = closed_port_url(f"/{NAME}.tar.gz")
    entry = _entry(url)
    monkeypatch.delenv(tf_zoo.ARCHIVES_ENV, raising=False)
    with pytest.raises(DownloadError) as raised:
        tf_zoo.fetch_tf_zoo_archive(entry, tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert message.startswith(f"Could not download {url}: ")
    assert (f"kdet.zoo.load('{NAME}', archive='path/to/{NAME}.tar.gz'), or put it in a folder "
            "named by $KDET_ZOO_ARCHIVES") in message
    assert _cache_files(tmp_path) == []
    # Both ways work offline.
    located, _ = tf_zoo.fetch_tf_zoo_archive(entry, tmp_path / "a", archive=archive,
                                             progress=False)
    assert located.kind == "tf2"
    monkeypatch.setenv(tf_zoo.ARCHIVES_ENV, str(archive.parent))
    located, _ = tf_zoo.fetch_tf_zoo_archive(entry, tmp_path / "b", progress=False)
    assert located.pipeline_config.read_bytes() == tf2_archive_files(NAME)[
        f"{NAME}/pipeline.config"]
