"""Circuits and observables named by templates: generators, QASM 2 and 3 files, Pauli sums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector

from parsl_quantum.circuits import (
    CircuitError,
    circuit_from_spec,
    efficient_su2_circuit,
    exact_values,
    parse_observable,
    prepare,
)
from parsl_quantum.cutting.normalize import normalize


def test_efficient_su2_uses_the_reference_angles() -> None:
    qc = efficient_su2_circuit(6, reps=2, entanglement="linear", seed=1234)
    ref = efficient_su2(6, entanglement="linear", reps=2).decompose()
    ref = ref.assign_parameters(
        np.random.default_rng(1234).uniform(-np.pi, np.pi, ref.num_parameters)
    )
    assert Operator(qc).equiv(Operator(ref))


@pytest.mark.parametrize("version", [2, 3])
def test_qasm_files_are_read_as_written_and_lowered_for_cutting(
    tmp_path: Path, version: int
) -> None:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.ccx(0, 1, 2)
    qc.rzz(0.3, 2, 3)
    qc.measure_all()
    path = tmp_path / f"c{version}.qasm"
    path.write_text(qasm2.dumps(qc) if version == 2 else qasm3.dumps(qc))
    circuit = circuit_from_spec({"qasm": path.name}, base_dir=tmp_path)
    # as written (cut positions refer to these instructions); the cutting engine lowers it
    assert [inst.operation.name for inst in circuit.data][:3] == ["h", "ccx", "rzz"]
    norm = normalize(circuit, [SparsePauliOp("ZZZZ")])
    assert max(inst.operation.num_qubits for inst in norm.circuit.data) == 2
    assert norm.positions[0] == 0 and set(norm.positions[1:-1]) == {1} and norm.positions[-1] == 2
    body = qc.remove_final_measurements(inplace=False)
    assert Operator(norm.circuit).equiv(Operator(body))


def test_generators_are_seeded() -> None:
    for spec in (
        {"generator": "qaoa", "qubits": 8, "graph": "3-regular", "seed": 5},
        {"generator": "random_2local", "qubits": 6, "depth": 3, "seed": 5},
        {"generator": "clustered", "qubits": 9, "clusters": 3, "seed": 5},
        {"generator": "bus", "qubits": 9, "clusters": 2, "depth": 2, "seed": 5},
    ):
        assert Operator(circuit_from_spec(spec)).equiv(Operator(circuit_from_spec(spec)))
    a = circuit_from_spec({"generator": "random_2local", "qubits": 6, "seed": 1})
    b = circuit_from_spec({"generator": "random_2local", "qubits": 6, "seed": 2})
    assert not Operator(a).equiv(Operator(b))


def test_observables() -> None:
    mean_z = parse_observable("mean-z", 3)
    assert mean_z == SparsePauliOp(["IIZ", "IZI", "ZII"], [1 / 3] * 3)
    obs = parse_observable("0.5*XIZ, -2*yyi ,ZZZ", 3)
    assert obs.paulis.to_labels() == ["XIZ", "YYI", "ZZZ"]
    assert np.allclose(obs.coeffs, [0.5, -2, 1])
    with pytest.raises(CircuitError, match="has 2 qubits but the circuit has 3"):
        parse_observable("ZZ", 3)
    with pytest.raises(CircuitError, match="not a Pauli label"):
        parse_observable("ZQZ", 3)
    with pytest.raises(CircuitError, match="not a number"):
        parse_observable("a*ZZZ", 3)


def test_prepare_rejects_what_cannot_be_cut(tmp_path: Path) -> None:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)
    with pytest.raises(CircuitError, match="unsupported instruction 'measure' at position 1"):
        prepare(qc)
    with pytest.raises(CircuitError, match="unbound parameters: θ"):
        prepare(efficient_su2(3, reps=1).decompose())
    with pytest.raises(CircuitError, match="QASM file not found"):
        circuit_from_spec({"qasm": str(tmp_path / "missing.qasm")})
    bad = tmp_path / "bad.qasm"
    bad.write_text("OPENQASM 2.0;\nqreg q[2];\ncx q[0] q[1];\n")
    with pytest.raises(CircuitError, match="malformed QASM"):
        circuit_from_spec({"qasm": str(bad)})


def test_exact_values_degenerate_and_bad_shapes() -> None:
    empty = QuantumCircuit(1)
    assert exact_values(empty).shape == (0,)  # nothing asked, nothing simulated for
    assert exact_values(empty, ["Z"], amplitudes=[0, 1]) == pytest.approx([1, 0, 1])
    with pytest.raises(CircuitError, match="observable on 2 qubits for a 1-qubit circuit"):
        exact_values(empty, ["ZZ"])


def test_exact_values_match_the_statevector_with_both_methods() -> None:
    circuit = efficient_su2_circuit(5, 2, "linear", seed=3)
    state = Statevector(circuit)
    obs = [SparsePauliOp(["ZZIII", "IXIYI"], [0.5, -2.0]), "IIIIZ"]
    want = [state.data[6], *(state.expectation_value(SparsePauliOp(o)) for o in obs)]
    for method in ("statevector", "matrix_product_state"):
        got = exact_values(circuit, obs, amplitudes=[6], method=method)
        assert got == pytest.approx(np.array(want), abs=1e-10)
