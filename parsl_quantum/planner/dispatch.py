"""Late binding: submit ready tasks in rank order and choose each one's pool at submission.

The plan (:func:`~parsl_quantum.planner.plan.heft`) predicts where every task should run, but
pools change while a workflow runs: blocks arrive late, are cancelled or expire, workers fail,
other workflows share a pool. The :class:`Dispatcher` therefore keeps the plan's task order
(upward rank) and its per-pool predicted costs, and binds each task only when it submits it, to
the pool with the earliest predicted finish given live capacity:

* ``QPUHighThroughputExecutor.capacity()`` gives connected worker slots and outstanding tasks
  (other workflows' tasks included); other executors are assumed to have the plan's workers;
* a pool never holds more of our tasks than its slots plus ``prefetch``, so work is not bound
  early to a pool that turns out slow, and a pool that gains blocks gets more work at once;
* a pool that has had no connected workers for ``lost_after`` seconds while holding our tasks
  is lost: those tasks are submitted again elsewhere (the first result to arrive wins). A pool
  whose ``capacity()`` raises or does not answer within ``capacity_timeout`` seconds (a dead
  interchange, a worker launch that failed) counts as having no connected workers, so it is
  lost in the same time, and one whose interchange process has exited is lost at once; a task
  left with no pool that may run it ends the dispatch with a :class:`DispatchError` instead of
  waiting for ever; a pool whose tasks fail ``max_failures`` times in a row is unhealthy and
  gets no more work; failed tasks are resubmitted to another pool that may run them, except
  those that failed on bad input (a permanent ``ValueError`` or ``TypeError``), which would fail
  the same way anywhere and end the dispatch at once.

Which pools may run a task is decided by the run's
:class:`~parsl_quantum.reliability.failover.FailoverPolicy`, the same decision the retry
handler makes for a down pool's tasks, among the pools the plan priced for it (its
``pool_costs``: wide enough, and exact when the run must be exact, so exact-only work never
fails over to a sampled-only pool) that are neither lost nor unhealthy. All tasks of one
partition run under one physical model (:func:`~parsl_quantum.executors.pools.physical_model`:
ideal simulation, or one noisy device): the first task of a partition binds it, and its other
tasks go only to pools of the same model while one of them is up; a move across models needs
the policy's ``cross_model`` (the run's ``execution.failover``), rebinds the partition and is
recorded as an event (the run's configuration then says whether results of two models were
mixed). A pool that Parsl has put in a bad state gets no new work, but its in-flight tasks are
left to Parsl: the retry handler moves them, or they fail and are bound again here, so each
move is made - and recorded in the policy - once. Parsl still executes, retries and scales;
this only decides where each task goes.

Everything that happened is kept in a :class:`DispatchReport`: the pool that ran each task,
its predicted and measured seconds, every attempt, failovers and pool events.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx

from parsl_quantum.executors import PoolInfo, QPUAwarePool
from parsl_quantum.executors.pools import physical_model
from parsl_quantum.planner.plan import DISPATCH_PREFETCH, upward_ranks
from parsl_quantum.reliability.failover import DISPATCHER, Failover, FailoverPolicy, TaskNeeds
from parsl_quantum.reliability.retry import Verdict, classify

#: Submits one task to one pool and returns its future (``submit(node, pool)``).
SubmitFn = Callable[[str, str], Future]


class DispatchError(RuntimeError):
    """A task that no pool could run: every pool allowed for it failed it or is unhealthy."""


@dataclass
class Attempt:
    """One submission of a task to a pool.

    Attributes
    ----------
    pool : str
        The pool it was submitted to.
    submitted : float
        Seconds since the dispatch began.
    outcome : str
        ``running``, ``done``, ``failed: <error>``, ``abandoned: <why>`` or ``superseded``.
    ended : float or None
        Seconds since the dispatch began when it ended.
    """

    pool: str
    submitted: float
    outcome: str = "running"
    ended: float | None = None


@dataclass
class TaskRecord:
    """What happened to one task.

    Attributes
    ----------
    task : str
        The plan's node.
    planned_pool : str or None
        The pool the plan chose.
    pool : str or None
        The pool whose attempt gave the result.
    predicted_seconds, measured_seconds : float or None
        The plan's cost on that pool, and the compute seconds measured.
    attempts : list of Attempt
        Every submission, in order.
    """

    task: str
    planned_pool: str | None
    pool: str | None = None
    predicted_seconds: float | None = None
    measured_seconds: float | None = None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class PoolEvent:
    """A change of a pool seen by the dispatcher.

    Attributes
    ----------
    pool : str
        The pool.
    event : str
        What changed: workers, lost, back, unhealthy, a partition changing model.
    time : float
        Seconds since the dispatch began.
    """

    pool: str
    event: str
    time: float


@dataclass
class DispatchReport:
    """The record of one dispatch, written into ``plan.json`` by the workflow.

    Attributes
    ----------
    tasks : dict of str to TaskRecord
        Each evaluate task's record.
    failovers : list of Failover
        The dispatcher's moves (also in the run's failover policy, beside the retry
        handler's).
    events : list of PoolEvent
        Pool changes in the order seen.
    wall_seconds : float
        The dispatch's duration.
    """

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    failovers: list[Failover] = field(default_factory=list)
    events: list[PoolEvent] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data.

        Returns
        -------
        dict
            ``wall_seconds``, ``tasks``, ``failovers`` and ``events``.
        """
        return {
            "wall_seconds": self.wall_seconds,
            "tasks": [asdict(t) for t in self.tasks.values()],
            "failovers": [asdict(f) for f in self.failovers],
            "events": [asdict(e) for e in self.events],
        }


