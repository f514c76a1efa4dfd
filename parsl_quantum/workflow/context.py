"""What a template runner gets: the run directory, the pools of the loaded Parsl config, and a
per-task metrics recorder.

Runners (the circuit-cutting job, each mini-app) are called inside a loaded DataFlowKernel and
submit Parsl apps with ``executors=[pool]``. They record every task through :class:`TaskRecorder`
so each run directory has the same ``tasks.csv`` (task, pool, backend, qubits, shots and times).
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parsl_quantum.executors.pools import PoolInfo

METRICS_FIELDS = (
    "task",
    "kind",
    "pool",
    "backend",
    "qubits",
    "shots",
    "submit_time",
    "start_time",
    "end_time",
    "status",
)


@dataclass
class TaskRecorder:
    """Records one metrics row per Parsl task and writes them to ``tasks.csv``.

    Times are seconds since the epoch: ``submit_time`` when the app was called, ``start_time``
    when Parsl handed the task to the pool's executor, ``end_time`` when its result returned.

    Attributes
    ----------
    path : pathlib.Path
        The CSV file written.
    rows : list of dict of str to Any
        The rows recorded so far.
    """

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        """Attach a metrics row to an AppFuture; the row completes when the future does.

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
        row: dict[str, Any] = {
            "task": task,
            "kind": kind,
            "pool": pool,
            "backend": backend,
            "qubits": qubits,
            "shots": shots,
            "submit_time": time.time(),
            "start_time": None,
            "end_time": None,
            "status": "pending",
        }
        with self._lock:
            self.rows.append(row)

        def done(fut: Future[Any]) -> None:
            record = getattr(fut, "task_record", None) or {}
            invoked = record.get("time_invoked")
            launched = record.get("try_time_launched")
            returned = record.get("time_returned")
            if invoked is not None:
                row["submit_time"] = invoked.timestamp()
            row["start_time"] = launched.timestamp() if launched is not None else None
            row["end_time"] = returned.timestamp() if returned is not None else time.time()
            row["status"] = "failed" if fut.exception() is not None else "done"

        future.add_done_callback(done)
        return future

    def write(self) -> Path:
        """Write all rows recorded so far.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRICS_FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: row.get(k) for k in METRICS_FIELDS})
        return self.path


@dataclass
class RunContext:
    """Everything a template runner needs besides the template itself.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run's directory.
    pools : Mapping of str to PoolInfo
        The run's pools by name.
    recorder : TaskRecorder
        Records every task of the run.
    progress : Callable of (str, int, int) to None
        ``progress(pool, done, total)`` callback.
    resume : bool
        Whether the run resumes an earlier one in ``run_dir``.
    prepared : Any
        What the kind's ``prepare(template, pools)`` returned before the pools started, if any.
    """

    run_dir: Path
    pools: Mapping[str, PoolInfo]
    recorder: TaskRecorder
    progress: Callable[[str, int, int], None] = field(default=lambda pool, done, total: None)
    resume: bool = False
    #: What the kind's ``prepare(template, pools)`` returned before the pools started, if any.
    prepared: Any = None

    def pool(self, name: str) -> PoolInfo:
        """The pool named ``name``.

        Parameters
        ----------
        name : str
            Pool name.

        Returns
        -------
        PoolInfo
            The pool.

        Raises
        ------
        ValueError
            Naming the configured pools, when there is no such pool.
        """
        try:
            return self.pools[name]
        except KeyError:
            raise ValueError(
                f"unknown pool {name!r} (configured: {', '.join(self.pools)})"
            ) from None
