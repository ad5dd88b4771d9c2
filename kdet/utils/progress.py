"""Progress of kdet's long tasks, on stderr, in one style.

- Work made of a few slow stages (freezing a graph, converting weights, exporting) announces
  each stage as it begins with a `StageLog`: one line `<title>: <stage> (<seconds> s)`, the
  seconds since the task began.
- Work over many items (images evaluated, examples converted) draws a tqdm bar.

Lines go through `tqdm.write`, so they never break a bar being drawn.
"""

import sys
import time

from tqdm import tqdm


class StageLog:
    """Announces the stages of a long task on stderr, one line per stage.

    Args:
        title: str, what the task is, e.g. `"Freezing the detector"`; every line starts with it.
        enabled: bool. `False` prints nothing. Defaults to `True`.
        header: str or None. A first line, printed with the first stage: a task that fails
            before its first stage (a missing input, checked first) then prints nothing but its
            error. Defaults to `None`.

    Example:
    ```python
    log = StageLog("Freezing the detector")
    log("tracing model.detect")         # Freezing the detector: tracing model.detect
    ...
    log("folding batch norms")          # Freezing the detector: folding batch norms (6.1 s)
    log.done()                          # Freezing the detector: done (9.4 s)
    ```
    """

    def __init__(self, title, enabled=True, header=None):
        self.title = title
        self.enabled = bool(enabled)
        self._header = header
        self._start = time.perf_counter()
        self._nested = False

    def __call__(self, stage):
        """Prints that `stage` begins, with the seconds since the task began (after 0.1 s)."""
        seconds = time.perf_counter() - self._start
        self._print(f"{stage} ({seconds:.1f} s)" if seconds >= 0.1 else stage)

    def done(self):
        """Prints `<title>: done (<seconds> s)`; a nested log leaves that to its parent."""
        if not self._nested:
            self._print(f"done ({time.perf_counter() - self._start:.1f} s)")

    def nested(self, title=None):
        """A `StageLog` for a part of this task, timed from this task's start, with no `done`
        line of its own: its lines read `<title>: <part title>: <stage>`, or `<title>: <stage>`
        without a part title."""
        log = StageLog(self.title if title is None else f"{self.title}: {title}", self.enabled)
        log._start = self._start
        log._nested = True
        return log

    def _print(self, text):
        if not self.enabled:
            return
        if self._header is not None:
            header, self._header = self._header, None
            self._print(header)
        tqdm.write(f"{self.title}: {text}", file=sys.stderr)


def stage_log(progress, title):
    """The `StageLog` of a function that takes a `progress` argument.

    Args:
        progress: bool (report the stages or not), or the `StageLog` of a larger task this
            one is part of: the stages are then reported as that task's (its title, its
            clock; call `log.nested("part")` first to name the part).
        title: str, the task's title when it is not part of a larger one.

    Returns:
        `StageLog`; its `done()` prints only for a task of its own.
    """
    if isinstance(progress, StageLog):
        return progress.nested()
    return StageLog(title, enabled=progress)


def progress_bar(iterable=None, description=None, unit="it", total=None, enabled=True,
                 delay=1.0):
    """A tqdm bar on stderr that appears only when the work lasts, and goes when it ends.

    Args:
        iterable: what to iterate over, or None to call `update` by hand.
        description: str shown before the bar.
        unit: str, what one item is (`"image"`).
        total: int or None, the number of items when the iterable does not know it.
        enabled: bool. `False` draws nothing. Defaults to `True`.
        delay: seconds before the bar is first drawn, so that short work stays quiet.
            Defaults to `1.0`.

    Returns:
        `tqdm.tqdm`; use it as a context manager or close it.
    """
    return tqdm(iterable, desc=description, unit=unit, total=total, disable=not enabled,
                delay=delay, leave=False, file=sys.stderr, dynamic_ncols=True)
