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

from collections.abc import Mapping
from typing import Any

from parsl.executors.execute_task import execute_task

from parsl_quantum.backends.registry import bind_worker_backend

HOOK = f"{__name__}.execute_bound_task"


def execute_bound_task(buffer: bytes, backend: str, options: Mapping[str, Any]) -> Any:
    """Bind this worker process to ``backend`` (set up on first use), then run the task."""
    bind_worker_backend(backend, **options)
    return execute_task(buffer)
