"""Pools that start while the driver plans.

A short local run spends most of its wall time starting processes: each pool's interchange,
then its worker pool, which spawns a process manager and the workers, each importing Parsl.
Planning does not need the pools, and the pools do not need the plan to start, so
``parsl-quantum run`` loads the simulator pools of the local site on a thread of its own
(:class:`PoolStart`) while the driver describes every pool and plans. Pools the plan may use
that are not up yet are added to the loaded DataFlowKernel afterwards
(``DataFlowKernel.add_executors``); pools no task of the run can reach are never started.

QPU-kind pools (``fake:`` and ``ibm:`` backends) never start before the plan asks for them: on a
real device a pool's block acquires a session or reservation, which is not taken on
speculation. Batch sites (Slurm, PBS) and Globus Compute endpoints do not start early either:
their blocks are jobs, which bad input found while planning must never submit.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from parsl.config import Config
from parsl.executors.base import ParslExecutor

from parsl_quantum.executors.pools import kind_by_name
from parsl_quantum.workflow.rundir import shut_down


def starts_early(executor: ParslExecutor) -> bool:
    """Whether a local pool may start before its run is planned: every backend a simulator.

    Parameters
    ----------
    executor : ParslExecutor
        A pool of the local site.

    Returns
    -------
    bool
        False for a pool with a QPU-kind backend (``fake:``, ``ibm:``), which starts only once
        the plan sends it work or may fail work over to it.
    """
    backends = getattr(executor, "backends", None) or ()
    return all(kind_by_name(str(b)) != "qpu" for b in backends)


class PoolStart:
    """``parsl.load`` of a Config on a thread, so pools start while the caller plans.

    Parameters
    ----------
    config : parsl.config.Config
        The Config of the pools to start now.

    Attributes
    ----------
    began : float
        ``time.perf_counter()`` when the load began.
    seconds : float
        How long ``parsl.load`` took (set once it returned).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.began = 0.0
        self.seconds = 0.0
        self._dfk: Any = None
        self._error: BaseException | None = None
        self._children: set[int] = set()
        self._thread = threading.Thread(target=self._load, name="pq-pool-start", daemon=True)

    def _load(self) -> None:
        import parsl

        try:
            self._dfk = parsl.load(self.config)
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc
        self.seconds = time.perf_counter() - self.began

    def start(self) -> PoolStart:
        """Begin loading.

        Returns
        -------
        PoolStart
            This object.
        """
        self._children = {p.pid for p in psutil.Process().children()}
        self.began = time.perf_counter()
        self._thread.start()
        return self

    def wait_launched(self, timeout: float = 2.0) -> None:
        """Wait until the load has launched its first process (the first pool's interchange),
        or has returned, or ``timeout`` seconds.

        The DataFlowKernel's own start-up is Python work on this thread; imports on the calling
        thread hold the interpreter lock for long stretches and would hold it back, though it
        is the first step of the pools' start-up. Once the interchange process runs, the load
        mostly waits for it without the lock, and the caller's imports overlap with that.

        Parameters
        ----------
        timeout : float
            Seconds to wait at most.
        """
        me = psutil.Process()
        deadline = time.perf_counter() + timeout
        while self._thread.is_alive() and time.perf_counter() < deadline:
            if any(p.pid not in self._children for p in me.children()):
                return
            time.sleep(0.005)

    def result(self) -> Any:
        """The loaded DataFlowKernel, once ``parsl.load`` has returned.

        Returns
        -------
        parsl.dataflow.dflow.DataFlowKernel
            The DataFlowKernel.

        Raises
        ------
        BaseException
            Whatever ``parsl.load`` raised.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._dfk

    def abandon(self) -> None:
        """Stop the pools of a run that ends before its first task (bad input found while
        planning, or Ctrl-C), leaving no trace of the Parsl run: its processes stop and its
        Parsl run directory (``runinfo/NNN``) is removed, with the parent if that is empty."""
        self._thread.join()
        if self._dfk is None:
            return
        parsl_run_dir = Path(self._dfk.run_dir)
        shut_down(self._dfk)
        shutil.rmtree(parsl_run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            parsl_run_dir.parent.rmdir()


def split_early(executors: Sequence[ParslExecutor]) -> tuple[list[ParslExecutor], list[Any]]:
    """The pools that start before planning (:func:`starts_early`) and the rest.

    Parameters
    ----------
    executors : sequence of ParslExecutor
        The pools of a local Config.

    Returns
    -------
    tuple of (list of ParslExecutor, list of ParslExecutor)
        The early pools and the later ones, each in Config order.
    """
    early = [e for e in executors if starts_early(e)]
    return early, [e for e in executors if not starts_early(e)]


def worker_starts(run_dir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    """The start-up of each local worker process of a run, from its ``workers.csv``.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    since : float
        Only workers whose pool process started at or after this time (seconds since the
        epoch): a resumed run's directory holds its earlier runs' workers too.

    Returns
    -------
    list of dict
        One row per worker process (:data:`~parsl_quantum.executors._worker.WORKER_RECORD_FIELDS`),
        the times as floats, in the order the workers began their first task.
    """
    import csv

    from parsl_quantum.configs.local import WORKER_STARTS
    from parsl_quantum.executors._worker import WORKER_RECORD_FIELDS

    path = run_dir / WORKER_STARTS
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh, fieldnames=WORKER_RECORD_FIELDS):
            try:
                times = {k: float(row[k]) for k in ("pool_started", "worker_started", "first_task")}
            except (KeyError, TypeError, ValueError):  # a line cut short by a killed worker
                continue
            if times["pool_started"] >= since:
                rows.append({"pool": row["pool"], "pid": row["pid"], **times})
    return sorted(rows, key=lambda r: r["first_task"])


def first_task_after_pool_start(run_dir: Path, since: float = 0.0) -> float | None:
    """Seconds from the first worker pool's process start to the first task on a worker: the
    workers' start-up, unless planning, which runs meanwhile, takes longer.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    since : float
        As for :func:`worker_starts`.

    Returns
    -------
    float or None
        The seconds, or None when no local worker recorded its start.
    """
    rows = worker_starts(run_dir, since)
    if not rows:
        return None
    return rows[0]["first_task"] - min(r["pool_started"] for r in rows)
