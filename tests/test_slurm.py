"""Pools as Slurm batch jobs on the session's real one-node cluster (``slurm_cluster``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster

from parsl_quantum import configs
from parsl_quantum.configs import ClusterPool
from parsl_quantum.configs.clusters import job_name

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
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run_dir / "result.json").read_text())
    assert data["std_error"] == 0.0
    assert data["value"] == pytest.approx(data["reference"], abs=1e-8)
    assert {p["pool"] for p in data["configuration"]["partitions"]} == {"cpu"}
    # the pool's block was a batch job under the run's name, and nothing is left queued
    assert slurm_cluster.wait_until_empty() == []
    jobs = [j for j in slurm_cluster.finished() if j["jobname"] == job_name(run_dir, "cpu")]
    assert len(jobs) == 1
    assert jobs[0]["partition"] == "debug" and jobs[0]["nodelist"] == slurm_cluster.node
    assert jobs[0]["state"] in ("COMPLETED", "CANCELLED")  # Parsl cancels its idle block


def test_a_job_slurm_rejects_is_bad_input(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    proc = cli(
        "run",
        str(ROOT / "workflows" / "circuit-cutting-slurm.yaml"),
        "--set",
        "site.options.partition=no-such-partition",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "Slurm rejects the 'cpu' pool's job" in proc.stderr
    assert "invalid partition specified: no-such-partition" in proc.stderr
    assert not (tmp_path / "run" / "parsl").exists()
    assert slurm_cluster.queued() == []


def test_more_nodes_than_the_cluster_has_is_rejected_before_any_job(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    pools = {"cpu": ClusterPool(nodes_per_block=64)}
    with pytest.raises(ValueError, match="More processors requested than permitted"):
        configs.slurm(tmp_path, pools, partition="debug", worker_init=WORKER_INIT)
    assert slurm_cluster.queued() == []
