"""The timing block shared by the kdet-vs-other-framework benchmarks.

`center_net_speed.py`, `efficientdet_speed.py` and `mask_rcnn_speed.py` time a kdet detector
against the same model in other processes (`ssd_speed.TorchWorker`: the TF OD API's venv,
torchvision's): `versus_cases` makes the inference and training cases of each side,
`time_versus` times them in interleaved rounds (and records each process's peak RSS), and
`versus_rows` turns the medians (and peaks) into table rows for `ssd_speed.print_table`.
"""

import statistics

import tensorflow as tf
from ssd_speed import peak_rss_mb
from ssd_speed import time_interleaved
from ssd_speed import timed

#: Each kind of case of `versus_cases`: its table label, and its phase in the peak RSS rows.
KINDS = {
    "infer": ("inference, batch 1", "inference"),
    "train": ("training step, batch 2", "training"),
}


def remote_case(worker, request):
    """A case timed in `worker`'s process: the `(wall, cpu)` seconds it answers `request` with."""
    return lambda: tuple(worker.request(request))


def versus_cases(model, images, y, workers, detect_output="num_detections"):
    """The timed cases of kdet `model` and of each worker, by kind.

    kdet's inference is `tf.function(model.detect)` on `images[:1]` (traced here, with one call
    untimed), its training `model.train_on_batch(images, y)`; each worker's are its `"infer"`
    and `"train"` requests.

    Args:
        model: a compiled kdet detector.
        images: uint8 `[batch, height, width, 3]`, the training batch.
        y: the training batch's ground truth (`train_on_batch`'s `y`).
        workers: `{name: ssd_speed.TorchWorker}` answering `"infer"` and `"train"`.
        detect_output: the key of `detect`'s output that the inference case fetches.

    Returns:
        `(cases, outputs)`: `{"infer": {name: case}, "train": {name: case}}`, kdet first in
        each; and `outputs`, the dict of kdet's first `detect` call.
    """
    detect = tf.function(model.detect)
    image = tf.constant(images[:1], tf.float32)
    outputs = detect(image)
    cases = {
        "infer": {"kdet": timed(lambda: detect(image)[detect_output].numpy())},
        "train": {"kdet": timed(lambda: model.train_on_batch(images, y))},
    }
    for name, worker in workers.items():
        for kind, kind_cases in cases.items():
            kind_cases[name] = remote_case(worker, kind)
    return cases, outputs


def time_versus(cases, workers, rounds, warmup=2, rss=False):
    """Times each kind of `versus_cases`' cases in its own interleaved rounds, in order.

    Args:
        cases: `{kind: {name: case}}`.
        workers: `{name: worker}`; with `rss`, each answers an `"rss"` request with its peak
            resident set in MB.
        rounds, warmup: as `ssd_speed.time_interleaved`.
        rss: bool. Also record each process's peak RSS after each kind's rounds.

    Returns:
        `(times, peaks)`: `{kind: {name: [(wall, cpu)] per round}}` and `{kind: {name: MB}}`
        (empty without `rss`).
    """
    times, peaks = {}, {}
    for kind, kind_cases in cases.items():
        times[kind] = time_interleaved(kind_cases, rounds, warmup=warmup)
        if rss:
            peaks[kind] = {"kdet": peak_rss_mb(),
                           **{name: worker.request("rss") for name, worker in workers.items()}}
    return times, peaks


def median_rows(label, times, clocks=("s", "CPU s"), scale=1.0):
    """Table rows of one case: the median of each side in wall then CPU time, and the first
    side's ratio to each other side.

    Args:
        label: the case; rows read `"{label} ({clock})"`.
        times: `{name: [(wall, cpu)]}`, the first side first.
        clocks: the names of the wall and CPU clocks in the labels.
        scale: the unit's seconds, e.g. 1000.0 for `"ms"` clocks.

    Returns:
        Two rows `[case, median per side..., ratio per other side...]` of str.
    """
    rows = []
    for clock, clock_name in enumerate(clocks):
        medians = [statistics.median(pair[clock] for pair in pairs) for pairs in times.values()]
        rows.append([f"{label} ({clock_name})", *[f"{m * scale:.3f}" for m in medians],
                     *[f"{medians[0] / m:.2f}x" for m in medians[1:]]])
    return rows


def versus_rows(times, peaks=None, kinds=("infer", "train"), clocks=("s", "CPU s")):
    """The table rows of `time_versus`' results, kdet's ratio to each other side.

    Args:
        times, peaks: as `time_versus` returns them; with peaks, each kind's rows end with a
            row `"peak RSS after {inference|training} (MB)"`.
        kinds: the kinds of case, in table order.
        clocks: as `median_rows`.

    Returns:
        A list of rows of str for `ssd_speed.print_table`.
    """
    rows = []
    for kind in kinds:
        label, phase = KINDS[kind]
        rows += median_rows(label, times[kind], clocks)
        if peaks:
            megabytes = [peaks[kind][name] for name in times[kind]]
            rows.append([f"peak RSS after {phase} (MB)", *[f"{mb:.0f}" for mb in megabytes],
                         *[f"{megabytes[0] / mb:.2f}x" for mb in megabytes[1:]]])
    return rows
