"""Make small TF1 (slim) TF OD API references of the plain SSD MobileNetV1 extractors.

Runs inside the reference venv made by `setup_venv.sh`, after `make_references.py` (it reads
`photo.png`):

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mobilenet_v1_references.py

The TF1 sample configs of `ssd_mobilenet_v1` (the most copied TF1 config), its SSDLite variant
(`use_depthwise` extra layers and box predictor) and `ssd_mobilenet_v1_ppn` (pooling pyramid,
weight-shared box predictor) are read from the TF OD API's sample folder next to the
repository (`../shared/tfod_configs/samples`, `samples/configs/` of tensorflow/models), reduced
as `reference_common.reduced_config` does (3 classes, 128 px, 20 detections), at depth
multiplier 0.125 (checkpoints 0.27-0.46 MB; 0.25 made 0.9-1.6 MB), and made by
`make_tf1_references.make_reference` (same weights procedure, checkpoint, `pipeline.config`,
`variables.txt` and `outputs.npz`) into `tests/data/tfod_reference/<name>/`.

`ssd_mobilenet_v1_coco.config` does not override the body's hyperparameters (slim's
`mobilenet_v1_arg_scope` sets the body up), the PPN config does; the PPN checkpoint also holds
`Conv2d_12` and `Conv2d_13`, which slim builds and the extractor never reads.
"""

import argparse
import pathlib
import sys

import make_tf1_references
from reference_common import OUTPUT_DIR
from reference_common import REPO
from reference_common import Reference

SAMPLE_CONFIGS = REPO.parent / "shared" / "tfod_configs" / "samples"

REFERENCES = {
    "tf1_ssd_mobilenet_v1": Reference(
        str(SAMPLE_CONFIGS / "ssd_mobilenet_v1_coco.config"), depth_multiplier=0.125, seed=21
    ),
    "tf1_ssdlite_mobilenet_v1": Reference(
        str(SAMPLE_CONFIGS / "ssdlite_mobilenet_v1_coco.config"), depth_multiplier=0.125, seed=22
    ),
    "tf1_ssd_mobilenet_v1_ppn": Reference(
        str(
            SAMPLE_CONFIGS / "ssd_mobilenet_v1_ppn_shared_box_predictor_300x300_coco14_sync.config"
        ),
        depth_multiplier=0.125,
        head_depth=32,
        seed=23,
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or REFERENCES:
        make_tf1_references.make_reference(name, REFERENCES[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
