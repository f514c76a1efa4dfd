"""QPU sessions as Parsl blocks: one block = a worker pool plus a reservation of a device."""

from __future__ import annotations

import itertools
import logging
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typeguard
from parsl.jobs.states import JobState, JobStatus
from parsl.providers import LocalProvider
from parsl.providers.base import ExecutionProvider
from parsl.utils import RepresentationMixin

from parsl_quantum.backends import DEFAULT_FAKE_QPU, canonical_name
from parsl_quantum.providers._pids import ProcessTree
from parsl_quantum.providers._sessions import (
    IBMRuntimeSession,
    QPUSession,
    SessionMode,
    SimulatedSession,
)

logger = logging.getLogger(__name__)


@dataclass
class SessionBlock:
    """One block: its session, the inner provider's job running its workers, and its PIDs.

    Attributes
    ----------
    job_id : str
        The block's job id, as Parsl knows it.
    command : str
        The command that starts the block's workers.
    tasks_per_node : int
        Workers per node, as Parsl asked.
    job_name : str
        The job name, as Parsl asked.
    session : QPUSession
        The block's session.
    status : parsl.jobs.states.JobStatus
        The block's status, as last reported.
    inner_job_id : Any
        The inner provider's job id of the workers (None until they start).
    processes : ProcessTree or None
        The tracked processes of a local block (None when its workers run elsewhere).
    final : bool
        Whether the block has ended.
    lock : threading.RLock
        Guards the block's state.
    """

    job_id: str
    command: str
    tasks_per_node: int
    job_name: str
    session: QPUSession
    status: JobStatus = field(default_factory=lambda: JobStatus(JobState.PENDING))
    inner_job_id: Any = None
    processes: ProcessTree | None = None
    final: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


