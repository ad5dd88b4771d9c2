"""TF detection zoo archives: fetched once, checked, unpacked, built and converted into kdet.

`load_tf_zoo_model(entry, cache_dir)` is what `kdet.zoo.load` does for a `TFZooEntry`:

1. the archive: `archive=` (a `.tar.gz` you have), else `$KDET_ZOO_ARCHIVES/<archive name>`,
   else the cached download, else a download of the entry's URL;
2. its sha256, checked against the one recorded on first use (trust on first use);
3. unpacked once (`kdet.zoo.download.extract_tar_gz`: all or nothing, no links, no paths out);
4. the model built from the archive's own `pipeline.config` (`kdet.configs.load_pipeline`,
   float32: a TF2 config's `use_bfloat16` is for TPU training);
5. the weights read from its checkpoint by `kdet.checkpoints.restore_tfod_checkpoint` once,
   then cached as a kdet `.weights.h5` keyed by the archive's sha256 and the model's layout.

The cache folder of a model, `<cache_dir>/tf_detection_zoo/<name>/`, holds:

- `<archive name>` and `<archive name>.sha256`, the sha256 recorded on first use; the record
  stays when you delete the archive to save space;
- `archive-<sha256[:16]>/`, the unpacked archive (present only once complete);
- `<sha256[:16]>-<layout>.weights.h5` and its `.sha256`, the converted weights.
"""

import dataclasses
import os
import pathlib
import re
import warnings

from kdet.utils.progress import StageLog
from kdet.utils.verified_files import file_sha256
from kdet.utils.verified_files import fsync_folder
from kdet.utils.verified_files import is_verified
from kdet.utils.verified_files import recorded_sha256
from kdet.zoo.cache import cache_converted_weights
from kdet.zoo.cache import model_layout
from kdet.zoo.download import DEFAULT_TIMEOUT
from kdet.zoo.download import ArchiveError
from kdet.zoo.download import download
from kdet.zoo.download import extract_tar_gz
from kdet.zoo.download import temporary_path

ARCHIVES_ENV = "KDET_ZOO_ARCHIVES"
CACHE_SUBDIR = "tf_detection_zoo"
PIPELINE_CONFIG = "pipeline.config"
_STEP = re.compile(r"-(\d+)$")
# COCO's person class and its 17 keypoints: what the TF2 zoo's keypoint models predict.
COCO_KEYPOINT_LABEL_MAP = pathlib.Path(__file__).with_name("coco_person_keypoints.pbtxt")
_KEYPOINT_LABEL_MAP_PATH = re.compile(
    r"""(\bkeypoint_label_map_path\s*:\s*)("[^"]*"|'[^']*'|\S+)"""
)


@dataclasses.dataclass(frozen=True)
class TFZooArchive:
    """The pieces of an unpacked TF OD API zoo archive (or training folder).

    A TF2 archive holds `pipeline.config`, `checkpoint/ckpt-0.{index,data-*}` and
    `saved_model/`; a TF1 archive `pipeline.config`, `model.ckpt.{index,data-*,meta}`,
    `frozen_inference_graph.pb` and (mostly) `saved_model/`.

    Attributes:
        directory: `pathlib.Path`, the folder holding `pipeline.config`.
        pipeline_config: `pathlib.Path` of `pipeline.config`.
        kind: `"tf2"` (object-based checkpoint in `checkpoint/`) or `"tf1"` (name-based
            `model.ckpt*` next to the config).
        checkpoint_prefix: `pathlib.Path`, the checkpoint's prefix (e.g.
            `.../checkpoint/ckpt-0`): `<prefix>.index` exists.
        frozen_graph: `pathlib.Path` of `frozen_inference_graph.pb`, or None.
        saved_model: `pathlib.Path` of the `saved_model/` folder, or None.

    Example:
    ```python
    archive = TFZooArchive.locate("ssd_mobilenet_v2_320x320_coco17_tpu-8")
    archive.kind, archive.checkpoint_prefix.name   # ('tf2', 'ckpt-0')
    ```
    """

    directory: pathlib.Path
    pipeline_config: pathlib.Path
    kind: str
    checkpoint_prefix: pathlib.Path
    frozen_graph: pathlib.Path = None
    saved_model: pathlib.Path = None

    @classmethod
    def locate(cls, folder):
        """Finds the pieces in `folder`, an unpacked archive (its top folder or the one above).

        `pipeline.config` is looked for in `folder` and up to two levels below; exactly one
        must be found at the shallowest level that has one. The checkpoint is the one the
        `checkpoint` state file names, else the only `*.index`, else the highest step.

        Raises:
            ArchiveError: naming `folder`, when `pipeline.config` or the checkpoint is
                missing or ambiguous.
        """
        folder = pathlib.Path(folder)
        config = _find_pipeline_config(folder)
        directory = config.parent
        tf2_folder = directory / "checkpoint"
        if tf2_folder.is_dir() and list(tf2_folder.glob("*.index")):
            kind, prefix = "tf2", _checkpoint_prefix(tf2_folder, "*.index")
        elif list(directory.glob("model.ckpt*.index")):
            kind, prefix = "tf1", _checkpoint_prefix(directory, "model.ckpt*.index")
        else:
            raise ArchiveError(
                f"{directory} holds {PIPELINE_CONFIG} but no checkpoint: expected "
                "checkpoint/ckpt-N.index (TF2) or model.ckpt*.index (TF1)."
            )
        frozen_graph = directory / "frozen_inference_graph.pb"
        saved_model = directory / "saved_model"
        return cls(
            directory=directory,
            pipeline_config=config,
            kind=kind,
            checkpoint_prefix=prefix,
            frozen_graph=frozen_graph if frozen_graph.is_file() else None,
            saved_model=saved_model if saved_model.is_dir() else None,
        )


