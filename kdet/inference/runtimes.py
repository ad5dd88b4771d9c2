"""The runtimes `load_detector` serves a model with on CPU: Keras, a frozen graph, a SavedModel
or TFLite (XNNPACK).

`benchmarks/serving_speed.py` measured them on SSD MobileNetV2 against the TF OD API frozen
graph (`benchmarks/README.md`, "Serving on CPU"); `docs/predict.md` says which to use.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import re

import numpy as np

#: Every runtime `load_detector` knows, in the order the docs list them.
RUNTIMES = ("keras", "frozen", "saved_model", "tflite")
#: What a Keras model (zoo name, `.keras`, model directory, checkpoint) can be served with, and
#: a SavedModel (a SavedModel folder, a `kdet export` folder).
KERAS_RUNTIMES = ("keras", "frozen", "tflite")
SAVED_MODEL_RUNTIMES = ("saved_model", "tflite")
#: The TFLite models `load_detector` converts are cached in `<kdet cache>/RUNTIME_CACHE`.
RUNTIME_CACHE = "runtimes"
# The kdet subpackages whose code shapes a converted model (keying the cache).
_CONVERSION_SOURCES = ("boxes", "export", "feature_extractors", "layers", "models", "zoo")
# Bumped when what the cache holds changes (e.g. export options), so old files are not used.
_CACHE_FORMAT = "tflite float32, any image size, 1"


def check_runtime(runtime):
    """Raises ValueError unless `runtime` is None or one of `RUNTIMES`."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")


def unsupported_runtime(runtime, description, supported, reason=""):
    """The ValueError for a runtime a source cannot be served with: names the source, the
    runtimes it can be, and why not."""
    reason = f" ({reason})" if reason else ""
    return ValueError(
        f"runtime {runtime!r} cannot serve {description}{reason}; its runtimes: "
        f"{', '.join(supported)}"
    )


def tflite_support_error(model):
    """Why `model` cannot be converted to TFLite (`kdet.export.export_tflite`'s check), or None.

    Quantization-aware models are refused too: their TFLite model is int8, whose detections
    differ from the Keras model's.
    """
    from kdet.export.tflite import _check_exportable
    from kdet.training.quantization import QuantizationAwareTraining

    try:
        _check_exportable(model, None)
    except ValueError as error:
        return str(error).split(". ")[0].split("; ")[0]
    if QuantizationAwareTraining.of(model) is not None:
        return (f"{model.name} is quantization-aware: its TFLite model is int8; export it with "
                "'kdet export --tflite' and serve that folder")
    return None


