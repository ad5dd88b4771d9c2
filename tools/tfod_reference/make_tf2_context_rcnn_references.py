"""Make the small TF OD API TF2 (Keras) Context R-CNN reference for kdet's checkpoint parity test.

Runs inside the reference venv (the TF OD API's own code, never kdet's), after
`make_references.py` made `photo.png`:

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \\
        tools/tfod_reference/make_tf2_context_rcnn_references.py

The `context_rcnn_resnet101_snapshot_serengeti` sample config with the TF2 Keras extractor
(`faster_rcnn_resnet101_keras`), reduced as `make_references.make_reference` reduces a Faster
R-CNN (128 px, 3 classes, 16 proposals, `first_stage_box_predictor_depth` 16, ResNet-101
0.03125 wide) and with the tiny context of `make_tf1_context_rcnn_references.py`
(`context_rcnn_reference_inputs.py`: `CONTEXT_FEATURES` rows of `CONTEXT_FEATURE_LENGTH`
values, attention `BOTTLENECK_DIMENSION` deep). In TF2 `ContextRCNNMetaArch` computes its attention with
`context_rcnn_lib_tf2.AttentionBlock` (`_context_feature_extract_fn`: `_query_proj`,
`_key_proj`, `_val_proj`, `_feature_proj`, each a Dense with bias and a batch norm). Every
`predict` (the variable-creating one included) gets the photo's seeded context (N(0, 1), the
last row padding: `valid_context_size` `VALID_CONTEXT_SIZE`) as side inputs, saved in
outputs.npz as `context_features` and `valid_context_size`. It writes
`tests/data/tfod_reference/tf2_context_rcnn_resnet101/` as `make_references.py` writes its
folders, without the export (`exporter_lib_v2`'s `image_tensor` signature has no context
input), outputs.npz keeping what the parity test reads (`KEPT_OUTPUTS`).
"""

import sys

import make_references
from context_rcnn_reference_inputs import REFERENCE
from context_rcnn_reference_inputs import context_inputs
from context_rcnn_reference_inputs import keep_context_outputs
from context_rcnn_reference_inputs import tiny_context
from context_rcnn_reference_inputs import with_context
from reference_common import OUTPUT_DIR
from reference_common import reduced_config

NAME = "tf2_context_rcnn_resnet101"


def keras_context_rcnn_config(reference):
    """The reduced config with the TF2 Keras ResNet-101 and the tiny context."""
    pipeline = reduced_config(reference)
    faster_rcnn = pipeline.model.faster_rcnn
    faster_rcnn.feature_extractor.type = "faster_rcnn_resnet101_keras"
    # `tf.image.crop_and_resize`, as kdet crops: the TF OD API's matmul crop differs from it
    # on a proposal reaching the feature map's right edge exactly (measured with the sample's
    # `use_matmul_crop_and_resize: true`: 7.2 on one of the 16 crops).
    faster_rcnn.use_matmul_crop_and_resize = False
    tiny_context(faster_rcnn.context_config)
    return pipeline


def main():
    features, valid_size = context_inputs(REFERENCE.seed)
    builder = make_references.model_builder
    builder.build = with_context(builder.build, features, valid_size)
    make_references.reduced_config = keras_context_rcnn_config
    make_references.export_and_run = lambda *args: {}
    make_references.make_reference(NAME, REFERENCE, OUTPUT_DIR)
    keep_context_outputs(OUTPUT_DIR / NAME / "outputs.npz", features, valid_size)


if __name__ == "__main__":
    sys.exit(main())
