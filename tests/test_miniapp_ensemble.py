"""The ensemble mini-app on real local pools: values against a statevector, late binding
across a fast and a slow pool, metrics and the template runner."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import parsl
import pytest
from conftest import RunTemplate

from miniapps import ensemble
from parsl_quantum import configs


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local config (cpu: 2 workers on Aer, qpu: 1 worker on the fake device) per module."""
    run_dir = tmp_path_factory.mktemp("ensemble")
    with parsl.load(configs.local(run_dir, pools=("cpu", "qpu"), monitoring=False)):
        yield run_dir


def test_exact_pool_reproduces_statevector_values(pools: Path) -> None:
    circuits = ensemble.random_circuits(10, qubits=4, depth=5, seed=11)
    result = ensemble.run(
        circuits,
        observables=["mean-z", "ZZII"],
        batch_size=3,
        pools=["cpu"],
        run_dir=pools / "exact",
    )
    exact = ensemble.exact_values(circuits, ensemble.observables_for(["mean-z", "ZZII"], 4))
    assert result.values.shape == (10, 2)
    np.testing.assert_allclose(result.values, exact, atol=1e-9)
    assert result.max_error["cpu"] < 1e-9
    assert result.tasks == 4  # ceil(10 / 3) batches
    assert result.pool_circuits == {"cpu": 10}
    # the random circuits are not trivial: their values spread over a real range
    assert np.ptp(exact[:, 0]) > 0.3


def test_batches_bind_late_across_fast_and_noisy_pools(pools: Path) -> None:
    run_dir = pools / "mixed"
    result = ensemble.run(
        count=30,
        qubits=4,
        depth=4,
        circuit_seed=5,
        batch_size=3,
        pools=["cpu", "qpu"],
        seed=3,
        run_dir=run_dir,
    )
    # every circuit was evaluated exactly once, by one of the two pools
    assert sorted(set(result.pool_of_circuit)) == ["cpu", "qpu"]
    assert sum(result.pool_circuits.values()) == 30
    # the exact pool is exact; the noisy device is close (shot noise + gate/readout errors)
    assert result.max_error["cpu"] < 1e-9
    assert 1e-4 < result.max_error["qpu"] < 0.3
    assert result.throughput > 0 and all(v > 0 for v in result.pool_throughput.values())
    assert all(v >= 0 for v in result.overhead_s.values())
    # per-task metrics: one row per batch and per warm-up task, all done, times ordered
    with (run_dir / "tasks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    batches = [r for r in rows if r["kind"] == "ensemble-batch"]
    assert len(batches) == result.tasks == 10
    assert all(r["status"] == "done" for r in rows)
    assert all(float(r["start_time"]) <= float(r["end_time"]) for r in batches)
    assert {r["backend"] for r in batches} == {"aer", "fake:fake_perth"}
    assert (run_dir / "ensemble.png").stat().st_size > 10_000
    assert (run_dir / "ensemble_batches.csv").exists()


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "ensemble.yaml",
        ["circuits.count=12", "batch_size=4", "pools=cpu", "warmup=false"],
        run_dir,
    )
    assert out["tasks"] == 3
    assert out["max_error"]["cpu"] < 1e-9
    assert out["value"] == out["throughput"] > 0
    assert json.loads((run_dir / "result.json").read_text())["tasks"] == 3
    assert (run_dir / "tasks.csv").exists()


def test_rejects_pools_the_config_lacks(pools: Path) -> None:
    with pytest.raises(ValueError, match="gpu.*not in the loaded Parsl config"):
        ensemble.run(count=2, pools=["gpu"], run_dir=pools / "bad")


def test_prepare_checks_inputs_before_any_pool_starts(tmp_path: Path) -> None:
    from parsl_quantum.executors import PoolInfo

    qpu = {"qpu": PoolInfo("qpu", ("fake:fake_perth",), 1, "qpu", 7, False)}
    wide = {"circuits": {"count": 2, "qubits": 9}, "pools": ["qpu"]}
    with pytest.raises(ValueError, match="narrower than the 9-qubit"):
        ensemble.prepare(wide, qpu)
    with pytest.raises(ValueError, match="has 4 qubits but the circuit has 3"):
        ensemble.prepare({"circuits": {"count": 1, "qubits": 3}, "observables": ["ZZZZ"]}, qpu)
    # a QASM path is taken relative to the template's directory
    (tmp_path / "bell.qasm").write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n'
        "measure q -> c;\n"
    )
    (circuit,) = ensemble.prepare({"circuits": {"qasm": ["bell.qasm"]}}, qpu, tmp_path)
    assert circuit.num_qubits == 2 and circuit.count_ops().get("measure", 0) == 0
    zz = ensemble.exact_values([circuit], ensemble.observables_for(["ZZ", "XX", "mean-z"], 2))
    np.testing.assert_allclose(zz, [[1.0, 1.0, 0.0]], atol=1e-12)


def test_params_from_template_bodies() -> None:
    assert ensemble.EnsembleParams.from_template({"circuits": {}}) == ensemble.EnsembleParams()
    body = {
        "circuits": {"count": 3, "qubits": 2, "depth": 5, "seed": 9, "qasm": ["a.qasm"]},
        "observables": ["ZZ"],
        "batch_size": 1,
        "precision": 0.01,
        "seed": 4,
        "reference": False,
        "warmup": False,
    }
    assert ensemble.EnsembleParams.from_template(body) == ensemble.EnsembleParams(
        count=3,
        qubits=2,
        depth=5,
        circuit_seed=9,
        qasm=("a.qasm",),
        observables=("ZZ",),
        batch_size=1,
        precision=0.01,
        seed=4,
        reference=False,
        warmup=False,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ensemble.EnsembleParams().count = 1  # type: ignore[misc]


def test_run_rejects_an_unknown_parameter() -> None:
    with pytest.raises(TypeError, match="no_such_field"):
        ensemble.run(no_such_field=1)
