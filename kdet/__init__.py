"""kdet: a Keras 3 object-detection model zoo in the TF Object Detection API tradition.

`import kdet` imports neither TensorFlow nor Keras: the public classes (`kdet.SSD`, …) and
subpackages (`kdet.zoo`, …) are imported on first use, so `kdet --help` answers at once.

Saved models still load after `import kdet`: a `.keras` detector names its classes
`kdet>SSD`, `kdet>SSDMobileNetV2FeatureExtractor`, …, and Keras finds them only once their
modules ran, so kdet imports `kdet.models` and `kdet.feature_extractors` as soon as Keras is
imported (by anyone, or before kdet) and no import of TensorFlow, Keras or a kdet module is
still running: `import kdet, keras; keras.saving.load_model("model.keras")` works.

TensorFlow starts quietly after `import kdet`, whichever module imports it first (`kdet.SSD`,
`import kdet.models`, Keras, the user): its C++ start-up banner and CUDA probe are hidden, and
its C++ log level is `TF_CPP_MIN_LOG_LEVEL=2` (errors only) unless set before; set
`TF_CPP_MIN_LOG_LEVEL=0` to see TensorFlow's info and warning lines. Both are import hooks
(`kdet.utils.import_hooks`) that `import kdet` installs before any kdet module can import
TensorFlow (a kdet module's package `kdet` always runs first).
"""

import contextlib as _contextlib
import importlib as _importlib
import sys as _sys
import threading as _threading

from kdet.utils.import_hooks import run_around_imports as _run_around_imports
from kdet.utils.native_stderr import quiet_tensorflow_start as _quiet_tensorflow_start

__version__ = "0.1.0.dev0"

_SUBPACKAGES = (
    "boxes",
    "checkpoints",
    "cli",
    "configs",
    "data",
    "datasets",
    "evaluation",
    "export",
    "feature_extractors",
    "inference",
    "layers",
    "losses",
    "models",
    "plots",
    "targets",
    "training",
    "utils",
    "visualization",
    "zoo",
)
# Public classes at the top level → the module defining them.
_CLASSES = {
    "CenterNet": "kdet.models",
    "ContextRCNN": "kdet.models",
    "FasterRCNN": "kdet.models",
    "MaskRCNN": "kdet.models",
    "ObjectDetector": "kdet.models",
    "RFCN": "kdet.models",
    "SSD": "kdet.models",
}


def __getattr__(name):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"kdet.{name}")
    if name in _CLASSES:
        return getattr(_importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'kdet' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES, *_CLASSES})


# Imports of TensorFlow, Keras and kdet modules running now (Keras is half-loaded, or a kdet
# module half-run, until they end), and whether kdet's saved classes are registered.
_running_imports = 0
_saved_classes_registered = False
_lock = _threading.Lock()


@_contextlib.contextmanager
def _counted_import(module):
    """Around each import of TensorFlow, Keras or a kdet module: when the last one running
    ends, registers kdet's saved classes if Keras is loaded."""
    global _running_imports
    with _lock:
        _running_imports += 1
    try:
        yield
    finally:
        with _lock:
            _running_imports -= 1
            last = _running_imports == 0
    if last:  # not after a failed import: its exception propagates first
        _register_saved_classes()


def _register_saved_classes():
    """Imports the modules that register kdet's saved classes with Keras (`kdet>SSD`, …), once
    Keras is loaded."""
    global _saved_classes_registered
    with _lock:
        register = "keras" in _sys.modules and not _saved_classes_registered
        _saved_classes_registered |= register
    if register:
        _importlib.import_module("kdet.models")
        _importlib.import_module("kdet.feature_extractors")


_quiet_tensorflow_start()  # whoever imports TensorFlow: no C++ banner, CUDA probe or info lines
_run_around_imports(
    lambda name: name in ("tensorflow", "keras") or name.startswith("kdet."), _counted_import
)
_register_saved_classes()  # Keras was imported before kdet
