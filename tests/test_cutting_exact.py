"""Exact cutting agrees with direct simulation, across circuit families, gate and wire cuts."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import CCXGate
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_addon_cutting import DeviceConstraints, OptimizationParameters, find_cuts
from qiskit_addon_cutting.instructions import CutWire

from parsl_quantum.circuits import (
    bus_circuit,
    clustered_circuit,
    efficient_su2_circuit,
    parse_observable,
    prepare,
    qaoa_circuit,
    random_2local_circuit,
)
from parsl_quantum.cutting import (
    CuttingError,
    NoCutFoundError,
    contract,
    cut_by_labels,
    cut_with_wires,
    evaluate_exact,
    expectation_value,
    find_cut_problem,
)
from parsl_quantum.planner.partitioning import balanced_widths, block_labels


def exact_tensors(problem):
    out = []
    for part in problem.partitions:
        dims = [len(s.options) for s in part.sites]
        values = evaluate_exact(part).reshape(*dims, len(part.observables))
        out.append(np.moveaxis(values, -1, 0))
    return out


def direct(circuit: QuantumCircuit, observable: SparsePauliOp) -> float:
    return float(np.real(Statevector(circuit).expectation_value(observable)))


def rich_observable(n: int) -> SparsePauliOp:
    """Mean Z plus non-diagonal terms spanning partitions, so X/Y paths are exercised."""
    terms = [("Z", [i], 1.0 / n) for i in range(n)]
    terms += [("XY", [0, n - 1], 0.3), ("ZX", [1, n // 2], -0.7), ("YY", [n // 2 - 1, n // 2], 0.2)]
    return SparsePauliOp.from_sparse_list(terms, n)


FAMILIES = [
    ("su2-linear", lambda: efficient_su2_circuit(8, 2, "linear"), 2),
    ("su2-linear-5parts", lambda: efficient_su2_circuit(10, 2, "linear"), 5),
    ("su2-circular", lambda: efficient_su2_circuit(8, 2, "circular"), 2),
    ("su2-circular-3parts", lambda: efficient_su2_circuit(9, 1, "circular"), 3),
    ("su2-full", lambda: efficient_su2_circuit(4, 1, "full"), 2),
    ("qaoa-ring", lambda: qaoa_circuit(8, 1, "ring"), 2),
    ("qaoa-ring-4parts", lambda: qaoa_circuit(8, 1, "ring"), 4),
    ("qaoa-3regular", lambda: qaoa_circuit(8, 1, "3-regular", seed=3), 2),
    ("random-2local", lambda: random_2local_circuit(8, 4, seed=5), 2),
    ("random-2local-3parts", lambda: random_2local_circuit(9, 5, seed=6), 3),
    ("clustered", lambda: clustered_circuit(9, 3, 3, 1, seed=2), 3),
    ("clustered-2", lambda: clustered_circuit(8, 2, 4, 2, seed=4), 2),
]


@pytest.mark.parametrize(("name", "make", "parts"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_gate_cuts_match_direct_simulation(name, make, parts):
    circuit = prepare(make())
    obs = rich_observable(circuit.num_qubits)
    labels, ncuts = block_labels(circuit, balanced_widths(circuit.num_qubits, parts))
    problem = cut_by_labels(circuit, obs, labels)
    assert len(problem.partitions) == parts
    assert len(problem.cuts) == ncuts > 0
    value = expectation_value(problem, exact_tensors(problem))
    assert value == pytest.approx(direct(circuit, obs), abs=1e-8)


def test_distinct_subexperiments_are_per_partition_products():
    circuit = efficient_su2_circuit(12, 2, "linear")
    labels, _ = block_labels(circuit, [4, 4, 4])
    problem = cut_by_labels(circuit, parse_observable("mean-z", 12), labels)
    # 2 CX cuts per boundary, 5 distinct local options per side of a CX cut
    assert [p.num_subexperiments for p in problem.partitions] == [25, 625, 25]
    assert problem.num_subexperiments == 675
    assert problem.num_generated_addon == 3 * 6**4 == 3888


def test_wire_cuts_from_find_cuts_match_direct_simulation():
    circuit = efficient_su2_circuit(6, 1, "circular")
    obs = rich_observable(6)
    cut_circuit, meta = find_cuts(
        circuit,
        OptimizationParameters(seed=1, gate_lo=False, wire_lo=True),
        DeviceConstraints(qubits_per_subcircuit=4),
    )
    assert [kind for kind, _ in meta["cuts"]] == ["Wire Cut", "Wire Cut"]
    problem = cut_with_wires(cut_circuit, circuit, obs)
    assert {c.kind for c in problem.cuts} == {"wire"}
    assert all(w <= 4 for w in problem.widths)
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(circuit, obs), abs=1e-8
    )


def test_find_cut_problem_cuts_a_bus_on_its_wire():
    """One wire cut of the bus replaces the four gate cuts of its couplings to a register."""
    circuit = bus_circuit(9, clusters=2, depth=2, seed=3)
    obs = rich_observable(9)
    problem = find_cut_problem(circuit, obs, 5)
    assert [c.kind for c in problem.cuts] == ["wire"]
    assert sorted(problem.widths) == [5, 5]
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(circuit, obs), abs=1e-8
    )
    toffoli = QuantumCircuit(3)
    toffoli.append(CCXGate(), [0, 1, 2])
    with pytest.raises(NoCutFoundError, match="find_cuts"):  # gates on 3 qubits: lower first
        find_cut_problem(toffoli, SparsePauliOp("ZZZ"), 2)


def test_several_wire_cuts_on_one_qubit():
    """Non-consecutive wire cuts on the same qubit (where the addon's cut_wires miscounts)."""
    qc = QuantumCircuit(4)
    qc.h(range(4))
    qc.cx(0, 1)
    qc.append(CutWire(), [1])
    qc.cx(1, 2)
    qc.ry(0.4, 2)
    qc.append(CutWire(), [2])
    qc.cx(2, 3)
    qc.append(CutWire(), [1])
    qc.rzz(0.3, 1, 0)
    qc.rx(0.7, 1)
    obs = rich_observable(4)
    problem = cut_with_wires(qc.copy(), _without_markers(qc), obs)
    assert len(problem.cuts) == 3
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(_without_markers(qc), obs), abs=1e-8
    )


