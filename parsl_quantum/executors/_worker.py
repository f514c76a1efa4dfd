"""The worker-side hook of the QPU-aware HTEX.

HTEX workers run a task's ``context["task_executor"]`` in place of Parsl's ``execute_task``.
This hook binds the worker process to the task's backend first (with the pool's options,
through :func:`~parsl_quantum.backends.bind_worker_backend`; the backend is set up on the
task's first :func:`~parsl_quantum.backends.worker_backend` call, so tasks that need none, such
as exact evaluation, never import Qiskit) and then runs the task as Parsl would. The task
itself learns its backend from its own ``parsl_resource_specification`` argument, never from
leftover ``PARSL_*`` variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from parsl.executors.execute_task import execute_task

from parsl_quantum.backends.registry import bind_worker_backend

HOOK = f"{__name__}.execute_bound_task"

#: The variable naming the file where each worker process records its start-up
#: (:func:`record_start`); set by the local site's pools (``configs.local``).
WORKER_RECORD = "PARSL_QUANTUM_WORKER_RECORD"

#: The variable naming the pool a worker belongs to, written into its record.
WORKER_POOL = "PARSL_QUANTUM_POOL"

#: Columns of that file (it has no header line): the pool, the worker's process id, when the
#: worker pool's process (the worker's parent) and the worker's process were created, and when
#: the worker began its first task (seconds since the epoch).
WORKER_RECORD_FIELDS = ("pool", "pid", "pool_started", "worker_started", "first_task")

_recorded = False


def record_start() -> None:
    """Append this worker process's start-up times to the file :data:`WORKER_RECORD` names,
    if it names one; called once per process, at its first task.

    Parsl's monitoring records when tasks run, not how long a worker took to start; this one
    line per worker (:data:`WORKER_RECORD_FIELDS`) is how ``parsl-quantum run`` shows worker
    start-up with monitoring off.
    """
    global _recorded
    _recorded = True
    path = os.environ.get(WORKER_RECORD)
    if path is None:
        return
    first_task = time.time()
    row = (
        os.environ.get(WORKER_POOL, ""),
        str(os.getpid()),
        f"{started_at(os.getppid(), first_task):.6f}",
        f"{started_at(os.getpid(), first_task):.6f}",
        f"{first_task:.6f}",
    )
    with open(path, "a") as fh:  # one short line per process: appends do not interleave
        fh.write(",".join(row) + "\n")


def started_at(pid: int, now: float) -> float:
    """When process ``pid`` started, in seconds since the epoch, to the kernel's clock tick.

    Linux gives a process's start in clock ticks since boot; measured against the boot-time
    clock it is as precise as the tick. psutil's ``create_time`` adds the boot time, which
    Linux gives in whole seconds, so it is up to a second off: too coarse for a start-up that
    takes about one. Elsewhere psutil's figure is used.

    Parameters
    ----------
    pid : int
        The process.
    now : float
        ``time.time()`` at the call.

    Returns
    -------
    float
        The start time.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        since_boot = ticks / os.sysconf("SC_CLK_TCK")
        return now - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        import psutil

        return float(psutil.Process(pid).create_time())


def execute_bound_task(buffer: bytes, backend: str, options: Mapping[str, Any]) -> Any:
    """Bind this worker process to ``backend`` (set up on first use), then run the task."""
    if not _recorded:
        record_start()
    bind_worker_backend(backend, **options)
    return execute_task(buffer)
