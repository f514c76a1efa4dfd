"""Failover: when a pool is down, its work moves to a compatible pool, and every move is recorded.

A pool is *down* when Parsl has put its executor in a bad state. Parsl does so itself when every
block of the pool has failed; :class:`PoolDownHandler` adds the case of a pool whose blocks have
all ended without Parsl asking (cancelled, killed, lost) while it still had work - a QPU
reservation revoked, a session cancelled by the provider. Either way the executor fails its
outstanding tasks, and each failure reaches the
:class:`~parsl_quantum.reliability.retry.RetryHandler`. When :class:`FailoverPolicy` has a target
pool for the task, the handler records the move, installs the policy on the down executor
(:meth:`~parsl_quantum.executors.QPUHighThroughputExecutor.fail_over_with`) and lets Parsl try
the task again: the down executor then passes it to :meth:`FailoverPolicy.forward`, which submits
it to the target pool through that executor's public ``submit``. Parsl's task record is never
changed, so Parsl's monitoring lists the moved tries under the down pool; the moves themselves
are in :meth:`FailoverPolicy.records`.

Compatible means: wide enough for the task's ``qubits``, not down, and a simulator (a QPU only
for work that came from a QPU): QPU work may finish on a simulator, never the other way round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from parsl.executors.base import ParslExecutor
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.error_handlers import simple_error_handler
from parsl.jobs.states import JobState, JobStatus

from parsl_quantum.executors import PoolInfo

#: Block states that mean the block ended without Parsl scaling it in or it running its course.
LOST_STATES = frozenset({JobState.CANCELLED, JobState.FAILED, JobState.MISSING})

#: Target kinds in order of preference for each source kind.
_TARGET_KINDS: Mapping[str, tuple[str, ...]] = {
    "qpu": ("qpu", "gpu-sim", "cpu-sim"),
    "gpu-sim": ("gpu-sim", "cpu-sim"),
    "cpu-sim": ("cpu-sim", "gpu-sim"),
}


class PoolDownError(RuntimeError):
    """The executor of a pool was marked bad because the pool has no blocks left to run on."""


def pool_is_down(executor: ParslExecutor | None) -> bool:
    """True when the executor exists and Parsl holds it in a bad state (it will not run tasks)."""
    return bool(getattr(executor, "bad_state_is_set", False))


#: Parsl's signature of a block error handler.
BlockErrorHandler = Callable[[BlockProviderExecutor, dict[str, JobStatus]], None]


class PoolDownHandler:
    """A Parsl ``block_error_handler`` that marks a pool down once it cannot run its work.

    It first applies the executor's previous handler (by default Parsl's own rule: every block
    failed). It then marks the executor bad when
    it has outstanding tasks, none of its blocks is pending or running, and its most recent block
    ended in one of :data:`LOST_STATES` - the scaling strategy is not asked to start another
    block, because a cancelled reservation is an outage to fail over from, not a hiccup. Blocks
    that Parsl scaled in (idle) or that completed (an expired session, a finished batch job) are
    not losses; their replacements come from the scaling strategy as usual.
    """

    def __init__(self, previous: BlockErrorHandler = simple_error_handler) -> None:
        self.previous = previous

    def __call__(self, executor: BlockProviderExecutor, status: dict[str, JobStatus]) -> None:
        self.previous(executor, status)
        outstanding = executor.outstanding() + int(getattr(executor, "held_tasks", lambda: 0)())
        if executor.bad_state_is_set or not status or not outstanding:
            return
        if any(not s.terminal for s in status.values()):
            return
        block = max(status, key=lambda b: (len(b), b))  # block ids count up from "0"
        last = status[block]
        if last.state not in LOST_STATES:
            return
        detail = f": {last.message}" if last.message else ""
        executor.set_bad_state_and_fail_all(
            PoolDownError(
                f"pool {executor.label!r} is down: its block {block} ended "
                f"({last.state.name}{detail}) with {outstanding} task(s) outstanding"
            )
        )


@dataclass(frozen=True)
class Failover:
    """One task moved from one pool to another, and why.

    The one record of a move, whoever made it: the retry handler (:class:`FailoverPolicy`,
    ``time`` None) or the planner's late-binding dispatcher (``time``: seconds into the
    dispatch).
    """

    task: str
    from_pool: str
    to_pool: str
    reason: str
    time: float | None = None


class FailoverPolicy:
    """Chooses where a down pool's tasks go and submits them there; keeps a record of every move.

    ``pools`` are all pools of the loaded Config (:func:`~parsl_quantum.executors.pool_infos`),
    including ones the plan does not use: an idle simulator pool is a failover target.
    """

    def __init__(self, pools: Mapping[str, PoolInfo]) -> None:
        self.pools = dict(pools)
        self.executors: Mapping[str, Any] = {}
        self.moves: list[Failover] = []
        self._lock = threading.Lock()

    def target(self, source: str, qubits: int | None, executors: Mapping[str, Any]) -> str | None:
        """The pool that takes work of ``qubits`` qubits from ``source``, or None.

        Candidates are the pools not down (per ``executors``, the DFK's executors by label),
        of a kind :data:`_TARGET_KINDS` allows for the source, wide enough; same kind first,
        then in the order listed, then the most worker slots.
        """
        origin = self.pools.get(source)
        kinds = _TARGET_KINDS.get(origin.kind if origin else "cpu-sim", ("cpu-sim",))
        best: tuple[int, int, str] | None = None
        for name, info in self.pools.items():
            if name == source or info.kind not in kinds or pool_is_down(executors.get(name)):
                continue
            if name not in executors or (qubits is not None and info.max_qubits < qubits):
                continue
            key = (kinds.index(info.kind), -info.workers, name)
            if best is None or key < best:
                best = key
        return None if best is None else best[2]

    def bind(self, executors: Mapping[str, Any]) -> None:
        """The executors (by label) that :meth:`forward` submits to: the DataFlowKernel's."""
        self.executors = executors

    def record(self, task: str, source: str, target: str, reason: str) -> None:
        """Note one task moved from ``source`` to ``target``."""
        with self._lock:
            self.moves.append(Failover(task, source, target, reason))

    def forward(
        self,
        source: str,
        func: Callable,
        resource_specification: dict | None,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> Future | None:
        """Submit a task of the down pool ``source`` to its target pool, with the resource
        specification and ``backend`` argument of that pool; None when no pool can take it."""
        spec = dict(resource_specification or {})
        qubits = spec.get("qubits")
        target = self.target(source, qubits if isinstance(qubits, int) else None, self.executors)
        if target is None:
            return None
        info = self.pools[target]
        moved = {k: v for k, v in spec.items() if k not in ("backend", "qpu")}
        if info.accepts_spec:
            moved["backend"] = info.backends[0]
        else:
            moved = {k: v for k, v in moved.items() if k == "priority"}
        kwargs = dict(kwargs)
        if "parsl_resource_specification" in kwargs:
            kwargs["parsl_resource_specification"] = moved
        if "backend" in kwargs:
            kwargs["backend"] = info.backends[0]
        return self.executors[target].submit(func, moved, *args, **kwargs)

    def records(self) -> list[dict[str, Any]]:
        """Every move so far, as plain data."""
        with self._lock:
            return [asdict(m) for m in self.moves]
