"""What `kdet.configs.load_pipeline` says about each TF OD API sample config: builds, or its
first error.

Runs `load_pipeline(path)` on every `*.config` of the TF OD API sample folders (by default
`../shared/tfod_configs/samples` and `../shared/tfod_configs/tf2` next to the repository:
`samples/configs/*.config` and `configs/tf2/*.config` of tensorflow/models) and prints two
Markdown tables: one line per config (the first line of its error, without the folder), and the
number of configs per cause. Results go to benchmarks/README.md.

Paths in the configs (`input_path`, `label_map_path`, `fine_tune_checkpoint`) are left as
written: `load_pipeline` only records them (`Pipeline.config_paths`); they are checked later,
by `check_config_paths`, when `train_dataset`, `eval_dataset` or `restore_fine_tune_checkpoint`
needs them. This script calls none of those, so a missing file never is the first error here.
A config whose model builds is counted as building (its weights are created on the first call,
so building it costs only the Keras layer objects).

With `--train` (instead of the tables above), every config whose meta-architecture and feature
extractor kdet has (`check_architecture` passes: the SSD, Faster R-CNN, Mask R-CNN, R-FCN,
Context R-CNN and CenterNet configs, DeepMAC's included) is built at its own size, trained and
used to predict, each in a process of its own, one at a time (`--train-one`, under
`/usr/bin/time -v`): its paths replaced by a tiny record with 17 keypoints and a PNG instance
mask per box and COCO's keypoint label map (`tests/configs/test_sample_configs.py`'s
`with_paths`, `write_inputs`; a config reading `input_type: TF_SEQUENCE_EXAMPLE`, Context
R-CNN's, reads that test's `sequence_record` instead: tf.train.SequenceExamples with context
features; one reading numerical masks, `mask_rcnn_resnet101_pets.config`, the record with its
masks as numerical ones; an `external_input_reader`, Google's own SSTable reader, becomes a
`tf_record_input_reader` of that record: nothing else changed), `load_pipeline` ("build"), then
that test's `train_steps_and_predict` (2 `fit` steps with the config's optimizer on the first
image of the config's `train_dataset`, read at batch size 1, then a prediction; Context R-CNN's
of the image with one context feature). A process whose RSS passes
`--max-rss-gb` (default 9) is stopped, its config recorded as not run here with the peak it
reached; `--timeout` stops a slow one the same way. Each row (build and step seconds,
prediction, peak RSS, losses or the first error with its innermost kdet frame, when and at
which commit and load it was measured) is written into `--output`
(benchmarks/sample_configs_train_status.md) as soon as its process ends; rows of configs not
run are kept, so `--configs NAME ...` or `--missing-only` refresh part of the table.

Usage: python benchmarks/sample_configs_status.py [FOLDER ...] [--per-config] [--width 240]
       python benchmarks/sample_configs_status.py [FOLDER ...] --train [--configs NAME ...]
           [--missing-only] [--max-rss-gb 9] [--timeout S] [--log-dir DIR] [--output FILE]
"""

import argparse
import collections
import dataclasses
import json
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs.model_builder import check_architecture
from kdet.configs.text_format import parse
from kdet.configs.text_format import parse_file
from kdet.data.converters import write_tfrecord
from kdet.data.tf_example import MASK

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "configs"))
from test_sample_configs import sequence_record
from test_sample_configs import train_steps_and_predict
from test_sample_configs import with_paths
from test_sample_configs import write_inputs

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = [
    REPOSITORY.parent / "shared" / "tfod_configs" / "samples",
    REPOSITORY.parent / "shared" / "tfod_configs" / "tf2",
]
BUILDS = "builds"
TRAIN_TABLE = REPOSITORY / "benchmarks" / "sample_configs_train_status.md"

