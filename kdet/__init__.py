"""kdet: a Keras 3 object-detection model zoo in the TF Object Detection API tradition."""

__version__ = "0.1.0.dev0"

from kdet import boxes  # noqa: E402,F401
from kdet import data  # noqa: E402,F401
from kdet import datasets  # noqa: E402,F401
from kdet import evaluation  # noqa: E402,F401
from kdet import layers  # noqa: E402,F401
from kdet import targets  # noqa: E402,F401
