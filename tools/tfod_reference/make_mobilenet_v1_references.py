"""Make small TF OD API references of the plain SSD MobileNetV1 extractors (TF1 and TF2).

Runs inside the reference venv made by `setup_venv.sh`, after `make_references.py` (it reads
`photo.png`):

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mobilenet_v1_references.py
    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_mobilenet_v1_references.py --tf2

The TF1 sample configs of `ssd_mobilenet_v1` (the most copied TF1 config), its SSDLite variant
(`use_depthwise` extra layers and box predictor), `ssd_mobilenet_v1_ppn` (pooling pyramid,
weight-shared box predictor) and `embedded_ssd_mobilenet_v1` are read from the TF OD API's
sample folder next to the repository (`../shared/tfod_configs/samples`, `samples/configs/` of
tensorflow/models), reduced as `reference_common.reduced_config` does (3 classes, 128 px (the
embedded one takes 256 px only), 20 detections), at depth multiplier 0.125 (checkpoints
0.27-0.46 MB; 0.25 made 0.9-1.6 MB), and made by `make_tf1_references.make_reference` (same
weights procedure, checkpoint, `pipeline.config`, `variables.txt` and `outputs.npz`) into
`tests/data/tfod_reference/<name>/`. The embedded reference's `outputs.npz` leaves out
`predict/preprocessed_inputs` (0.79 MB at 256 px, the photo resized: a reader resizes it
itself).

`ssd_mobilenet_v1_coco.config` does not override the body's hyperparameters (slim's
`mobilenet_v1_arg_scope` sets the body up), the PPN config does; the PPN checkpoint also holds
`Conv2d_12` and `Conv2d_13`, which slim builds and the extractor never reads.

With `--tf2` it makes the TF2 (Keras) reference `ssd_mobilenet_v1_keras` instead, with
`make_references.make_reference` (TF2 checkpoint, outputs and the exporter's): the TF OD API has
no TF2 sample config of it, so `ssd_mobilenet_v1_coco.config` with the extractor type
`ssd_mobilenet_v1_keras` (what `model_builder` builds in TF2), at depth multiplier 0.125 (the
Keras body scales MobileNet's convolutions by it twice: all raised to `min_depth` 16). The
TF1 and TF2 code cannot share a process (the TF1 generator switches TensorFlow to graph mode
when imported).
"""

import argparse
import importlib
import pathlib
import sys
import tempfile

import numpy as np
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
    # The config's own depth multiplier (0.125); its extractor takes 256x256 images only.
    "tf1_embedded_ssd_mobilenet_v1": Reference(
        str(SAMPLE_CONFIGS / "embedded_ssd_mobilenet_v1_coco.config"), image_size=256, seed=25
    ),
}
# References whose `outputs.npz` leaves out the resized photo (`predict/preprocessed_inputs`).
WITHOUT_PREPROCESSED_INPUTS = ("tf1_embedded_ssd_mobilenet_v1",)

# The TF1 sample config of `TF2_REFERENCES`, and the extractor type it is built with.
TF2_SOURCE = ("ssd_mobilenet_v1_coco.config", "ssd_mobilenet_v1_keras")
TF2_REFERENCES = {
    "ssd_mobilenet_v1_keras": Reference("ssd_mobilenet_v1_keras.config", depth_multiplier=0.125,
                                        seed=24),
}


def write_tf2_configs(folder):
    """`TF2_SOURCE`'s config with the Keras extractor type, into `folder`; returns the
    `TF2_REFERENCES` pointing there."""
    source, keras_type = TF2_SOURCE
    text = (SAMPLE_CONFIGS / source).read_text().replace(
        "type: 'ssd_mobilenet_v1'", f"type: '{keras_type}'"
    )
    if keras_type not in text:
        raise ValueError(f"{source}: no type 'ssd_mobilenet_v1' to replace")
    references = {}
    for name, reference in TF2_REFERENCES.items():
        (folder / reference.config).write_text(text)
        references[name] = Reference(
            **{**reference.__dict__, "config": str(folder / reference.config)}
        )
    return references


def drop_preprocessed_inputs(path):
    """Rewrites the `outputs.npz` at `path` without `predict/preprocessed_inputs`."""
    outputs = dict(np.load(path))
    del outputs["predict/preprocessed_inputs"]
    np.savez_compressed(path, **outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        help=f"references to make (default: all of {list(REFERENCES)}, or with --tf2 "
        f"{list(TF2_REFERENCES)})",
    )
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    parser.add_argument("--tf2", action="store_true", help="make the TF2 references instead")
    args = parser.parse_args(argv)
    if not args.tf2:
        make_tf1_references = importlib.import_module("make_tf1_references")
        for name in args.names or REFERENCES:
            make_tf1_references.make_reference(name, REFERENCES[name], args.output_dir)
            if name in WITHOUT_PREPROCESSED_INPUTS:
                drop_preprocessed_inputs(args.output_dir / name / "outputs.npz")
        return
    make_references = importlib.import_module("make_references")
    with tempfile.TemporaryDirectory() as folder:
        references = write_tf2_configs(pathlib.Path(folder))
        for name in args.names or references:
            make_references.make_reference(name, references[name], args.output_dir)


if __name__ == "__main__":
    sys.exit(main())
