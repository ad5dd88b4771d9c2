"""Inference throughput against batch size and input size: kdet vs the TF OD API and torchvision.

For each model, each input size `s` and each batch size, images/s from square `s x s` uint8
photos (bundled photos resized) to detections, post-processing included, on CPU:

- `ssd`: kdet SSD MobileNetV2, `kdet.zoo.load("ssd_mobilenet_v2_coco")` (the TF OD API
  `ssd_mobilenet_v2_coco_2018_03_29` weights) rebuilt with its `FixedShapeResizer` at `s x s`
  and the same weights, called through `kdet.export.FrozenDetector`, `model.predict_on_batch`
  and `model.predict`; the TF OD API frozen graph itself (`Session.run`, fixed 300x300
  network: at s = 300 only); torchvision `ssdlite320_mobilenet_v3_large` and `ssd300_vgg16`
  (random init) with their fixed-size transform set to `s x s`. Score threshold 0.3 for all (the
  frozen graph's constant), NMS as each model's own.
- `faster_rcnn`: kdet `FasterRCNN` built from the TF OD API sample config
  `faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8` with the resizer's 640 set to `s` (random
  init) through `FrozenDetector`, against torchvision `fasterrcnn_resnet50_fpn` (random init,
  `min_size = max_size = s`) with the config's test settings: 300 proposals, second-stage score
  threshold 0.0, NMS IoU 0.6, 300 detections. Sizes 300, 512 and 640 by default (1024: over
  10 s per image and call here).

Every combination runs the frameworks in interleaved rounds (one warm-up call each, then the
median of `--rounds` calls). A case is skipped when its call would take more than
`--max_call_seconds` (predicted from the same case at the previous batch size) or when
`batch x s^2` exceeds the model's pixel budget (`--max_megapixels`, keeping the process peak
under ~8 GB). torchvision runs in a subprocess (`--torch_python`, default this Python) with
one thread (`--torch_threads`; its default 2 collapse when other processes load the cores);
TF keeps its default thread pools. Each row goes to `--csv` as it is measured.

Usage:
    python benchmarks/scaling.py [--models ssd faster_rcnn] [--rounds 3] [--csv PATH]
        [--sizes 300 512 640 1024] [--faster_rcnn_sizes 300 512 640] [--max_call_seconds 6]
    python benchmarks/scaling.py --plot_only  # scaling.csv -> scaling.png
"""

import argparse
import copy
import csv
import json
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# The benchmarks' helpers next to this file, kdet from the checkout above it.
sys.path[:0] = [str(HERE), str(HERE.parent)]

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
INPUT_SIZES = (300, 512, 640, 1024)
# 1024 is left out by default: a ResNet-50 FPN call takes over 10 s per image here, and kdet's
# process peaked at 5.5 GB already at 300.
FASTER_RCNN_SIZES = (300, 512, 640)
GRAPH_SIZE = 300
SSD_SCORE_THRESHOLD = 0.3
FASTER_RCNN_CONFIG = pathlib.Path(
    "/work/shared/tfod_configs/tf2/faster_rcnn_resnet50_v1_fpn_640x640_coco17_tpu-8.config"
)
# torchvision `fasterrcnn_resnet50_fpn` test settings set to the config's.
FASTER_RCNN_TORCH = {"num_classes": 91, "rpn_post_nms_top_n_test": 300,
                     "box_score_thresh": 0.0, "box_nms_thresh": 0.6,
                     "box_detections_per_img": 300}
TORCH_MODELS = {
    "ssd": {"ssdlite320_mobilenet_v3_large": {"score_thresh": SSD_SCORE_THRESHOLD},
            "ssd300_vgg16": {"score_thresh": SSD_SCORE_THRESHOLD}},
    "faster_rcnn": {"fasterrcnn_resnet50_fpn": FASTER_RCNN_TORCH},
}
# Pixels per batch (batch x s^2) above which a case is skipped, to keep each process's peak
# resident set under ~8 GB.
MAX_MEGAPIXELS = {"ssd": 12.0, "faster_rcnn": 4.5}
TITLES = {"ssd": "SSD MobileNetV2 (kdet, TF OD API) / SSDlite, SSD300-VGG16 (torchvision)",
          "faster_rcnn": "Faster R-CNN ResNet-50 FPN"}