# The causes a first error names when it says what kdet does not have yet (the problem
# after `file:line:column:`), most specific first: (pattern, cause).
_CAUSES = [
    (re.compile(r"CenterNet is not in kdet"), "CenterNet (issue 18)"),
    (re.compile(r"R-FCN is not in kdet"), "R-FCN (issue 19)"),
    (re.compile(r"Context R-CNN .*is not in kdet"), "Context R-CNN (issue 19)"),
    (re.compile(r"^[^;]*instance masks"), "instance masks: Mask R-CNN (issue 19)"),
    (re.compile(r"^[^;]*feature extractor '[^']+' \([^)]+\) is not in kdet"),
     "feature extractor not in kdet yet (issue 17)"),
]
_LOCATION = re.compile(r"^[^:]+:\d+:\d+: ")
_FIELD = re.compile(r"^'([^']+)'")
_MISSING_EXTRACTOR = re.compile(r"^[^;]*feature extractor '([^']+)' \(([^)]+)\) is not in kdet")


def first_error(path):
    """`(status, text)`: `BUILDS` and "", or the first error line without the folder."""
    try:
        load_pipeline(path)
    except ConfigError as error:
        return "error", str(error).splitlines()[0].replace(str(path.parent) + os.sep, "")
    except Exception as error:  # noqa: BLE001 - the table records whatever stops the config
        return "crash", f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        keras.backend.clear_session()
    return BUILDS, ""


def cause(status, text):
    """The cause a first error line names: a known unsupported architecture or feature, or the
    field it complains about (its dotted path, up to the message that holds it)."""
    if status == BUILDS:
        return BUILDS
    if status == "crash":
        return "crash: " + text.split(":", 1)[0]
    problem = _LOCATION.sub("", text)
    for pattern, name in _CAUSES:
        if pattern.search(problem):
            return name
    match = _FIELD.match(problem)
    if not match:
        return "other: " + problem[:60]
    section, _, rest = match.group(1).partition(".")
    return f"field in {section}: {rest.rsplit('.', 1)[-1] or section}"


class _Timed:
    """A callable timing the calls of `function` (seconds summed in `seconds`)."""

    def __init__(self, function):
        self.function = function
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def _failure(stage, error):
    """`stage: Type: first line (file:line in function)` of an exception, the frame the
    innermost kdet frame (else the innermost one)."""
    frames = traceback.extract_tb(error.__traceback__)
    kdet_frames = [frame for frame in frames if f"{os.sep}kdet{os.sep}" in frame.filename]
    frame = (kdet_frames or frames or [None])[-1]
    where = ""
    if frame is not None:
        where = f" ({os.path.relpath(frame.filename, REPOSITORY)}:{frame.lineno} in {frame.name})"
    first_line = (str(error).splitlines() or [""])[0][:300]
    return f"{stage}: {type(error).__name__}: {first_line}{where}"


_EXTERNAL_READER = re.compile(r"\bexternal_input_reader\s*:?\s*\{")
# An input reader of tf.train.SequenceExamples (Context R-CNN's: frames with context features).
_SEQUENCE_INPUT = re.compile(r"\binput_type\s*:\s*TF_SEQUENCE_EXAMPLE\b")


def with_record_readers(text):
    """The config text with each `external_input_reader { ... }` (an input reader of Google's own,
    SSTables in `centernet_resnet50_v2_512x512_coco17_tpu-8.config`) replaced by a
    `tf_record_input_reader` with an empty `input_path`, which `with_paths` then sets."""
    while match := _EXTERNAL_READER.search(text):
        depth, end = 1, match.end()
        while depth:
            if end == len(text):
                raise ValueError(f"external_input_reader at character {match.start()} is not "
                                 "closed by a '}'")
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        text = f'{text[:match.start()]}tf_record_input_reader {{ input_path: "" }}{text[end:]}'
    return text


