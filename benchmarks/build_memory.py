"""Peak memory and wall time of building a TF OD API config's model in kdet.

Builds `kdet.configs.load_pipeline(CONFIG).model` for `(None, None, None, 3)` images, as
before restoring a checkpoint. `--eager` builds as kdet did up to 9dc9580: one eager forward
pass of 64 px zeros, which the model resizes to its input size (second stage on every proposal,
mask head on every detection). Run each under `/usr/bin/time -v` for the process's peak
(`Maximum resident set size`); `--sample` prints the RSS and the innermost kdet frames every 2 s.

Usage:
    /usr/bin/time -v python benchmarks/build_memory.py [--eager] [--sample] CONFIG
"""

import argparse
import os
import sys
import threading
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
from ssd_speed import peak_rss_mb

import kdet
from kdet.models.object_detector import ObjectDetector


def eager_build(self, input_shape):
    """`ObjectDetector.build` of 9dc9580 (quantization-aware models aside)."""
    self.call(tf.zeros([input_shape[0] or 1, input_shape[1] or 64, input_shape[2] or 64, 3]))
    if self.freeze_batchnorm:
        self._freeze_batch_norms()


def current_rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def sample_forever(thread_id, seconds=2.0):
    """Prints this process's RSS and the innermost kdet frames of a thread, every `seconds`."""
    while True:
        time.sleep(seconds)
        stack = traceback.extract_stack(sys._current_frames()[thread_id])
        frames = [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
                  for frame in stack if "/kdet/" in frame.filename][-3:]
        print(f"  {current_rss_mb():.0f} MB | {' > '.join(frames)}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--eager", action="store_true", help="the eager build of 9dc9580")
    parser.add_argument("--sample", action="store_true", help="print the RSS every 2 s")
    args = parser.parse_args(argv)
    if args.eager:
        ObjectDetector.build = eager_build  # bound when the model is made
    model = kdet.configs.load_pipeline(args.config).model
    before = peak_rss_mb()
    if args.sample:
        main_thread = threading.main_thread().ident
        threading.Thread(target=sample_forever, args=(main_thread,), daemon=True).start()
    start = time.perf_counter()
    model.build((None, None, None, 3))
    seconds = time.perf_counter() - start
    values = sum(int(tf.size(weight)) for weight in model.weights)
    print(f"{'eager' if args.eager else 'symbolic'} build of {os.path.basename(args.config)}: "
          f"{len(model.weights)} weights, {values / 1e6:.2f} M values, {seconds:.1f} s; peak RSS "
          f"{before:.0f} MB before the build, {peak_rss_mb():.0f} MB after", flush=True)


if __name__ == "__main__":
    main()
