"""Training input on a tf.data service: images/s in-process vs 1 and 2 local worker processes.

The training pipeline of the TF OD API sample config `ssd_mobilenet_v2_coco.config` (its
`train_input_reader` and `train_config`: random_horizontal_flip + ssd_random_crop, 300x300
fixed_shape_resizer, batch 24, repeated forever), as `kdet.configs.train_dataset` builds it for
`kdet train`, over photo-like 640x480 JPEG records (crops of the bundled quokka and deepforest
images, `input_pipeline.py`'s `write_records`). It is timed as `kdet train` would consume it,
in this process (`data_service=None`) and through a dispatcher (in this process) with 1 and 2
workers, each a separate `python -c` process running TF's `WorkerServer`. Each round builds a
fresh iterator per setting (a new service job), reads `--warmup` batches, then times
`--batches` batches; settings take turns within a round. Results go to benchmarks/README.md.

Usage: python benchmarks/data_service.py [--num-images 192] [--batches 20] [--rounds 3]
"""

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from input_pipeline import write_records

from kdet.configs import load_pipeline
from kdet.configs import train_dataset
from kdet.configs.datasets import input_size

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "data" / "tfod_configs" / "ssd_mobilenet_v2_coco.config"
SERVICE = tf.data.experimental.service
# TF's two lines, as docs/training.md gives them to start a worker.
WORKER = (
    "import sys, tensorflow as tf; s = tf.data.experimental.service; "
    "s.WorkerServer(s.WorkerConfig(sys.argv[1])).join()"
)


def sample_config(directory):
    """The sample config, reading the records of `directory` (its label map: one class)."""
    label_map = pathlib.Path(directory) / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'object' }\n")
    text = CONFIG.read_text()
    text = text.replace("PATH_TO_BE_CONFIGURED/mscoco_train.record", f"{directory}/train-*")
    text = text.replace("PATH_TO_BE_CONFIGURED/mscoco_label_map.pbtxt", str(label_map))
    path = pathlib.Path(directory) / "pipeline.config"
    path.write_text(text)
    return path


def start_service(num_workers):
    """A dispatcher here and `num_workers` worker processes, all registered."""
    dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=0))
    address = dispatcher.target.split("://")[1]
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, address], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        for _ in range(num_workers)
    ]
    deadline = time.monotonic() + 300
    while dispatcher._num_workers() < num_workers:  # TF has no public count
        if time.monotonic() > deadline:
            raise RuntimeError(f"{num_workers} workers did not register in 300 s")
        time.sleep(0.5)
    return dispatcher, workers


def constant_batches(pipeline, dtype, target):
    """`(images, 0)` batches shaped like the training input's, through the service: one random
    batch (which compresses as little as noise does), sent again and again."""
    (height, width), _ = input_size(pipeline.model)
    shape = [pipeline.train.batch_size, height, width, 3]
    noise = np.random.default_rng(0).uniform(0, 255, shape).astype(dtype)
    batch = tf.data.Dataset.from_tensors(noise).repeat()
    return batch.map(lambda images: (images, 0)).apply(
        SERVICE.distribute("parallel_epochs", target)).prefetch(tf.data.AUTOTUNE)


def images_per_second(dataset, warmup, batches):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=192)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        mean_bytes = write_records(directory, args.num_images)
        pipeline = load_pipeline(sample_config(directory))
        services = {count: start_service(count) for count in (1, 2)}
        try:
            settings = {
                "in-process (`data_service=None`)": lambda: train_dataset(pipeline),
                **{
                    f"tf.data service, {count} worker process{'es' if count > 1 else ''}": (
                        lambda target=dispatcher.target: train_dataset(
                            pipeline, data_service=target)
                    )
                    for count, (dispatcher, _) in services.items()
                },
                # What the transfer alone allows: batches of the same shape made for nothing.
                **{
                    f"transfer only, {dtype} batches of that shape, 1 worker": (
                        lambda dtype=dtype: constant_batches(
                            pipeline, dtype, services[1][0].target)
                    )
                    for dtype in ("float32", "uint8")
                },
            }
            print(
                f"# {CONFIG.name}: batch {pipeline.train.batch_size}, "
                f"{len(pipeline.train.augmentation)} augmentations, 300x300; "
                f"{args.num_images} JPEG records 640x480 (mean {mean_bytes / 1024:.0f} KiB) in "
                f"4 shards\n# per setting {args.rounds} rounds: {args.warmup} warm-up batches, "
                f"then {args.batches} timed\n# {platform.machine()}, {os.cpu_count()} CPU "
                f"cores, TF {tf.__version__}, load average before: {os.getloadavg()}"
            )
            rates = {name: [] for name in settings}
            for _ in range(args.rounds):
                for name, dataset in settings.items():
                    rates[name].append(images_per_second(dataset(), args.warmup, args.batches))
            print("\n| input of `kdet train` | images/s (median) | range |\n|---|---:|---:|")
            for name, values in rates.items():
                print(f"| {name} | {np.median(values):.1f} | {min(values):.1f}–{max(values):.1f} |")
            print(f"# load average after: {os.getloadavg()}")
        finally:
            for dispatcher, workers in services.values():
                for worker in workers:
                    worker.terminate()
                    worker.wait()
                dispatcher.stop()


if __name__ == "__main__":
    main()
