"""The one progress display of a run's calls, for `run` (local) and `submit --follow` alike:
calls done / running / queued / failed out of the calls known so far (a scatter's shards count
once it has expanded), the cached ones among the done; a bar redrawn in place on a terminal,
a plain line when the counts change otherwise; and a final line with the run's end."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from miniwdl_serverless.cli import views

BAR_WIDTH = 30
TTY_INTERVAL, PLAIN_INTERVAL = 0.5, 5.0  # seconds between reads of the store
ENDINGS = {"SUCCEEDED": "succeeded", "FAILED": "failed", "ABORTED": "cancelled"}


def read_counts(store: Any, run_id: str) -> views.Counts | None:
    """The run's call counts from its store (a RunStore: DynamoDB or the local one): every
    job item, or for a large run its counters (one read, not thousands)."""
    run = store.get_run(run_id)
    if run is None:
        return None
    if int(run.jobs_total or 0) > views.LARGE_RUN_JOBS:  # its shards' counts are in buckets
        counters = run.as_dict()
        for name, count in store.tallied(run_id).items():
            counters[name] = int(counters.get(name) or 0) + count
        return views.counts_from_run(counters)
    jobs = [job.as_dict() for job in store.query_jobs(run_id)]
    return views.count_calls(views.call_rows(jobs))


class ProgressDisplay:
    def __init__(
        self,
        counts: Callable[[], views.Counts | None],
        err: Any = None,
        enabled: bool = True,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.counts, self.err, self.enabled, self.clock = counts, err or sys.stderr, enabled, clock
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())
        default = TTY_INTERVAL if self.tty else PLAIN_INTERVAL
        self.interval = default if interval is None else interval
        self.last_read = float("-inf")
        self.last_line = ""
        self.bar_shown = False

    def show(self) -> None:
        """Redraw if it is time to read the store again (best effort: a failed read is skipped)."""
        now = self.clock()
        if not self.enabled or now - self.last_read < self.interval:
            return
        self.last_read = now
        counts = self._read()
        if counts is None or not counts.total:
            return
        line = views.progress_line(counts)
        if self.tty:
            self.err.write(f"\r{views.progress_line(counts, BAR_WIDTH)}\x1b[K")
            self.err.flush()
            self.bar_shown = True
        elif line != self.last_line:
            print(line, file=self.err, flush=True)
        self.last_line = line

    def clear(self) -> None:
        """Take the bar off the line (before other output is printed)."""
        if self.bar_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self.bar_shown = False

    def finish(self, status: str) -> None:
        """The final line: the counts at the end, and how the run ended."""
        if not self.enabled:
            return
        counts = self._read()
        self.clear()
        ending = ENDINGS.get(status, status.lower())
        text = (
            f"{views.progress_line(counts)}: run {ending}"
            if counts and counts.total
            else f"run {ending}"
        )
        print(text, file=self.err, flush=True)

    def _read(self) -> views.Counts | None:
        try:
            return self.counts()
        except Exception:  # the display is best effort: the next poll reads again
            return None
