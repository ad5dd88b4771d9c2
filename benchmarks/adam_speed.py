"""First `train_on_batch` (trace + step) and later steps: Keras Adam vs `kdet.training.FusedAdam`
vs momentum SGD, on kdet detectors, on CPU.

Keras 3's `keras.optimizers.Adam.update_step` traces ~41 graph ops per variable; FusedAdam
updates each variable with TF's `ResourceApplyAdam` op. Models (random init, batch 2 of
`kdet.datasets.shapes` images):
- `tiny CenterNet`: the tests' `tiny_center_net` (64 px, filters 32, depth 2, 2 classes);
- `CenterNet MobileNetV2-FPN`: the zoo's `centernet_mobilenetv2fpn_512x512_coco17_od` model
  (`center_net_speed.CONFIG`) resized to 128 px;
- `CenterNet ResNet50 v2`: `centernet_resnet50_v2_512x512_coco17_tpu-8.config` (TF2 zoo,
  `adam_optimizer`) resized to 128 px;
- `SSD MobileNetV2 FPNLite`: `ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config` at 128 px.
Optimizers: learning rate 1e-3, Adam epsilon 1e-7, SGD momentum 0.9, no EMA. Each (model,
optimizer) runs in a fresh process (build not timed): `first` = wall time of the first
`train_on_batch`, `step` = median of the next `--steps`. Rounds alternate the optimizers so
load drift hits them alike; the table reports the best round (the least disturbed by other
jobs on a shared machine). `apply ops` = graph ops
of one traced `optimizer.apply` over the model's trainable variables.

Usage:
    python benchmarks/adam_speed.py [--rounds 2] [--steps 5]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = {
    "tiny CenterNet": 64,
    "CenterNet MobileNetV2-FPN": 128,
    "CenterNet ResNet50 v2": 128,
    "SSD MobileNetV2 FPNLite": 128,
}
OPTIMIZERS = ("keras Adam", "FusedAdam", "SGD momentum")
BATCH_SIZE = 2


def build(model_name, size):
    """The kdet detector `model_name` at `size` px, random init."""
    sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests" / "models" / "center_net")]
    from kdet.configs import load_pipeline
    from kdet.configs.model_builder import build_model_from_text

    if model_name == "tiny CenterNet":
        from tiny_center_net import tiny_center_net

        return tiny_center_net(num_classes=2, image_size=size, filters=32, depth=2)
    if model_name == "CenterNet MobileNetV2-FPN":
        from center_net_speed import CONFIG

        return build_model_from_text(CONFIG.replace("dimension: 512", f"dimension: {size}"))
    if model_name == "CenterNet ResNet50 v2":
        # Its model only: its train_input_reader is a TPU-only external reader.
        text = pathlib.Path("/work/shared/tfod_configs/tf2/"
                            "centernet_resnet50_v2_512x512_coco17_tpu-8.config").read_text()
        text = text[:text.index("train_config")].replace("dimension: 512", f"dimension: {size}")
        return build_model_from_text(text)
    path = REPO / "tests/data/tfod_configs/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config"
    text = (path.read_text().replace("height: 320", f"height: {size}")
            .replace("width: 320", f"width: {size}"))
    with tempfile.TemporaryDirectory() as folder:
        config = pathlib.Path(folder) / "pipeline.config"
        config.write_text(text)
        return load_pipeline(config).model


def run_case(model_name, optimizer_name, steps):
    """Builds, compiles and times one case; returns a dict of seconds and op counts."""
    import keras
    import numpy as np
    import tensorflow as tf

    import kdet

    keras.utils.set_random_seed(0)
    size = MODELS[model_name]
    model = build(model_name, size)
    model.build((None, size, size, 3))
    optimizer = {
        "keras Adam": lambda: keras.optimizers.Adam(1e-3, epsilon=1e-7),
        "FusedAdam": lambda: kdet.training.FusedAdam(1e-3, epsilon=1e-7),
        "SGD momentum": lambda: keras.optimizers.SGD(1e-3, momentum=0.9),
    }[optimizer_name]()
    model.compile(optimizer=optimizer)
    images, y = kdet.datasets.shapes(BATCH_SIZE, size, seed=0, max_boxes=3, num_classes=2)
    start = time.perf_counter()
    model.train_on_batch(images, y)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(images, y)
        times.append(time.perf_counter() - start)
    variables = model.trainable_variables
    zeros = [tf.zeros_like(v) for v in variables]
    graph = tf.function(lambda: optimizer.apply(zeros, variables)).get_concrete_function().graph
    return {"first": first, "step": float(np.median(times)), "variables": len(variables),
            "apply_ops": len(graph.get_operations())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # model, optimizer (worker)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(*args.case, args.steps)))
        return
    results = {}
    for round_index in range(args.rounds):
        for model_name in MODELS:
            order = OPTIMIZERS[round_index % 3:] + OPTIMIZERS[:round_index % 3]
            for optimizer_name in order:
                output = subprocess.run(
                    [sys.executable, __file__, "--steps", str(args.steps),
                     "--case", model_name, optimizer_name],
                    check=True, capture_output=True, text=True,
                ).stdout
                result = json.loads(output.strip().splitlines()[-1])
                results.setdefault((model_name, optimizer_name), []).append(result)
                print(model_name, optimizer_name, result, flush=True)
    print(f"\n`uptime`: {os.popen('uptime').read().strip()}\n")
    print("| model | variables | optimizer | apply ops | first `train_on_batch` | later step |")
    print("|---|---:|---|---:|---:|---:|")
    for (model_name, optimizer_name), rounds in results.items():
        first = min(r["first"] for r in rounds)
        step = min(r["step"] for r in rounds)
        print(f"| {model_name} ({MODELS[model_name]} px) | {rounds[0]['variables']} | "
              f"{optimizer_name} | {rounds[0]['apply_ops']:,} | {first:.1f} s | "
              f"{step * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
