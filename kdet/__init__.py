"""kdet: a Keras 3 object-detection model zoo in the TF Object Detection API tradition.

Subpackages are imported on first use, except the models and feature extractors: a saved
`.keras` detector names its classes `kdet>SSD`, `kdet>SSDMobileNetV2FeatureExtractor`, …, and
Keras finds them only once their modules ran, so `import kdet` registers them (and so loads
TensorFlow) and `import kdet; keras.saving.load_model("model.keras")` works.

`import kdet` (and the `kdet` command) starts TensorFlow quietly: its C++ start-up banner and
CUDA probe are hidden, and its C++ log level is `TF_CPP_MIN_LOG_LEVEL=2` (errors only) unless
set before; set `TF_CPP_MIN_LOG_LEVEL=0` to see TensorFlow's info and warning lines.
"""

import importlib

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
        return importlib.import_module(f"kdet.{name}")
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'kdet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES) + list(_CLASSES))


from kdet.utils.native_stderr import native_stderr_hidden as _native_stderr_hidden  # noqa: E402
from kdet.utils.native_stderr import quiet_tensorflow_start as _quiet_tensorflow_start  # noqa: E402

_quiet_tensorflow_start()  # no TensorFlow C++ banner, CUDA probe or info lines
with _native_stderr_hidden():  # TensorFlow's C++ start-up banner, not errors: those propagate
    importlib.import_module("kdet.models")
    importlib.import_module("kdet.feature_extractors")
