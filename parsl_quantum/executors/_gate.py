"""Admission control for one backend's ``max_concurrent_jobs``.

The executor asks the gate before it sends a task to the interchange; a saturated backend's
tasks wait here, in HTEX priority order (lower ``priority`` first, missing priority last, ties
first-come first-served), and are released one by one as the backend's running tasks finish.
Holding tasks before the interchange, rather than on workers, keeps worker slots free for other
backends of the same pool.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class _Held:
    key: tuple[float, int]
    task_id: int = field(compare=False)
    payload: Any = field(compare=False)


class BackendGate:
    """Counts a backend's tasks in flight and holds the ones over its limit (not thread-safe:
    the executor calls it under its own lock)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._running: set[int] = set()
        self._held: list[_Held] = []
        self._held_ids: set[int] = set()

    @property
    def in_flight(self) -> int:
        """Tasks sent towards workers and not finished."""
        return len(self._running)

    @property
    def held(self) -> int:
        """Tasks waiting for the backend to have room."""
        return len(self._held_ids)

    def has_room(self) -> bool:
        return self.limit is None or (len(self._running) < self.limit and not self._held_ids)

    def admit(self, task_id: int, priority: float | None, payload: Any) -> bool:
        """True when the task may be sent now (it is then counted in flight); otherwise the
        task is held and will be returned by a later :meth:`finish`."""
        if self.has_room():
            self._running.add(task_id)
            return True
        key = (math.inf if priority is None else float(priority), task_id)
        heapq.heappush(self._held, _Held(key, task_id, payload))
        self._held_ids.add(task_id)
        return False

    def drain(self) -> list[tuple[int, Any]]:
        """Forget every held task (the pool is going down); return them as
        ``(task_id, payload)``."""
        dropped = [
            (item.task_id, item.payload) for item in self._held if item.task_id in self._held_ids
        ]
        self._held.clear()
        self._held_ids.clear()
        return dropped

    def finish(self, task_id: int) -> list[tuple[int, Any]]:
        """Record that a task ended (or failed before being sent); return the held tasks that
        may be sent now, as ``(task_id, payload)``, already counted in flight."""
        if task_id in self._held_ids:  # failed while held (executor bad state): forget it
            self._held_ids.discard(task_id)
            return []
        self._running.discard(task_id)
        released: list[tuple[int, Any]] = []
        while self._held and (self.limit is None or len(self._running) < self.limit):
            item = heapq.heappop(self._held)
            if item.task_id not in self._held_ids:
                continue
            self._held_ids.discard(item.task_id)
            self._running.add(item.task_id)
            released.append((item.task_id, item.payload))
        return released
