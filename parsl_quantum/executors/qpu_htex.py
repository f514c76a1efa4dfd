"""A QPU-aware HighThroughputExecutor: workers bound to backends, tasks validated against them,
and each backend's concurrency limit enforced across the pool."""

from __future__ import annotations

import functools
import itertools
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, Protocol

import typeguard
from parsl.app.errors import RemoteExceptionWrapper
from parsl.data_provider.staging import Staging
from parsl.executors.errors import BadStateException
from parsl.executors.high_throughput.errors import (
    CommandClientBadError,
    CommandClientTimeoutError,
)
from parsl.executors.high_throughput.executor import (
    GENERAL_HTEX_PARAM_DOCS,
    HighThroughputExecutor,
)
from parsl.executors.high_throughput.manager_selector import (
    ManagerSelector,
    RandomManagerSelector,
)
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import JobStatus
from parsl.monitoring.radios.base import RadioConfig
from parsl.providers.base import ExecutionProvider

from parsl_quantum.backends import BackendSpec, QuantumBackend, canonical_name, get_backend
from parsl_quantum.executors._gate import BackendGate
from parsl_quantum.executors._resource_spec import ACCEPTED_KEYS, select_backends
from parsl_quantum.executors._worker import HOOK
from parsl_quantum.executors.selection import (
    SELECTION_POLICIES,
    ErrorScorer,
    Selection,
    check_selection,
    task_circuits,
)

#: Marks the threads on which QPU-aware pools complete failed tasks (any pool's: a task a down
#: pool passed on fails on its target pool's thread).
_FAILURE_THREAD = threading.local()

#: Start the interchange with this interpreter, so a pool does not depend on ``PATH``.
INTERCHANGE_LAUNCH_CMD = (sys.executable, "-m", "parsl.executors.high_throughput.interchange")


