"""Detection meta-architectures on the shared `ObjectDetector` base."""

from kdet.models.object_detector import ObjectDetector
from kdet.models.ssd import SSD

__all__ = ["ObjectDetector", "SSD"]
