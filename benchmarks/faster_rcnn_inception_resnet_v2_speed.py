"""Faster R-CNN Inception-ResNet-v2 (atrous) speed and memory: kdet against the TF OD API, CPU.

Both models are built from the same TF OD API sample config
(`samples/faster_rcnn_inception_resnet_v2_atrous_coco.config` of `../shared/tfod_configs/`:
90 classes, stride 8, RPN rate 2, 300 proposals at inference, 64 RoIs an image in training,
random init) and run on the same bundled photos at 600x800 (the config's keep-aspect resizer,
600..1024, leaves them so), with 1..3 random boxes each:
- training step, momentum SGD: kdet `train_on_batch` (resize, forward, losses, gradients,
  update); the TF OD API's TF1 training graph (`provide_groundtruth`, `predict`, `loss`,
  `MomentumOptimizer.minimize`) in a session, fed the images its `preprocess` made once, as
  its input pipeline hands them over;
- inference, batch 1: kdet `tf.function(model.detect)`; the TF OD API's TF1 `preprocess` →
  `predict` → `postprocess` graph (what its TF1 exporter freezes).
The config is a TF1 one, so the TF OD API runs its TF1 (TF-Slim) code in graph mode, in its own
venv (`--tfod_python`, default `/work/tfod_ref/venv/bin/python`, made by
`tools/tfod_reference/setup_venv.sh`, with the TF1 stand-ins of
`tools/tfod_reference/make_tf1_references.py`), as a subprocess driven one case at a time.

The full model at this size needs several GB per training step, so the two run one after the
other (the TF OD API first, then kdet), not interleaved, and the training batch is
`--train_batch_size` (default 1: at 2 each process would need ~2x the memory on a machine
shared with other jobs). Each case is run `--warmup` times, then timed `--rounds` times; the
table reports medians and each process's peak resident set (`ru_maxrss`, building and tracing
included) after its inference and after its training.

Usage:
    python benchmarks/faster_rcnn_inception_resnet_v2_speed.py [--rounds 1] [--warmup 1]
        [--train_batch_size 1] [--tfod_python PATH] [--config PATH]
"""

import argparse
import os
import pathlib
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[1])]
from ssd_speed import TorchWorker
from ssd_speed import describe_machine
from ssd_speed import peak_rss_mb
from ssd_speed import photos
from ssd_speed import print_table
from ssd_speed import synthetic_groundtruth

from kdet.configs import load_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = (REPO.parent / "shared" / "tfod_configs" / "samples"
          / "faster_rcnn_inception_resnet_v2_atrous_coco.config")
HEIGHT, WIDTH = 600, 800
LEARNING_RATE = 0.0003

# Runs in the TF OD API venv: one case name per line on stdin ("train", "infer", "rss"); the
# wall seconds (or peak RSS in MB) back, one JSON line each.
TFOD_WORKER = r"""
import json, os, resource, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
answers, sys.stdout = sys.stdout, sys.stderr  # TF1 code prints; only answers go to stdout
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["tools"])
import make_tf1_references  # graph mode and the TF1 stand-ins
import numpy as np, tensorflow as tf
from google.protobuf import text_format
from object_detection.builders import model_builder
from object_detection.protos import pipeline_pb2
pipeline = pipeline_pb2.TrainEvalPipelineConfig()
text_format.Merge(open(spec["config"]).read(), pipeline)
images = np.load(spec["images"]).astype(np.float32)

train_graph = tf.Graph()
with train_graph.as_default():
    tf.compat.v1.set_random_seed(0)
    model = model_builder.build(pipeline.model, is_training=True)
    batch = tf.constant(images)
    preprocessed, true_shapes = model.preprocess(batch)
    model.provide_groundtruth(
        groundtruth_boxes_list=[tf.constant(b, tf.float32) for b in spec["boxes"]],
        groundtruth_classes_list=[
            tf.one_hot(tf.constant(c) - 1, spec["num_classes"]) for c in spec["labels"]])
    prediction = model.predict(preprocessed, true_shapes)
    total = tf.add_n(list(model.loss(prediction, true_shapes).values()))
    optimizer = tf.compat.v1.train.MomentumOptimizer(spec["learning_rate"], 0.9)
    with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.minimize(total)
    train_init = tf.compat.v1.global_variables_initializer()
train_session = tf.compat.v1.Session(graph=train_graph)
train_session.run(train_init)
feed = dict(zip([preprocessed, true_shapes], train_session.run([preprocessed, true_shapes])))

infer_graph = tf.Graph()
with infer_graph.as_default():
    infer_model = model_builder.build(pipeline.model, is_training=False)
    image = tf.constant(images[:1])
    shapes_in, shapes = infer_model.preprocess(image)
    detections = infer_model.postprocess(infer_model.predict(shapes_in, shapes), shapes)
    infer_init = tf.compat.v1.global_variables_initializer()
    n_params = sum(int(np.prod(v.shape)) for v in tf.compat.v1.trainable_variables())
infer_session = tf.compat.v1.Session(graph=infer_graph)
infer_session.run(infer_init)

cases = {"train": lambda: train_session.run([train_op, total], feed),
         "infer": lambda: infer_session.run(detections["num_detections"])}
answers.write(json.dumps({"tf": tf.__version__, "params": n_params}) + "\n")
answers.flush()
for line in sys.stdin:
    name = line.strip()
    if name == "rss":
        answer = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        start = time.perf_counter()
        cases[name]()
        answer = time.perf_counter() - start
    answers.write(json.dumps(answer) + "\n")
    answers.flush()
"""