# Runs in the torchvision Python: `[model, size, batch]` per line on stdin, inference on the
# first `batch` photos of that size, `(wall, cpu)` seconds back; `"rss"` for its peak RSS MB.
TORCH_WORKER = r"""
import json, resource, sys, time
import numpy as np, torch, torchvision
from torchvision.models import detection
spec = json.loads(sys.argv[1])
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
models, photos = {}, {}

def model_at(name, size):
    if (name, size) not in models:
        for key in [key for key in models if key[1] != size]:
            del models[key]
        torch.manual_seed(0)
        kwargs = dict(spec["models"][name])
        if name.startswith("fasterrcnn"):
            kwargs.update(min_size=size, max_size=size)
        model = getattr(detection, name)(weights=None, weights_backbone=None, **kwargs).eval()
        if name.startswith("ssd"):
            model.transform.min_size, model.transform.max_size = (size,), size
            model.transform.fixed_size = (size, size)
        models[name, size] = model
    return models[name, size]

print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                  "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request == "rss":
        print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), flush=True)
        continue
    name, size, batch = request
    model = model_at(name, size)
    if size not in photos:
        photos.clear()
        photos[size] = np.load(spec["photos"][str(size)])
    batch_photos = photos[size][:batch]
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model([torch.from_numpy(a).permute(2, 0, 1).float() / 255.0 for a in batch_photos])
    print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]), flush=True)
"""

CSV_FIELDS = ("model", "way", "input_size", "batch_size", "images_per_s", "wall_s_per_call",
              "cpu_s_per_call", "rounds", "skipped", "load_1min")


# -- kdet models -------------------------------------------------------------------------------


def kdet_ssd_builder():
    """`size -> kdet SSD` with the zoo `ssd_mobilenet_v2_coco` weights at `size x size`."""
    import kdet
    from kdet.zoo.zoo_entry import build_model
    from kdet.zoo.zoo_entry import nested_dicts

    zoo = kdet.zoo.load("ssd_mobilenet_v2_coco", progress=False)
    config = kdet.zoo.get_entry("ssd_mobilenet_v2_coco").config

    def build(size):
        sized = copy.deepcopy(config)
        for nested in nested_dicts(sized):
            if nested.get("class_name") == "FixedShapeResizer":
                nested["config"].update(height=size, width=size)
            if nested.get("class_name") == "MultiClassNonMaxSuppression":
                nested["config"]["score_threshold"] = SSD_SCORE_THRESHOLD
        model = build_model(sized)
        model.set_weights(zoo.get_weights())
        model.compile()
        return model

    return build


def kdet_faster_rcnn(size):
    """kdet `FasterRCNN` of the sample config with its 640x640 resizer at `size`, random init."""
    import keras

    from kdet.configs.model_builder import build_model_from_text

    text, count = re.subn(r"(m(?:in|ax)_dimension): 640\b", rf"\1: {size}",
                          FASTER_RCNN_CONFIG.read_text())
    if count != 2:
        raise ValueError(f"{FASTER_RCNN_CONFIG}: expected min_dimension: 640 and "
                         f"max_dimension: 640 in its image_resizer; replaced {count}")
    keras.utils.set_random_seed(0)
    model = build_model_from_text(text, str(FASTER_RCNN_CONFIG))
    model.build((None, None, None, 3))
    model.compile()
    return model


# -- the sweep ---------------------------------------------------------------------------------


def kdet_cases(model_name, size, builders):
    """`{way: function(photos)}` of the kdet (and frozen graph) ways at input size `size`."""
    from kdet.export import FrozenDetector

    model = builders[model_name](size)
    frozen = FrozenDetector(model, progress=False)
    ways = {"kdet FrozenDetector": frozen}
    if model_name == "ssd":
        ways["kdet predict_on_batch"] = model.predict_on_batch
        ways["kdet predict"] = lambda batch: model.predict(batch, batch_size=len(batch),
                                                           verbose=0)
        if size == GRAPH_SIZE:
            from ssd_speed import GRAPH_OUTPUTS

            session = builders["graph_session"]()
            ways["TF OD API frozen graph"] = lambda batch: session.run(
                GRAPH_OUTPUTS, {"image_tensor:0": batch}
            )
    return ways


