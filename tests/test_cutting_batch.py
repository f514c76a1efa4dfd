"""Parameterized circuits: cut once, bind many (``cut_and_run_batch`` and ``recut``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import parsl
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from parsl_quantum import configs
from parsl_quantum.cutting import CuttingError, expectation_value, find_cut_problem
from parsl_quantum.cutting.problem import recut
from parsl_quantum.cutting.statevector import evaluate_exact
from parsl_quantum.workflow.cut_and_run import cut_and_run, cut_and_run_batch, parameter_sets


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("batch")
    with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
        yield run_dir
    parsl.clear()


def qaoa_ansatz(n: int) -> QuantumCircuit:
    """A ring QAOA layer with free angles: the cut gates are parametric (rzz)."""
    gamma, beta = ParameterVector("g", 2), ParameterVector("b", n)
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for layer in range(2):
        for q in range(n):
            qc.rzz(gamma[layer], q, (q + 1) % n)
        for q in range(n):
            qc.rx(beta[q], q)
    return qc


def exact(circuit: QuantumCircuit, obs: SparsePauliOp) -> float:
    return float(Statevector(circuit).expectation_value(obs).real)


def tensors(problem):
    return [
        np.moveaxis(
            evaluate_exact(p).reshape(*(len(s.options) for s in p.sites), len(p.observables)),
            -1,
            0,
        )
        for p in problem.partitions
    ]


def test_batch_values_match_each_bound_circuit(pools: Path) -> None:
    qc = qaoa_ansatz(8)
    values = np.random.default_rng(3).uniform(-np.pi, np.pi, (3, qc.num_parameters))
    observables = [
        SparsePauliOp.from_sparse_list([("ZZ", [q, (q + 1) % 8], 0.5) for q in range(8)], 8),
        SparsePauliOp(["XIIIIIIY", "IIIZZIII"], [0.3, -1.0]),
    ]
    result = cut_and_run_batch(qc, observables, values, pools=["cpu"], max_subcircuit_qubits=4)
    assert result.values.shape == result.std_errors.shape == (3, 2)
    assert len(result.configuration["cuts"]) >= 2
    assert all(c["gate"] == "rzz" for c in result.configuration["cuts"])
    per_set = sum(
        1 for _, d in result.plan.chosen.graph.nodes(data=True) if d["kind"] == "evaluate"
    )
    assert result.tasks == 3 * per_set
    assert {"plan", "bind", "evaluate", "reconstruct"} <= set(result.timings)
    for s, row in enumerate(values):
        bound = qc.assign_parameters(row)
        for k, obs in enumerate(observables):
            assert result.values[s, k] == pytest.approx(exact(bound, obs), abs=1e-9)
    assert result.references is not None
    assert np.allclose(result.references, result.values, atol=1e-9)
    assert np.all(result.std_errors == 0)


def test_a_circuit_without_parameters_is_one_set(pools: Path) -> None:
    qc = qaoa_ansatz(6).assign_parameters(np.linspace(0.1, 0.8, 8))
    obs = SparsePauliOp(["ZZIIII", "IIIXXI"], [1.0, 0.5])
    result = cut_and_run_batch(qc, [obs], pools=["cpu"], max_subcircuit_qubits=3)
    assert result.values.shape == (1, 1)
    assert result.values[0, 0] == pytest.approx(exact(qc, obs), abs=1e-9)


def test_cut_and_run_refuses_unbound_parameters_before_planning() -> None:
    with pytest.raises(CuttingError, match="unbound parameters: b\\[0\\].*cut_and_run_batch"):
        cut_and_run(qaoa_ansatz(4), SparsePauliOp("ZZZZ"))


def test_parameter_values_must_match_the_circuit() -> None:
    qc = qaoa_ansatz(4)
    with pytest.raises(CuttingError, match=r"shape \(2, 3\) but the circuit has 6 parameter"):
        parameter_sets(qc, np.zeros((2, 3)))
    with pytest.raises(CuttingError, match="has 6 parameter"):
        parameter_sets(qc, None)
    assert parameter_sets(qc, np.zeros(6)).shape == (1, 6)
    assert parameter_sets(QuantumCircuit(2), None).shape == (1, 0)


def test_wire_cuts_are_placed_once_and_rebound() -> None:
    theta = ParameterVector("t", 6)
    qc = QuantumCircuit(5)
    qc.h(0)
    for q in range(1, 5):
        qc.ry(theta[q], 0)
        qc.cx(0, q)
        qc.rz(theta[0], q)
    qc.rxx(theta[5], 1, 2)
    qc.rzz(theta[5], 3, 4)
    obs = SparsePauliOp(["ZZZZZ", "IXXII", "ZIIIZ"], [0.4, 1.0, -0.5])
    rng = np.random.default_rng(7)
    first = qc.assign_parameters(rng.uniform(-np.pi, np.pi, 6))
    problem = find_cut_problem(first, obs, 3)
    assert any(c.kind == "wire" for c in problem.cuts)
    for _ in range(2):
        other = qc.assign_parameters(rng.uniform(-np.pi, np.pi, 6))
        again = recut(problem, other, obs)
        assert [c.location() for c in again.cuts] == [c.location() for c in problem.cuts]
        assert expectation_value(again, tensors(again)) == pytest.approx(
            exact(other, obs), abs=1e-9
        )