class FailoverRoute(Protocol):
    """Where a down pool's tasks go (:class:`~parsl_quantum.reliability.FailoverPolicy`)."""

    def forward(
        self,
        source: str,
        func: Callable,
        resource_specification: dict | None,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> Future | None:
        """Submit the task to another pool.

        Parameters
        ----------
        source : str
            The label of the pool that is down.
        func : Callable
            The task's function.
        resource_specification : dict or None
            The task's resource specification.
        args : Sequence[Any]
            The task's positional arguments.
        kwargs : dict[str, Any]
            The task's keyword arguments.

        Returns
        -------
        concurrent.futures.Future or None
            The task's future on the other pool, or None when no pool fits.
        """


@dataclass(frozen=True)
class BackendCapacity:
    """One backend of a pool, now: its limits and how many of its tasks run or wait.

    Attributes
    ----------
    name : str
        The backend's canonical name.
    kind : str
        ``"cpu-sim"``, ``"gpu-sim"`` or ``"qpu"``.
    max_qubits : int
        The widest circuit it runs.
    max_concurrent_jobs : int or None
        Its concurrency limit across the pool (None: unlimited).
    in_flight : int
        Its tasks handed to HTEX and not finished.
    held : int
        Its tasks waiting in the executor for room under the limit.
    """

    name: str
    kind: str
    max_qubits: int
    max_concurrent_jobs: int | None
    in_flight: int
    held: int

    @property
    def free_jobs(self) -> int | None:
        """Jobs that may start now without waiting (None: unlimited)."""
        if self.max_concurrent_jobs is None:
            return None
        return max(0, self.max_concurrent_jobs - self.in_flight)


@dataclass(frozen=True)
class PoolCapacity:
    """A live view of a pool for late binding.

    ``outstanding`` is ``held`` plus ``queued`` plus the running tasks.

    Attributes
    ----------
    label : str
        The pool's executor label.
    blocks : int
        Blocks with an active manager.
    connected_workers : int
        The worker slots of active managers.
    busy_slots : int
        Slots running (or holding) a task.
    idle_slots : int
        Connected slots without a task.
    outstanding : int
        Every task submitted and not finished.
    queued : int
        Tasks sent to the interchange, waiting for a worker.
    held : int
        Tasks waiting for a backend's concurrency limit, not yet sent.
    backends : tuple[BackendCapacity, ...]
        One entry per backend of the pool.
    """

    label: str
    blocks: int
    connected_workers: int
    busy_slots: int
    idle_slots: int
    outstanding: int
    queued: int
    held: int
    backends: tuple[BackendCapacity, ...]

    def backend(self, name: str) -> BackendCapacity:
        """The entry of one backend.

        Parameters
        ----------
        name : str
            A canonical or alias name.

        Returns
        -------
        BackendCapacity
            The backend's entry.

        Raises
        ------
        KeyError
            When the pool does not serve that backend.
        """
        canon = canonical_name(name)
        for b in self.backends:
            if b.name == canon:
                return b
        raise KeyError(name)


class QPUHighThroughputExecutor(HighThroughputExecutor):
    __doc__ = f"""A :class:`~parsl.HighThroughputExecutor` whose workers are bound to backends.

    Tasks may carry a resource specification with the keys {", ".join(ACCEPTED_KEYS)}
    (``priority`` as in HTEX: lower runs first). It is validated at submit time against the
    pool's backends, a backend is chosen for the task (``backend`` if given, otherwise by the
    pool's ``selection`` policy among the backends that fit ``qpu`` and ``qubits``), and the
    chosen name is written into the task's own ``parsl_resource_specification`` argument,
    which is how the task learns its backend on the worker. The worker process binds the
    backend before the task runs and reuses it for later tasks
    (:func:`~parsl_quantum.backends.worker_backend`); tasks sent through
    :meth:`submit_payload` are bound the same way.

    Each backend's ``max_concurrent_jobs`` holds across all workers of the pool: tasks of a
    saturated backend wait in the executor, in priority order, behind a future of their own,
    and are handed to HTEX as that backend's tasks finish. :meth:`capacity` gives a live view
    for a planner.

    Parameters
    ----------
    backends : Sequence[str]
        Registry names of the backends this pool serves (default: ``("aer",)``).
    backend_options : Mapping[str, Mapping[str, Any]] or None
        Options per backend name, passed to :func:`~parsl_quantum.backends.get_backend` in the
        submitting process and on workers (e.g. ``{{"fake:fake_perth": {{"max_concurrent_jobs":
        2}}}}``). Never put credentials here: they would travel with every task.
    selection : Selection
        How a task that several backends could serve gets one: {", ".join(SELECTION_POLICIES)}
        (see :mod:`parsl_quantum.executors.selection`). Default: ``first-fit``.
    capacity_timeout : float
        Seconds :meth:`capacity` waits for the interchange before it raises ``TimeoutError``.
    storage_access : list[Staging] or None
        Parsl's data staging providers, as for HTEX.
    cores_per_worker : float
        Cores assigned to each worker, as for HTEX (below 1.0 oversubscribes).
    mem_per_worker : float or None
        GB of memory each worker needs, as for HTEX (limits the workers per node).
    max_workers_per_node : int or None
        Caps the number of workers launched per node, as for HTEX.
    cpu_affinity : str
        How each worker process sets thread affinity, as for HTEX (``none``, ``block``,
        ``alternating``, ``block-reverse``).
    available_accelerators : int or Sequence[str]
        Accelerators the workers are pinned to, one each, as for HTEX.
    block_error_handler : bool or Callable
        Parsl's handler of failed blocks, as for HTEX (True: the default handler).
    remote_monitoring_radio : RadioConfig or None
        How workers send monitoring messages, as for HTEX.
    {GENERAL_HTEX_PARAM_DOCS}

    Raises
    ------
    TypeError
        When ``backends`` is a string rather than a sequence of names.
    ValueError
        For an empty ``backends``, ``backend_options`` of a backend the pool does not serve,
        an unknown ``selection``, or a ``capacity_timeout`` that is not positive.
    """

    @typeguard.typechecked
    def __init__(
        self,
        label: str = "QPUHighThroughputExecutor",
        provider: ExecutionProvider | None = None,
        launch_cmd: str | None = None,
        interchange_launch_cmd: Sequence[str] | None = None,
        address: str | None = None,
        loopback_address: str = "127.0.0.1",
        worker_port: int | None = None,
        worker_port_range: tuple[int, int] | None = (54000, 55000),
        interchange_port_range: tuple[int, int] | None = (55000, 56000),
        storage_access: list[Staging] | None = None,
        working_dir: str | None = None,
        worker_debug: bool = False,
        cores_per_worker: float = 1.0,
        mem_per_worker: float | None = None,
        max_workers_per_node: int | None = None,
        cpu_affinity: str = "none",
        available_accelerators: int | Sequence[str] = (),
        prefetch_capacity: int = 0,
        heartbeat_threshold: int = 120,
        heartbeat_period: int = 30,
        drain_period: int | None = None,
        poll_period: int = 10,
        address_probe_timeout: int | None = None,
        worker_logdir_root: str | None = None,
        manager_selector: ManagerSelector = RandomManagerSelector(),  # noqa: B008 (as HTEX)
        block_error_handler: bool
        | Callable[[BlockProviderExecutor, dict[str, JobStatus]], None] = True,
        encrypted: bool = True,
        remote_monitoring_radio: RadioConfig | None = None,
        backends: Sequence[str] = ("aer",),
        backend_options: Mapping[str, Mapping[str, Any]] | None = None,
        selection: Selection = "first-fit",
        capacity_timeout: float = 3.0,
    ) -> None:
        super().__init__(
            label=label,
            provider=provider,
            launch_cmd=launch_cmd,
            interchange_launch_cmd=list(interchange_launch_cmd or INTERCHANGE_LAUNCH_CMD),
            address=address,
            loopback_address=loopback_address,
            worker_port=worker_port,
            worker_port_range=worker_port_range,
            interchange_port_range=interchange_port_range,
            storage_access=storage_access,
            working_dir=working_dir,
            worker_debug=worker_debug,
            cores_per_worker=cores_per_worker,
            mem_per_worker=mem_per_worker,
            max_workers_per_node=max_workers_per_node,
            cpu_affinity=cpu_affinity,
            available_accelerators=available_accelerators,
            prefetch_capacity=prefetch_capacity,
            heartbeat_threshold=heartbeat_threshold,
            heartbeat_period=heartbeat_period,
            drain_period=drain_period,
            poll_period=poll_period,
            address_probe_timeout=address_probe_timeout,
            worker_logdir_root=worker_logdir_root,
            manager_selector=manager_selector,
            block_error_handler=block_error_handler,
            encrypted=encrypted,
            remote_monitoring_radio=remote_monitoring_radio,
        )
        if isinstance(backends, str):
            raise TypeError(f"backends must be a sequence of names, e.g. ({backends!r},)")
        self.backends: tuple[str, ...] = tuple(dict.fromkeys(canonical_name(b) for b in backends))
        if not self.backends:
            raise ValueError("a QPU-aware pool needs at least one backend")
        options = {canonical_name(k): dict(v) for k, v in (backend_options or {}).items()}
        stray = sorted(set(options) - set(self.backends))
        if stray:
            raise ValueError(
                f"backend_options for {', '.join(stray)}, which the pool does not serve "
                f"(backends: {', '.join(self.backends)})"
            )
        if capacity_timeout <= 0:
            raise ValueError(f"capacity_timeout must be > 0 seconds, got {capacity_timeout}")
        self.backend_options: dict[str, dict[str, Any]] = options
        self.selection: str = check_selection(selection)
        self.capacity_timeout = float(capacity_timeout)
        self._handles: dict[str, QuantumBackend] | None = None
        self._specs: dict[str, BackendSpec] = {}
        self._gates: dict[str, BackendGate] = {}
        self._scorer: ErrorScorer | None = None
        self._last_choice: str | None = None
        self._keys = itertools.count(1)
        self._running = False
        self._probe: Future[list[dict[str, Any]]] | None = None
        self._spec_lock = threading.Lock()
        self._gate_lock = threading.Lock()
        # HTEX's submit path is not thread-safe, and held tasks are released from the result
        # thread while the DataFlowKernel submits: every hand-over to HTEX goes through here.
        self._handover_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._failover: FailoverRoute | None = None

    @property
    def backend_specs(self) -> dict[str, BackendSpec]:
        """Spec of each backend of the pool, resolved once in the submitting process."""
        with self._spec_lock:
            if self._handles is None:
                handles = {
                    n: get_backend(n, **self.backend_options.get(n, {})) for n in self.backends
                }
                self._specs = {n: h.spec for n, h in handles.items()}
                self._gates = {
                    n: BackendGate(s.max_concurrent_jobs) for n, s in self._specs.items()
                }
                self._scorer = ErrorScorer(handles)
                self._handles = handles
            return self._specs

    def start(self) -> None:
        """Resolve the backends first (a misconfigured backend fails here), then start HTEX."""
        self.backend_specs  # noqa: B018
        super().start()
        self._running = True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop asking the interchange for :meth:`capacity`, then shut HTEX down.

        A question still out is waited for, as it must not see its channel closed under it.

        Parameters
        ----------
        timeout : float
            Seconds HTEX's shutdown waits for the interchange to stop.
        """
        with self._probe_lock:
            self._running = False
            probe = self._probe
        if probe is not None:
            wait([probe], timeout=self.answer_deadline + 1)
        super().shutdown(timeout=timeout)

    def validate_resource_spec(self, resource_specification: dict) -> None:
        """Reject unknown keys and requests no backend of this pool can serve.

        Parameters
        ----------
        resource_specification : dict
            The task's resource specification.

        Raises
        ------
        ValueError
            Naming the unknown keys, or the request no backend fits.
        """
        select_backends(resource_specification, self.backend_specs, f"pool {self.label!r}")

    def _scores(
        self, candidates: list[str], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> dict[str, float]:
        """Estimated errors of the task's circuits on each candidate (``least-error`` only;
        computed before the gate lock is taken, as it may transpile)."""
        if self.selection != "least-error" or len(candidates) == 1:
            return {}
        assert self._scorer is not None
        circuits = task_circuits(args, kwargs)
        return {n: self._scorer.score(n, circuits) for n in candidates}

    def _choose(self, candidates: list[str], scores: Mapping[str, float]) -> str:
        """The backend for one task, by the pool's selection policy (caller holds the gate
        lock)."""
        if len(candidates) == 1:
            choice = candidates[0]
        elif self.selection == "round-robin":
            after = self.backends.index(self._last_choice) if self._last_choice else -1
            order = self.backends[after + 1 :] + self.backends[: after + 1]
            choice = next(n for n in order if n in candidates)
        elif self.selection == "least-busy":
            choice = min(candidates, key=lambda n: self._gates[n].in_flight + self._gates[n].held)
        elif self.selection == "least-error":
            choice = min(candidates, key=lambda n: (scores[n], not self._gates[n].has_room()))
        else:
            room = [n for n in candidates if self._gates[n].has_room()]
            choice = room[0] if room else min(candidates, key=lambda n: self._gates[n].held)
        self._last_choice = choice
        return choice

    def submit(  # type: ignore[override]  # the future is the executor's own
        self, func: Callable, resource_specification: dict, *args: Any, **kwargs: Any
    ) -> Future:
        """Validate the request, bind a backend, and hand the task to HTEX.

        The chosen backend is written into the task's own ``parsl_resource_specification`` too. On a
        pool that is down, a task is passed to the failover policy installed with
        :meth:`fail_over_with`, which submits it to another pool.

        Parameters
        ----------
        func : Callable
            The task's function.
        resource_specification : dict
            The task's resource specification (keys of :data:`ACCEPTED_KEYS`).
        *args : Any
            The task's positional arguments.
        **kwargs : Any
            The task's keyword arguments.

        Returns
        -------
        concurrent.futures.Future
            The task's future.

        Raises
        ------
        ValueError
            When no backend of the pool can serve the request.
        """
        if self.bad_state_is_set:
            forwarded = (
                self._failover.forward(self.label, func, resource_specification, args, kwargs)
                if self._failover
                else None
            )
            if forwarded is None:
                raise self.executor_exception
            return forwarded
        spec = dict(resource_specification or {})
        candidates = select_backends(spec, self.backend_specs, f"pool {self.label!r}")
        scores = self._scores(candidates, args, kwargs)
        with self._gate_lock:
            backend = self._choose(candidates, scores)
        bound = {**spec, "backend": backend}
        if "parsl_resource_specification" in kwargs:
            kwargs["parsl_resource_specification"] = bound
        return super().submit(func, bound, *args, **kwargs)

    def submit_payload(self, context: dict, buffer: bytes) -> Future:  # type: ignore[override]
        """HTEX's payload entry point (also reached from :meth:`submit`).

        Binds the task's backend on the worker and sends it, or holds it while that backend is
        saturated.

        Parameters
        ----------
        context : dict
            HTEX's task context, with the task's ``resource_spec``.
        buffer : bytes
            The serialized task.

        Returns
        -------
        concurrent.futures.Future
            The task's future, which follows HTEX's once the task is sent.
        """
        if self.bad_state_is_set:
            raise self.executor_exception
        spec = dict(context.get("resource_spec") or {})
        candidates = select_backends(spec, self.backend_specs, f"pool {self.label!r}")
        scores = {} if "backend" in spec else self._scores(candidates, (), {})
        with self._gate_lock:
            backend = candidates[0] if "backend" in spec else self._choose(candidates, scores)
        bound = {
            **context,
            "resource_spec": {**spec, "backend": backend},
            "task_executor": {"f": HOOK, "a": (backend, self.backend_options.get(backend, {}))},
        }
        key = next(self._keys)
        outer: Future[Any] = Future()
        with self._gate_lock:
            send_now = self._gates[backend].admit(key, spec.get("priority"), (bound, buffer, outer))
        if send_now:
            self._hand_over(key, backend, bound, buffer, outer)
        return outer

    def _hand_over(
        self, key: int, backend: str, context: dict, buffer: bytes, outer: Future
    ) -> None:
        """Give one admitted task to HTEX; ``outer`` follows HTEX's future, and the task's end
        frees room on its backend."""
        try:
            with self._handover_lock:
                inner = super().submit_payload(context, buffer)
        except BaseException:
            self._finished(backend, key)
            raise
        inner.add_done_callback(
            functools.partial(self._inner_done, backend=backend, key=key, outer=outer)
        )

    def _inner_done(self, inner: Future, *, backend: str, key: int, outer: Future) -> None:
        self._finished(backend, key)
        exc = inner.exception()
        if exc is not None:
            self._fail(outer, lambda: outer.set_exception(exc))
        elif isinstance(result := inner.result(), RemoteExceptionWrapper):  # the app raised
            self._fail(outer, lambda: outer.set_result(result))
        else:
            outer.set_result(result)

    def _finished(self, backend: str, key: int) -> None:
        """A task of ``backend`` ended: send the held tasks that now have room."""
        with self._gate_lock:
            released = self._gates[backend].finish(key)
        for next_key, (context, buffer, outer) in released:
            try:
                self._hand_over(next_key, backend, context, buffer, outer)
            except BaseException as exc:
                failure = (  # a pool gone down fails the task as HTEX fails its own
                    BadStateException(self, self.executor_exception)
                    if self.bad_state_is_set
                    else exc
                )
                self._fail(outer, functools.partial(outer.set_exception, failure))

    def _fail(self, outer: Future, complete: Callable[[], None]) -> None:
        """Complete a failed task's future on a thread of its own, so that the DataFlowKernel's
        callbacks (its ``retry_handler`` among them) may wait without stalling the pool's
        results."""

        def fail() -> None:
            _FAILURE_THREAD.active = True
            if not outer.done():
                complete()

        threading.Thread(target=fail, name=f"{self.label}-failure", daemon=True).start()

    def in_failure_callback(self) -> bool:
        """Whether this thread completes a failed task of a QPU-aware pool.

        This pool, or the one a down pool passed the task to: a ``retry_handler`` called there may
        wait (back off) before the retry is launched.

        Returns
        -------
        bool
            True in such a thread.
        """
        return bool(getattr(_FAILURE_THREAD, "active", False))

    def fail_over_with(self, policy: FailoverRoute) -> None:
        """Once this pool is down, pass the tasks submitted to it to ``policy``.

        Parameters
        ----------
        policy : FailoverRoute
            Where the tasks go.
        """
        self._failover = policy

    @property
    def failover_route(self) -> FailoverRoute | None:
        """The policy installed with :meth:`fail_over_with`, if any."""
        return self._failover

    def set_bad_state_and_fail_all(self, exception: Exception) -> None:
        """HTEX's bad state, which also fails the tasks held for a saturated backend.

        Parameters
        ----------
        exception : Exception
            Why the pool is down; held tasks fail with a ``BadStateException`` wrapping it.
        """
        super().set_bad_state_and_fail_all(exception)
        with self._gate_lock:
            dropped = [p for g in self._gates.values() for _, p in g.drain()]
        failure = BadStateException(self, exception)  # as HTEX fails the tasks it was given
        for _, _, outer in dropped:
            self._fail(outer, functools.partial(outer.set_exception, failure))

    def held_tasks(self) -> int:
        """Tasks waiting in the executor for a saturated backend (not yet given to HTEX).

        Returns
        -------
        int
            Their number.
        """
        with self._gate_lock:
            return sum(g.held for g in self._gates.values())

    def _ask_managers(self, probe: Future[list[dict[str, Any]]]) -> None:
        try:
            probe.set_result(self.command_client.run("MANAGERS", timeout_s=self.answer_deadline))
        except BaseException as exc:
            probe.set_exception(exc)

    @property
    def answer_deadline(self) -> float:
        """Seconds an unanswered question may wait before HTEX gives its command channel up
        (ten times ``capacity_timeout``): a slow interchange is waited for, a dead one is not."""
        return 10 * self.capacity_timeout

    def managers(self) -> list[dict[str, Any]]:
        """HTEX's :meth:`connected_managers`, waiting at most ``capacity_timeout`` seconds.

        The question runs in a thread of its own; when the interchange does not answer in
        time (it died), later calls wait on the same question rather than asking again.

        Returns
        -------
        list[dict[str, Any]]
            One entry per manager; none before :meth:`start` and after :meth:`shutdown`.

        Raises
        ------
        TimeoutError
            When the interchange does not answer in time.
        """
        with self._probe_lock:
            if not self._running:
                return []
            probe = self._probe
            if probe is None or probe.done():
                probe = Future()
                threading.Thread(
                    target=self._ask_managers,
                    args=(probe,),
                    name=f"{self.label}-capacity",
                    daemon=True,
                ).start()
                self._probe = probe
        try:
            return probe.result(timeout=self.capacity_timeout)
        except (TimeoutError, CommandClientTimeoutError, CommandClientBadError):
            raise TimeoutError(
                f"pool {self.label!r}: the interchange did not answer within "
                f"{self.capacity_timeout:g} s"
            ) from None

    def capacity(self) -> PoolCapacity:
        """A live view of the pool from the interchange's managers and the backend gates.

        Returns
        -------
        PoolCapacity
            Workers, slots, outstanding and held tasks, and each backend's entry.

        Raises
        ------
        TimeoutError
            Within ``capacity_timeout`` seconds when the interchange does not answer.
        """
        specs = self.backend_specs
        managers = self.managers()
        active = [m for m in managers if m["active"] and not m.get("draining", False)]
        workers = sum(int(m["worker_count"]) for m in active)
        busy = sum(min(int(m["tasks"]), int(m["worker_count"])) for m in active)
        with self._gate_lock:
            entries = tuple(
                BackendCapacity(
                    name=n,
                    kind=s.kind,
                    max_qubits=s.max_qubits,
                    max_concurrent_jobs=s.max_concurrent_jobs,
                    in_flight=self._gates[n].in_flight,
                    held=self._gates[n].held,
                )
                for n, s in specs.items()
            )
        held = sum(e.held for e in entries)
        outstanding = self.outstanding() + held
        return PoolCapacity(
            label=self.label,
            blocks=len({m["block_id"] for m in active}),
            connected_workers=workers,
            busy_slots=busy,
            idle_slots=workers - busy,
            outstanding=outstanding,
            queued=max(0, outstanding - held - busy),
            held=held,
            backends=entries,
        )
