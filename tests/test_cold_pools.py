"""Pools that start cold: no block at load, a block started by Parsl's scaling strategy once a
task is sent there, and a dispatcher that waits for that block instead of giving the pool up.
Also the CLI: the main job's exact plan can send nothing to ``qpu``, which never starts, and a
run that needs the QPU pool starts it once prepared, after the simulator pools."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import networkx as nx
import parsl
import pytest
from parsl.dataflow.dflow import DataFlowKernel
from parsl.dataflow.memoization import BasicMemoizer

from parsl_quantum import configs
from parsl_quantum.executors import pool_infos
from parsl_quantum.planner.dispatch import Dispatcher
from parsl_quantum.workflow.calibration import wait_for_workers
from parsl_quantum.workflow.startup import worker_starts

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dfk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataFlowKernel]:
    config = configs.local(
        tmp_path_factory.mktemp("cold"),
        ("cpu", "qpu"),
        workers={"cpu": 1, "qpu": 1},
        monitoring=False,
        cold=("qpu",),
    )
    config.memoizer = BasicMemoizer(memoize=False)
    with parsl.load(config) as loaded:
        wait_for_workers(pool_infos(config, ["cpu"]))
        yield loaded
    parsl.clear()


def test_cold_pools_start_no_block_and_may_scale_out(tmp_path: Path) -> None:
    config = configs.local(tmp_path / "run", ("cpu", "qpu"), cold=("qpu",))
    blocks = {
        ex.label: (ex.provider.init_blocks, ex.provider.min_blocks, ex.provider.max_blocks)
        for ex in config.executors
    }
    assert blocks == {"cpu": (1, 0, 1), "qpu": (0, 0, 1)}
    with pytest.raises(ValueError, match="cold pool 'gpu' is not one of the pools"):
        configs.local(tmp_path / "run", ("cpu", "qpu"), cold=("gpu",))


def test_a_dispatch_waits_for_the_first_block_of_a_cold_pool(dfk: DataFlowKernel) -> None:
    # the qpu pool stays cold while the first task (cpu only) runs for longer than lost_after;
    # the second task may only run on qpu: Parsl starts its block, and the dispatcher counts
    # the pool's time without workers from that task's submission, not from the dispatch start
    qpu = dfk.executors["qpu"]
    assert qpu.capacity().blocks == 0 and qpu.capacity().connected_workers == 0
    lost_after = 8.0
    graph = nx.DiGraph()
    graph.add_node("a", kind="evaluate", pool_costs={"cpu": 1.0}, partition=0, rank=2.0)
    graph.add_node("b", kind="evaluate", pool_costs={"qpu": 1.0}, partition=1, rank=1.0)
    graph.add_edge("a", "b")
    # an importable function the workers can run: ``sleep`` as a subprocess
    apps = {name: parsl.python_app(subprocess.call, executors=[name]) for name in ("cpu", "qpu")}

    def submit(node: str, pool: str) -> Future:
        return apps[pool](["sleep", str(lost_after + 1.0 if node == "a" else 0.0)])

    dispatcher = Dispatcher(
        graph,
        pool_infos(dfk.config),
        submit,
        executors=dfk.executors,
        lost_after=lost_after,
    )
    started = time.monotonic()
    results = dispatcher.run()
    assert time.monotonic() - started > lost_after
    assert results == {"a": 0, "b": 0}
    assert dispatcher.report.tasks["b"].pool == "qpu"
    assert not any(e.event.startswith("lost") for e in dispatcher.report.events)
    assert qpu.capacity().connected_workers == 1


def run_cli(tmp_path: Path, template: str, *args: str) -> tuple[dict[str, Any], Path]:
    """``parsl-quantum run TEMPLATE ARGS`` in a new process: its result and run directory."""
    out, run = tmp_path / "result.json", tmp_path / "run"
    cmd = [sys.executable, "-m", "parsl_quantum.workflow.cli", "run", template, *args]
    cmd += ["--json", str(out), "--run-dir", str(run), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), run


def test_the_cli_main_job_leaves_pools_its_plan_does_not_use_cold(tmp_path: Path) -> None:
    data, run = run_cli(
        tmp_path,
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        *("--set", "circuit.qubits=8", "--set", "planner.max_subcircuit_qubits=4"),
        *("--set", "execution.mode=exact", "--monitoring"),
    )
    assert data["value"] == pytest.approx(data["reference"], abs=1e-8)
    assert {p for part in data["configuration"]["partitions"] for p in part["pools"]} == {"cpu"}
    with sqlite3.connect(run / "monitoring.db") as conn:
        blocks = {label for (label,) in conn.execute("SELECT executor_label FROM block")}
    assert blocks == {"cpu"}
    assert json.loads((run / "run.json").read_text())["pools"].keys() == {"cpu", "qpu"}
    # exact work never fails over to a sampling pool, so the qpu pool never started at all
    assert data["configuration"]["pools_not_started"] == ["qpu"]
    assert not list((run / "parsl").glob("*/qpu"))
    # the cpu worker recorded its start-up, shown among the timings
    workers = worker_starts(run)
    assert workers and {w["pool"] for w in workers} == {"cpu"}
    for w in workers:
        assert w["pool_started"] <= w["worker_started"] <= w["first_task"]
    assert data["timings"]["first_task_after_pool_start"] == pytest.approx(
        workers[0]["first_task"] - min(w["pool_started"] for w in workers)
    )


def test_a_pool_the_run_needs_starts_after_the_simulator_pools(tmp_path: Path) -> None:
    """The ensemble sends work to both pools: cpu starts with the run, the fake QPU (never
    started on speculation) is added once the template is prepared, and both compute."""
    data, run = run_cli(tmp_path, "ensemble", "--set", "circuits.count=12", "--set", "batch_size=2")
    assert "pools_not_started" not in data["configuration"]
    with (run / "tasks.csv").open() as fh:
        pools = {line.split(",")[2] for line in fh.readlines()[1:]}
    assert pools == {"cpu", "qpu"}
    assert {w["pool"] for w in worker_starts(run)} == {"cpu", "qpu"}
