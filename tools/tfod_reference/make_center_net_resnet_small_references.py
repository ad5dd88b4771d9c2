"""Variable listings of the TF OD API's CenterNet `resnet_v1_18_fpn` / `resnet_v1_34_fpn`
extractors for kdet's layout test, and (offline) a full-size ResNet-18 FPN parity reference.

Runs inside the reference venv made by `setup_venv.sh`:

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_center_net_resnet_small_references.py [--parity_dir DIR]

The TF OD API builds these bodies (`keras_models/resnet_v1.py` `resnet_v1_18` / `_34`) with
`keras.applications.resnet.ResNet`, the Keras 2 scaffold its code was written against; in this
venv `keras` is Keras 3, which no longer exports it, so the builders fail there. The script
hands the TF OD API module tf-keras's `resnet` module (the same Keras 2 code) instead, and
otherwise runs the TF OD API's own extractor code.

It writes `tests/data/tfod_reference/center_net_resnet_v1_{18,34}_fpn_extractor/`:
- `variables.txt`: `name<TAB>dtype<TAB>shape` of every entry of
  `tf.train.Checkpoint(model=<extractor>)` (as `make_center_net_extractor_references.py`);
- `base_model_layers.txt`: the names of the body's layers with weights, in
  `_base_model/layer_with_weights-N` order (shapes alone cannot tell a block's batch norms
  apart).
The full-size checkpoints (~45 / 85 MB) are not committed. With `--parity_dir DIR` it also
makes, in `DIR/center_net_resnet_v1_18_fpn_extractor/`, the full-size ResNet-18 FPN reference
of `make_center_net_extractor_references.make_reference` (seeded random weights, calibrated
batch norms, checkpoint + `outputs.npz` of the 64×96 photo crop), which
`tests/checkpoints/test_tfod_parity_center_net_resnet_small.py` compares with kdet when
`KDET_RESNET_SMALL_PARITY_DIR=DIR` is set.
"""

import argparse
import pathlib
import sys

from make_center_net_extractor_references import HOURGLASS_STATISTICS
from make_center_net_extractor_references import ExtractorReference
from make_center_net_extractor_references import make_listing
from make_center_net_extractor_references import make_reference
from object_detection.models import center_net_resnet_v1_fpn_feature_extractor
from object_detection.models.keras_models import resnet_v1
from reference_common import OUTPUT_DIR
from tf_keras.src.applications import resnet as keras2_resnet

# The Keras 2 `keras.applications.resnet` (with `ResNet`) the TF OD API imports as `resnet`.
resnet_v1.resnet = keras2_resnet

LISTINGS = {
    f"center_net_resnet_v1_{depth}_fpn_extractor": getattr(
        center_net_resnet_v1_fpn_feature_extractor, f"resnet_v1_{depth}_fpn"
    )
    for depth in (18, 34)
}
PARITY = "center_net_resnet_v1_18_fpn_extractor"


def write_base_model_layers(name, build, output_dir):
    """`base_model_layers.txt`: the body's layers with weights, in checkpoint order."""
    extractor = build(channel_means=[], channel_stds=[], bgr_ordering=False)
    names = [layer.name for layer in extractor._base_model.layers if layer.weights]
    (output_dir / name / "base_model_layers.txt").write_text("".join(f"{n}\n" for n in names))
    print(f"{name}: {len(names)} body layers with weights", flush=True)


def _parity_extractor():
    # The statistics of the ResNet FPN zoo configs (BGR): the order swap is checked too.
    return center_net_resnet_v1_fpn_feature_extractor.resnet_v1_18_fpn(**HOURGLASS_STATISTICS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=str(OUTPUT_DIR))
    parser.add_argument("--parity_dir", help="also make the full-size ResNet-18 FPN reference")
    args = parser.parse_args(argv)
    output_dir = pathlib.Path(args.output_dir)
    for name, build in LISTINGS.items():
        make_listing(name, build, output_dir)
        write_base_model_layers(name, build, output_dir)
    if args.parity_dir:
        make_reference(
            PARITY, ExtractorReference(_parity_extractor, seed=43), pathlib.Path(args.parity_dir)
        )


if __name__ == "__main__":
    sys.exit(main())
