"""SSD speed, side by side: kdet against the TF OD API frozen graph and torchvision.

Inference: kdet `SSD` with the `ssd_mobilenet_v2` extractor and the weights of the TF OD API
`ssd_mobilenet_v2_coco_2018_03_29` frozen graph (converted with `kdet.zoo.tf_od_api_converter`),
against that frozen graph run in a `tf.compat.v1.Session`, end to end (resize, network, box
decoding, NMS) on bundled 640x480 photos, at batch 1 and 8, for the ways a user calls kdet.

Training: one SGD step of kdet SSD MobileNetV2 (random init, 320x320) against torchvision
`ssdlite320_mobilenet_v3_large` (random init, same batch and input size). torchvision runs in a
subprocess with another Python (its own venv, so torch stays out of kdet's environment):
`--torch_python` or `$KDET_TORCH_PYTHON`; without one its rows are skipped.

Every timed case runs once per round, cases in turn, so that load drift on a shared machine
hits all of them alike; tables report the median over rounds.

Usage:
    python benchmarks/ssd_speed.py [--part all|inference|training] [--rounds 7]
        [--train_rounds 5] [--train_batch_size 8] [--torch_python PATH] [--torch_threads N]
        [--xla] [--intra_op_threads N] [--inter_op_threads N]
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The graph profiler that counts FLOPs warns about its own TF1 internals.
tf.get_logger().setLevel("ERROR")
from PIL import Image  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

from kdet.export import FrozenDetector  # noqa: E402
from kdet.feature_extractors import SSDMobileNetV2FeatureExtractor  # noqa: E402
from kdet.layers import FixedShapeResizer  # noqa: E402
from kdet.layers import SSDAnchorGenerator  # noqa: E402
from kdet.models import SSD  # noqa: E402
from kdet.models.ssd import ConvolutionalBoxPredictor  # noqa: E402
from kdet.targets import HardExampleMiner  # noqa: E402
from kdet.zoo.tf_od_api_converter import load_ssd_weights  # noqa: E402
from kdet.zoo.tf_od_api_converter import locate_ssd_mobilenet_v2_coco_graph  # noqa: E402
from kdet.zoo.tf_od_api_converter import read_frozen_graph_constants  # noqa: E402

DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / "kdet" / "datasets" / "data"
PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
PHOTO_HEIGHT, PHOTO_WIDTH = 480, 640
TRAIN_SIZE = 320
NUM_CLASSES = 90
# The frozen graph's post-processing: score threshold 0.3 (a `Greater` constant in the graph),
# IoU 0.6, 100 detections per class and per image.
GRAPH_SCORE_THRESHOLD = 0.3
GRAPH_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0",
                 "num_detections:0")
# TF OD API ssd_mobilenet_v2_coco.config hard_example_miner.
TF_OD_API_MINER = dict(num_hard_examples=3000, loss_type="cls", max_negatives_per_positive=3,
                       min_negatives_per_image=3)

# Runs inside the torchvision venv: one training step per line on stdin; its wall and CPU
# seconds back.
TORCH_WORKER = r"""
import json, sys, time
import numpy as np, torch, torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
spec = json.loads(sys.argv[1])
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
torch.manual_seed(0)
model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
train_images = [torch.from_numpy(a).permute(2, 0, 1).float() / 255.0
                for a in np.load(spec["train_images"])]
targets = [{"boxes": torch.tensor(b, dtype=torch.float32), "labels": torch.tensor(l)}
           for b, l in zip(spec["boxes_xyxy"], spec["labels"])]
model.eval()
with FlopCounterMode(display=False) as counter, torch.no_grad():
    model(train_images[:1])
model.train()
print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "threads": torch.get_num_threads(),
                  "gflops": counter.get_total_flops() / 1e9}), flush=True)
for line in sys.stdin:
    wall, cpu = time.perf_counter(), time.process_time()
    optimizer.zero_grad()
    loss = sum(model(train_images, targets).values())
    loss.backward()
    optimizer.step()
    print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]), flush=True)
"""


# -- timing ------------------------------------------------------------------------------------


def peak_rss_mb():
    """This process's peak resident set so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function):
    """Wraps `function` into a case returning `(wall, cpu)` seconds of this process.

    CPU time adds up all threads; it moves less than wall time when other processes compete
    for the cores.
    """

    def case():
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        return time.perf_counter() - wall, time.process_time() - cpu

    return case


