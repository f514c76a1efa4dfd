"""Failover: one decision of where a task may go when its pool fails, and one record of every
move.

Two things move a task to another pool. Parsl's ``retry_handler``
(:class:`~parsl_quantum.reliability.retry.RetryHandler`) sees the tries of a pool that Parsl has
put in a bad state (*down*); the planner's late-binding
:class:`~parsl_quantum.planner.dispatch.Dispatcher` sees pools that lost their workers or keep
failing its tasks. Both ask the run's :class:`FailoverPolicy` which pool may take the task
(:meth:`FailoverPolicy.candidates`, from the task's :class:`TaskNeeds`), and both record each
move in it as a :class:`Failover` naming its trigger, so the run's ``configuration.failovers``
lists every move once.

The rules, for a task and a pool that is up:

* the pool is wide enough for the task's qubits;
* work that must be exact goes only to exact pools;
* pools of the task's physical model (:func:`~parsl_quantum.executors.pools.physical_model`: ideal
  simulation, or one noisy device) come first; another model only when none is up, and only
  with ``cross_model`` (the run's ``execution.failover``): QPU work may then finish on another
  device or a simulator, and simulator work may move to a QPU that its plan lists for it -
  never to one that the plan did not consider;
* pools the task already failed on come last.

A pool is down when Parsl has put its executor in a bad state. Parsl does so itself when every
block of the pool has failed; :class:`PoolDownHandler` adds the case of a pool whose blocks have
all ended without Parsl asking (cancelled, killed, lost) while it still had work - a QPU
reservation revoked, a session cancelled by the provider. The retry handler then installs the
policy on the down executor
(:meth:`~parsl_quantum.executors.QPUHighThroughputExecutor.fail_over_with`) and lets Parsl try
the task again: the down executor passes it to :meth:`FailoverPolicy.forward`, which submits it
to the target pool through that executor's public ``submit``. Parsl's task record is never
changed, so Parsl's monitoring lists the moved tries under the down pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from parsl.executors.base import ParslExecutor
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.error_handlers import simple_error_handler
from parsl.jobs.states import JobState, JobStatus

from parsl_quantum.executors import PoolInfo
from parsl_quantum.executors.pools import physical_model

#: Block states that mean the block ended without Parsl scaling it in or it running its course.
LOST_STATES = frozenset({JobState.CANCELLED, JobState.FAILED, JobState.MISSING})

#: Pool kinds in order of preference for work that ran on a pool of each kind.
KIND_ORDER: Mapping[str, tuple[str, ...]] = {
    "qpu": ("qpu", "gpu-sim", "cpu-sim"),
    "gpu-sim": ("gpu-sim", "cpu-sim", "qpu"),
    "cpu-sim": ("cpu-sim", "gpu-sim", "qpu"),
}

#: Who moved a task: the retry handler (a down pool) or the late-binding dispatcher.
RETRY_HANDLER = "retry-handler"
DISPATCHER = "dispatcher"


class PoolDownError(RuntimeError):
    """The executor of a pool was marked bad because the pool has no blocks left to run on."""


def pool_is_down(executor: ParslExecutor | None) -> bool:
    """Whether Parsl holds an executor in a bad state (it will not run tasks).

    Parameters
    ----------
    executor : ParslExecutor or None
        The pool's executor; None (no such executor) is not down.

    Returns
    -------
    bool
        True when the executor exists and its bad state is set.
    """
    return bool(getattr(executor, "bad_state_is_set", False))


#: Parsl's signature of a block error handler.
BlockErrorHandler = Callable[[BlockProviderExecutor, dict[str, JobStatus]], None]


class PoolDownHandler:
    """A Parsl ``block_error_handler`` that marks a pool down once it cannot run its work.

    It first applies the executor's previous handler (by default Parsl's own rule: every block
    failed). It then marks the executor bad when it has outstanding tasks, none of its blocks is
    pending or running, and its most recent block ended in one of :data:`LOST_STATES` - the
    scaling strategy is not asked to start another block, because a cancelled reservation is an
    outage to fail over from, not a hiccup. Blocks that Parsl scaled in (idle) or that completed
    (an expired session, a finished batch job) are not losses; their replacements come from the
    scaling strategy as usual.

    Parameters
    ----------
    previous : callable
        The block error handler applied first.
    """

    def __init__(self, previous: BlockErrorHandler = simple_error_handler) -> None:
        self.previous = previous

    def __call__(self, executor: BlockProviderExecutor, status: dict[str, JobStatus]) -> None:
        """Apply the previous handler, then mark ``executor`` bad if its blocks were lost.

        Parameters
        ----------
        executor : BlockProviderExecutor
            The pool whose blocks Parsl polled.
        status : dict of str to JobStatus
            The status of each of its blocks, by block id.
        """
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
    """One task moved from one pool to another: the one record of a move, whoever made it.

    Attributes
    ----------
    task : str
        The task: ``func#id`` (Parsl's task) for the retry handler, the plan's node for the
        dispatcher.
    from_pool, to_pool : str
        Where the task was and where it went.
    reason : str
        Why, in one line: the down pool's error, or the failed or abandoned attempt.
    trigger : str
        Who moved it: :data:`RETRY_HANDLER` or :data:`DISPATCHER`.
    time : float or None
        Seconds into the dispatch for the dispatcher's moves; None for the retry handler's.
    """

    task: str
    from_pool: str
    to_pool: str
    reason: str
    trigger: str
    time: float | None = None


@dataclass(frozen=True)
class TaskNeeds:
    """What a task asks of the pool that runs it: the input of :class:`FailoverPolicy`.

    Attributes
    ----------
    qubits : int or None
        The task's width; None when unknown (any pool is wide enough).
    exact : bool
        Whether the task must compute exact values (only exact pools may take it).
    model : str or None
        The physical model its results follow (:func:`~parsl_quantum.executors.pools.physical_model`
        of the pool it is bound to, or of its partition); None before it is bound.
    kind : str or None
        The kind of pool it ran on, for the order of preference (:data:`KIND_ORDER`).
    planned : frozenset of str
        The pools its plan lists for it; a simulator task may change model only to one of
        these.
    """

    qubits: int | None = None
    exact: bool = False
    model: str | None = None
    kind: str | None = None
    planned: frozenset[str] = frozenset()


class FailoverPolicy:
    """The run's one decision of which pool may take a task, and its one record of moves.

    Parameters
    ----------
    pools : mapping of str to PoolInfo
        All pools of the loaded Config (:func:`~parsl_quantum.executors.pool_infos`), including
        ones the plan does not use: an idle simulator pool is a failover target.
    cross_model : bool
        Whether a task may change physical model when no pool of its own is up (the run's
        ``execution.failover``): QPU work finishing on another device or a simulator,
        simulator work moving to a QPU its plan lists.
    """

    def __init__(self, pools: Mapping[str, PoolInfo], *, cross_model: bool = True) -> None:
        self.pools = dict(pools)
        self.cross_model = cross_model
        self.executors: Mapping[str, Any] = {}
        self.moves: list[Failover] = []
        self._lock = threading.Lock()

    def allows(self, needs: TaskNeeds, name: str, pool: PoolInfo) -> bool:
        """Whether ``pool`` may run the task at all (width, exactness, model change).

        Parameters
        ----------
        needs : TaskNeeds
            What the task asks.
        name : str
            The pool's name (checked against ``needs.planned``).
        pool : PoolInfo
            The pool.

        Returns
        -------
        bool
            True when the rules of the module docstring let the pool take the task.
        """
        if needs.qubits is not None and pool.max_qubits < needs.qubits:
            return False
        if needs.exact and not pool.exact:
            return False
        model = physical_model(pool)
        if needs.model is None or model == needs.model:
            return True
        if not self.cross_model:
            return False
        return needs.model != "ideal" or name in needs.planned

    def candidates(
        self, needs: TaskNeeds, live: Mapping[str, PoolInfo], avoid: Collection[str] = ()
    ) -> list[str]:
        """The pools that may take the task now, best first.

        Parameters
        ----------
        needs : TaskNeeds
            What the task asks.
        live : mapping of str to PoolInfo
            The pools that can take work now (not down, lost or unhealthy), by name.
        avoid : collection of str
            Pools the task failed on: used only when no other pool may take it.

        Returns
        -------
        list of str
            The allowed pools of the best tier - the task's own physical model, else another
            pool of its kind (another device), else any other model - those not in ``avoid``
            when there are any, ordered by :data:`KIND_ORDER`, then most worker slots, then
            name. Empty when no live pool may take the task.
        """
        allowed = {n: p for n, p in live.items() if self.allows(needs, n, p)}
        if not allowed:
            return []

        def tier(pool: PoolInfo) -> int:
            if needs.model is None or physical_model(pool) == needs.model:
                return 0
            return 1 if pool.kind == needs.kind else 2

        best = min(tier(p) for p in allowed.values())
        names = [n for n, p in allowed.items() if tier(p) == best]
        names = [n for n in names if n not in avoid] or names
        order = KIND_ORDER.get(needs.kind or "", ())

        def key(name: str) -> tuple[int, int, str]:
            pool = allowed[name]
            rank = order.index(pool.kind) if pool.kind in order else len(order)
            return (rank, -pool.workers, name)

        return sorted(names, key=key)

    def target(self, needs: TaskNeeds, failed: str, live: Mapping[str, PoolInfo]) -> str | None:
        """The pool that takes a task from the pool ``failed``.

        Parameters
        ----------
        needs : TaskNeeds
            What the task asks.
        failed : str
            The pool it leaves; never its own target.
        live : mapping of str to PoolInfo
            The pools that can take work now, by name.

        Returns
        -------
        str or None
            The first of :meth:`candidates` other than ``failed``, or None when there is none.
        """
        found = self.candidates(needs, {n: p for n, p in live.items() if n != failed})
        return found[0] if found else None

    def needs_on(
        self,
        pool: str,
        resource_specification: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> TaskNeeds:
        """What a task sent to ``pool`` asks, read from the task's own arguments.

        Parameters
        ----------
        pool : str
            The pool the task was sent to.
        resource_specification : mapping or None
            Its resource specification (``qubits`` is its width).
        kwargs : mapping or None
            Its keyword arguments: ``mode="exact"`` or ``"sampled"`` says whether it must be
            exact; without one, work from an exact pool stays on exact pools.

        Returns
        -------
        TaskNeeds
            Its width, exactness, the physical model and kind of ``pool``; no plan.
        """
        info = self.pools.get(pool)
        qubits = (resource_specification or {}).get("qubits")
        mode = (kwargs or {}).get("mode")
        exact = mode == "exact" if mode in ("exact", "sampled") else bool(info and info.exact)
        return TaskNeeds(
            qubits=qubits if isinstance(qubits, int) else None,
            exact=exact,
            model=physical_model(info) if info else None,
            kind=info.kind if info else None,
        )

    def live(self, executors: Mapping[str, Any]) -> dict[str, PoolInfo]:
        """The pools whose executor is loaded and not down.

        Parameters
        ----------
        executors : mapping of str to executor
            The DataFlowKernel's executors, by label.

        Returns
        -------
        dict of str to PoolInfo
            Those of the policy's pools that can take work.
        """
        return {
            name: info
            for name, info in self.pools.items()
            if name in executors and not pool_is_down(executors[name])
        }

    def bind(self, executors: Mapping[str, Any]) -> None:
        """Set the executors (by label) that :meth:`forward` submits to: the DataFlowKernel's.

        Parameters
        ----------
        executors : mapping of str to executor
            The DataFlowKernel's executors, by label.
        """
        self.executors = executors

    def record(self, move: Failover) -> None:
        """Add one move to the run's record.

        Parameters
        ----------
        move : Failover
            The move, with its trigger.
        """
        with self._lock:
            self.moves.append(move)

    def forward(
        self,
        source: str,
        func: Callable,
        resource_specification: dict | None,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> Future | None:
        """Submit a task of the down pool ``source`` to its :meth:`target` pool.

        Parameters
        ----------
        source : str
            The down pool.
        func : callable
            The task's function.
        resource_specification : dict or None
            Its resource specification.
        args : sequence
            Its positional arguments.
        kwargs : dict
            Its keyword arguments.

        Returns
        -------
        Future or None
            The target pool's future, the task carrying that pool's resource specification
            and ``backend`` argument; None when no pool can take it.
        """
        spec = dict(resource_specification or {})
        needs = self.needs_on(source, spec, kwargs)
        target = self.target(needs, source, self.live(self.executors))
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
        """Every move so far, as plain data.

        Returns
        -------
        list of dict
            One :class:`Failover` each, in the order they were made.
        """
        with self._lock:
            return [asdict(m) for m in self.moves]


def run_policy(retry_handler: object, pools: Mapping[str, PoolInfo]) -> FailoverPolicy:
    """The failover policy of the loaded run, for a caller that binds its own tasks.

    Parameters
    ----------
    retry_handler : object
        The Config's ``retry_handler``.
    pools : mapping of str to PoolInfo
        The caller's pools, for a policy of its own.

    Returns
    -------
    FailoverPolicy
        The retry handler's policy when it has one (:meth:`Reliability.apply
        <parsl_quantum.reliability.Reliability.apply>` installs one), so both triggers decide
        and record alike; else a policy for ``pools`` that lets tasks change model unless the
        handler has its failover turned off (a ``failover`` attribute that is None).
    """
    policy = getattr(retry_handler, "failover", True)
    if isinstance(policy, FailoverPolicy):
        return policy
    return FailoverPolicy(pools, cross_model=policy is not None)
