"""A QPU-aware HighThroughputExecutor: workers bound to backends, tasks validated against them,
and each backend's concurrency limit enforced across the pool."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import typeguard
from parsl.data_provider.staging import Staging
from parsl.executors.high_throughput.executor import (
    GENERAL_HTEX_PARAM_DOCS,
    HighThroughputExecutor,
    HTEXFuture,
)
from parsl.executors.high_throughput.manager_selector import (
    ManagerSelector,
    RandomManagerSelector,
)
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import JobStatus
from parsl.monitoring.radios.base import RadioConfig
from parsl.providers.base import ExecutionProvider
from parsl.serialize import pack_apply_message
from parsl.serialize.errors import SerializationError

from parsl_quantum.backends import BackendSpec, canonical_name, get_backend
from parsl_quantum.executors._gate import BackendGate
from parsl_quantum.executors._resource_spec import ACCEPTED_KEYS, select_backends
from parsl_quantum.executors._worker import HOOK

logger = logging.getLogger(__name__)

#: Start the interchange with this interpreter, so a pool does not depend on ``PATH``.
INTERCHANGE_LAUNCH_CMD = (sys.executable, "-m", "parsl.executors.high_throughput.interchange")


@dataclass(frozen=True)
class BackendCapacity:
    """One backend of a pool, now: its limits and how many of its tasks run or wait."""

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

    ``connected_workers`` are the worker slots of active managers; ``busy_slots`` those running
    (or holding) a task; ``outstanding`` every task submitted and not finished, which is
    ``held`` (waiting for a backend's concurrency limit, not yet sent) plus ``queued`` (sent,
    waiting for a worker) plus the running ones.
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
        """The entry of one backend (canonical or alias name)."""
        canon = canonical_name(name)
        for b in self.backends:
            if b.name == canon:
                return b
        raise KeyError(name)


class QPUHighThroughputExecutor(HighThroughputExecutor):
    __doc__ = f"""A :class:`~parsl.HighThroughputExecutor` whose workers are bound to quantum
    backends.

    Tasks may carry a resource specification with the keys {", ".join(ACCEPTED_KEYS)}
    (``priority`` as in HTEX: lower runs first). It is validated at submit time against the
    pool's backends, a backend is chosen for the task (``backend`` if given, otherwise the first
    backend that fits ``qpu`` and ``qubits``), and the chosen name is written into the task's
    own ``parsl_resource_specification`` argument, which is how the task learns its backend on
    the worker. The worker process binds the backend before the task runs and reuses it for
    later tasks (:func:`~parsl_quantum.backends.worker_backend`).

    Each backend's ``max_concurrent_jobs`` holds across all workers of the pool: tasks of a
    saturated backend wait in the executor, in priority order, and are released as that
    backend's tasks finish. :meth:`capacity` gives a live view for a planner.

    Parameters
    ----------
    backends: Sequence[str]
        Registry names of the backends this pool serves (default: ``("aer",)``).

    backend_options: Mapping[str, Mapping] | None
        Options per backend name, passed to :func:`~parsl_quantum.backends.get_backend` in the
        submitting process and on workers (e.g. ``{{"fake:fake_perth": {{"max_concurrent_jobs":
        2}}}}``). Never put credentials here: they would travel with every task.

    {GENERAL_HTEX_PARAM_DOCS}
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
        self.backend_options: dict[str, dict[str, Any]] = options
        self._specs: dict[str, BackendSpec] | None = None
        self._gates: dict[str, BackendGate] = {}
        self._task_backend: dict[int, str] = {}
        self._held_blocks: set[str] = set()
        self._spec_lock = threading.Lock()
        self._gate_lock = threading.Lock()
        self._send_lock = threading.Lock()

    @property
    def backend_specs(self) -> dict[str, BackendSpec]:
        """Spec of each backend of the pool, resolved once in the submitting process."""
        with self._spec_lock:
            if self._specs is None:
                specs = {
                    n: get_backend(n, **self.backend_options.get(n, {})).spec for n in self.backends
                }
                self._gates = {n: BackendGate(s.max_concurrent_jobs) for n, s in specs.items()}
                self._specs = specs
            return self._specs

    def start(self) -> None:
        """Resolve the backends first (a misconfigured backend fails here), then start HTEX."""
        self.backend_specs  # noqa: B018
        super().start()

    def validate_resource_spec(self, resource_specification: dict) -> None:
        """Reject unknown keys and requests no backend of this pool can serve."""
        select_backends(resource_specification, self.backend_specs, f"pool {self.label!r}")

    def _choose(self, candidates: list[str]) -> str:
        """First candidate with room under its limit, else the one with the fewest held."""
        for name in candidates:
            if self._gates[name].has_room():
                return name
        return min(candidates, key=lambda n: self._gates[n].held)

    def submit(
        self, func: Callable, resource_specification: dict, *args: Any, **kwargs: Any
    ) -> HTEXFuture:
        """Validate, bind a backend, and send the task (or hold it while its backend is full)."""
        if self.bad_state_is_set:
            raise self.executor_exception
        spec = dict(resource_specification or {})
        candidates = select_backends(spec, self.backend_specs, f"pool {self.label!r}")
        with self._gate_lock:
            backend = self._choose(candidates)
        bound = {**spec, "backend": backend}
        if "parsl_resource_specification" in kwargs:
            kwargs["parsl_resource_specification"] = bound
        try:
            fn_buf = pack_apply_message(func, args, kwargs, buffer_threshold=1 << 20)
        except TypeError:
            raise SerializationError(func.__name__) from None
        context = {
            "resource_spec": bound,
            "task_executor": {"f": HOOK, "a": (backend, self.backend_options.get(backend, {}))},
        }
        return self._submit_bound(context, fn_buf, backend)

    def submit_payload(self, context: dict, buffer: bytes) -> HTEXFuture:
        """HTEX's raw-payload entry point, routed through the backend gates as well."""
        spec = dict(context.get("resource_spec") or {})
        candidates = select_backends(spec, self.backend_specs, f"pool {self.label!r}")
        with self._gate_lock:
            backend = self._choose(candidates)
        return self._submit_bound(
            {**context, "resource_spec": {**spec, "backend": backend}}, buffer, backend
        )

    def _submit_bound(self, context: dict, buffer: bytes, backend: str) -> HTEXFuture:
        if self.bad_state_is_set:
            raise self.executor_exception
        priority = context["resource_spec"].get("priority")
        with self._gate_lock:
            self._task_counter += 1
            task_id = self._task_counter
            fut = HTEXFuture(task_id)
            self.tasks[task_id] = fut
            self._task_backend[task_id] = backend
            send_now = self._gates[backend].admit(task_id, priority, (context, buffer))
        fut.add_done_callback(self._task_done)
        if send_now:
            self._send(task_id, context, buffer)
        return fut

    def _send(self, task_id: int, context: dict, buffer: bytes) -> None:
        if self.bad_state_is_set:  # set_bad_state_and_fail_all fails every future in self.tasks
            return
        with self._send_lock:  # submit and result threads both send; zmq sockets are not
            self.outgoing_q.put({"task_id": task_id, "context": context, "buffer": buffer})

    def _task_done(self, fut: Any) -> None:
        task_id = fut.parsl_executor_task_id
        with self._gate_lock:
            backend = self._task_backend.pop(task_id)
            released = self._gates[backend].finish(task_id)
        for tid, (context, buffer) in released:
            self._send(tid, context, buffer)

    def status(self) -> dict[str, JobStatus]:
        """HTEX's block status; managers of a block that has ended (an expired QPU session, a
        finished batch job) are put on hold at once, so no task is sent to a pool that is
        gone while the interchange waits for its heartbeats to time out."""
        status = super().status()
        ended = [b for b, s in status.items() if s.terminal and b not in self._held_blocks]
        for block_id in ended:
            self._held_blocks.add(block_id)
            try:
                self._hold_block(block_id)
            except Exception:
                logger.warning("could not hold managers of ended block %s", block_id)
        return status

    def outstanding(self) -> int:
        """Tasks that could use a worker now: held tasks are left out, so that tasks waiting
        for a saturated backend do not make the scaling strategy add blocks."""
        with self._gate_lock:
            held = sum(g.held for g in self._gates.values())
        return len(self.tasks) - held

    def capacity(self) -> PoolCapacity:
        """A live view of the pool from the interchange's managers and the backend gates."""
        specs = self.backend_specs
        managers = self.connected_managers() if self.interchange_proc is not None else []
        active = [m for m in managers if m["active"] and not m.get("draining", False)]
        workers = sum(int(m["worker_count"]) for m in active)
        busy = sum(min(int(m["tasks"]), int(m["worker_count"])) for m in active)
        with self._gate_lock:
            outstanding = len(self.tasks)
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
