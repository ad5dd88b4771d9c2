"""A detector from whatever a user has: a zoo name, a `.keras` file, a `kdet train` model
directory or checkpoint, a `kdet export` folder, a SavedModel or a `.tflite` file; served by
the Keras model, a frozen graph, the SavedModel or TFLite (`kdet.inference.runtimes`).

`load_detector` finds out which one a source is and returns a `LoadedDetector`, whose `detect`
gives the same per-image result for all of them: boxes `yxyx` in pixels of the image, label-map
ids, confidences, no padding, and for a Mask R-CNN (a `kdet.MaskRCNN`, or a SavedModel serving
`detection_masks`) the instance masks in pixels of the image.
"""

import pathlib
import sys

import numpy as np

DEFAULT_MODEL = "ssd_mobilenet_v2_coco"
_SOURCES = (
    "a zoo model name (see 'kdet zoo'), a .keras file, a 'kdet train' model directory (or one "
    "of its ckpt-<step>.weights.h5 files), a 'kdet export' folder or a SavedModel folder, or "
    "a .tflite file of 'kdet export'"
)


class LoadedDetector:
    """A detector ready to run on single images, with its label map and where it came from.

    Args:
        detect_batch: callable taking uint8 `[1, height, width, 3]` and a score threshold
            (float or None) and returning what `detect` returns for that image.
        label_map: dict `{id: name}` (empty: detections are named by id).
        description: str, what was loaded, for messages.
        keras_model: the `kdet.models.ObjectDetector`, or None for a SavedModel (then
            `detect` has no tiling).
    """

    def __init__(self, detect_batch, label_map, description, keras_model=None):
        self._detect_batch = detect_batch
        self.label_map = dict(label_map or {})
        self.description = description
        self.keras_model = keras_model

    def detect(self, image, tile_size=None, tile_stride=None, score_threshold=None):
        """Detects objects in one image.

        Args:
            image: uint8 `[height, width, 3]`, RGB.
            score_threshold: optional float: detections scoring below it are left out (and a
                SavedModel's masks of them are not pasted).
            tile_size: optional int: detect on overlapping tiles of this many pixels, merged by
                NMS (`ObjectDetector.predict_tiled`); Keras models only.
            tile_stride: optional int, pixels between tile starts (default half a tile).

        Returns:
            dict of numpy arrays for this image, without padding, best first: `"boxes"` float
            `[K, 4]` `yxyx` in pixels of `image`, `"labels"` int `[K]` label-map ids,
            `"confidences"` float `[K]`; for a Mask R-CNN also `"masks"` float32
            `[K, height, width]`, each detection's mask probabilities in pixels of `image`
            (what `kdet.MaskRCNN.predict` gives as `"masks"`; a SavedModel's box-frame
            `detection_masks` pasted as it pastes them). Tiled detection gives no masks.
        """
        if tile_size is None:
            return self._detect_batch(image[np.newaxis], score_threshold)
        if self.keras_model is None:
            raise ValueError(
                f"tiling (--tile_size) needs a Keras model; {self.description} has none: use "
                "the .keras file, 'kdet train' model directory or zoo name it came from, with "
                "runtime 'keras' (--runtime keras)"
            )
        tiled = self.keras_model.predict_tiled(image, tile_size, stride=tile_stride)
        rows = _valid_rows(tiled, score_threshold)
        return _in_pixels(rows, self.keras_model.bounding_box_format, *image.shape[:2])

    def name(self, label):
        """The label map's name of a label id, or the id as a string."""
        return self.label_map.get(int(label), str(int(label)))


