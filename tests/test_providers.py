"""QPUSessionProvider on real local processes: session lifecycle, cancel, PID tracking, and a
full Parsl run in which an expiring session is replaced by the scaling strategy.

Simulated sessions read a clock the test moves by hand, so every state change happens exactly
when the test says so; waits below only bound how long a real process may take to appear.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import parsl
import psutil
import pytest
from parsl import python_app
from parsl.config import Config
from parsl.jobs.states import JobState
from parsl.providers import LocalProvider

from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.backends.ibm import ibm_credentials_available
from parsl_quantum.executors import QPUHighThroughputExecutor
from parsl_quantum.providers import QPUSessionProvider

#: A block command that leaves a grandchild behind, like a worker pool does.
TREE_CMD = (
    f'{sys.executable} -c "import subprocess, sys, time; '
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)\""
)


class ManualClock:
    """A monotonic clock that only moves when the test sets it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def running(procs: list[psutil.Process]) -> list[int]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except psutil.Error:
            pass
    return out


def block_processes(provider: QPUSessionProvider, job_id: str) -> list[psutil.Process]:
    """The live processes of a block, snapshotted by PID (with start times) by the test."""
    procs = []
    for pid in provider.block_pids(job_id):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    return [p for p in procs if running([p])]


def python_leaves(procs: list[psutil.Process]) -> int:
    return sum(1 for p in procs if p.pid in running([p]) and "python" in p.name())


@pytest.fixture
def session_provider(tmp_path: Path) -> Iterator[tuple[QPUSessionProvider, ManualClock]]:
    clock = ManualClock()
    provider = QPUSessionProvider(
        DEFAULT_FAKE_QPU,
        LocalProvider(),
        queue_wait=10,
        lifetime=20,
        clock=clock,
        poll_interval=0.05,
    )
    provider.script_dir = str(tmp_path)
    yield provider, clock
    provider.cancel(list(provider.resources))


def test_block_goes_pending_running_completed(session_provider) -> None:
    provider, clock = session_provider
    job = provider.submit(TREE_CMD, 1)
    assert provider.status([job])[0].state == JobState.PENDING
    assert provider.block_pids(job) == ()  # no workers while the session is queued
    clock.now = 10
    assert provider.status([job])[0].state == JobState.RUNNING
    wait_until(lambda: python_leaves(block_processes(provider, job)) >= 2, "block processes")
    procs = block_processes(provider, job)
    clock.now = 30  # the session's lifetime is over
    status = provider.status([job])[0]
    assert status.state == JobState.COMPLETED and "session ended" in (status.message or "")
    assert running(procs) == [], "an expired session's workers are stopped"


def test_cancel_leaves_no_process_behind(session_provider) -> None:
    provider, clock = session_provider
    clock.now = 100
    job = provider.submit(TREE_CMD, 1)
    clock.now = 110
    assert provider.status([job])[0].state == JobState.RUNNING
    wait_until(lambda: python_leaves(block_processes(provider, job)) >= 2, "block processes")
    procs = block_processes(provider, job)
    assert provider.cancel([job]) == [True]
    assert running(procs) == []
    assert provider.status([job])[0].state == JobState.CANCELLED
    assert provider.cancel([job]) == [True]  # idempotent


def test_cancel_while_queued_starts_nothing(session_provider) -> None:
    provider, _ = session_provider
    job = provider.submit(TREE_CMD, 1)
    provider.cancel([job])
    assert provider.status([job])[0].state == JobState.CANCELLED
    assert provider.resources[job].inner_job_id is None
    assert provider.provider.resources == {}  # the inner provider never launched a job


def test_sessions_advance_in_the_background(session_provider) -> None:
    provider, clock = session_provider
    job = provider.submit(TREE_CMD, 1)
    clock.now = 10  # no status() call: the provider's own poller starts the workers
    wait_until(lambda: provider.resources[job].status.state == JobState.RUNNING, "activation")
    assert provider.resources[job].inner_job_id is not None


