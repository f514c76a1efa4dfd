"""Progress of a run: a live per-pool display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
)
from rich.text import Text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class _RunElapsedColumn(ProgressColumn):
    """Time since the run began (rich's own elapsed column starts at each bar's creation,
    which is a pool's first finished task)."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start

    def render(self, task: object) -> Text:
        return Text(_clock(time.monotonic() - self.start), style="progress.elapsed")


class RunProgress:
    """Tasks done/total per pool. Use as a context manager; call the instance as the
    ``progress(pool, done, total)`` callback of :class:`~parsl_quantum.workflow.context.RunContext`.

    On a terminal it draws one bar per pool with the time since the run began, and leaves the
    final counts on screen; otherwise it prints a line when a pool reaches each quarter of its
    tasks, so logs stay short.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._last_quarter: dict[str, int] = {}
        self._start = time.monotonic()
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RunElapsedColumn(self._start),
                console=Console(file=self.stream),
            )

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, pool: str, done: int, total: int) -> None:
        with self._lock:
            if self._progress is not None:
                if pool not in self._tasks:
                    self._tasks[pool] = self._progress.add_task(f"pool {pool}", total=total)
                self._progress.update(self._tasks[pool], completed=done, total=total)
                return
            quarter = (4 * done) // max(1, total)
            if quarter > self._last_quarter.get(pool, 0) or done == total:
                if self._last_quarter.get(pool) == 4:
                    return
                self._last_quarter[pool] = quarter
                elapsed = time.monotonic() - self._start
                print(f"[{elapsed:7.1f}s] pool {pool}: {done}/{total} tasks done", file=self.stream)
