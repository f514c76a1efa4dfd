"""Pools as Slurm batch jobs on the session's real one-node cluster (``slurm_cluster``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from slurm_cluster import SlurmCluster

from parsl_quantum import configs
from parsl_quantum.configs import ClusterPool
from parsl_quantum.configs.clusters import job_name
from parsl_quantum.planner.cost import CostModel, PoolCoefficients
from parsl_quantum.reliability import Reliability
from parsl_quantum.workflow.run_report import load_report

ROOT = Path(__file__).resolve().parent.parent
#: Activates this environment in every batch job (its bin holds process_worker_pool.py).
WORKER_INIT = f"source {Path(sys.executable).parent / 'activate'}"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parsl_quantum.workflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_main_job_runs_in_a_slurm_batch_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "main-job"
    proc = cli(
        "run",
        str(ROOT / "workflows" / "circuit-cutting-slurm.yaml"),
        "--set",
        "circuit.qubits=10",
        "--set",
        "planner.max_subcircuit_qubits=5",
        "--set",
        f"site.options.worker_init={WORKER_INIT}",
        "--run-dir",
        str(run_dir),
        "--quiet",
        "--monitoring",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run_dir / "result.json").read_text())
    assert data["std_error"] == 0.0
    assert data["value"] == pytest.approx(data["reference"], abs=1e-8)
    assert {p["pool"] for p in data["configuration"]["partitions"]} == {"cpu"}
    # the pool's block was a batch job under the run's name, and nothing is left queued
    assert slurm_cluster.wait_until_empty() == []
    name = job_name(run_dir, "cpu")
    jobs = [j for j in slurm_cluster.finished(names=[name]) if j["jobname"] == name]
    assert len(jobs) == 1
    assert jobs[0]["partition"] == "debug" and jobs[0]["nodelist"] == slurm_cluster.node
    assert jobs[0]["account"] == slurm_cluster.account  # root's default account
    # "CANCELLED by 0": Parsl cancels its idle block at the end
    assert jobs[0]["state"].split()[0] in ("COMPLETED", "CANCELLED")
    # the report's timeline has a lane for the batch job's worker
    report = cli("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert [lane.label for lane in load_report(run_dir).lanes] == ["cpu / worker 0"]
    assert (run_dir / "timeline.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("option", "slurm_says"),
    [
        ("partition=no-such-partition", "invalid partition specified: no-such-partition"),
        ("account=no-such-account", "Invalid account or account/partition combination"),
    ],
)
def test_a_job_slurm_rejects_is_bad_input(
    slurm_cluster: SlurmCluster, tmp_path: Path, option: str, slurm_says: str
) -> None:
    proc = cli(
        "run",
        str(ROOT / "workflows" / "circuit-cutting-slurm.yaml"),
        "--set",
        f"site.options.{option}",
        "--run-dir",
        str(tmp_path / "run"),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "Slurm rejects the 'cpu' pool's job" in proc.stderr and slurm_says in proc.stderr
    assert not (tmp_path / "run" / "parsl").exists()
    assert slurm_cluster.queued() == []


def test_more_nodes_than_the_cluster_has_is_rejected_before_any_job(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    pools = {"cpu": ClusterPool(nodes_per_block=64)}
    with pytest.raises(ValueError, match="More processors requested than permitted"):
        configs.slurm(tmp_path, pools, partition="debug", worker_init=WORKER_INIT)
    assert slurm_cluster.queued() == []


def test_a_script_spreads_the_work_over_a_cpu_and_a_qpu_pool_of_jobs(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    # a site whose CPU pool starts each task slowly (2 s): the planner then gives the QPU pool
    # a share of the partitions
    profile = CostModel(
        pools={"cpu": PoolCoefficients(overhead=2.0, in_run=1.0)}, kinds={"cpu": "cpu-sim"}
    ).save(tmp_path / "profile.json")
    run_dir = tmp_path / "two-pools"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "workflows" / "slurm_two_pools.py"),
            "--partition=debug",
            f"--worker-init={WORKER_INIT}",
            f"--run-dir={run_dir}",
            f"--profile={profile}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert set(out["partitions"]) == {"cpu", "qpu"}
    assert out["std_error"] > 0  # the fake QPU samples
    assert abs(out["value"] - out["reference"]) < 0.5  # noisy, but the right sign and scale
    report = load_report(run_dir)  # the monitoring database of the run
    assert {p for p, summary in report.pools.items() if summary.tasks} == {"cpu", "qpu"}
    assert slurm_cluster.wait_until_empty() == []
    names = {j["jobname"] for j in slurm_cluster.finished(names=out["job_names"].values())}
    assert set(out["job_names"].values()) <= names


def _slurm_config(run_dir: Path, max_blocks: int) -> Config:
    """One cpu pool of up to ``max_blocks`` one-worker jobs whose workers import this module
    (as a site's ``worker_init`` makes a user's modules importable); a lost worker pool is
    noticed after 6 s without heartbeats rather than Parsl's default of 2 minutes."""
    pools = {"cpu": ClusterPool(max_blocks=max_blocks, workers_per_node=1)}
    worker_init = f"{WORKER_INIT}; export PYTHONPATH={Path(__file__).parent}:$PYTHONPATH"
    config = configs.slurm(
        run_dir, pools, partition="debug", worker_init=worker_init, monitoring=False
    )
    for ex in config.executors:
        assert isinstance(ex, HighThroughputExecutor)
        ex.heartbeat_period, ex.heartbeat_threshold = 2, 6
    return config