def _without_markers(qc: QuantumCircuit) -> QuantumCircuit:
    out = QuantumCircuit(qc.num_qubits)
    for inst in qc.data:
        if inst.operation.name != "cut_wire":
            out.append(inst.operation, inst.qubits)
    return out


def test_mixed_gate_and_wire_cuts():
    qc = QuantumCircuit(4)
    qc.h(range(4))
    qc.cx(0, 1)
    qc.rzz(0.4, 1, 2)
    qc.append(CutWire(), [2])
    qc.cx(2, 3)
    qc.ry(0.3, 3)
    qc.cx(1, 2)
    qc.rx(0.2, 0)
    obs = rich_observable(4)
    cut_circuit, _ = find_cuts(
        qc, OptimizationParameters(seed=2), DeviceConstraints(qubits_per_subcircuit=2)
    )
    problem = cut_with_wires(cut_circuit, qc, obs)
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(qc, obs), abs=1e-8
    )


def test_controlled_rotations_rxx_ryy_ecr_and_three_qubit_gates():
    qc = QuantumCircuit(6)
    qc.h(range(6))
    qc.append(CCXGate(), [0, 1, 2])  # decomposed first, inside one partition
    qc.crx(0.7, 2, 3)
    qc.rxx(0.3, 1, 4)
    qc.ryy(-0.5, 2, 3)
    qc.cry(0.9, 0, 5)
    qc.ecr(2, 3)
    qc.append(CCXGate(), [3, 4, 5])
    circuit = prepare(qc)
    assert max(inst.operation.num_qubits for inst in circuit.data) == 2
    obs = rich_observable(6)
    problem = cut_by_labels(circuit, obs, [0, 0, 0, 1, 1, 1])
    assert sorted(c.gate for c in problem.cuts) == ["crx", "cry", "ecr", "rxx", "ryy"]
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(circuit, obs), abs=1e-8
    )


def test_uneven_partition_widths():
    circuit = efficient_su2_circuit(10, 2, "linear")
    obs = rich_observable(10)
    labels, _ = block_labels(circuit, [6, 4])
    problem = cut_by_labels(circuit, obs, labels)
    assert sorted(problem.widths) == [4, 6]
    assert expectation_value(problem, exact_tensors(problem)) == pytest.approx(
        direct(circuit, obs), abs=1e-8
    )


def test_many_pauli_terms_and_subset_rows():
    circuit = efficient_su2_circuit(6, 2, "circular")
    rng = np.random.default_rng(0)
    labels = ["".join(rng.choice(list("IXYZ"), 6)) for _ in range(40)]
    obs = SparsePauliOp(labels, rng.normal(size=40)).simplify()
    problem = cut_by_labels(circuit, obs, [0, 0, 0, 1, 1, 1])
    tensors = exact_tensors(problem)
    assert expectation_value(problem, tensors) == pytest.approx(direct(circuit, obs), abs=1e-8)
    # evaluating any subset of rows gives the same entries as the full evaluation
    part = problem.partitions[0]
    dims = [len(s.options) for s in part.sites]
    rows = np.indices(dims).reshape(len(dims), -1).T
    pick = rows[[0, 3, 7, len(rows) - 1]]
    sub = evaluate_exact(part, pick)
    full = evaluate_exact(part)
    assert np.allclose(sub, full[[0, 3, 7, len(rows) - 1]])


def test_memory_bound_splits_the_stack_without_changing_results():
    circuit = efficient_su2_circuit(9, 2, "linear")
    labels, _ = block_labels(circuit, [3, 3, 3])
    problem = cut_by_labels(circuit, parse_observable("mean-z", 9), labels)
    middle = problem.partitions[1]
    assert np.allclose(evaluate_exact(middle), evaluate_exact(middle, memory_bytes=4096))


def test_contract_returns_one_value_per_term():
    circuit = efficient_su2_circuit(6, 1, "linear")
    obs = rich_observable(6)
    problem = cut_by_labels(circuit, obs, [0, 0, 0, 1, 1, 1])
    per_term = contract(problem, exact_tensors(problem))
    assert per_term.shape == (len(problem.term_coeffs),)
    for label, coeff, value in zip(obs.paulis.to_labels(), obs.coeffs.real, per_term, strict=True):
        single = SparsePauliOp([label])
        assert value == pytest.approx(direct(circuit, single), abs=1e-8), (label, coeff)


def test_bad_inputs_raise_one_line_errors():
    circuit = efficient_su2_circuit(4, 1, "linear")
    with pytest.raises(CuttingError, match="observable acts on 3 qubits"):
        cut_by_labels(circuit, SparsePauliOp("ZZZ"), [0, 0, 1, 1])
    with pytest.raises(CuttingError, match="3 partition labels"):
        cut_by_labels(circuit, SparsePauliOp("ZZZZ"), [0, 0, 1])
    with pytest.raises(CuttingError, match="Hermitian"):
        cut_by_labels(circuit, SparsePauliOp("ZZZZ", 1j), [0, 0, 1, 1])