def _find_pipeline_config(folder):
    for depth in range(3):
        found = sorted(folder.glob("/".join(["*"] * depth + [PIPELINE_CONFIG])))
        if len(found) > 1:
            raise ArchiveError(
                f"{folder} holds several {PIPELINE_CONFIG} files ({', '.join(map(str, found))}); "
                "expected one model."
            )
        if found:
            return found[0]
    raise ArchiveError(
        f"{folder} holds no {PIPELINE_CONFIG} (looked two folders deep): not a TF OD API zoo "
        "archive."
    )


def _checkpoint_prefix(folder, pattern):
    """The prefix of the checkpoint in `folder` (see `TFZooArchive.locate`)."""
    state = folder / "checkpoint"
    if state.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(errors="replace"),
                          re.MULTILINE)
        if match:
            # The state file may hold the training machine's absolute path: keep the name.
            named = folder / pathlib.PurePath(match[1]).name
            if named.with_name(named.name + ".index").is_file():
                return named
    prefixes = [path.with_suffix("") for path in folder.glob(pattern)]
    if len(prefixes) == 1:
        return prefixes[0]
    steps = {prefix: _STEP.search(prefix.name) for prefix in prefixes}
    if not all(steps.values()):
        raise ArchiveError(
            f"{folder} holds several checkpoints ({', '.join(sorted(p.name for p in prefixes))}) "
            "and no checkpoint state file naming one."
        )
    return max(prefixes, key=lambda prefix: int(steps[prefix][1]))


def model_cache_dir(entry, cache_dir):
    """`<cache_dir>/tf_detection_zoo/<name>`: where a TF zoo model's files are cached."""
    return pathlib.Path(cache_dir) / CACHE_SUBDIR / entry.name


def offline_hint(entry):
    """What to do when `entry`'s archive cannot be downloaded: the text errors end with."""
    return (
        f" To use a copy of {entry.archive_name} you already have: "
        f"kdet.zoo.load({entry.name!r}, archive='path/to/{entry.archive_name}'), or put it in a "
        f"folder named by ${ARCHIVES_ENV}."
    )


