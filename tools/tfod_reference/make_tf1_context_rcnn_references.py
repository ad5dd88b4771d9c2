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

import functools
import re
import sys

import make_tf1_references  # first: it switches TensorFlow to graph mode
import numpy as np
import tensorflow as tf
from make_mask_rcnn_references import keep_detection_outputs
from reference_common import OUTPUT_DIR
from reference_common import Reference

NAME = "tf1_context_rcnn_resnet101"
REFERENCE = Reference(
    "context_rcnn_resnet101_snapshot_serengeti.config",
    head_depth=16,
    resnet_depth_multiplier=0.03125,
    seed=24,
)
CONTEXT_FEATURES, CONTEXT_FEATURE_LENGTH, BOTTLENECK_DIMENSION = 4, 8, 8
VALID_CONTEXT_SIZE = 3
KEPT_OUTPUTS = re.compile(
    r"true_image_shapes|context_features|valid_context_size"
    r"|predict/(image_shape|anchors|rpn_.*|num_proposals|proposal_boxes_normalized"
    r"|class_predictions_with_background|refined_box_encodings)"
    r"|detections/(num_)?detection_(boxes|scores|classes)|detections/num_detections"
)


def tiny_context(pipeline):
    """The reduced config's context `CONTEXT_FEATURES` x `CONTEXT_FEATURE_LENGTH`, its
    attention `BOTTLENECK_DIMENSION` deep."""
    context = pipeline.model.faster_rcnn.context_config
    context.max_num_context_features = CONTEXT_FEATURES
    context.context_feature_length = CONTEXT_FEATURE_LENGTH
    context.attention_bottleneck_dimension = BOTTLENECK_DIMENSION


def context_inputs(seed):
    """The photo's seeded context: `(features [1, M, D] float32, valid size [1] int32)`."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((1, CONTEXT_FEATURES, CONTEXT_FEATURE_LENGTH))
    features[:, VALID_CONTEXT_SIZE:] = 0.0
    return features.astype(np.float32), np.array([VALID_CONTEXT_SIZE], np.int32)


def with_context(build, features, valid_size):
    """`model_builder.build` whose models' `predict` gets the context as side inputs."""

    def build_with_context(*args, **kwargs):
        model = build(*args, **kwargs)
        model.predict = functools.partial(
            model.predict,
            context_features=tf.constant(features),
            valid_context_size=tf.constant(valid_size),
        )
        return model

    return build_with_context


def main():
    features, valid_size = context_inputs(REFERENCE.seed)
    builder = make_tf1_references.model_builder
    builder.build = with_context(builder.build, features, valid_size)
    make_tf1_references.CONFIG_CHANGES[NAME] = tiny_context
    make_tf1_references.make_reference(NAME, REFERENCE, OUTPUT_DIR)
    path = OUTPUT_DIR / NAME / "outputs.npz"
    outputs = dict(np.load(path))
    outputs.update(context_features=features, valid_context_size=valid_size)
    np.savez_compressed(path, **outputs)
    keep_detection_outputs(path, KEPT_OUTPUTS)


if __name__ == "__main__":
    sys.exit(main())
