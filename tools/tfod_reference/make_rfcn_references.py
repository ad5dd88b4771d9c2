"""Run the TF OD API's R-FCN building blocks on seeded inputs, for kdet's R-FCN parity test.

Runs inside the reference venv made by `setup_venv.sh` (the TF OD API's own code, never kdet's):

    TF_USE_LEGACY_KERAS=1 /work/tfod_ref/venv/bin/python tools/tfod_reference/make_rfcn_references.py

and writes `tests/data/tfod_reference/rfcn.npz`, read by `tests/models/faster_rcnn/test_rfcn.py`:

- `crop/<case>/`: `features` `[B, h, w, C]`, `boxes` `[B, R, 4]` (normalized, inside the map,
  one flipped, one of zero size), `crop_size` `[2]`, `num_spatial_bins` `[2]` and
  `pooled` `[B, R, C / bins]`: `ops.batch_position_sensitive_crop_regions(..., global_pool=True)`
  squeezed;
- `predictor/`: `features`, `boxes`, the `RfcnKerasBoxPredictor` arguments (`num_classes`,
  `depth`, `crop_size`, `num_spatial_bins`; conv hyperparams: truncated normal 0.1, ReLU, no
  batch norm), the kernels and biases of its `reduce_depth_conv`, `refined_locations_conv` and
  `class_predictions_conv` (`<layer>/kernel`, `<layer>/bias`), and its outputs
  `box_encodings` `[B * R, num_classes, 4]` and `class_logits` `[B * R, num_classes + 1]`.

Everything is seeded (`numpy.random.default_rng(SEED)`); TF OD API functions run eagerly.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pathlib

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import hyperparams_builder
from object_detection.predictors import rfcn_keras_box_predictor
from object_detection.protos import hyperparams_pb2
from object_detection.utils import ops

SEED = 19
OUTPUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tfod_reference"
CROP_CASES = {
    "bins_3x3": ((6, 6), (3, 3)),
    "bins_2x3": ((4, 9), (2, 3)),
}
HYPERPARAMS = """
  op: CONV
  activation: RELU
  regularizer { l2_regularizer { weight: 0.0 } }
  initializer { truncated_normal_initializer { stddev: 0.1 } }
"""


def _boxes(rng, batch, count):
    # Inside the map, as the (clipped) proposals are: beyond its edges the TF OD API's
    # static-shape crop (`matmul_crop_and_resize`, a RoIAlign) weights each of the 4 neighbours
    # of a sample apart, `tf.image.crop_and_resize` zeroes the whole sample.
    boxes = rng.uniform(0.0, 0.95, (batch, count, 4)).astype(np.float32)
    boxes[..., 2:] = np.maximum(boxes[..., 2:], boxes[..., :2] + 0.05)
    boxes[0, 0] = [0.7, 0.2, 0.3, 0.6]  # flipped vertically
    boxes[-1, -1] = [0.4, 0.4, 0.4, 0.4]  # zero size
    return boxes


def crop_cases(rng, out):
    for case, (crop_size, bins) in CROP_CASES.items():
        features = rng.normal(size=(2, 7, 9, bins[0] * bins[1] * 4)).astype(np.float32)
        boxes = _boxes(rng, 2, 5)
        pooled = ops.batch_position_sensitive_crop_regions(
            tf.constant(features), tf.constant(boxes), crop_size=list(crop_size),
            num_spatial_bins=list(bins), global_pool=True,
        )
        prefix = f"crop/{case}/"
        out[prefix + "features"] = features
        out[prefix + "boxes"] = boxes
        out[prefix + "crop_size"] = np.array(crop_size)
        out[prefix + "num_spatial_bins"] = np.array(bins)
        out[prefix + "pooled"] = tf.squeeze(pooled, [2, 3]).numpy()


def predictor_case(rng, out):
    num_classes, depth, crop_size, bins = 3, 8, (4, 4), (2, 2)
    proto = hyperparams_pb2.Hyperparams()
    text_format.Merge(HYPERPARAMS, proto)
    tf.random.set_seed(SEED)
    predictor = rfcn_keras_box_predictor.RfcnKerasBoxPredictor(
        is_training=False, num_classes=num_classes,
        conv_hyperparams=hyperparams_builder.KerasLayerHyperparams(proto),
        freeze_batchnorm=False, num_spatial_bins=list(bins), depth=depth,
        crop_size=list(crop_size), box_code_size=4,
    )
    features = rng.normal(size=(2, 6, 7, 5)).astype(np.float32)
    boxes = _boxes(rng, 2, 4)
    predictions = predictor([tf.constant(features)], proposal_boxes=tf.constant(boxes))
    prefix = "predictor/"
    out[prefix + "features"] = features
    out[prefix + "boxes"] = boxes
    out[prefix + "num_classes"] = np.array(num_classes)
    out[prefix + "depth"] = np.array(depth)
    out[prefix + "crop_size"] = np.array(crop_size)
    out[prefix + "num_spatial_bins"] = np.array(bins)
    for variable in predictor.variables:
        layer, name = variable.name.split("/")[-2:]
        out[f"{prefix}{layer}/{name.split(':')[0]}"] = variable.numpy()
    out[prefix + "box_encodings"] = tf.squeeze(
        predictions[rfcn_keras_box_predictor.BOX_ENCODINGS][0], 1
    ).numpy()
    out[prefix + "class_logits"] = tf.squeeze(
        predictions[rfcn_keras_box_predictor.CLASS_PREDICTIONS_WITH_BACKGROUND][0], 1
    ).numpy()


def main():
    rng = np.random.default_rng(SEED)
    out = {}
    crop_cases(rng, out)
    predictor_case(rng, out)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT / "rfcn.npz", **out)
    for key, value in sorted(out.items()):
        print(key, value.shape)


if __name__ == "__main__":
    main()
