"""Make the TF OD API reference of the TF1 Faster R-CNN NASNet-A (`faster_rcnn_nas`) for kdet's
parity test.

Runs inside the reference venv made by `setup_venv.sh`:

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_nasnet_references.py

The TF OD API's `FasterRCNNNASFeatureExtractor` builds both stages from slim's
`nasnet.large_imagenet_config()` (NASNet-A Large: 18 cells, 168 filters, stem multiplier 3)
and has no config field for its size; its second stage starts at cell 12 and at filter
scaling 2 whatever the config says, so the cell count must stay 18. This script narrows the
rest, for this run only, by replacing `large_imagenet_config` with one of
`NUM_CONV_FILTERS` filters and stem multiplier `STEM_MULTIPLIER` (`nasnet_width`): the
variables keep the TF OD API's names and structure, only the channel counts shrink. slim's
`nets/nasnet/nasnet.py` makes its configs with `tf.contrib.training.HParams`, gone since
TF 2.0: `HParams` below stands in (in this script only).

The reference is made by `make_tf1_references.make_reference` (seeded kernels, batch norms
calibrated on the photo, biases drawn, a `tf.compat.v1.train.Saver` checkpoint, a restore
check), from `samples/faster_rcnn_nas_coco.config` reduced by `reference_common.reduced_config`
(3 classes, `first_stage_box_predictor_depth: 32`, at most 20 detections) and by
`nas_config`: the config's `fixed_shape_resizer` (NASNet needs fully known shapes) at
`IMAGE_HEIGHT` x `IMAGE_WIDTH` (odd sizes inside: 42x63 after `conv0`, 21x32, 11x16, 6x8),
`MAX_PROPOSALS` proposals. Into `tests/data/tfod_reference/tf1_faster_rcnn_nas/` go the
checkpoint, `pipeline.config`, `variables.txt` and `outputs.npz` (README.md).
"""

import argparse
import contextlib
import os
import pathlib
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Sets up the TF OD API's TF1 code on TF 2.21 (graph mode and stand-ins) when imported.
import make_tf1_references
from nets.nasnet import nasnet
from reference_common import OUTPUT_DIR
from reference_common import Reference

NAME = "tf1_faster_rcnn_nas"
REFERENCE = Reference("faster_rcnn_nas_coco.config", head_depth=32, seed=23)
# NASNet-A Large's 168 filters and stem multiplier 3 narrowed: cells of 4, 8 and 16 filters
# (outputs of 6 times that), stem cells of 1 and 2, conv0 of 8 (at 8 filters the checkpoint
# was 1.42 MB).
NUM_CONV_FILTERS = 4
STEM_MULTIPLIER = 0.25
IMAGE_HEIGHT, IMAGE_WIDTH = 86, 128
MAX_PROPOSALS = 4


class HParams:
    """Stands in for `tf.contrib.training.HParams` as slim's NASNet uses it: keyword
    hyperparameters read as attributes, changed with `set_hparam`, copied with `deepcopy`."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def set_hparam(self, name, value):
        if name not in self.__dict__:
            raise KeyError(f"HParams has no hyperparameter {name!r}")
        setattr(self, name, value)


@contextlib.contextmanager
def nasnet_width(num_conv_filters, stem_multiplier):
    """Build slim's NASNet-A Large (both TF OD API stages read `large_imagenet_config()`) with
    `num_conv_filters` and `stem_multiplier`; everything else (18 cells, the schedule of
    reductions, skip inputs) stays NASNet-A Large's."""
    sys.modules["tensorflow.contrib.training"].HParams = HParams
    original = nasnet.large_imagenet_config

    def narrowed():
        hparams = original()
        hparams.set_hparam("num_conv_filters", num_conv_filters)
        hparams.set_hparam("stem_multiplier", stem_multiplier)
        return hparams

    nasnet.large_imagenet_config = narrowed
    try:
        yield
    finally:
        nasnet.large_imagenet_config = original


def nas_config(pipeline):
    """The config's own resizer (`reduced_config` sets a keep-aspect-ratio one) at
    `IMAGE_HEIGHT` x `IMAGE_WIDTH`, and `MAX_PROPOSALS` proposals."""
    model = pipeline.model.faster_rcnn
    model.image_resizer.fixed_shape_resizer.height = IMAGE_HEIGHT
    model.image_resizer.fixed_shape_resizer.width = IMAGE_WIDTH
    model.first_stage_max_proposals = MAX_PROPOSALS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    make_tf1_references.CONFIG_CHANGES[NAME] = nas_config
    with nasnet_width(NUM_CONV_FILTERS, STEM_MULTIPLIER):
        make_tf1_references.make_reference(NAME, REFERENCE, args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
