"""Running detectors on files: what `kdet predict` does, as library calls.

- `load_detector(source)`: a `LoadedDetector` from a zoo name, a `.keras` file, a `kdet train`
  model directory or checkpoint, a `kdet export` folder, a SavedModel or a `.tflite` file,
  served by one of `RUNTIMES` (`runtime="keras"`, `"frozen"`, `"saved_model"`, `"tflite"`).
- `restored_model(config, checkpoint)`: a pipeline config's model with a `kdet train`
  checkpoint's weights.
- `collect_inputs(arguments)`: image and video files from paths, folders and glob patterns,
  each with a unique key.
- `read_image(path)`: one image as RGB, with clear errors for unreadable or over-large files.
- `predict_to_folder(detector, inputs, output_dir)`: annotated images and videos plus JSON, in a
  fresh numbered run folder (`runs/detections`, `runs/detections2`, …).
"""

from kdet.inference.input_files import IMAGE_EXTENSIONS
from kdet.inference.input_files import VIDEO_EXTENSIONS
from kdet.inference.input_files import InputFile
from kdet.inference.input_files import UnreadableInputError
from kdet.inference.input_files import collect_inputs
from kdet.inference.input_files import read_image
from kdet.inference.loaded_detector import LoadedDetector
from kdet.inference.loaded_detector import load_detector
from kdet.inference.loaded_detector import restored_model
from kdet.inference.prediction_run import predict_to_folder
from kdet.inference.prediction_run import readable_inputs
from kdet.inference.run_folder import RunFolder
from kdet.inference.runtimes import RUNTIMES

__all__ = [
    "IMAGE_EXTENSIONS",
    "RUNTIMES",
    "VIDEO_EXTENSIONS",
    "InputFile",
    "LoadedDetector",
    "RunFolder",
    "UnreadableInputError",
    "collect_inputs",
    "load_detector",
    "predict_to_folder",
    "read_image",
    "readable_inputs",
    "restored_model",
]