@dataclass
class _Pool:
    """The dispatcher's live view of one pool."""

    info: PoolInfo
    executor: Any
    slots: int
    in_flight: dict[str, tuple[float, float]] = field(default_factory=dict)  # node: (t0, cost)
    external: int = 0
    seen: int | None = None
    ever_up: bool = False
    zero_since: float | None = None
    lost: bool = False
    failures: int = 0
    unhealthy: bool = False
    last_error: str = ""
    done: int = 0
    #: The outstanding ``capacity()`` call: when it was made and where its answer goes.
    probe: tuple[float, Future] | None = None

    def room(self, prefetch: int) -> int:
        return self.slots + prefetch - len(self.in_flight) - self.external


class Dispatcher:
    """Runs the evaluate tasks of a planned DAG with late binding (see the module docstring).

    Parameters
    ----------
    graph : networkx.DiGraph
        The plan's DAG; its evaluate nodes are dispatched.
    pools : mapping of str to PoolInfo
        The pools it may bind to.
    submit : callable
        ``submit(node, pool)`` submits the task to that pool and returns its future.
    executors : mapping of str to executor, optional
        The pools' executors, by label: live capacity where they have ``capacity()``.
    measured : callable
        Reads a result's compute seconds (None: not recorded).
    prefetch : int
        Tasks a pool may hold beyond its connected worker slots.
    poll_period : float
        Seconds between looks at live capacity.
    lost_after : float
        Seconds without connected workers, while holding our tasks, after which a pool is
        lost.
    max_failures : int
        Failures in a row after which a pool is unhealthy.
    max_attempts : int
        Attempts after which a failing task ends the dispatch.
    on_done : callable, optional
        ``on_done(pool, done, bound)`` reports progress.
    failover : FailoverPolicy, optional
        The run's failover policy (:func:`~parsl_quantum.reliability.failover.run_policy`),
        which decides where each task may go and records every move; by default one of its
        own over ``pools`` that lets tasks change physical model.
    capacity_timeout : float
        Seconds a ``capacity()`` call may take; one that takes longer, or raises, counts as
        "no connected workers".
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        pools: Mapping[str, PoolInfo],
        submit: SubmitFn,
        *,
        executors: Mapping[str, Any] | None = None,
        measured: Callable[[Any], float | None] = lambda result: None,
        prefetch: int = DISPATCH_PREFETCH,
        poll_period: float = 0.2,
        lost_after: float = 60.0,
        max_failures: int = 3,
        max_attempts: int = 4,
        on_done: Callable[[str, int, int], None] | None = None,
        failover: FailoverPolicy | None = None,
        capacity_timeout: float = 5.0,
    ) -> None:
        self.graph = graph
        self.failover = failover if failover is not None else FailoverPolicy(pools)
        self.submit = submit
        self.measured = measured
        self.prefetch = max(0, prefetch)
        self.poll_period = poll_period
        self.lost_after = lost_after
        self.capacity_timeout = capacity_timeout
        self.max_failures = max_failures
        self.max_attempts = max_attempts
        self.on_done = on_done
        executors = executors or {}
        self.pools = {
            name: _Pool(info, executors.get(name), max(1, info.workers))
            for name, info in pools.items()
        }
        self.nodes = [n for n, d in graph.nodes(data=True) if d["kind"] == "evaluate"]
        ranks = {n: graph.nodes[n].get("rank") for n in self.nodes}
        if any(r is None for r in ranks.values()):
            ranks = {n: r for n, r in upward_ranks(graph).items() if n in ranks}
        self.order = {n: i for i, n in enumerate(sorted(self.nodes, key=lambda n: -ranks[n]))}
        self.report = DispatchReport(
            tasks={n: TaskRecord(n, graph.nodes[n].get("pool")) for n in self.nodes}
        )
        self.results: dict[str, Any] = {}
        self._pending: list[tuple[int, str]] = []
        self._queued: set[str] = set()
        self._avoid: dict[str, set[str]] = {n: set() for n in self.nodes}
        self._events: queue.Queue[tuple[str, int, Future]] = queue.Queue()
        self._t0 = 0.0
        self._last_poll = -1e9
        #: partition -> the physical model its first task was bound to
        self.models: dict[int, str] = {}

    # -- public ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Dispatch until every evaluate task has a result.

        Returns
        -------
        dict
            Each evaluate node's result.

        Raises
        ------
        DispatchError
            When a task has no pool left that may run it, fails on bad input, or fails
            ``max_attempts`` times.
        """
        self._t0 = time.monotonic()
        for node in self.nodes:
            if self._is_ready(node):
                self._queue(node)
        first = True
        while len(self.results) < len(self.nodes):
            # the first tasks go out at once, on the plan's worker counts, while the pools'
            # first capacity answers are on their way
            self._poll(wait=not first)
            first = False
            self._check_stranded()
            self._bind()
            self._drain(self.poll_period)
        self.report.wall_seconds = round(self._now(), 3)
        return self.results

    # -- internals ---------------------------------------------------------------------
    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _is_ready(self, node: str) -> bool:
        """Not done, queued or running, and every evaluate predecessor done."""
        if node in self.results or node in self._queued or self._live_attempts(node):
            return False
        return all(
            self.graph.nodes[p]["kind"] != "evaluate" or p in self.results
            for p in self.graph.predecessors(node)
        )

    def _queue(self, node: str) -> None:
        self._queued.add(node)
        heapq.heappush(self._pending, (self.order[node], node))

    def _live_attempts(self, node: str) -> list[Attempt]:
        return [a for a in self.report.tasks[node].attempts if a.outcome == "running"]

    def _poll(self, *, wait: bool = True) -> None:
        """Refresh live capacity (at most once per poll period) and detect lost pools.

        A pool that never had connected workers is assumed to be starting with the plan's
        workers; one that had some and has none gets no new tasks, and is lost once it has had
        none for ``lost_after`` seconds while holding our tasks. Without ``wait`` a capacity
        call not answered yet is left for the next poll.
        """
        now = self._now()
        if now - self._last_poll < self.poll_period:
            return
        self._last_poll = now
        for name, pool in self.pools.items():
            if getattr(pool.executor, "bad_state_is_set", False):
                # Parsl fails its tasks, and the retry handler moves them or they come back
                # failed: abandoning them here as well would move each one twice
                if not pool.lost:
                    self._lose(name, "executor in a bad state", abandon=False)
                continue
            interchange = getattr(pool.executor, "interchange_proc", None)
            if interchange is not None and interchange.poll() is not None:
                # sending to a pool whose interchange is gone would block Parsl's task launch
                # thread, and with it every pool: give it nothing more, now
                if not pool.lost:
                    self._lose(name, f"its interchange exited ({interchange.returncode})")
                continue
            if not isinstance(pool.executor, QPUAwarePool):
                continue  # no live view: the plan's worker count stands
            capacity = pool.executor.capacity
            try:
                cap = self._ask(pool, capacity, wait=wait)
                if cap is None:
                    continue  # still within its timeout, or no live view: keep the last one
            except Exception as exc:  # no answer: the interchange is gone or stuck
                cap = None
                why = f"{type(exc).__name__}: {exc}".strip(": ")
                if pool.seen != -1:
                    self._event(name, f"capacity unknown ({why}): counted as no workers")
                pool.seen, pool.slots = -1, 0  # an interchange that does not answer gets no work
            workers = 0
            if cap is not None:
                workers = int(cap.connected_workers)
                pool.external = max(0, int(cap.outstanding) - len(pool.in_flight))
                if pool.seen is None:
                    self._event(name, f"{workers} connected workers")
                elif workers != pool.seen:
                    self._event(name, f"workers {max(pool.seen, 0)} -> {workers}")
                pool.seen = workers
            if workers > 0:
                if pool.lost:
                    self._event(name, "back")
                pool.slots, pool.zero_since, pool.lost, pool.ever_up = workers, None, False, True
                continue
            if pool.zero_since is None or not pool.in_flight:
                # the clock runs only while the pool holds our tasks: a cold pool sent its
                # first task late in the run gets ``lost_after`` to start a block
                pool.zero_since = now
            if pool.ever_up:
                pool.slots = 0
            if not pool.lost and pool.in_flight and now - pool.zero_since >= self.lost_after:
                self._lose(name, f"no connected workers for {self.lost_after:g}s")

    def _ask(self, pool: _Pool, capacity: Callable[[], Any], *, wait: bool = True) -> Any:
        """The pool's live capacity from a ``capacity()`` call made in a daemon thread, so that
        a call that never returns cannot stop the dispatch: None while a call is still within
        ``capacity_timeout`` (waited for up to a poll period, with ``wait``); raises what the
        call raised, or :class:`TimeoutError` once it is overdue (no new call is made until it
        ends)."""
        if pool.probe is None:
            answer: Future = Future()

            def call() -> None:
                try:
                    answer.set_result(capacity())
                except BaseException as exc:  # handed to the dispatcher, which decides
                    answer.set_exception(exc)

            threading.Thread(target=call, name="pq-capacity", daemon=True).start()
            pool.probe = (time.monotonic(), answer)
        started, answer = pool.probe
        left = self.capacity_timeout - (time.monotonic() - started)
        try:
            result = answer.result(timeout=max(0.0, min(self.poll_period, left)) if wait else 0)
        except TimeoutError:
            if time.monotonic() - started < self.capacity_timeout:
                return None
            raise TimeoutError(f"capacity() gave no answer in {self.capacity_timeout:g}s") from None
        except BaseException:
            pool.probe = None
            raise
        pool.probe = None
        return result

    def _check_stranded(self) -> None:
        """End the dispatch when a waiting task has no pool left that may run it (every one
        allowed is lost or unhealthy): waiting would never end. A task allowed on a pool whose
        executor is in a bad state is waited for: Parsl fails that pool's tasks, or the retry
        handler's failover moves them, and either ends the wait."""
        if not any(p.lost for p in self.pools.values()):
            return
        for node in self._queued:
            handled = any(
                getattr(self.pools[pool].executor, "bad_state_is_set", False)
                for pool in self.graph.nodes[node]["pool_costs"]
                if pool in self.pools
            )
            if not handled and not self._usable(node):
                lost = [p for p in self.graph.nodes[node]["pool_costs"] if p in self.pools]
                raise DispatchError(
                    f"no pool left to run {node}: "
                    + ", ".join(f"{p} lost" for p in lost)
                    + f" (no connected workers for {self.lost_after:g}s)"
                )

    def _lose(self, pool_name: str, why: str, *, abandon: bool = True) -> None:
        """Mark a pool lost: no slots, and (with ``abandon``) its in-flight tasks go back to
        the queue."""
        pool = self.pools[pool_name]
        pool.lost, pool.slots = True, 0
        self._event(pool_name, f"lost ({why})")
        for node in list(pool.in_flight) if abandon else []:
            self._abandon(node, pool_name, "pool lost")

    def _abandon(self, node: str, pool_name: str, why: str) -> None:
        pool = self.pools[pool_name]
        pool.in_flight.pop(node, None)
        for attempt in self._live_attempts(node):
            if attempt.pool == pool_name:
                attempt.outcome, attempt.ended = f"abandoned: {why}", self._now()
        self._avoid[node].add(pool_name)
        if self._is_ready(node):
            self._queue(node)

    def _needs(self, node: str) -> TaskNeeds:
        """What ``node`` asks of a pool: its width, exactness (exact on every pool the plan
        priced), its partition's physical model, the kind of its last pool and the plan's
        pools for it."""
        data = self.graph.nodes[node]
        attempts = self.report.tasks[node].attempts
        last = self.pools.get(attempts[-1].pool) if attempts else None
        modes = data.get("modes") or {}
        return TaskNeeds(
            qubits=data.get("qubits"),
            exact=bool(modes) and all(m == "exact" for m in modes.values()),
            model=self.models.get(data.get("partition", -1)),
            kind=last.info.kind if last is not None else None,
            planned=frozenset(data["pool_costs"]),
        )

    def _usable(self, node: str) -> list[str]:
        """Pools that may run ``node`` now, by the failover policy: among the plan's pools for
        it that are neither lost nor unhealthy, preferring ones it has not failed on. Raises
        :class:`DispatchError` when no pool the policy allows is healthy (a lost one may come
        back, so the task then waits)."""
        needs = self._needs(node)
        allowed = [p for p in self.graph.nodes[node]["pool_costs"] if p in self.pools]
        healthy = {p: self.pools[p].info for p in allowed if not self.pools[p].unhealthy}
        if not self.failover.candidates(needs, healthy):
            errors = "; ".join(f"{p}: {self.pools[p].last_error}" for p in allowed)
            hint = "" if self.failover.cross_model else "; failover to simulators is off"
            raise DispatchError(
                f"no healthy pool can run {node} ({errors or 'none allowed'}{hint})"
            )
        live = {p: info for p, info in healthy.items() if not self.pools[p].lost}
        return self.failover.candidates(needs, live, self._avoid[node])

    def _finish_estimate(self, pool: _Pool, cost: float, now: float) -> float:
        """Predicted finish of a new task of ``cost`` on ``pool``: the earliest of its slots to
        free up once our in-flight tasks (and other workflows' queued ones) are done."""
        if pool.slots <= 0:
            return float("inf")
        free = [now] * pool.slots
        load = sorted(pool.in_flight.values())
        mean = sum(c for _, c in load) / len(load) if load else cost
        remaining = [max(0.0, c - (now - t0)) for t0, c in load] + [mean] * pool.external
        for rem in remaining:
            heapq.heapreplace(free, free[0] + rem)
        return free[0] + cost

    def _bind(self) -> None:
        """Submit pending tasks in rank order, each to the pool where it would finish first,
        as long as that pool has room; a task whose best pool is full waits for it. Only the
        first few pending tasks (a window of a few per slot) are looked at per call."""
        now = self._now()
        window = 4 * sum(p.slots + self.prefetch for p in self.pools.values()) + 16
        waiting: list[tuple[int, str]] = []
        while self._pending and len(waiting) < window:
            if all(p.room(self.prefetch) <= 0 or p.lost for p in self.pools.values()):
                break
            item = heapq.heappop(self._pending)
            node = item[1]
            costs = self.graph.nodes[node]["pool_costs"]
            options = [
                (self._finish_estimate(self.pools[p], costs[p], now), p) for p in self._usable(node)
            ]
            options = [o for o in options if o[0] < float("inf")]
            if not options or self.pools[min(options)[1]].room(self.prefetch) <= 0:
                waiting.append(item)
                continue
            self._queued.discard(node)
            self._submit(node, min(options)[1], now)
        for item in waiting:
            heapq.heappush(self._pending, item)

    def _submit(self, node: str, pool_name: str, now: float) -> None:
        pool = self.pools[pool_name]
        record = self.report.tasks[node]
        previous = record.attempts[-1] if record.attempts else None
        if previous is not None and previous.pool != pool_name:
            reason = previous.outcome if previous.outcome != "running" else "rebound"
            move = Failover(node, previous.pool, pool_name, reason, DISPATCHER, round(now, 3))
            self.report.failovers.append(move)
            self.failover.record(move)
        try:
            future = self.submit(node, pool_name)
        except Exception as exc:  # the executor refuses work (bad state, shut down)
            self._failed(pool_name, f"submit: {exc}")
            self._avoid[node].add(pool_name)
            self._queue(node)
            return
        record.attempts.append(Attempt(pool_name, round(now, 3)))
        partition = self.graph.nodes[node].get("partition", -1)
        model = physical_model(pool.info)
        bound = self.models.setdefault(partition, model)
        if bound != model:
            self.models[partition] = model
            self._event(pool_name, f"partition {partition} fails over from {bound} to {model}")
        index = len(record.attempts) - 1
        pool.in_flight[node] = (now, float(self.graph.nodes[node]["pool_costs"][pool_name]))
        future.add_done_callback(self._notifier(node, index))

    def _notifier(self, node: str, index: int) -> Callable[[Future], None]:
        def notify(future: Future) -> None:
            self._events.put((node, index, future))

        return notify

    def _failed(self, pool_name: str, error: str) -> None:
        pool = self.pools[pool_name]
        pool.failures += 1
        pool.last_error = error
        if pool.failures >= self.max_failures and not pool.unhealthy:
            pool.unhealthy = True
            self._event(pool_name, f"unhealthy after {pool.failures} failures in a row")

    def _drain(self, timeout: float) -> None:
        """Handle finished attempts: wait up to ``timeout`` for the first, then take all."""
        try:
            events = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for node, index, future in events:
            self._complete(node, index, future)
            for succ in self.graph.successors(node):
                if self.graph.nodes[succ]["kind"] == "evaluate" and self._is_ready(succ):
                    self._queue(succ)

    def _complete(self, node: str, index: int, future: Future) -> None:
        record = self.report.tasks[node]
        attempt = record.attempts[index]
        pool = self.pools[attempt.pool]
        if attempt.outcome == "running":
            pool.in_flight.pop(node, None)
        attempt.ended = round(self._now(), 3)
        exc = future.exception()
        if exc is not None:
            if attempt.outcome != "running":
                return  # an abandoned attempt failing later changes nothing
            attempt.outcome = f"failed: {type(exc).__name__}: {exc}"[:300]
            if isinstance(exc, ValueError | TypeError) and classify(exc) is Verdict.PERMANENT:
                # bad input fails the same way on every pool: no point moving it
                raise DispatchError(f"{node} failed: {type(exc).__name__}: {exc}")
            self._failed(attempt.pool, attempt.outcome)
            self._avoid[node].add(attempt.pool)
            if self._is_ready(node):
                if len(record.attempts) >= self.max_attempts:
                    raise DispatchError(
                        f"{node} failed {len(record.attempts)} times; last: {attempt.outcome}"
                    )
                self._queue(node)
            return
        pool.failures = 0
        if node in self.results:
            attempt.outcome = "superseded"
            return
        attempt.outcome = "done"
        result = future.result()
        self.results[node] = result
        record.pool = attempt.pool
        record.predicted_seconds = float(self.graph.nodes[node]["pool_costs"][attempt.pool])
        record.measured_seconds = self.measured(result)
        pool.done += 1
        for other in self._live_attempts(node):
            other.outcome = "superseded"
            self.pools[other.pool].in_flight.pop(node, None)
        if self.on_done is not None:
            self.on_done(attempt.pool, pool.done, pool.done + len(pool.in_flight))

    def _event(self, pool: str, what: str) -> None:
        self.report.events.append(PoolEvent(pool, what, round(self._now(), 3)))