def reads_numerical_masks(text):
    """Whether the config text's `train_input_reader` loads instance masks as numerical ones
    (`mask_type` NUMERICAL_MASKS or unset: DEFAULT, which the TF OD API reads as numerical)."""
    reader = parse(text).first("train_input_reader")
    return bool(reader and reader.first("load_instance_masks")
                and str(reader.first("mask_type", "DEFAULT")) != "PNG_MASKS")


def with_numerical_masks(record):
    """A copy of `record` (`write_inputs`'s, PNG masks) beside it, each example's
    `image/object/mask` rewritten as `num_boxes * height * width` 0/1 floats (NUMERICAL_MASKS,
    as `mask_rcnn_resnet101_pets.config` reads them); returns its path."""
    examples = []
    for serialized in tf.data.TFRecordDataset(str(record)):
        example = tf.train.Example.FromString(serialized.numpy())
        feature = example.features.feature
        masks = [tf.io.decode_png(png).numpy().ravel() for png in feature[MASK].bytes_list.value]
        del feature[MASK]
        feature[MASK].float_list.value.extend(np.concatenate(masks).astype("float32"))
        examples.append(example)
    copy = record.with_name("train_numerical_masks.record")
    write_tfrecord(examples, copy)
    return copy


def train_one(path, folder, progress=lambda result: None):
    """Builds, trains and predicts config `path` in this process (see the module docstring);
    returns a JSON-able dict: `build_s`, `train_s`, `predict_s`, `boxes`, `losses`,
    `changed`, and `error` (`stage: …`) when a stage failed. `progress(result)` is called
    after the build too, so that a process stopped later leaves its build time."""
    folder = pathlib.Path(folder)
    copy = folder / path.name
    text = with_record_readers(path.read_text())
    record, label_map = write_inputs(folder)
    if _SEQUENCE_INPUT.search(text):
        record = sequence_record(record)
    elif reads_numerical_masks(text):
        record = with_numerical_masks(record)
    copy.write_text(with_paths(text, record, label_map))
    result = {}
    stage = "build"
    try:
        start = time.perf_counter()
        pipeline = load_pipeline(copy)
        result["build_s"] = time.perf_counter() - start
        progress(result)
        # Batch 1: the steps train on one image anyway (`train_steps_and_predict`), and a
        # batch of 64-2048 full-size images costs GBs before the model runs.
        pipeline = dataclasses.replace(
            pipeline, train=dataclasses.replace(pipeline.train, batch_size=1))
        # Times the prediction `train_steps_and_predict` makes after its steps.
        predict = pipeline.model.predict_on_batch = _Timed(pipeline.model.predict_on_batch)
        stage = "train"
        start = time.perf_counter()
        losses, changed, detections = train_steps_and_predict(pipeline)
        elapsed = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - the table records whatever stops the config
        if stage == "train" and predict.seconds:
            stage = "predict"
        traceback.print_exc()  # into the process's log (`--log-dir`)
        result["error"] = _failure(stage, error)
        return result
    result["train_s"] = elapsed - predict.seconds
    result["predict_s"] = predict.seconds
    result["losses"] = {name: [float(value) for value in values]
                        for name, values in losses.items()}
    result["changed"] = changed
    result["boxes"] = int(detections["num_detections"][0])
    return result


