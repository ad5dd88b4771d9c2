"""Make the small TF OD API TF1 (slim) Mask R-CNN reference for kdet's checkpoint parity test.

Runs inside the reference venv (the TF OD API's own code, never kdet's), after
`make_references.py` made `photo.png`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_tf1_mask_rcnn_references.py

The TF1 zoo's `mask_rcnn_resnet50_atrous_coco` config as `make_tf1_references.make_reference`
reduces a Faster R-CNN (128 px, 3 classes, 16 proposals, 20 detections,
`first_stage_box_predictor_depth: 32`), with its ResNet-50 0.03125 wide and 15x15 masks
instead of 33x33; everything else of the config (atrous rate 2, automatic mask conv depth,
4 mask convolutions) is kept. It writes `tests/data/tfod_reference/tf1_mask_rcnn_resnet50_atrous/`
as `make_tf1_references.py` writes its folders (~530 KB), outputs.npz keeping what the parity
test reads (`KEPT_OUTPUTS`): the preprocessed photo, the mask logits of every class at the
detection boxes (`predict/mask_predictions`) and the detections with their masks.
"""

import re
import sys

import make_tf1_references
from make_mask_rcnn_references import keep_detection_outputs
from reference_common import OUTPUT_DIR
from reference_common import Reference

TF1_MASK_REFERENCES = {
    "tf1_mask_rcnn_resnet50_atrous": Reference(
        "mask_rcnn_resnet50_atrous_coco.config",
        head_depth=32,
        resnet_depth_multiplier=0.03125,
        seed=22,
    ),
}
MASK_SIZE = 15
KEPT_OUTPUTS = re.compile(
    r"true_image_shapes|predict/(preprocessed_inputs|image_shape|detection_boxes|mask_predictions)"
    r"|detections/(num_)?detection.*"
)


def smaller_masks(pipeline):
    """The reduced config's masks `MASK_SIZE` square."""
    predictor = pipeline.model.faster_rcnn.second_stage_box_predictor.mask_rcnn_box_predictor
    predictor.mask_height = MASK_SIZE
    predictor.mask_width = MASK_SIZE


def calibrate_first_uses(session, graph, *args, **kwargs):
    """`make_tf1_references.calibrate_batch_norms` on each batch norm's first use only.

    A Mask R-CNN graph runs the second-stage body twice with the same batch norms: on the
    proposals' crops, then on the detections' for the masks; setting the statistics from
    both in turn never settles (the detections move with them). The first use (the
    proposals, as in a Faster R-CNN) sets them."""

    def first_uses():
        seen = set()
        operations = []
        for operation in type(graph).get_operations(graph):
            if operation.type.startswith("FusedBatchNorm"):
                mean = operation.inputs[3].op.inputs[0].op.name
                if mean in seen:
                    continue
                seen.add(mean)
            operations.append(operation)
        return operations

    graph.get_operations = first_uses
    try:
        return _calibrate_batch_norms(session, graph, *args, **kwargs)
    finally:
        del graph.get_operations


_calibrate_batch_norms = make_tf1_references.calibrate_batch_norms


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or list(TF1_MASK_REFERENCES)
    make_tf1_references.calibrate_batch_norms = calibrate_first_uses
    for name in names:
        make_tf1_references.CONFIG_CHANGES[name] = smaller_masks
        make_tf1_references.make_reference(name, TF1_MASK_REFERENCES[name], OUTPUT_DIR)
        keep_detection_outputs(OUTPUT_DIR / name / "outputs.npz", KEPT_OUTPUTS)


if __name__ == "__main__":
    sys.exit(main())