def test_scaling_parameters_are_the_inner_providers() -> None:
    inner = LocalProvider(init_blocks=2, min_blocks=1, max_blocks=3, nodes_per_block=1)
    provider = QPUSessionProvider("fake:manila", inner)
    assert (provider.init_blocks, provider.min_blocks, provider.max_blocks) == (2, 1, 3)
    provider.max_blocks = 4
    provider.script_dir = "/tmp/x"
    assert (inner.max_blocks, inner.script_dir) == (4, "/tmp/x")
    assert provider.backend == "fake:fake_manila"
    with pytest.raises(ValueError, match="fake: and ibm:"):
        QPUSessionProvider("aer")


@pytest.mark.ibm
@pytest.mark.skipif(not ibm_credentials_available(), reason="no IBM Quantum token or account")
def test_ibm_session_block(tmp_path: Path) -> None:
    from parsl_quantum.backends.ibm import runtime_service

    device = runtime_service().least_busy(operational=True, simulator=False).name
    provider = QPUSessionProvider(f"ibm:{device}", LocalProvider(), session_mode="batch")
    provider.script_dir = str(tmp_path)
    job = provider.submit("sleep 600", 1)
    try:
        assert provider.status([job])[0].state in (JobState.PENDING, JobState.RUNNING)
    finally:
        provider.cancel([job])
    assert provider.status([job])[0].state == JobState.CANCELLED


@python_app(executors=["qpu"])
def session_and_counts(parsl_resource_specification: dict | None = None) -> tuple[str, int]:
    """Run a Bell pair on the block's fake device; report the session the block holds."""
    import os

    from qiskit import QuantumCircuit

    from parsl_quantum.backends import worker_backend
    from parsl_quantum.backends.ibm import SESSION_ID_ENV

    backend = worker_backend((parsl_resource_specification or {})["backend"])
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    (isa,) = backend.transpile([qc], seed=1)
    counts = backend.sampler(seed=1).run([isa], shots=32).result()[0].data.meas.get_counts()
    return os.environ.get(SESSION_ID_ENV, ""), sum(counts.values())


def test_expired_session_is_replaced_by_parsl_scaling(tmp_path: Path) -> None:
    clock = ManualClock()
    inner = LocalProvider(
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        worker_init=f"export PYTHONPATH={Path(__file__).parent}${{PYTHONPATH:+:$PYTHONPATH}}",
    )
    provider = QPUSessionProvider(
        DEFAULT_FAKE_QPU, inner, queue_wait=5, lifetime=100, clock=clock, poll_interval=0.05
    )
    executor = QPUHighThroughputExecutor(
        label="qpu",
        backends=(DEFAULT_FAKE_QPU,),
        max_workers_per_node=1,
        provider=provider,
        heartbeat_period=1,
        heartbeat_threshold=5,
    )
    config = Config(
        executors=[executor],
        run_dir=str(tmp_path / "runinfo"),
        strategy="simple",
        strategy_period=0.2,
        max_idletime=3600,
    )
    tracked: list[psutil.Process] = []
    with parsl.load(config):
        wait_until(lambda: len(provider.resources) == 1, "first block submitted")
        (first,) = provider.resources
        assert provider.status([first])[0].state == JobState.PENDING
        future = session_and_counts()
        clock.now = 5  # session active: workers start and run the waiting task
        session, shots = future.result(timeout=120)
        assert (session, shots) == (provider.resources[first].session.session_id, 32)
        tracked += block_processes(provider, first)

        clock.now = 105  # the first session expires and its workers are stopped
        assert provider.status([first])[0].state == JobState.COMPLETED
        assert running(tracked) == []
        old_block = executor.job_ids_to_block[first]
        wait_until(
            lambda: all(
                not m["active"] or m["block_id"] != old_block for m in executor.connected_managers()
            ),
            "the ended block's managers are put on hold",
        )
        future = session_and_counts()  # work again: the strategy opens a new session block
        wait_until(lambda: len(provider.resources) == 2, "replacement block submitted")
        second = next(j for j in provider.resources if j != first)
        assert provider.status([second])[0].state == JobState.PENDING
        clock.now = 110
        session, _ = future.result(timeout=120)
        assert session == provider.resources[second].session.session_id != ""
        tracked += block_processes(provider, second)
    assert provider.status([second])[0].state == JobState.CANCELLED  # cleanup scaled it in
    assert running(tracked) == [], "no block process survives the run"