def _python_child(pid):
    """The pid of the one child process of `pid` (the Python `/usr/bin/time` runs), or None."""
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _rss_kb(pid):
    """The resident set size of process `pid` in kB (0 once it is gone)."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_isolated(path, max_rss_kb, timeout, log):
    """Runs `train_one(path)` in its own process under `/usr/bin/time -v` (its report and
    the process's stderr go to file `log`); stops it (SIGKILL) when its RSS passes
    `max_rss_kb` or after `timeout` seconds.

    Returns `(result, peak_kb, seconds, cpu_seconds, stopped)`: `train_one`'s dict (empty if
    the process left none), the peak RSS `/usr/bin/time` measured (the larger of it and the
    polled one), the wall and CPU (user + system, both cores) seconds of the whole process
    (TensorFlow's import included) and why it was stopped ("" if it was not).
    """
    with tempfile.TemporaryDirectory() as folder:
        result_file = pathlib.Path(folder) / "result.json"
        command = ["/usr/bin/time", "-v", sys.executable, str(pathlib.Path(__file__).resolve()),
                   "--train-one", str(path), "--result", str(result_file)]
        start = time.perf_counter()
        with open(log, "w") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                       cwd=folder)
            polled, stopped = 0, ""
            while process.poll() is None:
                child = _python_child(process.pid)
                if child is not None:
                    polled = max(polled, _rss_kb(child))
                    seconds = time.perf_counter() - start
                    if polled > max_rss_kb:
                        stopped = "rss"
                    elif timeout and seconds > timeout:
                        stopped = "timeout"
                    if stopped:
                        os.kill(child, signal.SIGKILL)
                        process.wait()
                        break
                time.sleep(0.5)
        seconds = time.perf_counter() - start
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    report = pathlib.Path(log).read_text(errors="replace")
    measured = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    peak = max(polled, int(measured.group(1)) if measured else 0)
    cpu_seconds = sum(float(value) for value in
                      re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", report))
    if not stopped and not ("error" in result or "losses" in result):
        lines = [line for line in report.splitlines() if line.strip()]
        tail = next((line for line in reversed(lines) if "Error" in line), "no result")
        ended = f"process ended without a result (exit {process.returncode})"
        result = {**result, "error": f"{ended}: {tail.strip()[:300]}"}
    return result, peak, seconds, cpu_seconds, stopped


def extractor_type(path):
    """The `feature_extractor.type` config `path` names."""
    (meta_architecture,) = parse_file(path).first("model").fields
    return meta_architecture.value.first("feature_extractor").first("type")


def trainable_configs(paths):
    """The configs of `paths` whose meta-architecture and feature extractor kdet has."""
    selected = []
    for path in paths:
        try:
            check_architecture(parse_file(path))
        except ConfigError:
            continue
        selected.append(path)
    return selected


def _gb(kb):
    return f"{kb / 1024 ** 2:.1f}"


def table_row(path, result, peak_kb, seconds, cpu_seconds, stopped, max_rss_kb, measured):
    """The Markdown row of one `--train` run (columns: `TABLE_HEADER`)."""
    cells = [f"{result[key]:.0f}" if key in result else "-"
             for key in ("build_s", "train_s")]
    stage = "training" if "build_s" in result else "building"
    if stopped == "rss":
        status = (f"not run here: needs > {_gb(max_rss_kb)} GB (stopped at {_gb(peak_kb)} GB "
                  f"after {seconds:.0f} s, {stage})")
    elif stopped == "timeout":
        status = f"not run here: stopped after {seconds:.0f} s ({stage}; --timeout)"
    elif "error" in result:
        status = "fails: " + result["error"]
    else:
        total = result["losses"]["loss"]
        finite = all(math.isfinite(v) for values in result["losses"].values() for v in values)
        status = ("trains" if finite and result["changed"] > 0 else "fails: " + (
            "a loss is not finite" if not finite else "the last step changed no weight"))
        status += (f" (loss {' → '.join(f'{value:.3g}' for value in total)}; "
                   f"{result['changed']:.0%} of the trainable variables changed)")
    predicted = f"yes ({result['boxes']} boxes)" if "boxes" in result else "no"
    name = f"{path.parent.name}/{path.name}"
    return (f"| {name} | `{extractor_type(path)}` | {' | '.join(cells)} | {predicted} | "
            f"{_gb(peak_kb)} | {seconds:.0f} / {cpu_seconds:.0f} | {status.replace('|', '/')} "
            f"| {measured} |")


TABLE_HEADER = (
    "| config | extractor | build s | 2 steps s | predicts | peak RSS GB "
    "| process s wall / CPU | status | measured |\n|---|---|---:|---:|---|---:|---:|---|---|"
)
_ROW_NAME = re.compile(r"^\| (\S+/\S+\.config) \|")
_TABLE_INTRO = """# TF OD API sample configs: full-size training, one config per process

Written by `python benchmarks/sample_configs_status.py --train` (see its docstring; rows of
configs not run again are kept, so a run of some configs refreshes their rows only). Each
row: one sample config (that kdet has) of `../shared/tfod_configs/` (`samples/`: TF1
`samples/configs`, `tf2/`: `configs/tf2` of tensorflow/models), unchanged except for its
paths (a 4-image record of 96-144 px images with one box each, one class, 17 keypoints and a
PNG instance mask per box (numerical masks for a config reading those) and COCO's keypoint
label map, or, for `input_type: TF_SEQUENCE_EXAMPLE` (Context R-CNN), 2
tf.train.SequenceExamples of 2 such 96x128 frames with 3 context features of 2057 values;
`fine_tune_checkpoint` emptied; an `external_input_reader`, Google's own, read as a
`tf_record_input_reader` of that record), in its own process under `/usr/bin/time -v`:

- **build s**: `load_pipeline` (model layers at the config's size, optimizer, settings);
- **2 steps s**: the first batch of its `train_dataset` at batch size 1 (the config's
  augmentation and resizer) and 2 `fit` steps of the full-size, randomly initialized model
  with the config's optimizer (weights created and the step traced in the first);
- **predicts**: one `predict_on_batch` of a 120x100 image (Context R-CNN: with one context
  feature of ones), and the boxes it kept;
- **peak RSS GB**: the process's maximum resident set size (`/usr/bin/time -v`, GiB); a run
  passing `--max-rss-gb` is stopped and recorded as not run here, with the peak it reached;
- **process s wall / CPU**: the whole process (TensorFlow's import, the record, the
  prediction included): wall seconds, and CPU seconds (user + system, both cores, from
  `/usr/bin/time -v`), which the other jobs on the machine change much less;
- **status**: the losses of the 2 steps (random weights and a toy record: only checked to be
  finite), the share of trainable variables the second step changed, or the first error
  (stage, exception, the innermost kdet frame);
- **measured**: UTC time, kdet commit (plus the uncommitted work in the checkout then) and
  the 1-minute load average when the config started.

A config without a row has not been run this way yet (`--missing-only` runs those).

**Machine**: 2-core CPU, 24 GiB RAM, TF 2.21, Keras 3.15, **shared with the jobs of about 8
agents** (see each row's load average): the seconds are several times a quiet machine's and
compare rows only roughly.
"""


def read_rows(output):
    """Config name → its row in the `--train` table `output` (empty if there is none)."""
    if not output.exists():
        return {}
    return {match.group(1): line for line in output.read_text().splitlines()
            if (match := _ROW_NAME.match(line))}


def write_table(output, rows):
    """Writes the `--train` table: the intro, then `rows` (name → row) sorted by name."""
    ordered = "\n".join(rows[name] for name in sorted(rows))
    output.write_text(f"{_TABLE_INTRO}\n{TABLE_HEADER}\n{ordered}\n")


def _measured_note():
    commit = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    return (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, `{commit}`, load "
            f"{os.getloadavg()[0]:.1f}")


def run_training(paths, args):
    """Runs `--train`: each config of `paths` kdet has, one process at a time, its row
    written into `args.output` as soon as it is measured."""
    rows = read_rows(args.output)
    selected = trainable_configs(paths)
    if args.missing_only:
        selected = [p for p in selected if f"{p.parent.name}/{p.name}" not in rows]
    max_rss_kb = int(args.max_rss_gb * 1024 ** 2)
    log_folder = args.log_dir or pathlib.Path(tempfile.mkdtemp(prefix="sample_configs_"))
    log_folder.mkdir(parents=True, exist_ok=True)
    print(f"{len(selected)} configs; logs in {log_folder}", file=sys.stderr, flush=True)
    for path in selected:
        measured = _measured_note()
        log = log_folder / f"{path.parent.name}_{path.stem}.log"
        result, peak, seconds, cpu_seconds, stopped = run_isolated(
            path, max_rss_kb, args.timeout, log)
        row = table_row(path, result, peak, seconds, cpu_seconds, stopped, max_rss_kb, measured)
        rows[f"{path.parent.name}/{path.name}"] = row
        write_table(args.output, rows)
        print(row, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=pathlib.Path, default=DEFAULT_FOLDERS)
    parser.add_argument("--per-config", action="store_true",
                        help="also print one table row per config")
    parser.add_argument("--width", type=int, default=240,
                        help="longest first error shown per config (characters)")
    parser.add_argument("--train", action="store_true",
                        help="instead: train 2 steps and predict with every config kdet has, one "
                             "process each, into --output")
    parser.add_argument("--configs", nargs="+", metavar="NAME",
                        help="with --train: only these configs (file names), in this order")
    parser.add_argument("--missing-only", action="store_true",
                        help="with --train: only configs without a row in --output")
    parser.add_argument("--output", type=pathlib.Path, default=TRAIN_TABLE,
                        help="with --train: the Markdown table to write or refresh")
    parser.add_argument("--max-rss-gb", type=float, default=9.0,
                        help="with --train: stop a config whose process passes this RSS (GiB)")
    parser.add_argument("--timeout", type=float, default=0,
                        help="with --train: stop a config after this many seconds (0: never)")
    parser.add_argument("--log-dir", type=pathlib.Path,
                        help="with --train: keep each process's stderr here")
    parser.add_argument("--train-one", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_one:  # the process `run_isolated` starts
        def write(result):  # whole or not at all: the process may be stopped at any time
            partial = args.result.with_suffix(".partial")
            partial.write_text(json.dumps(result))
            partial.replace(args.result)

        with tempfile.TemporaryDirectory() as folder:
            write(train_one(args.train_one, folder, progress=write))
        return
    paths = sorted(p for folder in args.folders for p in folder.glob("*.config"))
    if not paths:
        sys.exit(f"no *.config in {', '.join(map(str, args.folders))}")
    if args.train:
        if args.configs:
            by_name = {path.name: path for path in paths}
            unknown = [name for name in args.configs if name not in by_name]
            if unknown:
                sys.exit(f"--configs: not in {', '.join(map(str, args.folders))}: {unknown}")
            paths = [by_name[name] for name in args.configs]
        run_training(paths, args)
        return
    rows, counts = [], collections.Counter()
    start = time.perf_counter()
    for path in paths:
        status, text = first_error(path)
        reason = cause(status, text)
        counts[reason] += 1
        rows.append((f"{path.parent.name}/{path.name}", reason, text))
        print(f"{path.parent.name}/{path.name}: {reason}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    if args.per_config:
        print("| config | cause | first error |")
        print("|---|---|---|")
        for name, reason, text in rows:
            shown = text if len(text) <= args.width else text[: args.width - 1] + "…"
            print(f"| {name} | {reason} | {shown.replace('|', '/') or '-'} |")
        print()
    print(f"{len(paths)} configs, {counts[BUILDS]} build; {elapsed:.0f} s\n")
    print("| first error names | configs |")
    print("|---|---:|")
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"| {reason} | {count} |")
    extractors = collections.Counter(
        match.groups() for match in (_MISSING_EXTRACTOR.search(_LOCATION.sub("", text))
                                     for _, _, text in rows) if match
    )
    if extractors:
        print("\n| feature extractor not in kdet yet | configs |")
        print("|---|---:|")
        for (name, what), count in sorted(extractors.items(), key=lambda item: (-item[1], item[0])):
            print(f"| `{name}` ({what}) | {count} |")


if __name__ == "__main__":
    main()
