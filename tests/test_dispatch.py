"""Late binding on real local pools: a pool whose blocks are cancelled mid-run loses its work to
another pool, blocks added mid-run receive tasks, a pool whose tasks keep failing is dropped.

One DataFlowKernel with three small pools serves the module (no scaling strategy, so cancelled
blocks stay gone; no memoization, so every run evaluates): ``cpu`` (1 worker), ``gpu`` (an Aer
pool standing in for a second simulator pool, 1 worker) and ``qpu`` (the fake device, set to
fail every job).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import parsl
import pytest
from parsl.dataflow.dflow import DataFlowKernel
from parsl.dataflow.memoization import BasicMemoizer

from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.circuits import exact_values, parse_observable, qaoa_circuit
from parsl_quantum.cutting.reconstruct import reconstruct
from parsl_quantum.executors import PoolInfo, pool_infos
from parsl_quantum.planner.cost import CostModel, PoolCoefficients
from parsl_quantum.planner.dispatch import DispatchError
from parsl_quantum.planner.plan import PlanResult, plan_workload
from parsl_quantum.planner.report import save_plan
from parsl_quantum.reliability import FailoverPolicy, RetryHandler
from parsl_quantum.workflow.calibration import wait_for_workers
from parsl_quantum.workflow.cut_and_run import execute_plan

#: Every-job-fails QPU: its tasks fail at once, so they must move to a simulator.
FAILING = {DEFAULT_FAKE_QPU: {"failure_rate": 1.0, "failure_seed": 1}}


@pytest.fixture(scope="module")
def dfk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataFlowKernel]:
    run_dir = tmp_path_factory.mktemp("dispatch")
    config = configs.local(
        run_dir,
        ("cpu", "gpu", "qpu"),
        workers={"cpu": 1, "gpu": 1, "qpu": 1},
        backends={"gpu": ("aer",)},
        backend_options=FAILING,
        monitoring=False,
    )
    config.strategy = "none"
    config.memoizer = BasicMemoizer(memoize=False)
    with parsl.load(config) as loaded:
        wait_for_workers(pool_infos(config))
        yield loaded
    parsl.clear()


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll until ``predicate`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def infos(dfk: DataFlowKernel, names: list[str]) -> dict[str, PoolInfo]:
    return {k: v for k, v in pool_infos(dfk.config).items() if k in names}


def workload(qubits: int, reps: int):
    circuit = qaoa_circuit(qubits, reps, "ring", seed=4)
    return circuit, parse_observable("mean-z", qubits)


def plan_for(
    circuit, obs, pools: dict[str, PoolInfo], widths: list[int], task_rows: int, **coefs
) -> PlanResult:
    model = CostModel({p: PoolCoefficients(**coefs.get(p, {})) for p in pools})
    model.kinds.update({p: i.kind for p, i in pools.items()})
    return plan_workload(
        circuit,
        obs,
        pools,
        max_subcircuit_qubits=max(widths),
        model=model,
        widths=[widths],
        task_rows=task_rows,
        shots=2000,
    )


def test_a_pool_whose_blocks_are_cancelled_loses_its_work(
    dfk: DataFlowKernel, tmp_path: Path
) -> None:
    pools = infos(dfk, ["cpu", "gpu"])
    circuit, obs = workload(20, 2)
    plan = plan_for(circuit, obs, pools, [10, 10], task_rows=125)
    assert plan.chosen.tasks >= 8
    gpu = dfk.executors["gpu"]
    cancelled = threading.Event()

    def cancel_gpu_while_it_works() -> None:
        """Cancel the gpu pool's block as soon as its worker is busy with our first task (the
        dispatcher has bound it a second one by then)."""
        wait_until(lambda: gpu.capacity().busy_slots > 0)
        gpu.scale_in_facade(1)
        cancelled.set()

    watcher = threading.Thread(target=cancel_gpu_while_it_works)
    watcher.start()
    # the run's failover policy, as Reliability installs it: the dispatcher decides and
    # records its moves there
    policy = FailoverPolicy(pools)
    previous = dfk.config.retry_handler
    dfk.config.retry_handler = RetryHandler(0, failover=policy)
    try:
        results = execute_plan(plan, pools, "exact", 2000, None, lost_after=1.0)
    finally:
        dfk.config.retry_handler = previous
    watcher.join()
    assert cancelled.is_set()
    value, error = reconstruct(plan.chosen.problem, plan.chosen.graph, results, None)
    assert error == 0.0
    assert value == pytest.approx(exact_values(circuit, [obs])[0].real, abs=1e-8)
    report = plan.execution
    assert any(e.pool == "gpu" and e.event.startswith("lost") for e in report.events)
    moved = [f for f in report.failovers if f.from_pool == "gpu"]
    assert moved and all(f.to_pool == "cpu" and "pool lost" in f.reason for f in moved)
    assert policy.records() == [asdict(f) for f in report.failovers]
    assert {m["trigger"] for m in policy.records()} == {"dispatcher"}
    ran = {r.pool for r in report.tasks.values()}
    assert "cpu" in ran
    # the run directory's plan.json says which pool ran each task, and what moved
    save_plan(tmp_path, plan, results)
    doc = json.loads((tmp_path / "plan.json").read_text())
    tasks = [t for t in doc["tasks"] if t["kind"] == "evaluate"]
    assert all(t["pool"] in ("cpu", "gpu") and t["measured_seconds"] > 0 for t in tasks)
    assert all(t["predicted_seconds"] > 0 and t["attempts"] for t in tasks)
    assert doc["dispatch"]["failovers"]
    assert any(len(t["attempts"]) > 1 for t in tasks)


def test_blocks_added_mid_run_receive_tasks(dfk: DataFlowKernel) -> None:
    pools = infos(dfk, ["cpu"])
    circuit, obs = workload(22, 2)
    plan = plan_for(circuit, obs, pools, [11, 11], task_rows=20)
    cpu = dfk.executors["cpu"]
    first_blocks = {m["block_id"] for m in cpu.connected_managers() if m["active"]}
    grown = threading.Event()

    def add_a_block_after_the_first_result(pool: str, done: int, bound: int) -> None:
        """Add a block and hold the dispatcher until it has connected (block start-up takes a
        few seconds here), so most of the work is still to be bound when it arrives."""
        if not grown.is_set():
            grown.set()
            cpu.scale_out_facade(1)
            wait_for_workers({"cpu": replace(pools["cpu"], workers=2)})

    results = execute_plan(
        plan, pools, "exact", 2000, None, progress=add_a_block_after_the_first_result
    )
    value, _ = reconstruct(plan.chosen.problem, plan.chosen.graph, results, None)
    assert value == pytest.approx(exact_values(circuit, [obs])[0].real, abs=1e-8)
    blocks = {m["block_id"] for m in cpu.connected_managers() if m["active"]}
    assert len(blocks - first_blocks) == 1
    assert any(e.pool == "cpu" and e.event == "workers 1 -> 2" for e in plan.execution.events)
    assert len({r.pid for r in results.values()}) == 2  # the new block's worker ran tasks


def quick_failing_qpu_plan(dfk: DataFlowKernel):
    """A plan that gives work to the QPU pool first (predicted to be quick), every job of
    which fails; the cpu pool can take its work."""
    pools = infos(dfk, ["cpu", "qpu"])
    circuit, obs = workload(12, 1)
    plan = plan_for(
        circuit,
        obs,
        pools,
        [6, 6],
        task_rows=1,
        qpu={
            "overhead": 0.001,
            "queue": 1e-4,
            "per_circuit": 1e-4,
            "per_shot": 1e-7,
            "per_mid_shot": 1e-7,
        },
    )
    assert "qpu" in plan.chosen.pools_used
    return pools, circuit, obs, plan


def test_a_pool_whose_tasks_keep_failing_is_dropped(dfk: DataFlowKernel) -> None:
    pools, circuit, obs, plan = quick_failing_qpu_plan(dfk)
    results = execute_plan(plan, pools, "auto", 2000, 5, max_failures=3)
    value, error = reconstruct(plan.chosen.problem, plan.chosen.graph, results, 5)
    # every subexperiment ended up exact on the simulator
    assert error == 0.0 and {r.method for r in results.values()} == {"batched-statevector"}
    assert value == pytest.approx(exact_values(circuit, [obs])[0].real, abs=1e-8)
    report = plan.execution
    assert any(e.pool == "qpu" and e.event.startswith("unhealthy") for e in report.events)
    failed = [a for t in report.tasks.values() for a in t.attempts if a.pool == "qpu"]
    assert len(failed) >= 3 and all(a.outcome.startswith("failed") for a in failed)
    assert {f.to_pool for f in report.failovers} == {"cpu"}


def test_qpu_work_stays_on_qpus_when_failover_is_off(dfk: DataFlowKernel) -> None:
    """With the run's retry handler carrying no failover policy (the template's
    ``execution.failover`` is off), work bound to the failing QPU is not moved to a simulator."""
    pools, _, _, plan = quick_failing_qpu_plan(dfk)
    previous = dfk.config.retry_handler
    dfk.config.retry_handler = RetryHandler(0, failover=None)
    try:
        with pytest.raises(DispatchError, match="failover to simulators is off"):
            execute_plan(plan, pools, "auto", 2000, 5, max_failures=3)
    finally:
        dfk.config.retry_handler = previous
    moved = [f for f in plan.execution.failovers if f.to_pool == "cpu"] if plan.execution else []
    assert not moved