def _squares(n: int, seconds: float) -> tuple[int, str]:
    """A task: the sum of the first ``n`` squares after ``seconds`` of work, and the Slurm
    job it ran in."""
    time.sleep(seconds)
    return sum(k * k for k in range(n)), os.environ.get("SLURM_JOB_ID", "")


def _exact(n: int) -> int:
    return (n - 1) * n * (2 * n - 1) // 6


def test_max_blocks_two_runs_two_jobs(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "two-blocks"
    with parsl.load(_slurm_config(run_dir, max_blocks=2)):
        app = parsl.python_app(_squares, executors=["cpu"])
        futures = [app(1000 + i, 2.0) for i in range(6)]
        results = [f.result() for f in futures]
    parsl.clear()
    assert [r[0] for r in results] == [_exact(1000 + i) for i in range(6)]
    jobs_used = {r[1] for r in results}
    assert len(jobs_used) == 2 and "" not in jobs_used
    assert slurm_cluster.wait_until_empty() == []
    seen = {
        j["jobid"]
        for j in slurm_cluster.finished(ids=jobs_used)
        if j["jobname"] == job_name(run_dir, "cpu")
    }
    assert seen == jobs_used


def test_a_cancelled_block_s_work_is_rebound_to_the_other(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    run_dir = tmp_path / "scancel"
    config = _slurm_config(run_dir, max_blocks=2)
    guards = Reliability(retries=2, backoff=0.1, checkpoint=False).apply(config)
    with parsl.load(config):
        app = parsl.python_app(_squares, executors=["cpu"])
        futures = [app(2000 + i, 3.0) for i in range(6)]
        executor = parsl.dfk().executors["cpu"]
        assert isinstance(executor, HighThroughputExecutor)
        deadline = time.monotonic() + 120
        busy: list[dict[str, Any]] = []
        while len(busy) < 2 and time.monotonic() < deadline:  # both blocks' workers in a task
            time.sleep(0.5)
            busy = [m for m in executor.connected_managers() if m["tasks"]]
        assert len(busy) == 2, f"both blocks never worked at once: {busy}"
        cancelled = executor.blocks_to_job_id[busy[0]["block_id"]]
        slurm_cluster.run("scancel", cancelled)
        open_then = [i for i, f in enumerate(futures) if not f.done()]
        results = [f.result() for f in futures]
    parsl.clear()
    assert [r[0] for r in results] == [_exact(2000 + i) for i in range(6)]
    # the task lost with the cancelled job was tried again, and every task still open at the
    # cancel finished in another job
    assert guards.handler.retried.get("cpu", 0) >= 1
    assert open_then and all(results[i][1] != cancelled for i in open_then)
    assert slurm_cluster.wait_until_empty() == []
    states = {j["jobid"]: j["state"] for j in slurm_cluster.finished(ids=[cancelled])}
    assert states[cancelled].startswith("CANCELLED")