def sweep(model_name, args, builders, worker, writer, results):
    from ssd_speed import peak_rss_mb
    from ssd_speed import photos
    from ssd_speed import time_interleaved
    from ssd_speed import timed
    from versus import remote_case

    for size in args.sizes[model_name]:
        start = time.perf_counter()
        images = photos(max(args.batch_sizes), size, size)
        local = kdet_cases(model_name, size, builders)
        per_image = {}
        for batch in args.batch_sizes:
            batch_images = images[:batch]
            cases, skipped = {}, {}
            ways = list(local) + (list(TORCH_MODELS[model_name]) if worker else [])
            for way in ways:
                if batch * size * size / 1e6 > args.max_megapixels[model_name]:
                    skipped[way] = "memory"
                elif way in per_image and per_image[way] * batch > args.max_call_seconds:
                    skipped[way] = "time"
                elif way in local:
                    cases[way] = timed(
                        lambda call=local[way], batch_images=batch_images: call(batch_images)
                    )
                else:
                    cases[way] = remote_case(worker, json.dumps([way, size, batch]))
            times = time_interleaved(cases, args.rounds, warmup=1, verbose=False) if cases else {}
            load = os.getloadavg()[0]
            for way in ways:
                row = {"model": model_name, "way": way, "input_size": size,
                       "batch_size": batch, "rounds": args.rounds, "load_1min": f"{load:.1f}",
                       "skipped": skipped.get(way, "")}
                if way in times:
                    wall = statistics.median(pair[0] for pair in times[way])
                    cpu = statistics.median(pair[1] for pair in times[way])
                    per_image[way] = wall / batch
                    row.update(images_per_s=f"{batch / wall:.2f}", wall_s_per_call=f"{wall:.3f}",
                               cpu_s_per_call=f"{cpu:.3f}")
                writer.writerow(row)
                results.append(row)
            print(f"{model_name} s={size} b={batch}: "
                  + ", ".join(f"{way} {batch / statistics.median(p[0] for p in times[way]):.1f}"
                              for way in times)
                  + (f"; skipped {skipped}" if skipped else "")
                  + f"; load {load:.1f}, kdet peak RSS {peak_rss_mb():.0f} MB", flush=True)
        print(f"{model_name} s={size}: {time.perf_counter() - start:.0f} s", flush=True)
    if worker:
        rss = worker.request(json.dumps("rss"))
        print(f"torchvision worker peak RSS {rss:.0f} MB", flush=True)


