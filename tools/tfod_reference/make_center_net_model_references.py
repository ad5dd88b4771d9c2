"""Make a small TF OD API reference of a whole CenterNet model (extractor and every head, with
a keypoint task) for kdet's checkpoint parity test; optionally check the full-size layouts.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python \
        tools/tfod_reference/make_center_net_model_references.py

The TF OD API's `model_builder.build` makes the CenterNet of `CONFIG` (a pipeline config text:
`mobilenet_v2_fpn_sep_conv` at depth multiplier 0.1, 3 classes, small heads, one keypoint
task of 4 keypoints on class 2 with per-keypoint offsets), which gets seeded random weights
(batch norms calibrated on the photo as `make_references.py` does; every bias but the
heatmaps' drawn from N(0, 0.05), the heatmaps' N(-2.19, 0.5) so that their scores spread
around the keypoint candidate threshold) and runs on the top-left 96x128 of `photo.png`
(the resizer's size, so it resizes nothing). It writes
`tests/data/tfod_reference/center_net_mobilenet_v2_fpn_model/`:
- `pipeline.config` (the config text; its `keypoint_label_map_path` is `label_map.pbtxt`,
  the file beside it: run from that folder, or replace the path) and `label_map.pbtxt`;
- `checkpoint/ckpt-0.*`: `tf.train.Checkpoint(model=<the CenterNetMetaArch>)` saved by a
  `tf.train.CheckpointManager`, as the TF2 zoo archives hold it;
- `outputs.npz`: `predict/<head>/<i>` for every head output of the TF OD API's `predict`
  (`object_center`, `box/scale`, `box/offset`, `human_pose/keypoint/heatmap`, …) and
  `predict/preprocessed_inputs`, and `detections/<key>` of its `postprocess` (boxes
  normalized, classes 0-based, `detection_keypoints` normalized `(y, x)`,
  `detection_keypoint_scores`);
- `variables.txt`: `name<TAB>dtype<TAB>shape` of every checkpoint entry.

With `--full_size CONFIG... --output_dir DIR` it instead builds each given full-size config
(a TF2 zoo CenterNet sample config; its keypoint label map path replaced by `--label_map`)
with random weights and saves only its checkpoint as `DIR/<config name>/ckpt-0` (hundreds of
MB: not for committing), for a one-off check that kdet restores every variable.
"""

import argparse
import os
import pathlib
import shutil
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from make_references import calibrate_batch_norms
from object_detection.builders import model_builder
from object_detection.models import center_net_mobilenet_v2_fpn_feature_extractor as mobilenet_fpn
from object_detection.models.keras_models import mobilenet_v2
from object_detection.protos import pipeline_pb2
from reference_common import OUTPUT_DIR
from reference_common import flatten
from reference_common import load_photo

NAME = "center_net_mobilenet_v2_fpn_model"
SEED = 51
CROP = (96, 128)
HEATMAP_BIAS = -2.19
LABEL_MAP = """item { id: 1 name: "cat" }
item {
  id: 2
  name: "person"
  keypoints { id: 0 label: "nose" }
  keypoints { id: 1 label: "left_eye" }
  keypoints { id: 2 label: "right_eye" }
  keypoints { id: 3 label: "tail" }
}
item { id: 3 name: "dog" }
"""
CONFIG = """model {
  center_net {
    num_classes: 3
    feature_extractor {
      type: "mobilenet_v2_fpn_sep_conv"
      depth_multiplier: 0.1
      use_separable_conv: true
      upsampling_interpolation: "bilinear"
      channel_means: [123.675, 116.28, 103.53]
      channel_stds: [58.395, 57.12, 57.375]
    }
    image_resizer {
      fixed_shape_resizer { height: 96 width: 128 }
    }
    object_detection_task {
      localization_loss { l1_localization_loss { } }
      scale_head_params { num_filters: 8 kernel_sizes: 3 }
      offset_head_params { num_filters: 8 kernel_sizes: 3 }
    }
    object_center_params {
      max_box_predictions: 20
      classification_loss { penalty_reduced_logistic_focal_loss { alpha: 2.0 beta: 4.0 } }
      center_head_params { num_filters: [16, 8] kernel_sizes: [3, 1] }
    }
    keypoint_label_map_path: "label_map.pbtxt"
    keypoint_estimation_task {
      task_name: "human_pose"
      loss {
        localization_loss { l1_localization_loss { } }
        classification_loss { penalty_reduced_logistic_focal_loss { alpha: 2.0 beta: 4.0 } }
      }
      keypoint_class_name: "person"
      keypoint_label_to_std { key: "nose" value: 0.5 }
      keypoint_label_to_std { key: "tail" value: 1.5 }
      keypoint_regression_loss_weight: 0.1
      offset_peak_radius: 3
      per_keypoint_offset: true
      num_candidates_per_keypoint: 20
      heatmap_head_params { num_filters: 16 kernel_sizes: 3 }
      offset_head_params { num_filters: 8 kernel_sizes: 3 }
      regress_head_params { num_filters: 8 kernel_sizes: 3 }
    }
  }
}
"""


