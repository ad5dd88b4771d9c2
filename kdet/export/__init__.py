"""Exporting trained detectors for inference: a SavedModel with the TF OD API's serving
signature (`export_saved_model`), a TFLite model for SSD and CenterNet (`export_tflite`;
image files to calibrate its int8 quantization on: `RepresentativeImages`), and an in-process
frozen graph (`FrozenDetector`); `export_inference_graph` exports a `kdet train` checkpoint
into a folder as `kdet export` does."""

from kdet.export.exporter import export_inference_graph
from kdet.export.frozen_detector import FrozenDetector
from kdet.export.frozen_graph import FrozenGraph
from kdet.export.saved_model import DEFAULT_MAX_IMAGE_PIXELS
from kdet.export.saved_model import INPUT_TYPES
from kdet.export.saved_model import encoded_image_size
from kdet.export.saved_model import export_saved_model
from kdet.export.tflite import RepresentativeImages
from kdet.export.tflite import export_tflite

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "INPUT_TYPES",
    "FrozenDetector",
    "FrozenGraph",
    "RepresentativeImages",
    "encoded_image_size",
    "export_inference_graph",
    "export_saved_model",
    "export_tflite",
]