def fetch_tf_zoo_archive(entry, cache_dir, archive=None, progress=True, timeout=DEFAULT_TIMEOUT):
    """The unpacked archive of `entry`, fetched, checked and unpacked on first use.

    See the module docstring for where the archive comes from and the cache layout. The
    archive's sha256 is recorded the first time it unpacks completely, and every archive used
    afterwards (a download, the cached file, `archive=`) must match it.

    Args:
        entry: `kdet.zoo.tf_detection_zoo.TFZooEntry`.
        cache_dir: `pathlib.Path`, the resolved kdet cache folder.
        archive: optional str or path-like, a `.tar.gz` of this model you already have.
        progress: bool or `kdet.utils.progress.StageLog`. Report stages and draw the
            download bar on stderr. Defaults to `True`.
        timeout: float, seconds a download may wait for the server. Defaults to 60.

    Returns:
        `(TFZooArchive, sha256)`: the located pieces and the archive's hex sha256.

    Raises:
        kdet.zoo.download.DownloadError: offline or the URL failed; the message names the URL
            and how to pass an archive you have.
        kdet.zoo.download.ArchiveError: a truncated, corrupted or unsafe archive, or one whose
            sha256 differs from the recorded one; nothing is left half-written in the cache.
    """
    log = progress if isinstance(progress, StageLog) else StageLog(
        f"kdet.zoo: {entry.name}", enabled=progress
    )
    folder = model_cache_dir(entry, cache_dir)
    cached = folder / entry.archive_name
    recorded = recorded_sha256(cached)
    if recorded is not None:
        unpacked = folder / f"archive-{recorded[:16]}"
        if unpacked.is_dir() and archive is None:
            return TFZooArchive.locate(unpacked), recorded
    source = _archive_source(entry, archive)
    if source is None and cached.is_file():
        if recorded is None or file_sha256(cached) == recorded:
            source = cached
        else:
            warnings.warn(
                f"Cached archive {cached} does not match the sha256 recorded on first use "
                f"({recorded}); it is damaged and will be downloaded again.",
                stacklevel=2,
            )
            cached.unlink()
    if source is None:
        log(f"downloading {entry.url}")
        sha256 = download(entry.url, cached, timeout=timeout, progress=log.enabled,
                          hint=offline_hint(entry))
        source = cached
    else:
        sha256 = file_sha256(source)
    if recorded is not None and sha256 != recorded:
        if source == cached:
            cached.unlink()
        raise ArchiveError(
            f"{source} has sha256 {sha256}, but {cached}.sha256 recorded {recorded} when this "
            f"model was first used: the archive changed or is damaged. If you trust the new "
            f"one, delete {cached}.sha256 (and {folder}/archive-*/) and load again."
        )
    unpacked = folder / f"archive-{sha256[:16]}"
    if not unpacked.is_dir():
        log(f"unpacking {source.name}")
        try:
            extract_tar_gz(source, unpacked)
        except ArchiveError:
            if source == cached:
                cached.unlink()
            raise
        except FileExistsError:
            pass  # another process unpacked it meanwhile
    located = TFZooArchive.locate(unpacked)
    if recorded is None:
        _record_sha256(cached, sha256)
    return located, sha256


def _archive_source(entry, archive):
    """`archive=`, else `$KDET_ZOO_ARCHIVES/<archive name>` when it exists, else None."""
    if archive is not None:
        archive = pathlib.Path(archive).expanduser()
        if not archive.is_file():
            raise FileNotFoundError(f"archive {archive} for {entry.name} does not exist.")
        return archive
    folder = os.environ.get(ARCHIVES_ENV)
    if folder:
        candidate = pathlib.Path(folder).expanduser() / entry.archive_name
        if candidate.is_file():
            return candidate
    return None


def _record_sha256(path, sha256):
    """Writes `<path>.sha256` (`sha256sum` format) atomically, for a file that may not be
    there (an archive given with `archive=` is not copied into the cache)."""
    record = path.with_name(path.name + ".sha256")
    temp = temporary_path(record)
    temp.write_text(f"{sha256}  {path.name}\n")
    os.replace(temp, record)
    fsync_folder(path.parent)


def cached_weights_path(entry, sha256, model, cache_dir):
    """`<cache_dir>/tf_detection_zoo/<name>/<sha256[:16]>-<layout>.weights.h5`, the converted
    weights of the archive with this sha256 for `model` (`kdet.zoo.cache.model_layout`)."""
    return model_cache_dir(entry, cache_dir) / f"{sha256[:16]}-{model_layout(model)}.weights.h5"