def run_case(case, warmup, rounds, label):
    """Runs `case` (returns wall seconds) `warmup` times, then `rounds` times; their median."""
    for index in range(warmup):
        print(f"  {label}: warm-up {index + 1}/{warmup} {case():.1f} s", flush=True)
    times = [case() for _ in range(rounds)]
    print(f"  {label}: {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
    return statistics.median(times)


def wall(function):
    """`function` as a case returning its wall seconds."""

    def case():
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    return case


def measure_tfod(args, images, boxes, labels, workdir):
    """`{phase: (median seconds, peak RSS MB)}` of the TF OD API in its venv."""
    np.save(workdir / "images.npy", images)
    valid = labels > 0
    start = time.perf_counter()
    try:
        worker = TorchWorker(args.tfod_python, TFOD_WORKER, {
            "config": str(args.config),
            "tools": str(REPO / "tools" / "tfod_reference"),
            "images": str(workdir / "images.npy"),
            "boxes": [(b[v] / [HEIGHT, WIDTH, HEIGHT, WIDTH]).tolist()
                      for b, v in zip(boxes, valid)],
            "labels": [lab[v].tolist() for lab, v in zip(labels, valid)],
            "num_classes": num_classes(args.config),
            "train_batch_size": args.train_batch_size,
            "learning_rate": LEARNING_RATE,
        })
    finally:
        (workdir / "images.npy").unlink()
    print(f"TF OD API (TF {worker.info['tf']}, TF1 graph mode): "
          f"{worker.info['params'] / 1e6:.2f} M trainable values, both graphs built in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    try:
        results = {}
        for phase, request in (("inference", "infer"), ("training", "train")):
            seconds = run_case(lambda request=request: worker.request(request), args.warmup,
                               args.rounds, f"TF OD API {phase}")
            results[phase] = (seconds, worker.request("rss"))
    finally:
        worker.close()
    return results


def num_classes(config):
    """The `num_classes` of a pipeline config file."""
    return int(re.search(r"num_classes:\s*(\d+)", pathlib.Path(config).read_text())[1])


def measure_kdet(args, images, boxes, labels):
    """`{(phase): (median seconds, peak RSS MB)}` of kdet in this process."""
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = load_pipeline(args.config, dtype_policy="float32").model
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=0.9))
    detect = tf.function(model.detect)
    image = tf.constant(images[:1], tf.float32)
    print(f"kdet: built in {time.perf_counter() - start:.0f} s", flush=True)
    y = {"boxes": boxes, "labels": labels}
    results = {}
    seconds = run_case(wall(lambda: detect(image)["num_detections"].numpy()), args.warmup,
                       args.rounds, "kdet inference")
    results["inference"] = (seconds, peak_rss_mb())
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    print(f"kdet: {trainable / 1e6:.2f} M trainable values", flush=True)
    seconds = run_case(wall(lambda: model.train_on_batch(images, y)), args.warmup,
                       args.rounds, "kdet training")
    results["training"] = (seconds, peak_rss_mb())
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--train_batch_size", type=int, default=1)
    parser.add_argument("--tfod_python", default="/work/tfod_ref/venv/bin/python")
    parser.add_argument("--config", type=pathlib.Path, default=CONFIG)
    args = parser.parse_args(argv)
    print(describe_machine(), flush=True)
    images = photos(args.train_batch_size, HEIGHT, WIDTH)
    boxes, labels = synthetic_groundtruth(args.train_batch_size, HEIGHT)
    labels = np.where(labels > 0, (labels - 1) % num_classes(args.config) + 1, labels)
    workdir = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"irv2_speed_{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        tfod = measure_tfod(args, images, boxes, labels, workdir)
    finally:
        workdir.rmdir()
    ours = measure_kdet(args, images, boxes, labels)
    rows = []
    for phase, label in (("inference", "inference, batch 1 (s)"),
                         ("training", f"training step, batch {args.train_batch_size} (s)")):
        (our_time, our_mb), (their_time, their_mb) = ours[phase], tfod[phase]
        rows.append([label, f"{our_time:.2f}", f"{their_time:.2f}",
                     f"{our_time / their_time:.2f}x"])
        rows.append([f"peak RSS after {phase} (MB)", f"{our_mb:.0f}", f"{their_mb:.0f}",
                     f"{our_mb / their_mb:.2f}x"])
    print(f"\n## Faster R-CNN Inception-ResNet-v2 atrous, {HEIGHT}x{WIDTH}: kdet vs TF OD API "
          f"(TF1), median of {args.rounds} round(s) after {args.warmup} warm-up(s)\n")
    print_table(["case", "kdet", "TF OD API", "kdet / TF OD API"], rows)


if __name__ == "__main__":
    main()
