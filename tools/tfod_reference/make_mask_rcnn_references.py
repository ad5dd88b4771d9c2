"""Make the small TF OD API TF2 Mask R-CNN reference for kdet's checkpoint parity test.

Runs inside the reference venv (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_mask_rcnn_references.py

The TF2 zoo's one Mask R-CNN (`mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8`) has an
Inception-ResNet-v2 body with no width knob (a random-init checkpoint is ~250 MB), so the
reference is the reduced `faster_rcnn_resnet50` reference of `make_references.py` (128 px,
3 classes, 16 proposals, 20 detections), narrower (ResNet-50 0.03125 wide instead of 0.0625),
turned into a Mask R-CNN with the zoo config's mask fields: `number_of_stages: 3`,
`predict_instance_masks: true`, `mask_prediction_conv_depth: 0` (automatic: 8 channels here),
4 mask convolutions with the zoo config's `conv_hyperparams`,
`second_stage_mask_prediction_loss_weight: 4.0`, `resize_masks: false`; only the mask size
is reduced, 33 to 15. It writes `tests/data/tfod_reference/mask_rcnn_resnet50/` (~550 KB) as
`make_references.py` writes its folders: checkpoint, pipeline.config, variables.txt and
outputs.npz with the whole `predict` dictionary (`predict/mask_predictions`: every class's
mask logits at the detection boxes) and, of the `postprocess` and exported SavedModel outputs,
the detections (`detections/detection_masks`, `exported/detection_masks`: each detection's
mask probabilities in its box's frame).

With `--full_size CONFIG... --output_dir DIR` it instead builds each given full-size TF2 config
(e.g. the zoo's `mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8.config`) with its
initializers' random weights and saves only its checkpoint as `DIR/<config name>/ckpt-0`
(~250 MB: not for committing), for a one-off check that kdet restores every variable.
"""

import argparse
import contextlib
import dataclasses
import os
import pathlib
import re
import sys
import time

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import make_references
import tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import model_builder
from object_detection.utils import config_util
from reference_common import OUTPUT_DIR
from reference_common import REFERENCES
from reference_common import flatten
from reference_common import reduced_config

# The mask fields of the TF2 zoo's mask_rcnn_inception_resnet_v2_1024x1024_coco17_gpu-8.config,
# with 15x15 masks instead of 33x33.
MASK_FIELDS = """
  mask_height: 15
  mask_width: 15
  mask_prediction_conv_depth: 0
  mask_prediction_num_conv_layers: 4
  conv_hyperparams {
    op: CONV
    regularizer { l2_regularizer { weight: 0.0 } }
    initializer { truncated_normal_initializer { stddev: 0.01 } }
  }
  predict_instance_masks: true
"""

MASK_REFERENCES = {
    "mask_rcnn_resnet50": dataclasses.replace(
        REFERENCES["faster_rcnn_resnet50"], resnet_depth_multiplier=0.03125, seed=21
    ),
}

# What outputs.npz keeps: the whole `predict` dictionary, and of the `postprocess` and exported
# dictionaries (which repeat `predict`'s tensors) only the detections.
KEPT_OUTPUTS = re.compile(r"true_image_shapes|predict/.*|(detections|exported)/(num_)?detection.*")


def mask_rcnn_config(reference):
    """`reduced_config(reference)` (a Faster R-CNN) with the third stage and its mask head."""
    pipeline = reduced_config(reference)
    model = pipeline.model.faster_rcnn
    model.number_of_stages = 3
    model.second_stage_mask_prediction_loss_weight = 4.0
    model.resize_masks = False
    predictor = model.second_stage_box_predictor.mask_rcnn_box_predictor
    text_format.Merge(MASK_FIELDS, predictor)
    return pipeline


def run_model_with_features(model, image):
    """`make_references.run_model`, plus the features the RPN and the crops read
    (`predict/rpn_features_to_crop/0`), which a third-stage `predict` leaves out of its dict."""
    out = _run_model(model, image)
    preprocessed, _ = model.preprocess(image)
    _, features, _, _ = model._extract_rpn_feature_maps(preprocessed)
    flatten("predict/rpn_features_to_crop", features, out)
    return out


_run_model = make_references.run_model


@contextlib.contextmanager
def mask_rcnn_references():
    """Make `make_references` build its models from `mask_rcnn_config` and run them with
    `run_model_with_features`."""
    make_references.reduced_config = mask_rcnn_config
    make_references.run_model = run_model_with_features
    try:
        yield
    finally:
        make_references.reduced_config = reduced_config
        make_references.run_model = _run_model


def save_full_size(config_path, output_dir):
    """Build a full-size config with random weights; save `output_dir/<name>/ckpt-0`.

    The variables are made by `predict` on a 128x128 input (the weights do not depend on the
    input size; the full 1024 px would only cost memory)."""
    tf.keras.backend.clear_session()
    start = time.perf_counter()
    configs = config_util.get_configs_from_pipeline_file(str(config_path))
    model = model_builder.build(configs["model"], is_training=False)
    model.predict(tf.zeros([1, 128, 128, 3]), tf.constant([[128, 128, 3]]))
    target = output_dir / pathlib.Path(config_path).stem
    target.mkdir(parents=True, exist_ok=True)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(target), max_to_keep=1
    ).save(checkpoint_number=0)
    values = sum(int(tf.size(variable)) for variable in model.variables)
    print(
        f"{target}: {len(model.variables)} variables, {values} values, "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help=f"references to make (default: all of {list(MASK_REFERENCES)})"
    )
    parser.add_argument("--full_size", nargs="*", default=[])
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    for config_path in args.full_size:
        save_full_size(config_path, args.output_dir)
    if args.full_size:
        return
    with mask_rcnn_references():
        for name in args.names or MASK_REFERENCES:
            make_references.make_reference(name, MASK_REFERENCES[name], args.output_dir)
            keep_detection_outputs(args.output_dir / name / "outputs.npz")


def keep_detection_outputs(path, kept=KEPT_OUTPUTS):
    """Rewrite `outputs.npz` with the keys that the regular expression `kept` matches only."""
    outputs = dict(np.load(path))
    np.savez_compressed(path, **{k: v for k, v in outputs.items() if kept.fullmatch(k)})


if __name__ == "__main__":
    sys.exit(main())