def load_detector(source=DEFAULT_MODEL, label_map=None, pipeline_config=None, runtime=None):
    """Loads a detector from a zoo name or a file or folder kdet wrote, served by a runtime.

    | `source` | what is loaded | label map |
    | --- | --- | --- |
    | zoo name, e.g. `"ssd_mobilenet_v2_coco"` | `kdet.zoo.load(source)` | the zoo entry's |
    | `model.keras` | `keras.saving.load_model` | none |
    | `kdet train` model directory | its newest intact `ckpt-<step>.weights.h5`, in the model of its config | the config's |
    | `ckpt-<step>.weights.h5` | that checkpoint, in the model of its config | the config's |
    | `kdet export` folder | its `saved_model/` (or `model.tflite`) | the config's |
    | a SavedModel folder (`saved_model.pb`) | `tf.saved_model.load`, `serving_default` | the config's next to it, if any |
    | a `.tflite` file `kdet export` wrote | LiteRT (`ai_edge_litert`, else `tf.lite`) | the config's beside it, if any |

    The config of a checkpoint or model directory is `pipeline_config`, or else a
    `pipeline.config` / `pipeline.yaml` in the folder (or, for a SavedModel, beside it);
    its label map is `train_input_reader.label_map_path` (or the first `eval_input_reader`'s).

    Runtimes (`RUNTIMES`; their speeds: `benchmarks/README.md`, "Serving on CPU"):

    | `runtime` | serves | sources |
    | --- | --- | --- |
    | `"keras"` | the Keras model (`predict_on_batch`) | Keras: zoo, `.keras`, checkpoint |
    | `"frozen"` | one constant graph, batch norms folded | Keras |
    | `"saved_model"` | the SavedModel's `serving_default` | SavedModel, export folder |
    | `"tflite"` | TFLite float32, XNNPACK (see below) | SSD, CenterNet; `.tflite` |

    `"tflite"` converts a Keras model once (`export_tflite`, any image size) and caches it in
    `<kdet cache>/runtimes/`, keyed by the model's files (or zoo entry) and the TensorFlow,
    Keras and kdet sources, written atomically; later loads build no Keras model. An export
    folder serves its `model.tflite` as exported (int8 if it was quantized: its detections
    then differ). TFLite has no Faster R-CNN or masks: those are refused, naming the runtimes
    the model has.

    Default (`None`): `"tflite"` for a zoo model TFLite can serve (its float32 detections are
    the Keras model's: boxes within 1e-6 of the image size), else `"keras"`, for a model file
    or checkpoint `"keras"` (converting takes longer than Keras takes for a few images: ask
    for `"tflite"` to convert and cache it), `"saved_model"` for a SavedModel or export
    folder, `"tflite"` for a `.tflite` file. Masks are served by `"keras"`, `"frozen"` and
    `"saved_model"`.

    Args:
        source: str or path-like. Defaults to `"ssd_mobilenet_v2_coco"`.
        label_map: optional `{id: name}` or `.pbtxt` path, used instead of the source's own.
        pipeline_config: optional path of the pipeline.config / YAML config the model was
            trained with (needed for a model directory that holds none).
        runtime: optional str, one of `RUNTIMES` (see above). Defaults to `None`.

    Returns:
        A `LoadedDetector`.

    Raises:
        FileNotFoundError / ValueError: naming the source and what was expected; for a
            runtime the source cannot be served with, naming the source and its runtimes.

    Example:
    ```python
    detector = kdet.inference.load_detector("runs/my_ssd", pipeline_config="my/pipeline.config")
    found = detector.detect(image)   # {"boxes" yxyx pixels, "labels", "confidences"}
    # (+ "masks" [K, height, width] for a Mask R-CNN)
    fast = kdet.inference.load_detector("ssd_mobilenet_v2_coco", runtime="tflite")
    ```
    """
    from kdet.data.label_map import read_label_map
    from kdet.inference.runtimes import check_runtime

    check_runtime(runtime)
    if label_map is not None and not isinstance(label_map, dict):
        label_map = read_label_map(label_map)  # before the (slower) model: its errors first
    path = pathlib.Path(source)
    config = pathlib.Path(pipeline_config) if pipeline_config is not None else None
    if config is not None and not config.is_file():
        raise FileNotFoundError(f"pipeline config {config}: no such file")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            detector = _serve_saved_model(
                path, config or _config_beside(path.parent, path), runtime, None
            )
        elif (path / "saved_model" / "saved_model.pb").is_file():
            detector = _serve_saved_model(
                path / "saved_model", config or _config_beside(path), runtime,
                path / "model.tflite",
            )
        else:
            detector = _serve_keras(_model_directory_source(path, config), runtime)
    elif path.is_file():
        if path.name.endswith(".weights.h5"):
            from kdet.training.model_dir import checkpoint_step

            detector = _serve_keras(
                _checkpoint_source(path, checkpoint_step(path),
                                   _required_config(path.parent, config, path)),
                runtime,
            )
        elif path.suffix == ".keras":
            _refuse_config(config, source)
            detector = _serve_keras(_keras_file_source(path), runtime)
        elif path.suffix == ".tflite":
            detector = _serve_tflite_file(path, config or _config_beside(path.parent), runtime)
        else:
            raise ValueError(f"model {source}: not a model file; expected {_SOURCES}")
    elif _looks_like_a_path(str(source)):
        raise FileNotFoundError(f"model {source}: no such file or folder; expected {_SOURCES}")
    else:
        _refuse_config(config, source)
        detector = _serve_keras(_zoo_source(str(source)), runtime)
    if label_map is not None:
        detector.label_map = dict(label_map)
    return detector