# -- reporting ---------------------------------------------------------------------------------


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def markdown_tables(rows):
    """One table per model: images/s per (way, input size) row and batch size column."""
    lines = []
    for model_name in dict.fromkeys(row["model"] for row in rows):
        model_rows = [row for row in rows if row["model"] == model_name]
        batches = sorted({int(row["batch_size"]) for row in model_rows})
        lines += [f"\n{TITLES.get(model_name, model_name)}: images/s\n",
                  "| way | input | " + " | ".join(f"b{b}" for b in batches) + " |",
                  "|---|---:|" + "---:|" * len(batches)]
        cells = {}
        for row in model_rows:
            value = row["images_per_s"] or ("mem" if row["skipped"] == "memory" else "–")
            cells.setdefault((row["way"], int(row["input_size"])), {})[
                int(row["batch_size"])] = value
        for (way, size), by_batch in sorted(cells.items(), key=lambda item: item[0][1]):
            lines.append(f"| {way} | {size} | "
                         + " | ".join(by_batch.get(b, "") for b in batches) + " |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_names = list(dict.fromkeys(row["model"] for row in rows))
    figure, axes = plt.subplots(1, len(model_names), figsize=(8 * len(model_names), 7.5),
                                squeeze=False)
    styles = dict(zip(INPUT_SIZES, ("-", "--", "-.", ":")))
    markers = dict(zip(INPUT_SIZES, ("o", "s", "^", "D")))
    for axis, model_name in zip(axes[0], model_names):
        model_rows = [row for row in rows if row["model"] == model_name and row["images_per_s"]]
        ways = list(dict.fromkeys(row["way"] for row in model_rows))
        colors = dict(zip(ways, plt.get_cmap("tab10").colors))
        for way in ways:
            for size in sorted({int(row["input_size"]) for row in model_rows}):
                points = sorted((int(row["batch_size"]), float(row["images_per_s"]))
                                for row in model_rows
                                if row["way"] == way and int(row["input_size"]) == size)
                if points:
                    axis.plot(*zip(*points), color=colors[way], linestyle=styles.get(size, "-"),
                              marker=markers.get(size, "o"), markersize=4,
                              label=f"{way}, {size}")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(BATCH_SIZES, [str(b) for b in BATCH_SIZES])
        axis.set_xlabel("batch size")
        axis.set_ylabel("images/s (log)")
        axis.set_title(TITLES.get(model_name, model_name), fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, ncol=3, title="way, input size (px)", title_fontsize=7,
                    loc="upper center", bbox_to_anchor=(0.5, -0.1))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=tuple(TORCH_MODELS),
                        default=list(TORCH_MODELS))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(INPUT_SIZES),
                        help="input sizes of the SSDs")
    parser.add_argument("--faster_rcnn_sizes", type=int, nargs="+",
                        default=list(FASTER_RCNN_SIZES))
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_call_seconds", type=float, default=6.0,
                        help="skip a case whose call would take longer than this")
    parser.add_argument("--max_megapixels", type=float, nargs=2, metavar=("SSD", "FASTER_RCNN"),
                        default=[MAX_MEGAPIXELS["ssd"], MAX_MEGAPIXELS["faster_rcnn"]],
                        help="skip batches of more pixels (batch x s^2), millions")
    parser.add_argument("--torch_python", default=sys.executable,
                        help="a Python with torch and torchvision; '' skips torchvision")
    # torch's default 2 OpenMP threads collapse when other processes load the cores (see
    # benchmarks/README.md): one thread is its best setting on this shared machine.
    parser.add_argument("--torch_threads", type=int, default=1, help="0: torch's default")
    parser.add_argument("--csv", default=str(HERE / "scaling.csv"))
    parser.add_argument("--png", default=str(HERE / "scaling.png"))
    parser.add_argument("--plot_only", action="store_true", help="table and plot of --csv")
    args = parser.parse_args()
    args.sizes = {"ssd": args.sizes, "faster_rcnn": args.faster_rcnn_sizes}
    args.max_megapixels = dict(zip(("ssd", "faster_rcnn"), args.max_megapixels))
    if not args.plot_only:
        run(args)
    rows = read_rows(args.csv)
    print(markdown_tables(rows))
    plot(rows, args.png)


def run(args):
    from ssd_speed import TorchWorker
    from ssd_speed import describe_machine
    from ssd_speed import frozen_graph_session
    from ssd_speed import photos

    from kdet.zoo.tf_od_api_converter import locate_ssd_mobilenet_v2_coco_graph

    print(describe_machine() + f", load {os.getloadavg()[0]:.1f}\n", flush=True)
    builders = {"faster_rcnn": kdet_faster_rcnn}
    if "ssd" in args.models:
        builders["ssd"] = kdet_ssd_builder()
        builders["graph_session"] = lambda: frozen_graph_session(
            locate_ssd_mobilenet_v2_coco_graph()
        )
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as workdir, open(args.csv, "w", newline="") as file:
        writer = csv.DictWriter(file, CSV_FIELDS)
        writer.writeheader()
        photo_paths = {}
        for size in sorted(set(args.sizes["ssd"] + args.sizes["faster_rcnn"])):
            photo_paths[str(size)] = str(pathlib.Path(workdir) / f"photos_{size}.npy")
            np.save(photo_paths[str(size)], photos(max(args.batch_sizes), size, size))
        for model_name in args.models:
            worker = None
            if args.torch_python:
                worker = TorchWorker(args.torch_python, TORCH_WORKER, {
                    "models": TORCH_MODELS[model_name], "photos": photo_paths,
                    "threads": args.torch_threads,
                })
                info = worker.info
                print(f"torch {info['torch']}, torchvision {info['torchvision']}, "
                      f"{info['threads']} threads", flush=True)
            try:
                sweep(model_name, args, builders, worker, writer, results)
            finally:
                if worker:
                    worker.close()
            file.flush()
            print(f"{model_name} done: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