def build_tf_zoo_model(archive):
    """The kdet model of an unpacked archive's `pipeline.config`, built, float32.

    Args:
        archive: `TFZooArchive`.

    Returns:
        The built `kdet.SSD` / `kdet.FasterRCNN` / `kdet.CenterNet`, randomly initialized.

    Raises:
        kdet.configs.ConfigError: naming the config, when kdet cannot build it.
    """
    import tempfile

    from kdet.configs import load_pipeline

    with tempfile.TemporaryDirectory(prefix="kdet_zoo_config_") as folder:
        config = with_coco_keypoint_label_map(archive.pipeline_config, pathlib.Path(folder))
        model = load_pipeline(config, dtype_policy="float32").model
    if not model.built:
        model.build((None, None, None, 3))
    return model


def with_coco_keypoint_label_map(pipeline_config, folder):
    """The config to build a zoo archive's model from: `pipeline_config` itself, or, when its
    `keypoint_label_map_path` names no file here (the TF2 zoo's keypoint models name a path of
    the machine that trained them), a copy in `folder` that names kdet's COCO person keypoints
    label map (`COCO_KEYPOINT_LABEL_MAP`, the map those models were trained with).

    Args:
        pipeline_config: `pathlib.Path` of the archive's `pipeline.config`.
        folder: `pathlib.Path`, an existing folder for the copy.

    Returns:
        `pathlib.Path` of the config to load.
    """
    text = pipeline_config.read_text(encoding="utf-8")
    paths = [match[2].strip("\"'") for match in _KEYPOINT_LABEL_MAP_PATH.finditer(text)]
    if all(os.path.isfile(path) for path in paths):
        return pipeline_config
    copy = folder / PIPELINE_CONFIG
    copy.write_text(
        _KEYPOINT_LABEL_MAP_PATH.sub(f'\\g<1>"{COCO_KEYPOINT_LABEL_MAP}"', text), encoding="utf-8"
    )
    return copy


def load_tf_zoo_model(entry, cache_dir, archive=None, progress=True):
    """A TF detection zoo model with its weights: what `kdet.zoo.load(name)` returns.

    See the module docstring. The checkpoint is read once by
    `kdet.checkpoints.restore_tfod_checkpoint(model, checkpoint_prefix)`; the result is cached
    (`cached_weights_path`) and read from there afterwards. A cache that cannot be written only
    costs a warning.

    Args:
        entry: `kdet.zoo.tf_detection_zoo.TFZooEntry`.
        cache_dir: `pathlib.Path`, the resolved kdet cache folder.
        archive: optional str or path-like, a `.tar.gz` of this model you already have.
        progress: bool. Report the first use's stages (and the download bar) on stderr.

    Returns:
        The built model with the archive's weights.

    Raises:
        ValueError: kdet cannot build this model yet (the reason), or the checkpoint reader
            has no mapping for its architecture.
        kdet.zoo.download.DownloadError, kdet.zoo.download.ArchiveError: see
            `fetch_tf_zoo_archive`.
    """
    reason = entry.kdet_support()
    if reason is not None:
        raise ValueError(f"kdet cannot build TF detection zoo model {entry.name} yet: {reason}")
    log = StageLog(f"kdet.zoo: {entry.name}", enabled=progress,
                   header=f"first use (cached in {model_cache_dir(entry, cache_dir)})")
    located, sha256 = fetch_tf_zoo_archive(entry, cache_dir, archive, log)
    model = build_tf_zoo_model(located)
    path = cached_weights_path(entry, sha256, model, cache_dir)
    if is_verified(path):
        model.load_weights(path)
        return model
    log(f"reading the {located.kind.upper()} checkpoint {located.checkpoint_prefix}")
    _restore_checkpoint(entry, model, located, log)
    cache_converted_weights(entry.name, model, path, log, stacklevel=2)
    log.done()
    return model


def _restore_checkpoint(entry, model, located, log):
    """Reads the archive's checkpoint into `model`: the one call to the TF OD API checkpoint
    reader (`kdet.checkpoints`), which reports a checkpoint it cannot map into this model
    (an architecture or checkpoint format it has no mapping for, missing, mis-shaped or
    left-over variables) as a `kdet.checkpoints.CheckpointError`."""
    import kdet.checkpoints

    try:
        restore = kdet.checkpoints.restore_tfod_checkpoint(model, located.checkpoint_prefix)
    except kdet.checkpoints.CheckpointError as error:
        raise ValueError(
            f"kdet builds {entry.name} from {located.pipeline_config} but cannot read its "
            f"{located.kind.upper()} checkpoint into it: {error}"
        ) from error
    log(str(restore))
