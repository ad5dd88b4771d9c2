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

With `--train`, every config that builds also trains and predicts as the 8 configs of
`tests/configs/test_sample_configs.py` do in CI, but full size: its paths replaced by a tiny
record (nothing else changed), a batch of its `train_dataset` (the config's batch size,
augmentation and resizer), `STEPS` (2) training steps of the full-size model with the config's
optimizer on the first image of that batch (model and optimizer built before `fit`, as in the
test), and a prediction; the table gives the seconds each
part took (on a config copy in a temporary folder), the total loss of each step, the share of
trainable variables the last step changed and the number of boxes predicted.

Usage: python benchmarks/sample_configs_status.py [FOLDER ...] [--per-config] [--width 240]
           [--train]
"""

import argparse
import collections
import math
import os
import pathlib
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from kdet.configs import ConfigError
from kdet.configs import load_pipeline
from kdet.configs import train_dataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "configs"))
from test_sample_configs import STEPS
from test_sample_configs import train_steps_and_predict
from test_sample_configs import with_paths
from test_sample_configs import write_inputs

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = [
    REPOSITORY.parent / "shared" / "tfod_configs" / "samples",
    REPOSITORY.parent / "shared" / "tfod_configs" / "tf2",
]
BUILDS = "builds"

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


def train_and_predict(path, inputs, folder):
    """`(text, seconds)`: how the config's batch, training steps and prediction went."""
    copy = pathlib.Path(folder) / path.name
    copy.write_text(with_paths(path.read_text(), *inputs))
    times = {}
    try:
        start = time.perf_counter()
        pipeline = load_pipeline(copy)
        times["load"] = time.perf_counter() - start
        start = time.perf_counter()
        next(iter(train_dataset(pipeline, seed=1)))
        times["batch"] = time.perf_counter() - start
        start = time.perf_counter()
        losses, changed, detections = train_steps_and_predict(pipeline)
        times["steps+predict"] = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - the table records whatever stops the config
        return f"{type(error).__name__}: {str(error).splitlines()[0]}", times
    finally:
        keras.backend.clear_session()
    total = losses["loss"]
    if not all(math.isfinite(value) for values in losses.values() for value in values):
        return f"a loss is not finite: {losses}", times
    if changed == 0:
        return "the last step changed no weight", times
    return (f"trains (loss {' → '.join(f'{value:.3g}' for value in total)}; "
            f"{changed:.0%} of the trainable variables changed) and predicts "
            f"({int(detections['num_detections'][0])} boxes)"), times


def run_training(paths, rows):
    """Prints the `--train` table of the configs of `rows` that build."""
    print(f"| config | batch size | load s | batch s | {STEPS} steps + predict s | result |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        inputs = write_inputs(pathlib.Path(folder))
        for path, (_, reason, _) in zip(paths, rows):
            if reason != BUILDS:
                continue
            text, times = train_and_predict(path, inputs, folder)
            batch_size = re.search(r"batch_size:\s*(\d+)", path.read_text())
            cells = [f"{times[key]:.0f}" if key in times else "-"
                     for key in ("load", "batch", "steps+predict")]
            print(f"| {path.parent.name}/{path.name} | {batch_size.group(1) if batch_size else '-'} "
                  f"| {' | '.join(cells)} | {text} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=pathlib.Path, default=DEFAULT_FOLDERS)
    parser.add_argument("--per-config", action="store_true",
                        help="also print one table row per config")
    parser.add_argument("--width", type=int, default=240,
                        help="longest first error shown per config (characters)")
    parser.add_argument("--train", action="store_true",
                        help="also train 2 steps and predict with every config that builds")
    args = parser.parse_args()
    paths = sorted(p for folder in args.folders for p in folder.glob("*.config"))
    if not paths:
        sys.exit(f"no *.config in {', '.join(map(str, args.folders))}")
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
    if args.train:
        print()
        run_training(paths, rows)


if __name__ == "__main__":
    main()