def frozen_detect(model):
    """`detect_batch` of a Keras detector as a constant graph with batch norms folded (kdet's
    `FrozenGraph`, as `FrozenDetector` and the SavedModel export freeze it): the SavedModel's
    detections (masks in their boxes' frames) without writing one."""
    import tensorflow as tf

    from kdet.export.frozen_graph import FrozenGraph
    from kdet.export.saved_model import check_serves_images_alone
    from kdet.export.saved_model import served_detections
    from kdet.inference.loaded_detector import _box_mask_rows_in_pixels

    check_serves_images_alone(model)
    frozen = FrozenGraph(
        lambda images: served_detections(model, images),
        [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    function = frozen.as_function()

    def detect_batch(images, score_threshold):
        outputs = tf.nest.pack_sequence_as(frozen.output_structure, function(tf.constant(images)))
        return _box_mask_rows_in_pixels(outputs, score_threshold, *images.shape[1:3])

    return detect_batch


def tflite_detect(model, num_threads=None):
    """`detect_batch` of a `kdet export` TFLite model (`serving_default`: `input_tensor` uint8
    `[1, H, W, 3]` → the TF OD API outputs), run by LiteRT's interpreter with its default
    XNNPACK delegate: `ai_edge_litert.interpreter.Interpreter` (the `ai-edge-litert` package,
    in kdet's `zoo` extra: no TensorFlow to import) if installed, else `tf.lite.Interpreter`
    (the same interpreter and API, deprecated in its favour). Both give the same detections.

    A model exported for any image size (`export_tflite(input_size=(None, None))`, what
    `load_detector` converts) takes each image as it is; one exported for one size takes
    other sizes too when its graph resizes (every kdet export does): the input is resized to
    the image (`resize_tensor_input`), not the image to the input.

    Args:
        model: the `.tflite` file, or its bytes.
        num_threads: int, the interpreter's threads. Defaults to the cores this process may
            use.
    """
    from kdet.inference.loaded_detector import _box_mask_rows_in_pixels

    if num_threads is None:
        num_threads = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else os.cpu_count() or 1)
    interpreter_class = tflite_interpreter_class()
    if isinstance(model, bytes):
        interpreter = interpreter_class(model_content=model, num_threads=num_threads)
    else:
        interpreter = interpreter_class(str(model), num_threads=num_threads)
    signatures = interpreter.get_signature_list()
    inputs = signatures.get("serving_default", {}).get("inputs", [])
    if inputs != ["input_tensor"]:
        name = "converted" if isinstance(model, bytes) else model
        raise ValueError(
            f"model {name}: a TFLite model kdet cannot run (signatures {signatures}); expected "
            "the serving_default signature of kdet.export.export_tflite (input_tensor)"
        )
    runner = interpreter.get_signature_runner()

    def detect_batch(images, score_threshold):
        # The runner resizes the input (and re-plans the graph) when the image size changes.
        outputs = runner(input_tensor=np.ascontiguousarray(images, np.uint8))
        detections = {
            "boxes": outputs["detection_boxes"],  # normalized, as the TF OD API's
            # Rounded: an int8 model's dequantized ids are off integers (31.76 for 32).
            "labels": np.rint(outputs["detection_classes"]).astype(np.int64),
            "confidences": outputs["detection_scores"],
            "num_detections": outputs["num_detections"].astype(np.int64),
        }
        return _box_mask_rows_in_pixels(detections, score_threshold, *images.shape[1:3])

    return detect_batch


def tflite_interpreter_class():
    """`ai_edge_litert.interpreter.Interpreter` if `ai-edge-litert` is installed, else
    `tf.lite.Interpreter` (which warns that it is deprecated: the warning is silenced)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        def Interpreter(*args, **kwargs):  # stands for the class
            with warnings.catch_warnings():
                # TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert.
                warnings.simplefilter("ignore", UserWarning)
                return tf.lite.Interpreter(*args, **kwargs)

    return Interpreter


def cached_tflite_path(source_files, cache_dir=None):
    """Where `load_detector` caches the float32 TFLite conversion of a Keras model.

    `<cache>/runtimes/<first source file's name>-<key>.tflite`, `<key>` 16 hex digits of a
    sha256 over what the model's detections depend on: each source file's resolved path, size
    and modification time (or, for a zoo model, the zoo entry's files), the versions of
    TensorFlow and Keras, and the contents of kdet's sources that build, convert and export
    models (`_CONVERSION_SOURCES`: a change there converts again rather than serve a stale
    model; about 10 ms).

    Args:
        source_files: list of str describing the model: paths of its files, or text.
        cache_dir: the kdet cache (`kdet.zoo.cache.resolve_cache_dir`'s default if None).

    Returns:
        `pathlib.Path`, not created.
    """
    import kdet
    from kdet.zoo.cache import resolve_cache_dir

    digest = hashlib.sha256(json.dumps(
        [_CACHE_FORMAT, _installed_version("tensorflow"), _installed_version("keras")]).encode())
    for item in source_files:
        path = pathlib.Path(item)
        if path.is_file():
            stat = path.stat()
            item = f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}"
        digest.update(f"{item}\n".encode())
    package = pathlib.Path(kdet.__file__).parent
    for folder in _CONVERSION_SOURCES:
        for path in sorted((package / folder).rglob("*.py")):
            digest.update(f"{path.relative_to(package)}\n".encode() + path.read_bytes())
    stem = re.sub(r"\W+", "_", pathlib.Path(str(source_files[0])).name) or "model"
    name = f"{stem}-{digest.hexdigest()[:16]}.tflite"
    return resolve_cache_dir(cache_dir) / RUNTIME_CACHE / name


def _installed_version(package):
    """The version of an installed package, without importing it (importing TensorFlow takes
    seconds; a cached model is served without it): its distribution's, else (installed
    under another distribution name, e.g. `tensorflow-cpu`) its `__version__`."""
    import importlib
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(package).__version__


def convert_to_tflite(model, path, description):
    """`model`'s float32 TFLite model (any image size), cached at `path`.

    Written atomically with its sha256 (`kdet.utils.verified_files.write_verified`): a reader
    sees no file or a whole one. A cache that cannot be written only costs a warning. The
    conversion's stages are reported on stderr, after a line naming `description` and `path`.

    Conversions of the same source name made before (of a file or a kdet since changed) are
    removed.

    Returns:
        `path`, or the model's bytes if it could not be cached.
    """
    import tempfile
    import warnings

    from kdet.export.tflite import export_tflite
    from kdet.utils.progress import StageLog
    from kdet.utils.verified_files import checksum_path
    from kdet.utils.verified_files import write_verified

    def write(target):
        log = StageLog(f"kdet: {description}", header=(
            f"first use of runtime 'tflite': converting the model once (cached as {path})"))
        log("exporting to TFLite, float32")
        export_tflite(model, target, input_size=(None, None), progress=log)
        log.done()

    try:
        write_verified(path, write)
    except OSError as error:
        warnings.warn(
            f"The TFLite conversion could not be cached in {path} ({error}); it is converted "
            "again next time. Set $KDET_CACHE_DIR to a writable folder.",
            stacklevel=3,
        )
        with tempfile.TemporaryDirectory(prefix="kdet-tflite-") as folder:
            write(pathlib.Path(folder) / "model.tflite")
            return (pathlib.Path(folder) / "model.tflite").read_bytes()
    # One conversion per source name: the older ones (of files or a kdet since changed) go.
    stem = path.name.rsplit("-", 1)[0]
    for older in path.parent.glob(f"{stem}-*.tflite"):
        if older != path and older.name.rsplit("-", 1)[0] == stem:
            for name in (older, checksum_path(older)):
                with contextlib.suppress(OSError):
                    name.unlink()
    return path
