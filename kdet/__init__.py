"""kdet: a Keras 3 object-detection model zoo in the TF Object Detection API tradition.

Subpackages are imported on first use, so `kdet --help` starts without loading TensorFlow.
"""

import importlib

__version__ = "0.1.0.dev0"

_SUBPACKAGES = (
    "boxes",
    "data",
    "datasets",
    "evaluation",
    "feature_extractors",
    "layers",
    "losses",
    "models",
    "targets",
    "visualization",
)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kdet.{name}")
    raise AttributeError(f"module 'kdet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
