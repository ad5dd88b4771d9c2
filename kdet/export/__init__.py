"""Exporting trained detectors for inference."""

from kdet.export.frozen_detector import FrozenDetector

__all__ = ["FrozenDetector"]
