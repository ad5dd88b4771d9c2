"""Make a small TF1 TF OD API reference model of SSD MobileNetV2 MnasFPN for kdet's parity test.

Runs inside the reference venv made by `setup_venv.sh`, as `make_tf1_references.py` (whose
`make_reference` does the work: seeded random weights, calibrated batch norms, `model.ckpt`,
`pipeline.config`, `variables.txt`, `outputs.npz`):

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mnasfpn_references.py

The sample config `ssd_mobilenet_v2_mnasfpn_shared_box_predictor_320x320_coco_sync.config` is
reduced by `reference_common.reduced_config` (3 classes, 128×128 images, few detections), depth
multiplier 0.125 and a 16-deep predictor, so the reference stays a few hundred KB.
"""

import argparse
import pathlib
import sys

import make_tf1_references
from reference_common import OUTPUT_DIR
from reference_common import Reference

MNASFPN_REFERENCES = {
    "tf1_ssd_mobilenet_v2_mnasfpn": Reference(
        "ssd_mobilenet_v2_mnasfpn_shared_box_predictor_320x320_coco_sync.config",
        depth_multiplier=0.125,
        head_depth=16,
        seed=31,
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(MNASFPN_REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or MNASFPN_REFERENCES:
        make_tf1_references.make_reference(name, MNASFPN_REFERENCES[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
