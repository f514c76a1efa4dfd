"""Backend selection policies of the QPU-aware executor, on real local pools of three fake
devices (one pool per policy, one worker each, every device limited to one job at a time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl import python_app
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.providers import LocalProvider
from qiskit import QuantumCircuit
from typeguard import TypeCheckError

from parsl_quantum.backends import get_backend
from parsl_quantum.executors import QPUHighThroughputExecutor
from parsl_quantum.executors.selection import (
    SELECTION_POLICIES,
    check_selection,
    circuit_error,
    isa_error,
    task_circuits,
)

#: Pool order; fake_lagos has the largest two-qubit and readout errors of the three.
DEVICES = ("fake:fake_lagos", "fake:fake_nairobi", "fake:fake_quito")
LAGOS, NAIROBI, QUITO = DEVICES
WORKER_INIT = f"export PYTHONPATH={Path(__file__).parent}${{PYTHONPATH:+:$PYTHONPATH}}"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until ``predicate`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    qc.measure_all()
    return qc


@pytest.fixture(scope="module")
def dfk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataFlowKernel]:
    pools = [
        QPUHighThroughputExecutor(
            label=policy,
            backends=DEVICES,
            selection=policy,
            max_workers_per_node=1,
            cores_per_worker=1e-6,
            provider=LocalProvider(
                init_blocks=1, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT
            ),
            heartbeat_period=2,
            heartbeat_threshold=10,
        )
        for policy in SELECTION_POLICIES
    ]
    config = Config(
        executors=pools, run_dir=str(tmp_path_factory.mktemp("runinfo")), strategy="none"
    )
    with parsl.load(config) as kernel:
        yield kernel


def where(pool: str, release: str | None = None, circuit: QuantumCircuit | None = None) -> Any:
    """Submit a task to ``pool`` that reports the backend it was bound to (waiting for the
    file ``release`` first, if given)."""

    @python_app(executors=[pool])
    def bound_to(
        release: str | None,
        circuit: QuantumCircuit | None,
        parsl_resource_specification: dict | None = None,
    ) -> str:
        import os
        import time

        from parsl_quantum.backends import bound_backends

        deadline = time.monotonic() + 120
        while release and not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
        backend = (parsl_resource_specification or {})["backend"]
        assert backend in bound_backends()
        return str(backend)

    return bound_to(release, circuit, parsl_resource_specification={"qpu": True})


def in_flight(dfk: DataFlowKernel, pool: str, backend: str) -> int:
    executor = dfk.executors[pool]
    assert isinstance(executor, QPUHighThroughputExecutor)
    return executor.capacity().backend(backend).in_flight


# --- no pool needed ---------------------------------------------------------------------------


def test_unknown_policy_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of: first-fit, round-robin"):
        check_selection("best")
    with pytest.raises(TypeCheckError, match="selection"):
        QPUHighThroughputExecutor(label="x", selection="best")  # type: ignore[arg-type]


def test_task_circuits_are_found_in_arguments() -> None:
    a, b = ghz(2), ghz(3)
    assert task_circuits((), {}) == []
    assert task_circuits((a, 1), {"more": [b, "x"]}) == [a, b]


def test_error_score_counts_two_qubit_gates_and_readout() -> None:
    device = get_backend(NAIROBI)
    target = device.device.target  # type: ignore[attr-defined]
    empty = QuantumCircuit(7)
    assert isa_error(empty, target) == 0.0
    (isa,) = device.transpile([ghz(3)], seed=0)
    assert 0.0 < isa_error(isa, target) < 1.0
    assert circuit_error(device, ghz(3)) == isa_error(isa, target)
    assert circuit_error(get_backend("aer"), ghz(3)) == 0.0, "an ideal simulator has no errors"
    assert circuit_error(device, ghz(5)) > circuit_error(device, ghz(2))


# --- real pools ---------------------------------------------------------------------------------


def test_round_robin_takes_the_devices_in_turn(dfk: DataFlowKernel) -> None:
    got = [where("round-robin").result() for _ in range(4)]
    assert got == [LAGOS, NAIROBI, QUITO, LAGOS]


def test_first_fit_takes_the_first_device_with_room(dfk: DataFlowKernel, tmp_path: Path) -> None:
    release = tmp_path / "go"
    blocker = where("first-fit", str(release))
    wait_until(lambda: in_flight(dfk, "first-fit", LAGOS) == 1, "the first task on lagos")
    second = where("first-fit", str(release))
    wait_until(lambda: in_flight(dfk, "first-fit", NAIROBI) == 1, "lagos full: the next device")
    release.touch()
    assert (blocker.result(), second.result()) == (LAGOS, NAIROBI)
    assert where("first-fit").result() == LAGOS, "room again on the first device"


def test_least_busy_takes_the_device_with_the_fewest_tasks(
    dfk: DataFlowKernel, tmp_path: Path
) -> None:
    release = tmp_path / "go"
    first = where("least-busy", str(release))
    wait_until(lambda: in_flight(dfk, "least-busy", LAGOS) == 1, "a task on lagos")
    second = where("least-busy", str(release))  # lagos busy: nairobi has none
    third = where("least-busy")  # quito is the only device without a task
    release.touch()
    assert (first.result(), second.result(), third.result()) == (LAGOS, NAIROBI, QUITO)
    wait_until(
        lambda: all(in_flight(dfk, "least-busy", d) == 0 for d in DEVICES), "all devices idle"
    )
    assert where("least-busy").result() == LAGOS, "a tie goes to pool order"


def test_least_error_takes_the_device_that_scores_best_on_the_circuit(
    dfk: DataFlowKernel,
) -> None:
    circuit = ghz(4)
    scores = {name: circuit_error(get_backend(name), circuit) for name in DEVICES}
    best = min(scores, key=scores.__getitem__)
    assert len(set(scores.values())) == 3, scores
    assert best == NAIROBI and scores[LAGOS] > scores[best]
    assert where("least-error", circuit=circuit).result() == best
    bell = {name: circuit_error(get_backend(name), ghz(2)) for name in DEVICES}
    assert where("least-error").result() == min(bell, key=bell.__getitem__), "scored on a Bell pair"


@pytest.fixture(autouse=True, scope="module")
def _no_dfk_left() -> Iterator[None]:
    yield
    parsl.clear()
