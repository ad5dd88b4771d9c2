"""Make a small TF OD API TF2 (Keras) R-FCN reference, for checking kdet's TF2 R-FCN mapping.

Runs inside the reference venv, after `make_references.py` made `photo.png`:

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \\
        tools/tfod_reference/make_tf2_rfcn_reference.py /tmp/rfcn_tf2

The TF2 zoo has no R-FCN, but the TF OD API's TF2 `model_builder` builds one
(`RFCNMetaArch` with an `RfcnKerasBoxPredictor`) from the TF1 zoo's `rfcn_resnet101_coco`
config with the Keras extractor (`faster_rcnn_resnet101_keras`). It is reduced as
`make_tf1_rfcn_references.py` reduces the TF1 one (`rfcn_reductions.py`) (ResNet-101 0.03125 wide, predictor depth
32 with N(0, 0.3) kernels, `first_stage_box_predictor_depth` 16) and written by
`make_references.make_reference` (`checkpoint/ckpt-0`, `pipeline.config`, `outputs.npz`, the
TF OD API's export included) into `<output_dir>/tf2_rfcn_resnet101/`. Not committed: the
TF1 reference covers the parity test; this one was checked by hand (README.md).
"""

import pathlib
import sys

import make_references
from reference_common import Reference
from reference_common import reduced_config
from rfcn_reductions import FIRST_STAGE_BOX_PREDICTOR_DEPTH
from rfcn_reductions import RESNET_DEPTH_MULTIPLIER
from rfcn_reductions import smaller_predictor

NAME = "tf2_rfcn_resnet101"
REFERENCE = Reference(
    "rfcn_resnet101_coco.config",
    head_depth=FIRST_STAGE_BOX_PREDICTOR_DEPTH,
    resnet_depth_multiplier=RESNET_DEPTH_MULTIPLIER,
    seed=24,
)


def keras_rfcn_config(reference):
    """The reduced TF1 R-FCN config with the TF2 Keras ResNet-101 extractor."""
    pipeline = reduced_config(reference)
    pipeline.model.faster_rcnn.feature_extractor.type = "faster_rcnn_resnet101_keras"
    smaller_predictor(pipeline)
    return pipeline


def main(argv=None):
    output_dir = pathlib.Path((argv if argv is not None else sys.argv[1:])[0])
    make_references.reduced_config = keras_rfcn_config
    make_references.make_reference(NAME, REFERENCE, output_dir)


if __name__ == "__main__":
    sys.exit(main())
