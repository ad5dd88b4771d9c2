"""Make the small TF OD API TF1 (slim) Context R-CNN reference for kdet's checkpoint parity test.

Runs inside the reference venv (the TF OD API's own code, never kdet's), after
`make_references.py` made `photo.png`:

    /work/tfod_ref/venv/bin/python tools/tfod_reference/make_tf1_context_rcnn_references.py

The `context_rcnn_resnet101_snapshot_serengeti` sample config as
`make_tf1_references.make_reference` reduces a Faster R-CNN (128 px, 3 classes, 16 proposals,
20 detections, `first_stage_box_predictor_depth: 16`, its slim ResNet-101 0.03125 wide), with
a tiny context: `CONTEXT_FEATURES` rows of `CONTEXT_FEATURE_LENGTH` values and
`attention_bottleneck_dimension: BOTTLENECK_DIMENSION`; everything else of the config (one head
and layer of TF1 attention, `POST_BOX_CLASSIFIER`, temperature 0.01) is kept. In TF1 graph mode
`ContextRCNNMetaArch` computes the attention with `context_rcnn_lib` (not the TF2
`AttentionBlock`). The photo's context features (seeded N(0, 1), the last row padding:
`valid_context_size` `VALID_CONTEXT_SIZE`) are constants of the graph, given to `predict` as
its side inputs, and saved in outputs.npz as `context_features` and `valid_context_size`. It
writes `tests/data/tfod_reference/tf1_context_rcnn_resnet101/` as `make_tf1_references.py`
writes its folders (~0.46 MB), outputs.npz keeping what the parity test reads (`KEPT_OUTPUTS`:
not the box classifier features, 0.17 MB, whose pooled average the class and box predictions
are linear in).
"""

import sys

import make_tf1_references  # first: it switches TensorFlow to graph mode
from context_rcnn_reference_inputs import REFERENCE
from context_rcnn_reference_inputs import context_inputs
from context_rcnn_reference_inputs import keep_context_outputs
from context_rcnn_reference_inputs import tiny_context
from context_rcnn_reference_inputs import with_context
from reference_common import OUTPUT_DIR

NAME = "tf1_context_rcnn_resnet101"


def main():
    features, valid_size = context_inputs(REFERENCE.seed)
    builder = make_tf1_references.model_builder
    builder.build = with_context(builder.build, features, valid_size)
    make_tf1_references.CONFIG_CHANGES[NAME] = (
        lambda pipeline: tiny_context(pipeline.model.faster_rcnn.context_config)
    )
    make_tf1_references.make_reference(NAME, REFERENCE, OUTPUT_DIR)
    keep_context_outputs(OUTPUT_DIR / NAME / "outputs.npz", features, valid_size)


if __name__ == "__main__":
    sys.exit(main())
