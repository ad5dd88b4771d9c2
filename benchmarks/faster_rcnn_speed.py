"""Faster R-CNN speed, side by side: kdet `FasterRCNN` against torchvision, on CPU.

Two pairs, random init, configured to mirror each other (see `KDET_CONFIGS`):
- `mobilenet`: kdet `faster_rcnn_mobilenet_v2_fpn` at 320x320 (pyramid levels 4..6, strides
  16/32/64, 15 anchors per location) against `fasterrcnn_mobilenet_v3_large_320_fpn`.
- `resnet50`: kdet `faster_rcnn_resnet50_fpn` at 512x512 against `fasterrcnn_resnet50_fpn`
  with `min_size=512, max_size=512`.

For each pair: one training step at batch 2 (kdet `train_on_batch`; torch forward, backward,
SGD step) and inference at batch 1 and 2 (kdet `tf.function(model.detect)`; torch `eval()`
under `no_grad()`), on the same bundled photos with 1..3 random boxes each. torchvision runs in
a subprocess with another Python (its own venv): `--torch_python` or `$KDET_TORCH_PYTHON`.
Every case runs once per round, cases in turn, so that load drift on a shared machine hits
all alike; the table reports medians and kdet/torch ratios. `--profile` adds kdet inference
times cut after each stage (features, + RPN and proposals, + RoI crops and box classifier,
+ post-processing).

Usage:
    python benchmarks/faster_rcnn_speed.py [--models mobilenet resnet50] [--rounds 5]
        [--torch_python PATH] [--torch_threads 0 1] [--profile]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The SSD benchmark's helpers next to this file, kdet from the checkout above it.
sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[1])]
from ssd_speed import describe_machine  # noqa: E402
from ssd_speed import photos  # noqa: E402
from ssd_speed import print_table  # noqa: E402
from ssd_speed import TorchWorker  # noqa: E402
from ssd_speed import synthetic_groundtruth  # noqa: E402
from ssd_speed import time_interleaved  # noqa: E402
from ssd_speed import timed  # noqa: E402

from kdet.feature_extractors import FasterRCNNMobileNetV2FPNFeatureExtractor  # noqa: E402
from kdet.feature_extractors import FasterRCNNResNet50FPNFeatureExtractor  # noqa: E402
from kdet.layers import FixedShapeResizer  # noqa: E402
from kdet.layers import MultiscaleGridAnchorGenerator  # noqa: E402
from kdet.models import FasterRCNN  # noqa: E402

NUM_CLASSES = 90
BATCH_SIZES = (1, 2)
TRAIN_BATCH_SIZE = 2


def mobilenet_config(training):
    """kdet settings that mirror torchvision `fasterrcnn_mobilenet_v3_large_320_fpn`.

    torchvision: 3 maps at strides 16/32/64 of 256 channels (plain 3x3 FPN convs), 5 sizes x 3
    aspect ratios = 15 anchors per location, 256-channel RPN conv, RoIAlign 7x7 from the two
    finer maps, two fc-1024, 2000 proposals and 512 sampled RoIs in training, 150 proposals at
    test, second stage score threshold 0.05 and NMS IoU 0.5.
    """
    return dict(
        feature_extractor=FasterRCNNMobileNetV2FPNFeatureExtractor(
            fpn_min_level=4, fpn_max_level=6, additional_layer_depth=256, use_depthwise=False
        ),
        size=320,
        # 5 scales per octave x 3 ratios = 15 anchors per location, base size 2 x stride.
        first_stage_anchor_generator=MultiscaleGridAnchorGenerator(
            4, 6, anchor_scale=2.0, aspect_ratios=(0.5, 1.0, 2.0), scales_per_octave=5
        ),
        first_stage_box_predictor_depth=256,
        first_stage_max_proposals=2000 if training else 150,
        second_stage_batch_size=512,
        score_threshold=0.05,
        iou_threshold=0.5,
    )


def resnet50_config(training):
    """kdet settings that mirror torchvision `fasterrcnn_resnet50_fpn` at 512x512.

    torchvision: P2..P6 of 256 channels, 3 anchors per location (one size per level, 32..512,
    which kdet's default `anchor_scale=8` also gives), 256-channel RPN conv, RoIAlign 7x7 from
    P2..P5, two fc-1024, 2000 proposals and 512 sampled RoIs in training, 1000 at test, second
    stage score threshold 0.05 and NMS IoU 0.5.
    """
    return dict(
        feature_extractor=FasterRCNNResNet50FPNFeatureExtractor(),
        size=512,
        first_stage_box_predictor_depth=256,
        first_stage_max_proposals=2000 if training else 1000,
        second_stage_batch_size=512,
        score_threshold=0.05,
        iou_threshold=0.5,
    )


KDET_CONFIGS = {"mobilenet": mobilenet_config, "resnet50": resnet50_config}
TORCH_MODELS = {
    "mobilenet": ("fasterrcnn_mobilenet_v3_large_320_fpn", {}),
    "resnet50": ("fasterrcnn_resnet50_fpn", {"min_size": 512, "max_size": 512}),
}

# Runs inside the torchvision venv: one case name per line on stdin, its seconds back.
TORCH_WORKER = r"""
import json, sys, time
import numpy as np, torch, torchvision
from torchvision.models import detection
spec = json.loads(sys.argv[1])
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
torch.manual_seed(0)
model = getattr(detection, spec["model"])(weights=None, weights_backbone=None,
                                          num_classes=spec["num_classes"], **spec["kwargs"])
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
images = [torch.from_numpy(a).permute(2, 0, 1).float() / 255.0 for a in np.load(spec["images"])]
targets = [{"boxes": torch.tensor(b, dtype=torch.float32), "labels": torch.tensor(l)}
           for b, l in zip(spec["boxes_xyxy"], spec["labels"])]

def train():
    model.train()
    optimizer.zero_grad()
    loss = sum(model(images[:spec["train_batch_size"]], targets).values())
    loss.backward()
    optimizer.step()

def infer(batch_size):
    model.eval()
    with torch.no_grad():
        model(images[:batch_size])

print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    case = line.strip()
    start = time.perf_counter()
    train() if case == "train" else infer(int(case))
    print(json.dumps(time.perf_counter() - start), flush=True)
"""


def _torch_case(worker, request):
    """A timed case: one `request` (`"train"` or a batch size) answered with its wall seconds,
    as `(wall, None)` like `ssd_speed.timed`'s `(wall, cpu)` (the worker reports no CPU time)."""
    return lambda: (worker.request(request), None)


def build_kdet(name, training):
    config = KDET_CONFIGS[name](training)
    size = config.pop("size")
    keras.utils.set_random_seed(0)
    model = FasterRCNN(
        num_classes=NUM_CLASSES, image_resizer=FixedShapeResizer(size, size), **config
    )
    model.build((1, size, size, 3))
    model.compile()
    return model, size


def stage_cases(model, tensor):
    """kdet inference cut after each stage, `{name: case}`."""
    extractor = model.feature_extractor

    def features(images):
        resized, _ = model.image_resizer(images)
        return extractor.extract_proposal_features(extractor.preprocess(resized), training=False)

    stages = {
        "features (resize + backbone + FPN)": features,
        "+ RPN head, anchors, proposals (decode + NMS)": lambda images: model._first_stage(
            images, False
        )["proposals"],
        "+ RoI crops, box classifier": lambda images: model(images, training=False)[
            "class_logits"
        ],
        "+ post-processing (decode, per-class NMS) = detect": lambda images: model.detect(
            images
        )["num_detections"],
    }
    cases = {}
    for stage, function in stages.items():
        function = tf.function(function)
        cases[stage] = timed(lambda function=function: tf.nest.map_structure(
            lambda t: t.numpy(), function(tensor)
        ))
    return cases


def benchmark(name, args):
    kdet_train, size = build_kdet(name, training=True)
    kdet_infer, _ = build_kdet(name, training=False)
    images = photos(max(BATCH_SIZES + (TRAIN_BATCH_SIZE,)), size, size)
    boxes, labels = synthetic_groundtruth(TRAIN_BATCH_SIZE, size)
    y = {"boxes": boxes, "labels": labels}
    train_images = images[:TRAIN_BATCH_SIZE]
    detect = tf.function(kdet_infer.detect)

    cases = {"kdet train step, batch 2": timed(lambda: kdet_train.train_on_batch(train_images, y))}
    for batch_size in BATCH_SIZES:
        tensor = tf.constant(images[:batch_size], tf.float32)
        cases[f"kdet inference, batch {batch_size}"] = timed(
            lambda tensor=tensor: detect(tensor)["num_detections"].numpy()
        )
    if args.profile:
        for stage, case in stage_cases(kdet_infer, tf.constant(images[:1], tf.float32)).items():
            cases[f"kdet batch 1 stages: {stage}"] = case

    workers = {}
    if args.torch_python and pathlib.Path(args.torch_python).is_file():
        model_name, kwargs = TORCH_MODELS[name]
        valid = labels > 0
        with tempfile.TemporaryDirectory() as workdir:
            path = pathlib.Path(workdir) / "images.npy"
            np.save(path, images)
            for threads in args.torch_threads:
                workers[threads] = TorchWorker(args.torch_python, TORCH_WORKER, {
                    "model": model_name,
                    "kwargs": kwargs,
                    "num_classes": NUM_CLASSES + 1,
                    "images": str(path),
                    "boxes_xyxy": [b[v][:, [1, 0, 3, 2]].tolist() for b, v in zip(boxes, valid)],
                    "labels": [l[v].tolist() for l, v in zip(labels, valid)],
                    "train_batch_size": TRAIN_BATCH_SIZE,
                    "threads": threads,
                })
        for threads, worker in workers.items():
            info = worker.info
            print(f"torch {info['torch']}, torchvision {info['torchvision']}, "
                  f"{info['threads']} threads, {model_name} {kwargs}", flush=True)
            cases[f"torch {threads} train step, batch 2"] = _torch_case(worker, "train")
            for batch_size in BATCH_SIZES:
                cases[f"torch {threads} inference, batch {batch_size}"] = _torch_case(worker, batch_size)
    else:
        print("torchvision rows skipped: pass --torch_python or set $KDET_TORCH_PYTHON")
    try:
        times = time_interleaved(cases, args.rounds)
    finally:
        for worker in workers.values():
            worker.close()

    def ms(case, per=1):
        return 1000.0 * statistics.median(wall for wall, _ in times[case]) / per

    rows = []
    for label, per, case in [
        ("train step, batch 2", 1, "train step, batch 2"),
        *[(f"inference per image, batch {b}", b, f"inference, batch {b}") for b in BATCH_SIZES],
    ]:
        kdet_ms = ms(f"kdet {case}", per)
        row = [label, f"{kdet_ms:.0f}"]
        for threads in workers:
            torch_ms = ms(f"torch {threads} {case}", per)
            row += [f"{torch_ms:.0f}", f"{kdet_ms / torch_ms:.2f}x"]
        rows.append(row)
    print(f"\n## {name}: kdet {KDET_CONFIGS[name].__name__} vs torchvision "
          f"{TORCH_MODELS[name][0]}, {size}x{size}, median of {args.rounds} rounds\n")
    header = ["case", "kdet ms"]
    for threads in workers:
        header += [f"torch ms ({threads or 'default'} threads)", "kdet / torch"]
    print_table(header, rows)
    stages = [case for case in times if case.startswith("kdet batch 1 stages")]
    if stages:
        print_table(["kdet inference, batch 1, cut after", "ms"],
                    [[case.split(": ", 1)[1], f"{ms(case):.0f}"] for case in stages])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=tuple(KDET_CONFIGS),
                        default=list(KDET_CONFIGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torch_python", default=os.environ.get("KDET_TORCH_PYTHON"),
                        help="python of a venv with torch + torchvision")
    # Under load from other processes torch's OpenMP threads wait on each other at every op;
    # one torch thread is often faster there, so both can be timed side by side.
    parser.add_argument("--torch_threads", type=int, nargs="+", default=[0],
                        help="torch.set_num_threads per worker, one worker each; 0 = default")
    parser.add_argument("--profile", action="store_true",
                        help="add kdet inference times cut after each stage")
    args = parser.parse_args()
    print(describe_machine() + "\n", flush=True)
    start = time.perf_counter()
    for name in args.models:
        benchmark(name, args)
        print(f"{name}: {time.perf_counter() - start:.0f} s so far\n", flush=True)


if __name__ == "__main__":
    main()
