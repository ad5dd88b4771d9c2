"""Make small TF1 TF OD API reference models of the SSDLite mobile extractors (MobileNetV3,
MobileNet EdgeTPU, MobileDet) for kdet's parity tests.

Runs inside the reference venv made by `setup_venv.sh`, as `make_tf1_references.py` (whose
`make_reference` does the work: seeded random weights, calibrated batch norms, `model.ckpt`,
`pipeline.config`, `variables.txt`, `outputs.npz`):

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mobile_references.py [NAMES]

The sample configs are read from the TF OD API's samples beside the repository
(`../shared/tfod_configs/samples/`), reduced by `reference_common.reduced_config` (3 classes,
128×128 images, few detections) and a small depth multiplier, so each reference stays a few
hundred KB.
"""

import argparse
import pathlib
import sys

import make_tf1_references
from reference_common import OUTPUT_DIR
from reference_common import REPO
from reference_common import Reference

# The TF OD API sample configs (an absolute path: `reduced_config` joins it to its own
# config folder, which then yields it unchanged).
SAMPLES = REPO.parent / "shared" / "tfod_configs" / "samples"

MOBILE_REFERENCES = {
    "tf1_ssd_mobilenet_v3_large": Reference(
        str(SAMPLES / "ssdlite_mobilenet_v3_large_320x320_coco.config"),
        depth_multiplier=0.125,
        seed=21,
    ),
    "tf1_ssd_mobiledet_cpu": Reference(
        str(SAMPLES / "ssdlite_mobiledet_cpu_320x320_coco_sync_4x4.config"),
        depth_multiplier=0.125,
        seed=22,
    ),
    "tf1_ssd_mobilenet_v3_small": Reference(
        str(SAMPLES / "ssdlite_mobilenet_v3_small_320x320_coco.config"),
        depth_multiplier=0.125,
        seed=23,
    ),
    "tf1_ssd_mobilenet_edgetpu": Reference(
        str(SAMPLES / "ssdlite_mobilenet_edgetpu_320x320_coco.config"),
        depth_multiplier=0.0625,  # 0.125: 1.1 MB
        seed=24,
    ),
    "tf1_ssd_mobiledet_dsp": Reference(
        str(SAMPLES / "ssdlite_mobiledet_dsp_320x320_coco_sync_4x4.config"),
        depth_multiplier=0.125,
        seed=25,
    ),
    "tf1_ssd_mobiledet_edgetpu": Reference(
        str(SAMPLES / "ssdlite_mobiledet_edgetpu_320x320_coco_sync_4x4.config"),
        depth_multiplier=0.125,
        seed=26,
    ),
    "tf1_ssd_mobiledet_gpu": Reference(
        str(SAMPLES / "ssdlite_mobiledet_gpu_320x320_coco_sync_4x4.config"),
        depth_multiplier=0.0625,  # 0.125: 1.1 MB
        seed=27,
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(MOBILE_REFERENCES)})"
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for name in args.names or MOBILE_REFERENCES:
        make_tf1_references.make_reference(name, MOBILE_REFERENCES[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
