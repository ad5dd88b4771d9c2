"""Make the small TF OD API TF1 (slim) R-FCN reference for kdet's checkpoint parity test.

Runs inside the reference venv (the TF OD API's own code, never kdet's), after
`make_references.py` made `photo.png`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_tf1_rfcn_references.py

The TF1 zoo's `rfcn_resnet101_coco` config as `make_tf1_references.make_reference` reduces a
Faster R-CNN (128 px, 3 classes, 16 proposals, 20 detections), with
`first_stage_box_predictor_depth: 16`, its slim ResNet-101 0.03125 wide (the second-stage
`block4` scaled alike) and the `rfcn_box_predictor`'s `depth` 1024 -> 32, its kernels drawn
from N(0, 0.3) instead of the config's truncated N(0, 0.01) (`rfcn_reductions.py`);
everything else of the config (18x18 crops, 3x3 bins, the ReLU 1x1 convolutions without batch
norm) is kept. It writes `tests/data/tfod_reference/tf1_rfcn_resnet101/` as
`make_tf1_references.py` writes its folders, outputs.npz keeping what the parity test reads
(`KEPT_OUTPUTS`: not the preprocessed photo, 0.12 MB, to keep the folder under 0.5 MB).
"""

import re
import sys

import make_tf1_references  # first: it switches TensorFlow to graph mode
from make_mask_rcnn_references import keep_detection_outputs
from reference_common import OUTPUT_DIR
from reference_common import Reference
from rfcn_reductions import FIRST_STAGE_BOX_PREDICTOR_DEPTH
from rfcn_reductions import RESNET_DEPTH_MULTIPLIER
from rfcn_reductions import smaller_predictor

TF1_RFCN_REFERENCES = {
    "tf1_rfcn_resnet101": Reference(
        "rfcn_resnet101_coco.config",
        head_depth=FIRST_STAGE_BOX_PREDICTOR_DEPTH,
        resnet_depth_multiplier=RESNET_DEPTH_MULTIPLIER,
        seed=23,
    ),
}
KEPT_OUTPUTS = re.compile(
    r"true_image_shapes|predict/(image_shape|anchors|rpn_.*|num_proposals"
    r"|proposal_boxes_normalized|box_classifier_features|class_predictions_with_background"
    r"|refined_box_encodings)|detections/(num_)?detection_(boxes|scores|classes)|"
    r"detections/num_detections"
)


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or list(TF1_RFCN_REFERENCES)
    for name in names:
        make_tf1_references.CONFIG_CHANGES[name] = smaller_predictor
        make_tf1_references.make_reference(name, TF1_RFCN_REFERENCES[name], OUTPUT_DIR)
        keep_detection_outputs(OUTPUT_DIR / name / "outputs.npz", KEPT_OUTPUTS)


if __name__ == "__main__":
    sys.exit(main())
