"""EfficientDet-D0 speed and memory, side by side: kdet against the TF OD API, on CPU.

Both models are built from the same TF OD API sample config
(`ssd_efficientdet_d0_512x512_coco17_tpu-8.config`: 512x512, 90 classes, random init) and
measured on the same bundled photos resized to 512x512, with 1..3 random boxes each:
- training step, batch 2, momentum SGD: kdet `train_on_batch` (resize + normalize, forward,
  loss, gradients, update); the TF OD API's `model_lib_v2` step in a `tf.function`
  (learning phase 1, `provide_groundtruth`, `predict`, `loss` + regularization, gradients,
  update) on images its `preprocess` already made, as its input pipeline hands them over. The
  learning phase matters: the TF OD API calls its EfficientNet without `training`, so without
  it the body's batch norms would normalize with their moving statistics and drop connect be
  off, a cheaper step than `model_lib_v2` trains;
- inference, batch 1: kdet `tf.function(model.detect)`; the TF OD API's `preprocess` →
  `predict` → `postprocess` in a `tf.function` (what its exporter serves).
The TF OD API runs in its own venv (`--tfod_python`, default `/work/tfod_ref/venv/bin/python`,
made by `tools/tfod_reference/setup_venv.sh`) as a subprocess driven one case at a time
(`ssd_speed.TorchWorker`); kdet runs in this process. Cases alternate within each round, so
load drift on a shared machine hits both alike; the table reports medians of wall time and of
CPU time (all threads of the process: it moves less than wall time when other jobs compete
for the two cores, so its ratio is the steadier one on a shared machine). Peak memory is each
process's peak resident set (`ru_maxrss`) after its inference rounds and after its training
rounds (model building and tracing included).

Usage:
    python benchmarks/efficientdet_speed.py [--rounds 3] [--tfod_python PATH]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[1])]
from ssd_speed import TorchWorker
from ssd_speed import describe_machine
from ssd_speed import photos
from ssd_speed import print_table
from ssd_speed import synthetic_groundtruth
from versus import time_versus
from versus import versus_cases
from versus import versus_rows

from kdet.configs import load_pipeline

CONFIG = (pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "tfod_configs"
          / "ssd_efficientdet_d0_512x512_coco17_tpu-8.config")
SIZE = 512
TRAIN_BATCH_SIZE = 2
NUM_CLASSES = 90
LEARNING_RATE = 0.01

# Runs in the TF OD API venv: one case name per line on stdin ("train", "infer", "rss"); the
# wall and CPU seconds (or peak RSS in MB) back.
TFOD_WORKER = r"""
import json, os, resource, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import model_builder
from object_detection.core import standard_fields as fields
from object_detection.protos import pipeline_pb2
spec = json.loads(sys.argv[1])
pipeline = pipeline_pb2.TrainEvalPipelineConfig()
text_format.Merge(open(spec["config"]).read(), pipeline)
tf.keras.utils.set_random_seed(0)
train_model = model_builder.build(pipeline.model, is_training=True)
infer_model = model_builder.build(pipeline.model, is_training=False)
images = tf.constant(np.load(spec["images"]), tf.float32)
train_images = images[: spec["train_batch_size"]]
boxes = [tf.constant(b, tf.float32) for b in spec["boxes"]]
classes = [tf.one_hot(tf.constant(c) - 1, spec["num_classes"]) for c in spec["labels"]]
optimizer = tf.keras.optimizers.SGD(spec["learning_rate"], momentum=0.9)
preprocessed, true_shapes = train_model.preprocess(train_images)

@tf.function
def train_step():
    # As model_lib_v2's train step: the EfficientNet is called without `training`, so the
    # learning phase decides whether its batch norms and drop connect train.
    tf.keras.backend.set_learning_phase(True)
    train_model.provide_groundtruth(groundtruth_boxes_list=boxes,
                                    groundtruth_classes_list=classes)
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
cases["infer"]()  # builds the layers the model makes at its first call (BiFPN, predictor)
n_params = sum(int(np.prod(v.shape)) for v in infer_model.variables)
print(json.dumps({"tf": tf.__version__, "params": n_params}), flush=True)
for line in sys.stdin:
    name = line.strip()
    if name == "rss":
        print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), flush=True)
        continue
    start, cpu = time.perf_counter(), time.process_time()
    cases[name]()
    print(json.dumps([time.perf_counter() - start, time.process_time() - cpu]), flush=True)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tfod_python", default="/work/tfod_ref/venv/bin/python")
    args = parser.parse_args(argv)
    print(describe_machine(), flush=True)

    images = photos(TRAIN_BATCH_SIZE, SIZE, SIZE)
    boxes, labels = synthetic_groundtruth(TRAIN_BATCH_SIZE, SIZE)
    valid = labels > 0
    workdir = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"efficientdet_speed_{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "images.npy", images)
    worker = TorchWorker(args.tfod_python, TFOD_WORKER, {
        "config": str(CONFIG),
        "images": str(workdir / "images.npy"),
        "boxes": [(b[v] / SIZE).tolist() for b, v in zip(boxes, valid)],
        "labels": [l[v].tolist() for l, v in zip(labels, valid)],
        "num_classes": NUM_CLASSES,
        "train_batch_size": TRAIN_BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
    })
    print(f"TF OD API (TF {worker.info['tf']}): {worker.info['params'] / 1e6:.2f} M values",
          flush=True)

    keras.utils.set_random_seed(0)
    model = load_pipeline(CONFIG, dtype_policy="float32").model
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=0.9))
    workers = {"TF OD API": worker}
    cases, _ = versus_cases(model, images, {"boxes": boxes, "labels": labels}, workers)
    print(f"kdet: {model.count_params() / 1e6:.2f} M values", flush=True)
    try:
        times, peaks = time_versus(cases, workers, args.rounds, rss=True)
    finally:
        worker.close()
        (workdir / "images.npy").unlink()
        workdir.rmdir()

    print(f"\n## EfficientDet-D0 {SIZE}x{SIZE}: kdet vs TF OD API, median of {args.rounds} "
          "rounds\n")
    print_table(["case", "kdet", "TF OD API", "kdet / TF OD API"], versus_rows(times, peaks))


if __name__ == "__main__":
    main()
