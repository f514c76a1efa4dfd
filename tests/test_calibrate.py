"""Calibration: the least-squares fit, the probes, and a quick real calibration of local pools
through the CLI (profile written, loadable, and used by the planner)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.calibrate import exact_probes, fit_nonnegative, sampled_probes
from parsl_quantum.planner.cost import EXACT_FEATURES, PROFILE_VERSION, load_model
from parsl_quantum.planner.plan import plan_workload


def test_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(1)
    features = rng.uniform(0, 1, size=(40, 3)) * np.array([1e2, 1e8, 1e6])
    truth = np.array([0.004, 2e-6, 5e-9, 0.0])
    seconds = truth[0] + features @ truth[1:]
    fit = fit_nonnegative(features, seconds)
    assert fit.coefficients == pytest.approx(truth, rel=1e-6, abs=1e-12)
    assert fit.median_error < 1e-9 and fit.samples == 40
    # coefficients never go negative, even when the data would prefer it
    fit = fit_nonnegative(features, seconds - features[:, 2] * 1e-9)
    assert (fit.coefficients >= 0).all()


def test_probes_span_the_features() -> None:
    probes = exact_probes(14)
    names = [p.name for p in probes]
    assert len(names) == len(set(names)) and len(probes) > 100
    work = np.array([p.features() for p in probes])
    assert work.shape == (len(probes), len(EXACT_FEATURES))
    assert np.linalg.matrix_rank(np.log1p(work)) == len(EXACT_FEATURES)
    assert max(p.program.num_qubits for p in probes) == 14
    sampled = sampled_probes(7)
    mid = np.array([p.features()[2] for p in sampled])
    assert (mid == 0).any() and (mid > 0).any()  # rows with and without mid-circuit measurements
    assert all(p.program.num_qubits <= 5 for p in sampled)


def test_quick_calibration_of_local_pools_writes_a_usable_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "calibrate",
        "--pools",
        "cpu,qpu",
        "--workers",
        "cpu=1",
        "--quick",
        "--repeats",
        "1",
        "--max-qubits",
        "8",
        "--profile",
        str(profile),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "profile written to" in proc.stdout and "exact fit" in proc.stdout
    data = json.loads(profile.read_text())
    assert data["version"] == PROFILE_VERSION and data["workers"] == {"cpu": 1, "qpu": 1}
    assert set(data["fits"]) == {"cpu", "qpu", "driver"}
    cpu, qpu = data["pools"]["cpu"], data["pools"]["qpu"]
    assert cpu["per_amp"] > 0 and cpu["overhead"] > 0 and cpu["submit"] > 0
    # a task's way to a free worker and back is measured apart from what a slot spends
    # between queued tasks
    assert cpu["latency_in"] > 0 and cpu["latency_out"] > 0
    assert qpu["latency_in"] > 0 and qpu["latency_out"] > 0
    # whole plans run end to end fit the in-run factor (the QPU pool samples: none fitted)
    assert 0.8 <= cpu["in_run"] <= 2.0 and data["fits"]["cpu"]["in_run"]["samples"] == 2
    assert qpu["in_run"] == 1.0 and "in_run" not in data["fits"]["qpu"]
    # the driver's seconds per task result and per run, fitted on a plan run as 2 to 50 tasks
    driver = data["driver"]
    assert driver["per_result"] > 0 and driver["per_run"] >= 0
    assert data["fits"]["driver"]["collect"]["samples"] == 4
    # a non-negative fit: a coefficient the quick probes cannot separate from noise may be 0,
    # but a sampled task always costs something, per circuit and per shot
    sampled = ("queue", "per_circuit", "per_shot", "per_mid_shot")
    assert min(qpu[k] for k in sampled) >= 0
    assert qpu["per_circuit"] + qpu["queue"] > 0 and qpu["per_shot"] + qpu["per_mid_shot"] > 0
    model = load_model(profile, {"cpu": "cpu-sim", "qpu": "qpu"})
    assert model.source == str(profile)
    circuit = efficient_su2_circuit(12, 2, "linear", seed=1)
    pools = {"cpu": PoolInfo("cpu", ("aer",), 1, "cpu-sim", 30, True)}
    plan = plan_workload(
        circuit, parse_observable("mean-z", 12), pools, max_subcircuit_qubits=6, model=model
    )
    assert plan.model_source == str(profile) and 0 < plan.chosen.makespan < 60