class _KerasSource:
    """A Keras model not loaded yet: what describes it, its label map, and how to build it.

    Args:
        description: str, for messages.
        files: list of str, what the model's detections depend on (paths or text), keying its
            cached TFLite conversion (`kdet.inference.runtimes.cached_tflite_path`).
        label_map: callable returning `{id: name}`.
        build: callable returning the built Keras detector.
        default_runtime: the runtime used when none is asked for.
    """

    def __init__(self, description, files, label_map, build, default_runtime="keras"):
        self.description = description
        self.files = files
        self.label_map = label_map
        self.build = build
        self.default_runtime = default_runtime


def _serve_keras(source, runtime):
    """A `LoadedDetector` of a `_KerasSource` with `runtime` (None: its default; a default
    `"tflite"` the model does not support falls back to `"keras"`)."""
    from kdet.inference.runtimes import KERAS_RUNTIMES
    from kdet.inference.runtimes import cached_tflite_path
    from kdet.inference.runtimes import convert_to_tflite
    from kdet.inference.runtimes import frozen_detect
    from kdet.inference.runtimes import tflite_detect
    from kdet.inference.runtimes import tflite_support_error
    from kdet.inference.runtimes import unsupported_runtime
    from kdet.utils.verified_files import is_verified

    chosen = runtime or source.default_runtime
    if chosen not in KERAS_RUNTIMES:
        raise unsupported_runtime(chosen, source.description, KERAS_RUNTIMES,
                                  "a Keras model; 'saved_model' serves 'kdet export' folders")
    cached = cached_tflite_path(source.files) if chosen == "tflite" else None
    if cached is not None and is_verified(cached):  # no Keras model to build
        return LoadedDetector(tflite_detect(cached), source.label_map(),
                              f"{source.description} (TFLite)")
    model = source.build()
    if chosen == "tflite":
        reason = tflite_support_error(model)
        if reason is not None and runtime is None:
            chosen = "keras"
        elif reason is not None:
            raise unsupported_runtime("tflite", source.description, ("keras", "frozen"), reason)
    if chosen == "keras":
        return LoadedDetector(_keras_detect(model), source.label_map(), source.description, model)
    if chosen == "frozen":
        return LoadedDetector(frozen_detect(model), source.label_map(),
                              f"{source.description} (frozen graph)", model)
    model_file = convert_to_tflite(model, cached, source.description)
    return LoadedDetector(tflite_detect(model_file), source.label_map(),
                          f"{source.description} (TFLite)", model)


def _serve_saved_model(path, config, runtime, tflite_file):
    from kdet.inference.runtimes import SAVED_MODEL_RUNTIMES
    from kdet.inference.runtimes import unsupported_runtime

    if runtime in (None, "saved_model"):
        return _load_saved_model(path, config)
    if runtime == "tflite" and tflite_file is not None and tflite_file.is_file():
        return _serve_tflite_file(tflite_file, config, runtime)
    supported = SAVED_MODEL_RUNTIMES if tflite_file is not None and tflite_file.is_file() else (
        "saved_model",)
    reason = (
        "a SavedModel; for 'keras' or 'frozen' load the .keras file, 'kdet train' model "
        "directory or zoo name it came from" if runtime != "tflite" else
        "no model.tflite beside it: export with 'kdet export --tflite' (SSD, CenterNet)"
    )
    raise unsupported_runtime(runtime, f"SavedModel {path}", supported, reason)


def _serve_tflite_file(path, config, runtime):
    from kdet.inference.runtimes import tflite_detect
    from kdet.inference.runtimes import unsupported_runtime

    if runtime not in (None, "tflite"):
        raise unsupported_runtime(runtime, f"TFLite model {path}", ("tflite",))
    return LoadedDetector(tflite_detect(path), _config_label_map(config), f"TFLite model {path}")


