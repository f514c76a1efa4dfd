"""Progress of a run: a live per-pool display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

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

from parsl_quantum.workflow.context import TaskRecorder


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
    """Tasks done/total per pool.

    Use as a context manager; call the instance as a ``progress(pool, done, total)`` callback
    (:class:`ProgressRecorder` does, for every task a run records).

    On a terminal it draws one bar per pool with the time since the run began, and leaves the
    final counts on screen. Otherwise it prints a line when a pool reaches a new quarter of its
    tasks (at most one line per ``interval`` seconds per pool, since totals grow while a run
    submits), and each pool's final count when the run ends, so logs stay short.

    Parameters
    ----------
    stream : TextIO or None
        Where to draw or print; standard error when omitted.
    live : bool or None
        Draw bars; whether ``stream`` is a terminal when omitted.
    interval : float
        Fewest seconds between two lines of one pool when not live.
    """

    def __init__(
        self, stream: TextIO | None = None, live: bool | None = None, interval: float = 5.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._last_quarter: dict[str, int] = {}
        self._last_line: dict[str, tuple[float, int, int]] = {}
        self._latest: dict[str, tuple[int, int]] = {}
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
            return
        with self._lock:
            for pool, (done, total) in self._latest.items():
                if self._last_line.get(pool, (0.0, -1, -1))[1:] != (done, total):
                    self._print(pool, done, total)

    def __call__(self, pool: str, done: int, total: int) -> None:
        with self._lock:
            if self._progress is not None:
                if pool not in self._tasks:
                    self._tasks[pool] = self._progress.add_task(f"pool {pool}", total=total)
                self._progress.update(self._tasks[pool], completed=done, total=total)
                return
            self._latest[pool] = (done, total)
            quarter = (4 * done) // max(1, total)
            last_time = self._last_line.get(pool, (-float("inf"), 0, 0))[0]
            # a new quarter; one below the last when the total grew
            new_quarter = 0 < quarter != self._last_quarter.get(pool, 0)
            if new_quarter and time.monotonic() - last_time >= self.interval:
                self._last_quarter[pool] = quarter
                self._print(pool, done, total)

    def _print(self, pool: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._start
        self._last_line[pool] = (time.monotonic(), done, total)
        print(f"[{elapsed:7.1f}s] pool {pool}: {done}/{total} tasks done", file=self.stream)


@dataclass
class ProgressRecorder(TaskRecorder):
    """A :class:`~parsl_quantum.workflow.context.TaskRecorder` that also reports progress.

    It reports, per pool, the tasks finished out of the tasks submitted so far to ``progress``,
    so the totals shown are exactly the tasks a run submits, whatever the template kind.

    Attributes
    ----------
    progress : Callable of (str, int, int) to None
        ``progress(pool, done, total)`` callback.
    """

    progress: Callable[[str, int, int], None] = field(default=lambda pool, done, total: None)
    _counts: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def track(
        self,
        future: Future[Any],
        *,
        task: str,
        kind: str,
        pool: str,
        backend: str = "",
        qubits: int = 0,
        shots: int = 0,
    ) -> Future[Any]:
        """Attach a metrics row to an AppFuture and count it for its pool's progress.

        Parameters
        ----------
        future : concurrent.futures.Future
            The task's future.
        task : str
            Task name.
        kind : str
            Task kind.
        pool : str
            Pool the task was submitted to.
        backend : str
            Backend the task runs on, if known.
        qubits : int
            Width of the task's circuits.
        shots : int
            Shots of the task.

        Returns
        -------
        concurrent.futures.Future
            ``future`` itself.
        """
        super().track(
            future, task=task, kind=kind, pool=pool, backend=backend, qubits=qubits, shots=shots
        )
        with self._lock:
            counts = self._counts.setdefault(pool, [0, 0])
            counts[1] += 1
            done, total = counts
        self.progress(pool, done, total)

        def finished(_: Future[Any]) -> None:
            with self._lock:
                counts[0] += 1
                done, total = counts
            self.progress(pool, done, total)

        future.add_done_callback(finished)
        return future
