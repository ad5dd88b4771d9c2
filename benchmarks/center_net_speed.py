"""CenterNet MobileNetV2-FPN 512x512 speed and memory: kdet against the TF OD API, on CPU; and
kdet's CenterNet against kdet's SSD MobileNetV2 FPNLite 320 at inference.

Both CenterNets are built from the same config text (`CONFIG` below: the TF2 detection zoo's
`centernet_mobilenetv2fpn_512x512_coco17_od` model, 90 classes, `mobilenet_v2_fpn_sep_conv`,
separable head convolutions, random init) and measured on the same bundled photos resized to
512x512, with 1..3 random boxes each:
- training step, batch 2, Adam (every CenterNet sample config's optimizer): kdet
  `train_on_batch` (resize + normalize, forward, losses, gradients, update); the TF OD API's
  `model_lib_v2` step in a `tf.function` (learning phase 1, `provide_groundtruth`, `predict`,
  `loss` + regularization, gradients, update) on images its `preprocess` already made, as its
  input pipeline hands them over. The learning phase matters: the TF OD API calls its
  MobileNetV2 without `training`, so without it the body's batch norms would normalize with
  their moving statistics, a cheaper step than `model_lib_v2` trains; after the timed rounds
  the script checks that one more TF OD API step moves the moving statistics of all its batch
  norms (else it stops);
- inference, batch 1: kdet `tf.function(model.detect)`; the TF OD API's `preprocess` →
  `predict` → `postprocess` in a `tf.function` (what its exporter serves).
Then kdet's CenterNet inference against kdet's SSD MobileNetV2 FPNLite 320
(`ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config`, its own resize of the same 512x512
photo to 320x320 included), both `tf.function(model.detect)` at batch 1: the zoo lists the
CenterNet at 6 ms and the SSD at 22 ms (on a GPU).

The TF OD API runs in its own venv (`--tfod_python`, default `/work/tfod_ref/venv/bin/python`,
made by `tools/tfod_reference/setup_venv.sh`) as a subprocess driven one case at a time; its
MobileNetV2 would download ImageNet weights at depth multiplier 1, which the worker turns off
(random init on both sides). kdet runs in this process. Cases alternate within each round
after 2 warm-up calls, so load drift on a shared machine hits both alike; the tables report
medians of wall time and of CPU time (all threads of the process: the steadier ratio when other
jobs compete for the cores). Peak memory is each process's peak resident set (`ru_maxrss`,
model building and tracing included) after its inference and after its training rounds (kdet
builds the SSD only after those).

Usage:
    python benchmarks/center_net_speed.py [--rounds 5] [--tfod_python PATH]
"""

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[1])]
from ssd_speed import TorchWorker
from ssd_speed import describe_machine
from ssd_speed import forward_gflops
from ssd_speed import photos
from ssd_speed import print_table
from ssd_speed import synthetic_groundtruth
from ssd_speed import time_interleaved
from ssd_speed import timed
from versus import median_rows
from versus import time_versus
from versus import versus_cases
from versus import versus_rows

from kdet.configs import load_pipeline
from kdet.configs.model_builder import build_model_from_text

REPO = pathlib.Path(__file__).resolve().parents[1]
SSD_CONFIG = (REPO / "tests" / "data" / "tfod_configs"
              / "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config")
SIZE = 512
TRAIN_BATCH_SIZE = 2
NUM_CLASSES = 90
LEARNING_RATE = 0.001

# The model of the zoo's `centernet_mobilenetv2fpn_512x512_coco17_od` (its pipeline.config:
# tensorflow/models ships no sample config of it). `max_box_predictions` is the proto default.
CONFIG = """
model {
  center_net {
    num_classes: 90
    feature_extractor {
      type: "mobilenet_v2_fpn_sep_conv"
    }
    image_resizer {
      keep_aspect_ratio_resizer {
        min_dimension: 512
        max_dimension: 512
        pad_to_max_dimension: true
      }
    }
    use_depthwise: true
    object_detection_task {
      task_loss_weight: 1.0
      offset_loss_weight: 1.0
      scale_loss_weight: 0.1
      localization_loss {
        l1_localization_loss {
        }
      }
    }
    object_center_params {
      object_center_loss_weight: 1.0
      classification_loss {
        penalty_reduced_logistic_focal_loss {
          alpha: 2.0
          beta: 4.0
        }
      }
      min_box_overlap_iou: 0.7
      max_box_predictions: 100
    }
  }
}
"""

