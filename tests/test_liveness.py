"""Liveness of a dispatch on real local pools: a pool whose interchange is killed, or whose
workers never start, is declared lost within about ``capacity_timeout + lost_after`` seconds
and its work moves to another pool, or the dispatch ends with one clear error; it never waits
for ever.

Each test loads its own small DataFlowKernel (no scaling strategy, no memoization) because the
tests break their pools for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import networkx as nx
import parsl
import psutil
import pytest
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.dataflow.memoization import BasicMemoizer
from parsl.executors import ThreadPoolExecutor

from parsl_quantum import configs
from parsl_quantum.circuits import exact_values, parse_observable, qaoa_circuit
from parsl_quantum.cutting.reconstruct import reconstruct
from parsl_quantum.executors import PoolInfo, pool_infos
from parsl_quantum.planner.cost import CostModel, PoolCoefficients
from parsl_quantum.planner.dispatch import Dispatcher, DispatchError
from parsl_quantum.planner.plan import plan_workload
from parsl_quantum.workflow.calibration import wait_for_workers
from parsl_quantum.workflow.cut_and_run import execute_plan
from parsl_quantum.workflow.rundir import shut_down


@contextlib.contextmanager
def two_pools(tmp_path, *, broken_gpu_launch: bool = False) -> Iterator[DataFlowKernel]:
    """``cpu`` and ``gpu`` (an Aer pool standing in for a second simulator pool), one worker
    each; with ``broken_gpu_launch`` the gpu pool's worker launch fails every time."""
    config = configs.local(
        tmp_path,
        ("cpu", "gpu"),
        workers={"cpu": 1, "gpu": 1},
        backends={"gpu": ("aer",)},
        monitoring=False,
    )
    config.strategy = "none"
    config.memoizer = BasicMemoizer(memoize=False)
    if broken_gpu_launch:
        gpu = next(ex for ex in config.executors if ex.label == "gpu")
        gpu.provider.worker_init = "exit 3"
    dfk = parsl.load(config)
    try:
        yield dfk
    finally:
        shut_down(dfk)


def gpu_first_plan(dfk: DataFlowKernel, names: list[str]):
    """A small plan that the cost model sends to the gpu pool first (cpu looks slow)."""
    pools = {k: v for k, v in pool_infos(dfk.config).items() if k in names}
    circuit = qaoa_circuit(12, 1, "ring", seed=4)
    obs = parse_observable("mean-z", 12)
    model = CostModel({p: PoolCoefficients(overhead=5.0 if p == "cpu" else 0.01) for p in pools})
    model.kinds.update({p: i.kind for p, i in pools.items()})
    plan = plan_workload(
        circuit, obs, pools, max_subcircuit_qubits=6, model=model, widths=[[6, 6]], task_rows=8
    )
    return pools, circuit, obs, plan


def test_a_killed_interchange_loses_its_pool_and_the_work_moves(tmp_path) -> None:
    with two_pools(tmp_path) as dfk:
        wait_for_workers({k: v for k, v in pool_infos(dfk.config).items()})
        pools, circuit, obs, plan = gpu_first_plan(dfk, ["cpu", "gpu"])
        assert "gpu" in plan.chosen.pools_used
        interchange = dfk.executors["gpu"].interchange_proc
        psutil.Process(interchange.pid).kill()
        interchange.wait(timeout=60)
        results = execute_plan(plan, pools, "exact", 2000, None, lost_after=2.0)
        value, _ = reconstruct(plan.chosen.problem, plan.chosen.graph, results, None)
        assert value == pytest.approx(exact_values(circuit, [obs])[0].real, abs=1e-8)
        report = plan.execution
        assert report is not None
        assert any(e.pool == "gpu" and e.event.startswith("lost") for e in report.events)
        assert {r.pool for r in report.tasks.values()} == {"cpu"}


def test_a_pool_whose_workers_never_start_is_lost(tmp_path) -> None:
    with two_pools(tmp_path, broken_gpu_launch=True) as dfk:
        wait_for_workers({"cpu": pool_infos(dfk.config)["cpu"]})
        pools, circuit, obs, plan = gpu_first_plan(dfk, ["cpu", "gpu"])
        results = execute_plan(plan, pools, "exact", 2000, None, lost_after=2.0)
        value, _ = reconstruct(plan.chosen.problem, plan.chosen.graph, results, None)
        assert value == pytest.approx(exact_values(circuit, [obs])[0].real, abs=1e-8)
        report = plan.execution
        assert report is not None
        assert any(e.pool == "gpu" and e.event.startswith("lost") for e in report.events)


def test_work_with_no_pool_left_is_one_error_not_a_hang(tmp_path) -> None:
    with two_pools(tmp_path, broken_gpu_launch=True) as dfk:
        pools, _, _, plan = gpu_first_plan(dfk, ["gpu"])
        with pytest.raises(DispatchError, match="no pool left to run .*gpu lost"):
            execute_plan(plan, pools, "exact", 2000, None, lost_after=2.0)


def reject_input(rows: int) -> float:
    """A task that fails on its input, the same way wherever it runs."""
    raise ValueError(f"rows must be positive, got {rows}")


def test_a_task_failing_on_bad_input_is_not_moved_or_retried(tmp_path) -> None:
    """Two real pools (Parsl thread pools); the task's ValueError ends the dispatch on its
    first attempt instead of being tried on the other pool."""
    config = Config(
        executors=[ThreadPoolExecutor(label="cpu"), ThreadPoolExecutor(label="gpu")],
        run_dir=str(tmp_path),
    )
    graph = nx.DiGraph()
    graph.add_node("evaluate:0:0", kind="evaluate", pool_costs={"cpu": 1.0, "gpu": 2.0}, rank=1)
    pools = {
        name: PoolInfo(name, ("aer",), 1, "cpu-sim", 30, True, accepts_spec=False)
        for name in ("cpu", "gpu")
    }
    app = {name: parsl.python_app(reject_input, executors=[name]) for name in pools}
    with parsl.load(config):
        dispatcher = Dispatcher(graph, pools, lambda node, pool: app[pool](-1))
        with pytest.raises(DispatchError, match="ValueError: rows must be positive"):
            dispatcher.run()
    parsl.clear()
    attempts = dispatcher.report.tasks["evaluate:0:0"].attempts
    assert [a.pool for a in attempts] == ["cpu"] and attempts[0].outcome.startswith("failed")
