"""What the TF1 and TF2 Context R-CNN reference generators share (no TensorFlow mode switch,
so both import it): the reference, its tiny context, the seeded context inputs, the model
builder wrapper that gives `predict` the context as side inputs, and the outputs kept."""

import functools
import re

import numpy as np
import tensorflow as tf
from reference_common import Reference

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


def tiny_context(context_config):
    """Sets a `context_config` message to the tiny context: `CONTEXT_FEATURES` x
    `CONTEXT_FEATURE_LENGTH`, its attention `BOTTLENECK_DIMENSION` deep."""
    context_config.max_num_context_features = CONTEXT_FEATURES
    context_config.context_feature_length = CONTEXT_FEATURE_LENGTH
    context_config.attention_bottleneck_dimension = BOTTLENECK_DIMENSION


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


def keep_context_outputs(path, features, valid_size):
    """Adds the context inputs to the reference's `outputs.npz` at `path` and keeps only
    `KEPT_OUTPUTS` of it."""
    from make_mask_rcnn_references import keep_detection_outputs

    outputs = dict(np.load(path))
    outputs.update(context_features=features, valid_context_size=valid_size)
    np.savez_compressed(path, **outputs)
    keep_detection_outputs(path, KEPT_OUTPUTS)