class QPUSessionProvider(ExecutionProvider, RepresentationMixin):
    """A Parsl provider whose blocks each hold a QPU session and a pool of workers.

    A block's workers are started through an inner Parsl provider (``LocalProvider`` by default;
    a ``SlurmProvider`` or similar on a cluster) and its session through the backend:

    * ``fake:<device>``: a simulated session, queued for ``queue_wait`` seconds, then active for
      ``lifetime`` seconds (``None``: until cancelled). Workers start when it turns active.
    * ``ibm:<device>``: a qiskit-ibm-runtime ``Session`` (or ``Batch`` with
      ``session_mode="batch"``) of at most ``max_time``, opened when the block is submitted with
      credentials from the environment only. Workers start at once (IBM sessions turn active
      when their first job runs) and find the session through ``PQ_SESSION_*`` variables
      exported into the block's environment.

    ``status`` reports PENDING while the session is queued, RUNNING while it is active (or the
    inner job's terminal state if the workers end on their own), and COMPLETED once it has
    expired, at which point the block's workers are stopped. ``cancel`` closes the session and
    stops the workers. Workers are stopped through the inner provider, and every process of a
    local block is also tracked by PID and killed by PID if it outlives a grace period.

    Scaling parameters (``init_blocks``, ``min_blocks``, ``max_blocks``, ``nodes_per_block``,
    ``parallelism``) are the inner provider's, so Parsl's strategy scales sessions like any
    blocks: when one expires, ``min_blocks`` brings up a new one. Set the executor's
    ``drain_period`` below ``lifetime`` so workers drain before their session ends.

    Parameters
    ----------
    backend : str
        A ``fake:`` or ``ibm:`` device name.
    provider : parsl.providers.base.ExecutionProvider or None
        The inner provider that starts each block's workers (``LocalProvider`` by default).
    queue_wait : float
        Seconds a simulated session stays queued.
    lifetime : float or None
        Seconds a simulated session stays active (``None``: until cancelled).
    session_mode : SessionMode
        ``"session"`` or ``"batch"`` for an IBM device.
    max_time : int or str or None
        The longest an IBM session may last (as qiskit-ibm-runtime takes it).
    clock : Callable[[], float]
        Seconds, monotonic; exists so tests can drive a simulated session deterministically.
    poll_interval : float
        How often sessions are checked in the background, in seconds.
    stop_grace : float
        Seconds a local block's processes get to exit after their workers are stopped, before
        they are killed by PID.

    Raises
    ------
    ValueError
        For a backend that is not a ``fake:`` or ``ibm:`` device, a negative ``queue_wait`` or a
        ``lifetime`` that is not positive.
    """

    @typeguard.typechecked
    def __init__(
        self,
        backend: str = DEFAULT_FAKE_QPU,
        provider: ExecutionProvider | None = None,
        *,
        queue_wait: float = 0.0,
        lifetime: float | None = None,
        session_mode: SessionMode = "session",
        max_time: int | str | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.25,
        stop_grace: float = 5.0,
    ) -> None:
        self.backend = canonical_name(backend)
        if not self.backend.startswith(("fake:", "ibm:")):
            raise ValueError(
                f"QPU sessions exist for fake: and ibm: devices, not {self.backend!r}; "
                "use the inner provider directly for simulator pools"
            )
        if queue_wait < 0 or (lifetime is not None and lifetime <= 0):
            raise ValueError("queue_wait must be >= 0 and lifetime > 0 (or None)")
        self.provider: ExecutionProvider = provider if provider is not None else LocalProvider()
        self.queue_wait = queue_wait
        self.lifetime = lifetime
        self.session_mode: SessionMode = session_mode
        self.max_time = max_time
        self.clock = clock
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.resources: dict[object, Any] = {}  # job id -> SessionBlock
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    # Scaling parameters and resources per node are the inner provider's.
    @property
    def init_blocks(self) -> int:
        return self.provider.init_blocks

    @init_blocks.setter
    def init_blocks(self, value: int) -> None:
        self.provider.init_blocks = value

    @property
    def min_blocks(self) -> int:
        return self.provider.min_blocks

    @min_blocks.setter
    def min_blocks(self, value: int) -> None:
        self.provider.min_blocks = value

    @property
    def max_blocks(self) -> int:
        return self.provider.max_blocks

    @max_blocks.setter
    def max_blocks(self, value: int) -> None:
        self.provider.max_blocks = value

    @property
    def nodes_per_block(self) -> int:
        return self.provider.nodes_per_block

    @nodes_per_block.setter
    def nodes_per_block(self, value: int) -> None:
        self.provider.nodes_per_block = value

    @property
    def parallelism(self) -> float:
        return self.provider.parallelism

    @parallelism.setter
    def parallelism(self, value: float) -> None:
        self.provider.parallelism = value

    @property
    def script_dir(self) -> str | None:
        return self.provider.script_dir

    @script_dir.setter
    def script_dir(self, value: str | None) -> None:
        self.provider.script_dir = value

    @property
    def cores_per_node(self) -> int | None:
        return self.provider.cores_per_node

    @cores_per_node.setter
    def cores_per_node(self, value: int | None) -> None:
        self.provider.cores_per_node = value

    @property
    def mem_per_node(self) -> float | None:
        return self.provider.mem_per_node

    @mem_per_node.setter
    def mem_per_node(self, value: float | None) -> None:
        self.provider.mem_per_node = value

    @property
    def label(self) -> str:
        return f"qpu-session[{self.provider.label}]"

    @property
    def status_polling_interval(self) -> int:
        return self.provider.status_polling_interval

    # Blocks.
    def _open_session(self) -> QPUSession:
        if self.backend.startswith("ibm:"):
            return IBMRuntimeSession(self.backend, self.session_mode, self.max_time)
        return SimulatedSession(
            self.backend, self.session_mode, self.queue_wait, self.lifetime, self.clock
        )

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.qpu_session") -> str:
        """Open a session for a new block; its workers start when the session allows.

        Parameters
        ----------
        command : str
            The command that starts the block's workers.
        tasks_per_node : int
            Workers per node.
        job_name : str
            The job name given to the inner provider.

        Returns
        -------
        str
            The block's job id.
        """
        session = self._open_session()
        block = SessionBlock(
            job_id=f"qpu-session-{next(self._ids)}",
            command=command,
            tasks_per_node=tasks_per_node,
            job_name=job_name,
            session=session,
        )
        with self._lock:
            self.resources[block.job_id] = block
        logger.info(
            "block %s opened session %s on %s", block.job_id, session.session_id, self.backend
        )
        with block.lock:
            if not session.start_pool_when_active:
                self._start_pool(block)
            self._advance(block)
        self._ensure_ticker()
        return block.job_id

    def status(self, job_ids: Sequence[Any]) -> list[JobStatus]:
        """Advance each block's session and report it (see the class docstring).

        Parameters
        ----------
        job_ids : Sequence[Any]
            Job ids returned by :meth:`submit`.

        Returns
        -------
        list[parsl.jobs.states.JobStatus]
            The status of each block, in the order given.
        """
        out = []
        for job_id in job_ids:
            block = self.resources[job_id]
            with block.lock:
                self._advance(block)
                out.append(block.status)
        return out

    def cancel(self, job_ids: Sequence[Any]) -> list[bool]:
        """Close each block's session and stop its workers.

        A block already ended stays as it ended.

        Parameters
        ----------
        job_ids : Sequence[Any]
            Job ids returned by :meth:`submit`.

        Returns
        -------
        list[bool]
            For each id, whether it names a block of this provider.
        """
        done = []
        for job_id in job_ids:
            block = self.resources.get(job_id)
            if block is None:
                done.append(False)
                continue
            with block.lock:
                if not block.final:
                    block.session.close()
                    self._stop_pool(block)
                    self._finish(block, JobStatus(JobState.CANCELLED, "QPU session cancelled"))
            done.append(True)
        return done

    def block_pids(self, job_id: str) -> tuple[int, ...]:
        """PIDs tracked for a local block.

        Parameters
        ----------
        job_id : str
            A job id returned by :meth:`submit`.

        Returns
        -------
        tuple[int, ...]
            The live PIDs; empty when its workers run elsewhere.
        """
        block = self.resources[job_id]
        with block.lock:
            if block.processes is not None and not block.final:
                block.processes.refresh()
            return block.processes.pids if block.processes is not None else ()

    def _finish(self, block: SessionBlock, status: JobStatus) -> None:
        block.status = status
        block.final = True
        logger.info("block %s ended: %s", block.job_id, status)

    def _advance(self, block: SessionBlock) -> None:
        """Move one block along its session's state (caller holds ``block.lock``)."""
        if block.final:
            return
        state = block.session.state()
        if state == "closed":
            self._stop_pool(block)
            self._finish(block, JobStatus(JobState.COMPLETED, "QPU session ended"))
            return
        if state == "active" and block.inner_job_id is None:
            self._start_pool(block)
            if block.final:  # the inner provider refused the job
                return
        inner = self._inner_status(block)
        if inner is not None and inner.terminal:
            block.session.close()
            self._stop_pool(block)
            self._finish(block, inner)
            return
        if block.processes is not None:
            block.processes.refresh()
        block.status = JobStatus(JobState.PENDING if state == "queued" else JobState.RUNNING)

    def _start_pool(self, block: SessionBlock) -> None:
        exports = "".join(
            f"export {k}={shlex.quote(v)}; " for k, v in block.session.worker_env().items()
        )
        try:
            block.inner_job_id = self.provider.submit(
                exports + block.command, block.tasks_per_node, block.job_name
            )
        except Exception as exc:
            block.session.close()
            self._finish(block, JobStatus(JobState.FAILED, f"could not start workers: {exc}"))
            return
        record = getattr(self.provider, "resources", {}).get(block.inner_job_id, {})
        if isinstance(self.provider, LocalProvider) and isinstance(record, dict):
            pid = record.get("remote_pid")
            if isinstance(pid, int):
                block.processes = ProcessTree(pid)

    def _inner_status(self, block: SessionBlock) -> JobStatus | None:
        if block.inner_job_id is None:
            return None
        try:
            return self.provider.status([block.inner_job_id])[0]
        except Exception:
            logger.warning("status of block %s failed", block.job_id, exc_info=True)
            return None

    def _stop_pool(self, block: SessionBlock) -> None:
        if block.inner_job_id is None:
            return
        if block.processes is not None:
            block.processes.refresh()
        try:
            self.provider.cancel([block.inner_job_id])
        except Exception:
            logger.warning("inner cancel of block %s failed", block.job_id, exc_info=True)
        if block.processes is not None:
            killed = block.processes.reap(self.stop_grace)
            if killed:
                logger.warning("block %s: killed surviving PIDs %s", block.job_id, killed)

    # Background checks, so sessions start and expire on time between Parsl's status polls.
    def _ensure_ticker(self) -> None:
        with self._lock:
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name=f"{self.label}-sessions", daemon=True
                )
                self._ticker.start()

    def _tick(self) -> None:
        while True:
            time.sleep(self.poll_interval)
            with self._lock:
                live = [b for b in self.resources.values() if not b.final]
                if not live:
                    self._ticker = None
                    return
            for block in live:
                try:
                    with block.lock:
                        self._advance(block)
                except Exception:
                    logger.exception("advancing block %s failed", block.job_id)
