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
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class RunProgress:
    """Tasks done/total per pool. Use as a context manager; call the instance as the
    ``progress(pool, done, total)`` callback of :class:`~parsl_quantum.workflow.context.RunContext`.

    On a terminal it draws one bar per pool with elapsed time; otherwise it prints a line when a
    pool reaches each quarter of its tasks, so logs stay short.
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
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
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
