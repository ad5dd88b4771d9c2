"""Make a small TF OD API EfficientDet reference model for kdet's checkpoint parity tests.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_efficientdet_references.py

Writes `tests/data/tfod_reference/ssd_efficientdet_d0/` exactly as `make_references.py` writes
its references (same files, seeding, batch-norm calibration, restore check and export; see
README.md), from the TF OD API sample config `ssd_efficientdet_d0_512x512_coco17_tpu-8.config`
reduced by config fields: 3 classes, its `keep_aspect_ratio_resizer` at 256 px (the TF OD API's
EfficientDet refuses images under 129 px, and its BiFPN needs sides that are multiples of 128),
`bifpn.num_filters` 16, predictor `depth` 16, fewer detections, and `depth_multiplier: 0.1`.

The TF OD API's EfficientDet extractor refuses any `depth_multiplier` but 1 and has no other
field for its EfficientNet's width: an EfficientNet-B0 body alone is 3.6 M values (14.5 MB in
float32). This script lets the extractor take it as kdet does: it builds the TF OD API's own
EfficientNet with its `MODEL_CONFIGS` width coefficient multiplied by `depth_multiplier` (and
the never-used 1000-class ImageNet classifier of the saved classification backbone cut to
`CLASSIFIER_CLASSES` classes), so the layers and variable structure are the TF OD API's and
only channel counts shrink: 94 k body values at 0.1.
"""

import argparse
import dataclasses
import functools
import os
import pathlib
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import make_references
from object_detection.models import ssd_efficientnet_bifpn_feature_extractor as efficientdet
from reference_common import OUTPUT_DIR
from reference_common import Reference
from reference_common import reduced_config

try:
    from official.legacy.image_classification.efficientnet import efficientnet_model
except ModuleNotFoundError:
    from official.vision.image_classification.efficientnet import efficientnet_model

# Classes of the EfficientNet classifier head the TF OD API builds (and saves) but never reads.
CLASSIFIER_CLASSES = 8
IMAGE_SIZE = 256
BIFPN_FILTERS = 16

REFERENCES = {
    "ssd_efficientdet_d0": Reference(
        "ssd_efficientdet_d0_512x512_coco17_tpu-8.config",
        depth_multiplier=0.1,
        head_depth=16,
        image_size=IMAGE_SIZE,
        seed=21,
    ),
}


def efficientdet_config(reference):
    """`reduced_config`, with the EfficientDet config's own resizer and a narrow BiFPN."""
    pipeline = reduced_config(reference)
    model = pipeline.model.ssd
    resizer = model.image_resizer.keep_aspect_ratio_resizer  # replaces the fixed-shape one
    resizer.min_dimension = reference.image_size
    resizer.max_dimension = reference.image_size
    resizer.pad_to_max_dimension = True
    model.feature_extractor.bifpn.num_filters = BIFPN_FILTERS
    return pipeline


def allow_efficientnet_width():
    """Let the TF OD API's EfficientDet extractors take `depth_multiplier` as the width
    multiplier of their EfficientNet (see the module docstring)."""
    cls = efficientdet.SSDEfficientNetBiFPNKerasFeatureExtractor
    original_init = cls.__init__
    configs = dict(efficientnet_model.MODEL_CONFIGS)

    @functools.wraps(original_init)
    def __init__(self, *args, depth_multiplier=1.0, **kwargs):
        scaled = {
            name: config.replace(
                width_coefficient=config.width_coefficient * depth_multiplier,
                num_classes=CLASSIFIER_CLASSES,
            )
            for name, config in configs.items()
        }
        efficientnet_model.MODEL_CONFIGS.update(scaled)
        try:
            original_init(self, *args, depth_multiplier=1.0, **kwargs)
        finally:
            efficientnet_model.MODEL_CONFIGS.update(configs)

    cls.__init__ = __init__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    parser.add_argument(
        "--depth_multiplier",
        type=float,
        help="another EfficientNet width (e.g. 1 for the real one; not for committing)",
    )
    args = parser.parse_args(argv)
    allow_efficientnet_width()
    # `make_references.make_reference` reduces the config through this name.
    make_references.reduced_config = efficientdet_config
    for name, reference in REFERENCES.items():
        if args.depth_multiplier is not None:
            reference = dataclasses.replace(reference, depth_multiplier=args.depth_multiplier)
        make_references.make_reference(name, reference, args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