def build(config_text, is_training=False):
    pipeline = pipeline_pb2.TrainEvalPipelineConfig()
    # Some sample configs' input readers name extensions the sdist's protos lack.
    text_format.Merge(config_text, pipeline, allow_unknown_extension=True)
    return model_builder.build(pipeline.model, is_training=is_training)


def _heatmap_biases(model):
    """The output biases of the center and keypoint heatmap heads (their `bias_fill`)."""
    found = []
    for name, heads in model.prediction_head_dict.items():
        if name == "object_center" or name.endswith("keypoint/heatmap"):
            found += [head.layers[-1].bias for head in heads]
    return {id(bias) for bias in found}


def randomize_biases(model, rng):
    """Every convolution bias from N(0, 0.05), the heatmaps' from N(-2.19, 0.5): scores around
    0.1, the default keypoint candidate threshold, so candidates both pass and fail it."""
    norms = {
        id(v) for layer in model.submodules if hasattr(layer, "moving_mean") for v in layer.weights
    }
    heatmaps = _heatmap_biases(model)
    count = 0
    for variable in model.trainable_variables:
        if id(variable) in norms or not variable.name.split("/")[-1].startswith("bias"):
            continue
        if id(variable) in heatmaps:
            variable.assign(HEATMAP_BIAS + 0.5 * rng.standard_normal(variable.shape))
        else:
            variable.assign(0.05 * rng.standard_normal(variable.shape))
        count += 1
    return count


def level_outputs(model, image):
    """Shift output biases so that the random model's detections exercise the
    post-processing: each class's largest center logit on the photo becomes `1 - 0.3 *
    class` (the top detections mix the classes, the keypoint class among them), each
    keypoint's largest heatmap logit 1.5 (peaks both above and below the candidate threshold
    0.1), and the box sizes average 6 output cells (boxes that hold keypoint candidates)."""
    outputs = model.predict(*model.preprocess(image))
    for name, heads in model.prediction_head_dict.items():
        values = outputs[name][-1].numpy()
        values = values.reshape(-1, values.shape[-1])
        if name == "object_center":
            shift = 1.0 - 0.3 * np.arange(values.shape[-1]) - values.max(axis=0)
        elif name.endswith("keypoint/heatmap"):
            shift = 1.5 - values.max(axis=0)
        elif name == "box/scale":
            shift = 6.0 - values.mean(axis=0)
        else:
            continue
        for head in heads:
            head.layers[-1].bias.assign_add(shift)


def run(model, image):
    preprocessed, true_image_shapes = model.preprocess(image)
    prediction = model.predict(preprocessed, true_image_shapes)
    detections = model.postprocess(prediction, true_image_shapes)
    out = {}
    for key, value in prediction.items():
        if key not in ("extracted_features", "preprocessed_inputs"):
            flatten(f"predict/{key}", value, out)
    for key, value in detections.items():
        if key != "detection_boxes_strided":  # boxes in output cells
            flatten(f"detections/{key}", value, out)
    return out