# Runs in the TF OD API venv: one case name per line on stdin ("train", "infer", "rss"); the
# wall and CPU seconds (or peak RSS in MB) back.
TFOD_WORKER = r"""
import json, os, resource, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import model_builder
from object_detection.models import center_net_mobilenet_v2_fpn_feature_extractor as extractor
from object_detection.protos import pipeline_pb2
spec = json.loads(sys.argv[1])

# At depth multiplier 1 the extractor asks Keras for ImageNet weights (a download): random init.
make_mobilenet_v2 = extractor.mobilenetv2.mobilenet_v2
extractor.mobilenetv2.mobilenet_v2 = lambda *a, **k: make_mobilenet_v2(*a, **{**k, "weights": None})

pipeline = pipeline_pb2.TrainEvalPipelineConfig()
text_format.Merge(spec["config"], pipeline)
tf.keras.utils.set_random_seed(0)
train_model = model_builder.build(pipeline.model, is_training=True)
infer_model = model_builder.build(pipeline.model, is_training=False)
images = tf.constant(np.load(spec["images"]), tf.float32)
train_images = images[: spec["train_batch_size"]]
boxes = [tf.constant(b, tf.float32) for b in spec["boxes"]]
classes = [tf.one_hot(tf.constant(c) - 1, spec["num_classes"]) for c in spec["labels"]]
weights = [tf.ones([len(c)], tf.float32) for c in spec["labels"]]
optimizer = tf.keras.optimizers.Adam(spec["learning_rate"])
preprocessed, true_shapes = train_model.preprocess(train_images)

@tf.function
def train_step():
    # As model_lib_v2's train step: the MobileNetV2 is called without `training`, so the
    # learning phase decides whether its batch norms train.
    tf.keras.backend.set_learning_phase(True)
    train_model.provide_groundtruth(groundtruth_boxes_list=boxes,
                                    groundtruth_classes_list=classes,
                                    groundtruth_weights_list=weights)
    with tf.GradientTape() as tape:
        prediction = train_model.predict(preprocessed, true_shapes)
        losses = list(train_model.loss(prediction, true_shapes).values())
        losses += train_model.regularization_losses()
        total = tf.add_n(losses)
    variables = train_model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return total

@tf.function
def detect(image):
    tf.keras.backend.set_learning_phase(False)
    shapes_in, shapes = infer_model.preprocess(image)
    return infer_model.postprocess(infer_model.predict(shapes_in, shapes), shapes)

infer_image = images[:1]
cases = {"train": lambda: train_step().numpy(),
         "infer": lambda: detect(infer_image)["num_detections"].numpy()}


def moved_batch_norms():
    # [moved, all]: the batch norms whose moving mean one more training step changes (all of
    # them when the step runs in training mode).
    moving = [v for v in train_model.variables if "moving_mean" in v.name]
    before = [v.numpy() for v in moving]
    cases["train"]()
    return [sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, moving)), len(moving)]

cases["infer"]()
n_params = sum(int(np.prod(v.shape)) for v in infer_model.variables)
print(json.dumps({"tf": tf.__version__, "params": n_params}), flush=True)
for line in sys.stdin:
    name = line.strip()
    if name in ("rss", "moved_batch_norms"):
        answer = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if name == "rss"
                  else moved_batch_norms())
        print(json.dumps(answer), flush=True)
        continue
    start, cpu = time.perf_counter(), time.process_time()
    cases[name]()
    print(json.dumps([time.perf_counter() - start, time.process_time() - cpu]), flush=True)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tfod_python", default="/work/tfod_ref/venv/bin/python")
    args = parser.parse_args(argv)
    print(describe_machine(), flush=True)

    images = photos(TRAIN_BATCH_SIZE, SIZE, SIZE)
    boxes, labels = synthetic_groundtruth(TRAIN_BATCH_SIZE, SIZE)
    valid = labels > 0
    with tempfile.TemporaryDirectory() as workdir:
        np.save(pathlib.Path(workdir) / "images.npy", images)
        # The worker has read the images once it reports its versions.
        worker = TorchWorker(args.tfod_python, TFOD_WORKER, {
            "config": CONFIG,
            "images": str(pathlib.Path(workdir) / "images.npy"),
            "boxes": [(b[v] / SIZE).tolist() for b, v in zip(boxes, valid)],
            "labels": [l[v].tolist() for l, v in zip(labels, valid)],
            "num_classes": NUM_CLASSES,
            "train_batch_size": TRAIN_BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
        })
    print(f"TF OD API (TF {worker.info['tf']}): {worker.info['params'] / 1e6:.2f} M values",
          flush=True)

    keras.utils.set_random_seed(0)
    model = build_model_from_text(CONFIG)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    workers = {"TF OD API": worker}
    cases, _ = versus_cases(model, images, {"boxes": boxes, "labels": labels}, workers)
    print(f"kdet: {model.count_params() / 1e6:.2f} M values", flush=True)
    try:
        times, peaks = time_versus(cases, workers, args.rounds, rss=True)
        moved, batch_norms = worker.request("moved_batch_norms")
    finally:
        worker.close()

    if moved != batch_norms or not batch_norms:
        raise RuntimeError(f"a TF OD API training step moved the statistics of {moved} of its "
                           f"{batch_norms} batch norms: its step does not run in training mode")
    print(f"TF OD API training step: all {batch_norms} batch norms' statistics moved")
    print(f"\n## CenterNet MobileNetV2-FPN {SIZE}x{SIZE}: kdet vs TF OD API, median of "
          f"{args.rounds} rounds\n")
    print_table(["case", "kdet", "TF OD API", "kdet / TF OD API"], versus_rows(times, peaks))

    ssd = load_pipeline(SSD_CONFIG, dtype_policy="float32").model
    ssd_detect = tf.function(ssd.detect)
    image = tf.constant(images[:1], tf.float32)
    ssd_detect(image)
    print(f"kdet SSD MobileNetV2 FPNLite 320: {ssd.count_params() / 1e6:.2f} M values",
          flush=True)
    versus = time_interleaved({
        "CenterNet": cases["infer"]["kdet"],
        "SSD": timed(lambda: ssd_detect(image)["num_detections"].numpy()),
    }, args.rounds)
    print(f"\n## kdet inference, batch 1: CenterNet MobileNetV2-FPN {SIZE} vs SSD MobileNetV2 "
          f"FPNLite 320, median of {args.rounds} rounds\n")
    gflops = forward_gflops(model, SIZE), forward_gflops(ssd, SIZE)
    print_table(["case", "CenterNet", "SSD", "CenterNet / SSD"],
                median_rows("inference, batch 1", versus, ("ms", "CPU ms"), 1000.0)
                + [["forward GFLOP per image", f"{gflops[0]:.2f}", f"{gflops[1]:.2f}",
                    f"{gflops[0] / gflops[1]:.2f}x"]])


if __name__ == "__main__":
    main()