def time_interleaved(cases, rounds, warmup=2, verbose=True):
    """Runs each case `warmup` times, then once per round in turn; `{name: [(wall, cpu)]}`."""
    for name, case in cases.items():
        if verbose:
            print(f"  warming up {name}", flush=True)
        for _ in range(warmup):
            case()
    times = {name: [] for name in cases}
    for index in range(rounds):
        for name, case in cases.items():
            times[name].append(case())
        if verbose:
            print(f"  round {index + 1}/{rounds} done", flush=True)
    return times


class TorchWorker:
    """A torchvision model in a subprocess of another Python, driven one line at a time.

    `script` prints a JSON line about itself once ready, then answers each request line on
    stdin with one JSON line (the seconds it measured).

    Args:
        python: the Python with torch and torchvision.
        script: the worker program (`python -c script spec`).
        spec: JSON-able settings passed to the script as its argument.
    """

    def __init__(self, python, script, spec):
        self.process = subprocess.Popen(
            [python, "-c", script, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the torchvision worker exited; see its error above")
        return json.loads(line)

    def request(self, message):
        """Sends one request line; returns the worker's JSON answer."""
        self.process.stdin.write(f"{message}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def start_torch_worker(python, threads, images, boxes, labels):
    """A `TorchWorker` training on `images` with the boxes of `labels > 0`, or None."""
    if not python:
        print("torchvision rows skipped: pass --torch_python or set $KDET_TORCH_PYTHON (a venv "
              "with torch and torchvision)")
        return None
    if not pathlib.Path(python).is_file():
        print(f"torchvision rows skipped: {python} does not exist")
        return None
    valid = labels > 0
    with tempfile.TemporaryDirectory() as workdir:
        path = pathlib.Path(workdir) / "images.npy"
        np.save(path, images)
        # The worker has loaded the images once it reports its versions.
        return TorchWorker(python, TORCH_WORKER, {
            "train_images": str(path),
            "boxes_xyxy": [b[v][:, [1, 0, 3, 2]].tolist() for b, v in zip(boxes, valid)],
            "labels": [l[v].tolist() for l, v in zip(labels, valid)],
            "threads": threads,
        })


# -- data and models ---------------------------------------------------------------------------


def photos(count, height, width):
    """`count` bundled photos resized to `height x width`, uint8 `[count, height, width, 3]`."""
    images = []
    for index in range(count):
        image = Image.open(DATA_DIR / "photos" / PHOTOS[index % len(PHOTOS)]).convert("RGB")
        images.append(np.asarray(image.resize((width, height), Image.BILINEAR)))
    return np.stack(images)


def synthetic_groundtruth(batch_size, size, max_boxes=10, seed=0):
    """1..3 random boxes per image, `yxyx` pixels, padded with -1 to `max_boxes`."""
    rng = np.random.default_rng(seed)
    boxes = np.full((batch_size, max_boxes, 4), -1.0, np.float32)
    labels = np.full((batch_size, max_boxes), -1, np.int32)
    for image in range(batch_size):
        for row in range(rng.integers(1, 4)):
            y_min, x_min = rng.uniform(0, 0.6 * size, 2)
            height, width = rng.uniform(0.15 * size, 0.4 * size, 2)
            boxes[image, row] = [y_min, x_min, y_min + height, x_min + width]
            labels[image, row] = rng.integers(1, NUM_CLASSES + 1)
    return boxes, labels


def ssd_mobilenet_v2(size, depthwise_box_predictor=False, **kwargs):
    """kdet SSD MobileNetV2 with the TF OD API `ssd_mobilenet_v2_coco` layout.

    `depthwise_box_predictor=True` gives the `ssdlite_mobilenet_v2` box predictor (depthwise
    3x3 + 1x1 instead of full 3x3 convolutions).
    """
    anchor_generator = SSDAnchorGenerator(aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333))
    box_predictor = ConvolutionalBoxPredictor(
        NUM_CLASSES,
        anchor_generator.num_anchors_per_location(),
        kernel_size=3,
        use_depthwise=depthwise_box_predictor,
    )
    return SSD(
        num_classes=NUM_CLASSES,
        feature_extractor=SSDMobileNetV2FeatureExtractor(),
        image_resizer=FixedShapeResizer(size, size, resize_method="legacy_bilinear"),
        anchor_generator=anchor_generator,
        box_predictor=box_predictor,
        **kwargs,
    )


def forward_gflops(model, size):
    """Forward-pass GFLOP per image (multiply and add counted apart), TF's graph profiler."""
    forward = tf.function(lambda images: model(images, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops / 1e9


def frozen_graph_session(path):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pathlib.Path(path).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return tf.compat.v1.Session(graph=graph)


# -- reporting ---------------------------------------------------------------------------------


def median_ms(times, per, clock=0):
    """Median of `(wall, cpu)` pairs, clock 0 (wall) or 1 (cpu), in ms per `per` items."""
    return 1000.0 * statistics.median(pair[clock] for pair in times) / per


def print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    # Other processes slow every case down, torch's OpenMP threads most: keep the load on record.
    print("\nload average (1, 5, 15 min) after the table: "
          + ", ".join(f"{load:.1f}" for load in os.getloadavg()) + "\n", flush=True)


def describe_machine():
    with open("/proc/cpuinfo") as cpuinfo:
        lines = [line for line in cpuinfo if line.startswith("model name")]
    models = [line.split(":", 1)[1].strip() for line in lines]
    threads = tf.config.threading
    return (
        f"{os.cpu_count()} CPU cores ({models[0] if models else platform.machine()}), "
        f"TF {tf.__version__} (intra-op threads {threads.get_intra_op_parallelism_threads()}, "
        f"inter-op {threads.get_inter_op_parallelism_threads()}; 0 = all cores), "
        f"Keras {keras.__version__}, {time.strftime('%Y-%m-%d')}"
    )


# -- the two parts -----------------------------------------------------------------------------


def inference(args):
    print("## Inference: kdet SSD MobileNetV2 vs the TF OD API frozen graph\n", flush=True)
    graph_path = locate_ssd_mobilenet_v2_coco_graph()
    session = frozen_graph_session(graph_path)
    # Normalized boxes, like the graph's, so the two can be compared directly.
    model = ssd_mobilenet_v2(
        300, score_threshold=GRAPH_SCORE_THRESHOLD, bounding_box_format="rel_yxyx"
    )
    model.build((1, 300, 300, 3))
    load_ssd_weights(
        read_frozen_graph_constants(graph_path), model.feature_extractor, model.box_predictor
    )
    model.compile()
    # The TF OD API config value (the graph was exported with 0.3): every score enters NMS.
    low_threshold = ssd_mobilenet_v2(300, score_threshold=1e-8, bounding_box_format="rel_yxyx")
    low_threshold.build((1, 300, 300, 3))
    low_threshold.set_weights(model.get_weights())

    detect = tf.function(model.detect)
    detect_relaxed = tf.function(model.detect, reduce_retracing=True)
    detect_low_threshold = tf.function(low_threshold.detect)
    frozen = convert_variables_to_constants_v2(
        tf.function(model.detect).get_concrete_function(
            tf.TensorSpec([None, None, None, 3], tf.uint8)
        )
    )
    frozen_detector = FrozenDetector(model)
    parity_photos = photos(2, PHOTO_HEIGHT, PHOTO_WIDTH)
    _check_parity(session, "tf.function(model.detect)", detect, parity_photos)
    _check_parity(session, "FrozenDetector", frozen_detector, parity_photos)
    if args.xla:
        # The whole `detect` does not compile (NMS); the network alone does.
        _check_xla_detect(model, photos(1, PHOTO_HEIGHT, PHOTO_WIDTH))
        xla_network = tf.function(lambda images: model(images, training=False), jit_compile=True)
        xla_postprocess = tf.function(model.postprocess)

    results = {}
    for batch_size in (1, 8):
        images = photos(batch_size, PHOTO_HEIGHT, PHOTO_WIDTH)
        tensor = tf.constant(images)
        cases = {
            "TF OD API frozen graph, Session.run": timed(
                lambda: session.run(GRAPH_OUTPUTS, {"image_tensor:0": images})
            ),
            "kdet `model.predict(x)`": timed(
                lambda: model.predict(images, batch_size=batch_size, verbose=0)
            ),
            "kdet `model.predict_on_batch(x)`": timed(lambda: model.predict_on_batch(images)),
            "kdet `tf.function(model.detect)`": timed(
                lambda: detect(tensor)["num_detections"].numpy()
            ),
            "kdet `tf.function(model.detect, reduce_retracing=True)`": timed(
                lambda: detect_relaxed(tensor)["num_detections"].numpy()
            ),
            "kdet `tf.function(model.detect)`, score_threshold=1e-8": timed(
                lambda: detect_low_threshold(tensor)["num_detections"].numpy()
            ),
            "kdet `detect` with constant weights, batch norms not folded": timed(
                lambda: [output.numpy() for output in frozen(tensor)]
            ),
            "kdet `kdet.export.FrozenDetector(model)`": timed(lambda: frozen_detector(images)),
        }
        if args.xla:
            cases["kdet network `jit_compile=True` + `tf.function(postprocess)`"] = timed(
                lambda: xla_postprocess(xla_network(tensor))["num_detections"].numpy()
            )
        print(f"batch {batch_size}:", flush=True)
        for name, seconds in time_interleaved(cases, args.rounds).items():
            results.setdefault(name, {})[batch_size] = seconds

    graph = results["TF OD API frozen graph, Session.run"]
    rows = []
    for name, by_batch in results.items():
        row = [name]
        for batch_size in (1, 8):
            wall, cpu = (median_ms(by_batch[batch_size], batch_size, clock) for clock in (0, 1))
            graph_wall, graph_cpu = (
                median_ms(graph[batch_size], batch_size, clock) for clock in (0, 1)
            )
            row += [f"{wall:.1f}", f"{wall / graph_wall:.2f}x", f"{cpu:.1f}",
                    f"{cpu / graph_cpu:.2f}x"]
        rows.append(row)
    print_table(["way of calling", "b1 wall ms/img", "vs graph", "b1 CPU ms/img", "vs graph",
                 "b8 wall ms/img", "vs graph", "b8 CPU ms/img", "vs graph"], rows)


def _check_parity(session, name, detect, images):
    """Prints how far kdet's detections (`detect(images)`) are from the graph's."""
    boxes, scores, classes, counts = session.run(GRAPH_OUTPUTS, {"image_tensor:0": images})
    detections = {key: np.asarray(value) for key, value in detect(images).items()}
    for index in range(len(images)):
        count = int(counts[index])
        same_count = count == detections["num_detections"][index]
        same_labels = same_count and np.array_equal(
            classes[index, :count].astype(np.int32), detections["labels"][index, :count]
        )
        box_gap = score_gap = float("nan")
        if same_count:
            box_gap = np.abs(boxes[index, :count] - detections["boxes"][index, :count]).max(
                initial=0.0
            )
            score_gap = np.abs(
                scores[index, :count] - detections["confidences"][index, :count]
            ).max(initial=0.0)
        print(
            f"parity, {name}, photo {PHOTOS[index]}: graph {count} detections, kdet "
            f"{detections['num_detections'][index]}; same labels: {same_labels}; max |box "
            f"diff| {box_gap:.2e}, max |score diff| {score_gap:.2e}",
            flush=True,
        )


def _check_xla_detect(model, images):
    try:
        tf.function(model.detect, jit_compile=True)(tf.constant(images))
        print("`tf.function(model.detect, jit_compile=True)` compiles", flush=True)
    except tf.errors.InvalidArgumentError as error:
        # The message names the unsupported ops after the (long) graph name.
        unsupported = str(error).splitlines()[0].split("XLA_CPU_JIT: ")[-1]
        print(f"`tf.function(model.detect, jit_compile=True)` does not compile: {unsupported}",
              flush=True)


def training(args):
    batch_size = args.train_batch_size
    print(f"## Training step: batch {batch_size}, {TRAIN_SIZE}x{TRAIN_SIZE}\n", flush=True)
    images = photos(batch_size, TRAIN_SIZE, TRAIN_SIZE)
    boxes, labels = synthetic_groundtruth(batch_size, TRAIN_SIZE)
    y = {"boxes": boxes, "labels": labels}
    miner_iou_099 = HardExampleMiner(iou_threshold=0.99, **TF_OD_API_MINER)
    miner_iou_1 = HardExampleMiner(iou_threshold=1.0, **TF_OD_API_MINER)
    _time_losses(
        {"miner iou 0.99 (TF OD API config)": miner_iou_099, "miner iou 1.0 (top-k)": miner_iou_1,
         "no miner (kdet default)": None},
        images,
        y,
    )

    variants = {
        "kdet SSD MobileNetV2, TF OD API config (miner iou 0.99)": dict(
            hard_example_miner=miner_iou_099
        ),
        "kdet SSD MobileNetV2, miner iou 1.0": dict(hard_example_miner=miner_iou_1),
        "kdet SSDlite MobileNetV2 (depthwise box predictor), miner iou 1.0": dict(
            depthwise_box_predictor=True, hard_example_miner=miner_iou_1
        ),
    }
    if args.xla:
        variants["kdet SSD MobileNetV2, miner iou 1.0, `jit_compile=True`"] = dict(
            hard_example_miner=miner_iou_1, jit_compile=True
        )
    cases, gflops, models = {}, {}, {}
    for name, kwargs in variants.items():
        jit_compile = kwargs.pop("jit_compile", False)
        keras.utils.set_random_seed(0)
        model = models[name] = ssd_mobilenet_v2(TRAIN_SIZE, **kwargs)
        model.compile(jit_compile=jit_compile)
        gflops[name] = forward_gflops(model, TRAIN_SIZE)
        cases[name] = timed(lambda model=model: model.train_on_batch(images, y))
    # The same model and step as the miner iou 1.0 row, driven by Keras's `fit` loop.
    fit_model = models["kdet SSD MobileNetV2, miner iou 1.0"]
    fit_steps = 4
    dataset = tf.data.Dataset.from_tensors((images, y)).repeat(fit_steps)
    fit_name = f"kdet SSD MobileNetV2, miner iou 1.0, `model.fit` ({fit_steps} steps per call)"
    fit = timed(lambda: fit_model.fit(dataset, shuffle=False, verbose=0))
    cases[fit_name] = lambda: tuple(seconds / fit_steps for seconds in fit())
    gflops[fit_name] = gflops["kdet SSD MobileNetV2, miner iou 1.0"]

    torch_name = "torchvision ssdlite320_mobilenet_v3_large"
    torch_worker = start_torch_worker(
        args.torch_python, args.torch_threads, images, boxes, labels
    )
    try:
        if torch_worker:
            info = torch_worker.info
            print(f"torch {info['torch']}, torchvision {info['torchvision']}, "
                  f"{info['threads']} threads", flush=True)
            # One training step; the worker answers the `(wall, cpu)` seconds it measured.
            cases[torch_name] = lambda: tuple(torch_worker.request("step"))
            gflops[torch_name] = info["gflops"]
        times = time_interleaved(cases, args.train_rounds)
    finally:
        if torch_worker:
            torch_worker.close()

    reference = median_ms(times[torch_name], 1) if torch_worker else None
    rows = []
    for name, seconds in times.items():
        step, cpu = median_ms(seconds, 1), median_ms(seconds, 1, clock=1)
        rows.append([
            name,
            f"{step / 1000:.2f}",
            f"{1000 * batch_size / step:.1f}",
            f"{step / reference:.2f}x" if reference else "n/a",
            f"{cpu / 1000:.2f}",
            f"{gflops[name]:.2f}",
        ])
    print_table(["training step", "wall s/step", "images/s", "vs torchvision", "CPU s/step",
                 "forward GFLOP/image"], rows)


def _time_losses(miners, images, y):
    """Times `compute_losses` alone (targets, losses, mining) on fixed network outputs."""
    cases = {}
    for name, miner in miners.items():
        model = ssd_mobilenet_v2(TRAIN_SIZE, hard_example_miner=miner)
        outputs = model(images, training=False)
        gt_boxes, gt_labels = model.groundtruth_to_relative(images, y)
        compute_losses = tf.function(model.compute_losses)
        cases[name] = timed(
            lambda compute_losses=compute_losses, outputs=outputs, gt_boxes=gt_boxes,
            gt_labels=gt_labels: compute_losses(outputs, gt_boxes, gt_labels)[
                "classification_loss"
            ].numpy()
        )
    times = time_interleaved(cases, rounds=15, verbose=False)
    print_table(["`compute_losses` only, batch of " + str(len(images)), "ms (median)"],
                [[name, f"{median_ms(seconds, 1):.1f}"] for name, seconds in times.items()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "inference", "training"), default="all")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, inference")
    parser.add_argument("--train_rounds", type=int, default=5, help="timed rounds, training")
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--torch_python", default=os.environ.get("KDET_TORCH_PYTHON"),
                        help="python of a venv with torch + torchvision")
    parser.add_argument("--torch_threads", type=int, default=0,
                        help="torch.set_num_threads in the worker; 0 keeps torch's default")
    parser.add_argument("--xla", action="store_true",
                        help="add jit_compile=True cases (slow to compile and to run on CPU)")
    parser.add_argument("--intra_op_threads", type=int, default=0)
    parser.add_argument("--inter_op_threads", type=int, default=0)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    print(describe_machine() + "\n", flush=True)
    start = time.perf_counter()
    if args.part in ("all", "inference"):
        inference(args)
        print(f"inference part: {time.perf_counter() - start:.0f} s\n", flush=True)
    if args.part in ("all", "training"):
        training(args)
    print(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