def make_reference(output_dir):
    target = output_dir / NAME
    if target.exists():
        shutil.rmtree(target)
    (target / "checkpoint").mkdir(parents=True)
    (target / "label_map.pbtxt").write_text(LABEL_MAP)
    (target / "pipeline.config").write_text(CONFIG)
    os.chdir(target)  # the config names the label map relative to its folder
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    model = build(CONFIG)
    image = load_photo()[:, : CROP[0], : CROP[1]]
    preprocessed, true_image_shapes = model.preprocess(image)
    model.predict(preprocessed, true_image_shapes)  # creates the variables
    n_norms = calibrate_batch_norms(model, preprocessed, true_image_shapes, rng)
    n_biases = randomize_biases(model, rng)
    level_outputs(model, image)
    outputs = run(model, image)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(target / "checkpoint"), max_to_keep=1
    )
    manager.save(checkpoint_number=0)
    prefix = str(target / "checkpoint" / "ckpt-0")
    listing = tf.train.list_variables(prefix)
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    (target / "variables.txt").write_text(
        "".join(f"{n}\t{dtypes[n].name}\t{list(s)}\n" for n, s in listing)
    )
    _check_restore(prefix, image, outputs)
    np.savez_compressed(target / "outputs.npz", **outputs)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    scores = outputs["detections/detection_scores"][0]
    kpt_scores = outputs["detections/detection_keypoint_scores"][0]
    print(
        f"{NAME}: {len(model.variables)} variables, {len(listing)} checkpoint entries, "
        f"{n_norms} batch norms, {n_biases} biases; scores {scores.max():.3f}..{scores.min():.3f}"
        f", keypoint scores {kpt_scores.max():.3f}..{kpt_scores.min():.3f}; "
        f"folder {size / 1e3:.0f} KB",
        flush=True,
    )


def _check_restore(prefix, image, expected):
    """A new model of the config restored from the checkpoint computes the same outputs."""
    tf.keras.backend.clear_session()
    model = build(CONFIG)
    status = tf.train.Checkpoint(model=model).restore(prefix)
    outputs = run(model, image)
    status.assert_existing_objects_matched()
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key], value, atol=1e-5, err_msg=key)


def _no_imagenet_download(builder):
    """`mobilenet_v2.mobilenet_v2` that never asks for ImageNet weights (random init, offline)."""

    def mobilenet(*args, **kwargs):
        return builder(*args, **{**kwargs, "weights": None})

    return mobilenet


def save_full_size(config_path, label_map, output_dir):
    """Build a full-size config with random weights; save `output_dir/<name>/ckpt-0`.

    The variables are made by `predict` on a 128x128 input (the weights do not depend on the
    input size; the full 512 or 1024 px would only cost memory)."""
    tf.keras.backend.clear_session()
    text = pathlib.Path(config_path).read_text().replace("PATH_TO_BE_CONFIGURED", label_map)
    start = time.perf_counter()
    model = build(text)
    model.predict(tf.zeros([1, 128, 128, 3]), tf.constant([[128, 128, 3]]))
    target = output_dir / pathlib.Path(config_path).stem
    target.mkdir(parents=True, exist_ok=True)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(target), max_to_keep=1
    ).save(checkpoint_number=0)
    print(
        f"{target}: {len(model.variables)} variables, {time.perf_counter() - start:.0f} s",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", type=pathlib.Path, default=OUTPUT_DIR)
    parser.add_argument("--full_size", nargs="*", default=[])
    parser.add_argument("--label_map", default="")
    args = parser.parse_args(argv)
    output_dir = args.output_dir.resolve()
    if not args.full_size:
        make_reference(output_dir)
    mobilenet_fpn.mobilenetv2.mobilenet_v2 = _no_imagenet_download(mobilenet_v2.mobilenet_v2)
    for config_path in args.full_size:
        save_full_size(config_path, args.label_map, output_dir)


if __name__ == "__main__":
    sys.exit(main())
