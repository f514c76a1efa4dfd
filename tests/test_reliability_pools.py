"""Faults on real local pools: a worker killed mid-run, and a QPU pool whose block is cancelled
mid-run with failover allowed. Both runs must still give the right value."""

from __future__ import annotations

import operator
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.image
import parsl
import pytest

from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.circuits import efficient_su2_circuit, exact_values, parse_observable
from parsl_quantum.configs import local
from parsl_quantum.reliability import Reliability, RetryHandler
from parsl_quantum.workflow.cut_and_run import CuttingResult, cut_and_run
from parsl_quantum.workflow.run_report import draw_timeline, load_report

CIRCUIT = efficient_su2_circuit(8, 1, "linear")
OBSERVABLE = parse_observable("mean-z", 8)
#: Every QPU job first waits this long in the fake device's queue, so tasks are long enough to
#: be interrupted.
QUEUE_DELAY = 1.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    """Poll until ``predicate`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def assert_right_value(result: CuttingResult) -> None:
    """Shot estimates on the noisy fake device (and, after a failover, an ideal simulator):
    within five standard errors plus the device's noise bias of the exact value."""
    exact = exact_values(CIRCUIT, [OBSERVABLE])[0].real
    assert result.std_error > 0
    assert abs(result.value - exact) < 5 * result.std_error + 0.1


def test_transient_failures_retry_after_a_wait_and_permanent_ones_fail_at_once(
    tmp_path: Path,
) -> None:
    config = local(
        tmp_path,
        ("cpu",),
        monitoring=False,
        reliability=Reliability(retries=2, backoff=0.05),
    )
    handler = config.retry_handler
    assert isinstance(handler, RetryHandler)
    with parsl.load(config):
        # nothing listens on port 1: connection refused, a ConnectionError, every time
        refused = parsl.python_app(socket.create_connection, executors=["cpu"])(("127.0.0.1", 1))
        broken = parsl.python_app(operator.truediv, executors=["cpu"])(1, 0)
        assert isinstance(refused.exception(), ConnectionRefusedError)
        assert isinstance(broken.exception(), ZeroDivisionError)
    assert refused.task_record["fail_count"] == 3, "the first try and two retries"
    assert handler.waited == {"cpu": 2}, "each retry backed off first"
    assert broken.task_record["fail_count"] == 1, "a permanent failure is not retried"
    assert handler.retried == {"cpu": 2}


def test_worker_killed_mid_run_is_retried_and_the_value_is_right(tmp_path: Path) -> None:
    config = local(
        tmp_path,
        ("qpu",),
        backend_options={DEFAULT_FAKE_QPU: {"queue_delay": QUEUE_DELAY}},
        monitoring=False,
        reliability=Reliability(retries=2, backoff=0.1),
    )
    handler = config.retry_handler
    assert isinstance(handler, RetryHandler)
    done: list[int] = []
    with parsl.load(config) as dfk, ThreadPoolExecutor(1) as driver:
        qpu = dfk.executors["qpu"]
        worker = parsl.python_app(os.getpid, executors=["qpu"])().result()  # its only worker
        running = driver.submit(
            cut_and_run,
            CIRCUIT,
            OBSERVABLE,
            pools=["qpu"],
            max_subcircuit_qubits=3,  # several tasks: one can be interrupted after the first
            shots=4000,
            seed=3,
            reference="never",
            progress=lambda pool, n, total: done.append(n),
        )
        wait_until(lambda: bool(done), "a first task to finish")
        wait_until(lambda: qpu.capacity().busy_slots == 1, "the next task to reach the worker")
        os.kill(worker, signal.SIGKILL)
        result = running.result()
        assert parsl.python_app(os.getpid, executors=["qpu"])().result() != worker
    assert handler.retried["qpu"] >= 1, "the killed worker's task was retried"
    assert_right_value(result)


def test_qpu_blocks_cancelled_mid_run_fail_over_to_the_simulator_pool(tmp_path: Path) -> None:
    config = local(
        tmp_path,
        ("cpu", "qpu"),
        backend_options={DEFAULT_FAKE_QPU: {"queue_delay": QUEUE_DELAY}},
        monitoring=True,
    )
    guards = Reliability(retries=2, backoff=0.1, failover=True).apply(config)
    done: list[int] = []
    with parsl.load(config) as dfk, ThreadPoolExecutor(1) as driver:
        qpu = dfk.executors["qpu"]
        running = driver.submit(
            cut_and_run,
            CIRCUIT,
            OBSERVABLE,
            pools=["qpu"],  # the plan uses the QPU only; cpu is there to fail over to
            max_subcircuit_qubits=3,
            shots=4000,
            seed=3,
            reference="never",
            progress=lambda pool, n, total: done.append(n),
        )
        wait_until(lambda: bool(done), "a first QPU task to finish")
        assert qpu.provider is not None
        qpu.provider.cancel(list(qpu.blocks_to_job_id.values()))
        result = running.result()
        assert qpu.bad_state_is_set
    guards.record(result.configuration)
    moves = result.configuration["failovers"]
    assert moves and {(m["from_pool"], m["to_pool"]) for m in moves} == {("qpu", "cpu")}
    assert "is down" in moves[0]["reason"]
    # the plan knows only the QPU pool: every move was the retry handler's, recorded once
    assert {m["trigger"] for m in moves} == {"retry-handler"}
    assert len({m["task"] for m in moves}) == len(moves)
    assert_right_value(result)

    # Parsl's task records are never re-pointed: its monitoring lists each moved try under the
    # task's own (down) pool, as a try after a failed one
    report = load_report(tmp_path)
    assert report.pools["qpu"].tasks == result.tasks
    assert report.pools["qpu"].retries == len(moves)
    picture = tmp_path / "timeline.png"
    labels = draw_timeline(report, picture)
    assert {label.split(" / ")[0] for label in labels} == {"qpu"}
    image = matplotlib.image.imread(picture)
    assert image.shape[0] > 50 and image.shape[1] > 50 and image.std() > 0


@pytest.fixture(autouse=True)
def _no_dfk_left() -> None:
    """Each test loads its own DataFlowKernel."""
    parsl.clear()