def _refuse_config(config, source):
    if config is not None:
        raise ValueError(
            f"model {source} has its own configuration: a pipeline config ({config}) is for a "
            "'kdet train' model directory or checkpoint, or a SavedModel (its label map)"
        )


def _looks_like_a_path(text):
    return "/" in text or "\\" in text or text.endswith((".keras", ".h5", ".pb", ".config"))


def _zoo_source(name):
    import kdet.zoo

    try:
        entry = kdet.zoo.get_entry(name)
    except ValueError as error:
        raise ValueError(f"{error} The model may also be {_SOURCES}.") from None
    if isinstance(entry, kdet.zoo.ZooEntry):  # its folder's files: config, metadata, weights
        files = [f"zoo {name}", *sorted(str(p) for p in entry.directory.iterdir())]
    else:
        files = [f"zoo {name}", repr(entry)]
    return _KerasSource(f"zoo model {name}", files, lambda: entry.label_map,
                        lambda: kdet.zoo.load(name), default_runtime="tflite")


def _keras_file_source(path):
    return _KerasSource(str(path), [str(path)], dict, lambda: _load_keras_model(path))


def check_keras_file(path):
    """Raises a one-line `ValueError` naming `path` unless it is an intact `.keras` archive.

    Keras reports a `.keras` file that is not a zip archive (truncated, empty, text) as "File
    not found", and one whose contents are damaged with a `zipfile.BadZipFile` traceback; this
    check reads the archive's directory and every member's CRC first.

    Args:
        path: path of the `.keras` file.

    Raises:
        ValueError: not a zip archive, no `config.json` in it, or a damaged member.
    """
    import zipfile
    import zlib

    path = pathlib.Path(path)
    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a Keras model file (not a zip archive: truncated, {size} bytes, "
            "or not a .keras file model.save wrote?)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ValueError(f"{path} is damaged (the zip archive cannot be read: {error})") from None
    if damaged is not None:
        raise ValueError(f"{path} is damaged (zip CRC check failed for {damaged})")
    if "config.json" not in names:
        raise ValueError(
            f"{path} is not a Keras model file (a zip archive without config.json; it holds "
            f"{', '.join(sorted(names)[:5]) or 'nothing'})"
        )


def _load_keras_model(path):
    import zipfile
    import zlib

    import keras

    check_keras_file(path)
    try:
        # safe_mode (Keras's default, named here on purpose): Lambda layers are refused.
        model = keras.saving.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # changed since the check
        raise ValueError(f"{path} is damaged ({error})") from None
    except TypeError as error:  # Keras: a class it cannot locate
        raise ValueError(
            f"{path} cannot be loaded here ({str(error).splitlines()[0]}); a model with a "
            "feature extractor of your own loads after importing the module that registers "
            "it: add --import MODULE"
        ) from None
    return model


def _model_directory_source(path, config):
    from kdet.training import latest_checkpoint
    from kdet.training.trainer import list_checkpoints

    if not list_checkpoints(path):
        raise ValueError(f"model {path}: a folder, but not a model; expected {_SOURCES}")
    latest = latest_checkpoint(path)
    if latest is None:
        raise ValueError(
            f"model {path}: no intact checkpoint in it (ckpt-<step>.weights.h5 with its "
            ".sha256, as 'kdet train' writes)"
        )
    step, checkpoint = latest
    return _checkpoint_source(checkpoint, step, _required_config(path, config, path))


def restored_model(config, checkpoint, step=None, progress=None):
    """The model of a pipeline config with a `kdet train` checkpoint's weights.

    What `kdet predict`, `kdet export` and `load_detector` load a checkpoint with.

    Args:
        config: path of the pipeline.config / YAML config the checkpoint was trained with.
        checkpoint: a `ckpt-<step>.weights.h5` file, or a model directory (its newest intact
            checkpoint).
        step: optional int, the checkpoint's step, named in the progress line (default: from
            the file name).
        progress: optional callable taking one line, called before the model is built
            (`"building the model of CONFIG"`) and before the weights are restored
            (`"restoring step STEP: CHECKPOINT"`).

    Returns:
        The compiled, built `kdet.models.ObjectDetector`: the model of
        `kdet.configs.restored_pipeline(config, checkpoint, step, progress)`.
    """
    from kdet.configs import restored_pipeline

    return restored_pipeline(config, checkpoint, step=step, progress=progress).model


def _checkpoint_source(checkpoint, step, config):
    at_step = f" (step {step})" if step is not None else ""
    return _KerasSource(
        f"{checkpoint}{at_step} with {config}",
        [str(checkpoint), str(config)],
        lambda: _config_label_map(config),
        lambda: restored_model(config, checkpoint, step),
    )


def _required_config(folder, config, source):
    from kdet.training.model_dir import CONFIG_NAMES

    config = config or _config_beside(folder)
    if config is None:
        raise FileNotFoundError(
            f"model {source}: no {' or '.join(CONFIG_NAMES)} in {folder}; pass "
            "--pipeline_config_path (the config it was trained with)"
        )
    return config


def _config_beside(*folders):
    from kdet.training.model_dir import config_beside

    return config_beside(*folders)


def _config_label_map(config):
    """`{id: name}` of the label map a config's input readers name, or {} (with a warning)."""
    from kdet.configs.text_format import parse_file
    from kdet.configs.yaml_config import parse_yaml_file
    from kdet.data.label_map import read_label_map

    if config is None:
        return {}
    yaml_file = pathlib.Path(config).suffix.lower() in (".yaml", ".yml")
    root = parse_yaml_file(config) if yaml_file else parse_file(config)
    readers = [field.value for field in root.fields if field.name.endswith("_input_reader")]
    readers.sort(key=lambda reader: reader is not root.first("train_input_reader"))
    names = [reader.first("label_map_path") for reader in readers if hasattr(reader, "first")]
    path = next((name for name in names if name), None)
    if path is None:
        return {}
    if not pathlib.Path(path).is_file():
        print(
            f"WARNING: {config} names the label map {path}, which does not exist here: "
            "detections are named by class id (pass --label_map to name them)",
            file=sys.stderr,
        )
        return {}
    return read_label_map(path)


def _keras_detect(model):
    if _predicts_masks(model):
        return _keras_detect_with_masks(model)

    def detect_batch(images, score_threshold):
        rows = _valid_rows(model.predict_on_batch(images), score_threshold)
        return _in_pixels(rows, model.bounding_box_format, images.shape[1], images.shape[2])

    return detect_batch


def _predicts_masks(model):
    """Whether a Keras detector predicts instance masks (a Mask R-CNN, a DeepMAC CenterNet)."""
    from kdet.models import MaskRCNN

    return isinstance(model, MaskRCNN) or getattr(model, "mask_task", None) is not None


def _keras_detect_with_masks(model):
    """`detect_batch` of a Keras detector with masks: its masks in their boxes' frames, as
    the SavedModel export serves them, pasted into the image for the rows kept only (100
    pasted masks of a 12 MP photo take 4.8 GB; `predict` pastes every row)."""
    import tensorflow as tf

    from kdet.export.saved_model import served_detections

    served = tf.function(lambda images: served_detections(model, images), reduce_retracing=True)

    def detect_batch(images, score_threshold):
        return _box_mask_rows_in_pixels(served(images), score_threshold, *images.shape[1:3])

    return detect_batch


def _box_mask_rows_in_pixels(detections, score_threshold, height, width):
    """The valid rows (`_valid_rows`; labels above 0) of batch-of-one detections with
    `rel_yxyx` boxes, in pixels of a `height` x `width` image, their `"box_masks"` (if any)
    pasted into it as `"masks"`."""
    rows = _valid_rows(detections, score_threshold, ("box_masks",))
    valid = rows["labels"] > 0  # 0: no class (padding of some exporters)
    rows = {key: value[valid] for key, value in rows.items()}
    if "box_masks" in rows:
        rows["masks"] = _pasted_masks(rows.pop("box_masks"), rows["boxes"], height, width)
    # What convert_format(rows, "rel_yxyx", "yxyx") computes (float32 products, no padding
    # rows left), in numpy: a TFLite model's detections need no TensorFlow.
    rows["boxes"] = rows["boxes"] * np.array([height, width, height, width], np.float32)
    return rows


def _valid_rows(detections, score_threshold=None, extra_keys=()):
    """A batch-of-one predictions dict (`"boxes"`, `"labels"`, `"confidences"`,
    `"num_detections"`) → numpy arrays of its valid rows (before `num_detections`, label >= 0,
    as `kdet.models.Results.from_predictions` keeps them; confidence >= `score_threshold` if
    not None): boxes as given, float32 `[K, 4]`,
    labels int32 `[K]`, confidences float32 `[K]`, and the `extra_keys` present (per-detection
    outputs such as masks) float32 `[K, ...]`."""
    from kdet.visualization import _to_numpy

    keys = ("boxes", "labels", "confidences", "num_detections", *extra_keys)
    arrays = {key: _to_numpy(detections[key])[0] for key in keys if key in detections}
    labels = arrays["labels"].astype(np.int32)
    keep = (np.arange(len(labels)) < arrays.pop("num_detections")) & (labels >= 0)
    if score_threshold is not None:
        keep &= arrays["confidences"] >= score_threshold
    rows = {key: value[keep].astype(np.float32) for key, value in arrays.items()}
    rows["labels"] = labels[keep]
    return rows


def _in_pixels(rows, bounding_box_format, height, width):
    """`rows` with `"boxes"` converted from `bounding_box_format` to `yxyx` pixels of a
    `height` x `width` image."""
    from kdet.boxes import convert_format

    if bounding_box_format != "yxyx":
        rows["boxes"] = np.asarray(
            convert_format(rows["boxes"], bounding_box_format, "yxyx", height=height,
                           width=width),
            np.float32,
        ).reshape(-1, 4)
    return rows


def _pasted_masks(box_masks, boxes, height, width):
    """float32 `[K, height, width]`: masks `[K, mask_height, mask_width]` in the frame of their
    `rel_yxyx` boxes `[K, 4]` pasted into the image, as `kdet.MaskRCNN` pastes its `"masks"`."""
    from kdet.models.faster_rcnn.mask_head import paste_masks

    pasted = paste_masks(box_masks[np.newaxis], boxes[np.newaxis], height, width)
    return pasted.numpy()[0]


def _load_saved_model(path, config):
    """A TF OD API–signature SavedModel (`kdet export`'s, or the TF OD API exporter's); its
    `detection_masks`, if it serves them, are pasted into the image."""
    import tensorflow as tf

    try:
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    except (KeyError, OSError, ValueError) as error:
        raise ValueError(
            f"model {path}: a SavedModel kdet cannot run ({str(error).splitlines()[0]}); "
            "expected the serving_default signature of 'kdet export' or the TF OD API exporter"
        ) from None
    inputs = serve.structured_input_signature[1]
    outputs = set(serve.structured_outputs)
    wanted = {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    if len(inputs) != 1 or not wanted <= outputs:
        raise ValueError(
            f"model {path}: its serving_default signature takes {sorted(inputs)} and gives "
            f"{sorted(outputs)}; expected one input and the TF OD API outputs {sorted(wanted)}"
        )
    (input_name, spec), = inputs.items()
    encode = _saved_model_input_encoder(serve, spec)

    def detect_batch(images, score_threshold):
        outputs = serve(**{input_name: encode(images)})
        detections = {
            "boxes": outputs["detection_boxes"],  # normalized, as the TF OD API's
            "labels": outputs["detection_classes"].numpy().astype(np.int64),
            "confidences": outputs["detection_scores"],
            "num_detections": outputs["num_detections"].numpy().astype(np.int64),
        }
        if "detection_masks" in outputs:
            detections["box_masks"] = outputs["detection_masks"]
        return _box_mask_rows_in_pixels(detections, score_threshold, *images.shape[1:3])

    return LoadedDetector(detect_batch, _config_label_map(config), f"SavedModel {path}")


def _saved_model_input_encoder(serve, spec):
    """uint8 `[1, H, W, 3]` → what the signature's input takes: the image, PNG bytes, or a
    serialized `tf.train.Example` (the three `kdet export --input_type`s)."""
    import tensorflow as tf

    if spec.dtype != tf.string:
        return lambda images: tf.constant(images, spec.dtype)
    if _parses_tf_examples(serve):
        from kdet.data.converters import create_example_from_arrays

        def encode_example(images):
            example = create_example_from_arrays(
                images[0], np.zeros((0, 4)), [], {}, image_format="png"
            )
            return tf.constant([example.SerializeToString()])

        return encode_example
    return lambda images: tf.constant([tf.io.encode_png(images[0]).numpy()])


def _parses_tf_examples(serve):
    """Whether a concrete function's graph (or a function it calls) parses `tf.train.Example`s."""
    graph = serve.graph.as_graph_def()
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    return any(node.op.startswith("ParseExample") or node.op.startswith("ParseSingleExample")
               for node in nodes)
