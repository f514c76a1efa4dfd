"""The variational mini-app: the Heisenberg problem and ansatz, the parameter-shift gradient,
and VQE loops on a local CPU pool converging to the exact ground energy."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import parsl
import pytest
from conftest import RunTemplate
from qiskit.quantum_info import Statevector

from miniapps import variational as vqe
from parsl_quantum import configs


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("variational")
    with parsl.load(configs.local(run_dir, pools=("cpu",), monitoring=False)):
        yield run_dir


def energy(qc, hamiltonian, x) -> float:  # type: ignore[no-untyped-def]
    return float(Statevector(qc.assign_parameters(x)).expectation_value(hamiltonian).real)


# --- problem, ansatz and gradient, no Parsl ------------------------------------------------


def test_heisenberg_ring_ground_energy_is_the_known_value() -> None:
    # 6-site spin-1/2 ring: E0 = -2.80278 J in S.S units, i.e. 4x that in Pauli units
    assert vqe.ground_energy(vqe.heisenberg_hamiltonian(6)) == pytest.approx(-11.2111026, abs=1e-6)
    # open 4-site chain: E0 = -(3 + 2 sqrt 3) in Pauli units
    h4 = vqe.heisenberg_hamiltonian(4, periodic=False)
    assert vqe.ground_energy(h4) == pytest.approx(-(3 + 2 * np.sqrt(3)), abs=1e-9)
    # the sparse path (n > 10)
    h12 = vqe.heisenberg_hamiltonian(12)
    # 12-site ring: E0 / N = -0.448949 J in S.S units
    assert vqe.ground_energy(h12) == pytest.approx(4 * 12 * -0.448949, abs=1e-4)


def test_ansatz_starts_from_even_bond_singlets() -> None:
    qc = vqe.hva_ansatz(6, layers=2)
    assert qc.num_parameters == 2 * 3 * 6
    h = vqe.heisenberg_hamiltonian(6)
    # three singlets (each -3) and zero on the odd bonds between them
    assert energy(qc, h, np.zeros(qc.num_parameters)) == pytest.approx(-9.0, abs=1e-12)


def test_parameter_shift_gradient_is_exact() -> None:
    qc = vqe.hva_ansatz(4, layers=1, periodic=False)
    h = vqe.heisenberg_hamiltonian(4, periodic=False)
    x = np.random.default_rng(3).normal(0, 0.7, qc.num_parameters)
    values = np.array([energy(qc, h, p) for p in vqe.shifted_points(x)])
    e0, grad = vqe.energy_and_gradient(values)
    assert e0 == pytest.approx(energy(qc, h, x), abs=1e-12)
    eps = 1e-5
    for i in range(qc.num_parameters):
        d = np.zeros_like(x)
        d[i] = eps
        fd = (energy(qc, h, x + d) - energy(qc, h, x - d)) / (2 * eps)
        assert grad[i] == pytest.approx(fd, abs=1e-7)


def test_maxcut_hamiltonian_ground_energy_is_minus_the_maximum_cut() -> None:
    ring = vqe.maxcut_graph(6, "ring")
    assert vqe.max_cut(ring) == 6  # an even ring is bipartite
    assert vqe.ground_energy(vqe.maxcut_hamiltonian(ring)) == pytest.approx(-6.0, abs=1e-12)
    odd = vqe.maxcut_graph(5, "ring")
    assert vqe.max_cut(odd) == 4
    cubic = vqe.maxcut_graph(8, "3-regular", seed=2)
    assert sorted(d for _, d in cubic.degree) == [3] * 8
    h = vqe.maxcut_hamiltonian(cubic)
    assert vqe.ground_energy(h) == pytest.approx(-vqe.max_cut(cubic), abs=1e-12)


def test_qaoa_gradient_through_the_tie_matrix_is_exact() -> None:
    """Per-gate parameter shifts, tied back to (gamma, beta), equal a finite difference."""
    graph = vqe.maxcut_graph(6, "3-regular", seed=4)
    qc, tie = vqe.qaoa_ansatz(graph, layers=2)
    assert tie.shape == (qc.num_parameters, 4) and (tie.sum(axis=1) == 1).all()
    h = vqe.maxcut_hamiltonian(graph)
    x = vqe.ramp_start(2) + 0.1
    values = np.array([energy(qc, h, p) for p in vqe.shifted_points(tie @ x)])
    e0, grad = vqe.energy_and_gradient(values)
    grad = tie.T @ grad
    assert e0 == pytest.approx(energy(qc, h, tie @ x), abs=1e-12)
    eps = 1e-5
    for i in range(len(x)):
        d = np.zeros_like(x)
        d[i] = eps
        fd = (energy(qc, h, tie @ (x + d)) - energy(qc, h, tie @ (x - d))) / (2 * eps)
        assert grad[i] == pytest.approx(fd, abs=1e-7)


# --- VQE and QAOA on the local CPU pool ----------------------------------------------------


def test_lbfgs_reaches_the_ground_energy_of_the_6_site_ring(pools: Path) -> None:
    run_dir = pools / "ring6"
    result = vqe.run(qubits=6, layers=2, tolerance=1e-3, tasks_per_step=2, run_dir=run_dir)
    assert result.converged
    assert abs(result.energy - (-11.2111026)) < 1e-3
    assert result.energy >= result.exact_energy - 1e-9  # variational: never below the ground
    assert result.history[0] > -10.0 and result.history[-1] == result.energy
    assert result.tasks == 2 * result.evaluations
    with (run_dir / "tasks.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "vqe-energies"]
    assert len(rows) == result.tasks and {r["backend"] for r in rows} == {"aer"}
    assert (run_dir / "convergence.png").stat().st_size > 10_000


def test_qaoa_finds_the_maximum_cut_of_a_6_ring(pools: Path) -> None:
    """On a ring of n qubits, n / 2 QAOA layers can reach the maximum cut exactly."""
    run_dir = pools / "qaoa6"
    params = vqe.VariationalParams(model="maxcut", qubits=6, graph="ring", layers=3)
    result = vqe.run(params, tolerance=1e-3, run_dir=run_dir)
    assert result.model == "maxcut" and result.exact_energy == -6.0
    assert result.converged and result.approximation_ratio is not None
    assert result.approximation_ratio > 0.999
    assert result.energy >= result.exact_energy - 1e-9
    assert result.parameters == 6
    with (run_dir / "tasks.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "vqe-energies"]
    assert len(rows) == result.tasks


def test_adam_converges_on_a_small_chain(pools: Path) -> None:
    result = vqe.run(
        qubits=4,
        periodic=False,
        layers=1,
        method="adam",
        max_iterations=80,
        learning_rate=0.1,
        tolerance=2e-3,
        run_dir=pools / "adam",
    )
    assert result.converged, result.history[-5:]
    # the gap to the ground energy shrank by more than an order of magnitude
    gap = np.asarray(result.history) - result.exact_energy
    assert gap[-1] < gap[0] / 10


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "variational.yaml",
        ["hamiltonian.qubits=4", "hamiltonian.periodic=false", "ansatz.layers=1"],
        run_dir,
    )
    assert out["converged"] and abs(out["value"] - (-(3 + 2 * np.sqrt(3)))) < 1e-3
    assert out["tasks"] > 0 and "optimize" in out["timings"]


def test_params_from_template_bodies() -> None:
    assert vqe.VariationalParams.from_template({}) == vqe.VariationalParams()
    body = {
        "hamiltonian": {
            "model": "maxcut",
            "qubits": 8,
            "periodic": False,
            "coupling": 0.5,
            "graph": "3-regular",
            "seed": 3,
        },
        "ansatz": {"layers": 4},
        "optimizer": {
            "method": "adam",
            "max_iterations": 9,
            "learning_rate": 0.2,
            "init_scale": 0.0,
            "seed": 1,
        },
        "tolerance": 0.01,
        "tasks_per_step": 3,
        "precision": 0.05,
    }
    assert vqe.VariationalParams.from_template(body) == vqe.VariationalParams(
        model="maxcut",
        qubits=8,
        periodic=False,
        coupling=0.5,
        graph="3-regular",
        graph_seed=3,
        layers=4,
        method="adam",
        max_iterations=9,
        learning_rate=0.2,
        init_scale=0.0,
        seed=1,
        tolerance=0.01,
        tasks_per_step=3,
        precision=0.05,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        vqe.VariationalParams().qubits = 4  # type: ignore[misc]
