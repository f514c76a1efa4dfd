"""Degenerate and unusual circuit shapes through the main job, from the Python API and the CLI.

Circuits that need no cut, unconnected components, idle wires, partitions without cut sites,
one-qubit and zero-gate circuits, barriers and final measurements (ignored, as Estimator does),
and the one-line refusal of mid-circuit measurements, resets and classical control.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import parsl
import pytest
from qiskit import QuantumCircuit, QuantumRegister, qasm2, qasm3
from qiskit.circuit.library import U1Gate, U2Gate, U3Gate
from qiskit.quantum_info import SparsePauliOp, Statevector

from parsl_quantum import configs
from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.normalize import lower, normalize
from parsl_quantum.workflow.cut_and_run import cut_and_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("shapes")
    with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
        yield run_dir
    parsl.clear()


def exact(circuit: QuantumCircuit, observable: SparsePauliOp) -> float:
    """Statevector value of the circuit's gates (its measurements, barriers and delays left
    out: the tests that use this only measure at the end)."""
    body = QuantumCircuit(circuit.num_qubits)
    for inst in circuit.data:
        if inst.operation.name not in ("measure", "barrier", "delay"):
            body.append(inst.operation, [circuit.find_bit(q).index for q in inst.qubits])
    return float(Statevector(body).expectation_value(observable).real)


def chain(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    return qc


def mean_z(n: int) -> SparsePauliOp:
    return SparsePauliOp.from_sparse_list([("Z", [q], 1 / n) for q in range(n)], n)


def test_a_circuit_that_fits_runs_as_one_piece_without_cuts(pools: Path) -> None:
    qc = chain(4)
    qc.ry(0.4, 3)
    obs = mean_z(4) + SparsePauliOp("XXXX", 0.5)
    result = cut_and_run(qc, obs, pools=["cpu"], max_subcircuit_qubits=4)
    config = result.configuration
    assert [p["qubits"] for p in config["partitions"]] == [4]
    assert config["cuts"] == [] and config["subexperiments"] == 1 and result.tasks == 1
    assert result.value == pytest.approx(exact(qc, obs), abs=1e-10)


def test_unconnected_components_are_pieces_whose_values_multiply(pools: Path) -> None:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.x(2)
    qc.h(3)
    obs = SparsePauliOp(["XZXX", "ZIZZ", "IZII"], [0.3, -0.7, 0.2])
    result = cut_and_run(qc, obs, pools=["cpu"], max_subcircuit_qubits=2)
    config = result.configuration
    assert sorted(p["qubits"] for p in config["partitions"]) == [1, 1, 2]
    assert sorted(map(tuple, (p["original_qubits"] for p in config["partitions"]))) == [
        (0, 1),
        (2,),
        (3,),
    ]
    assert config["cuts"] == []
    assert result.value == pytest.approx(exact(qc, obs), abs=1e-10)


def test_idle_wires_are_dropped_and_the_value_mapped_back(pools: Path) -> None:
    qc = QuantumCircuit(9)
    for q in (0, 1, 3, 4, 6, 8):
        qc.ry(0.3 + q, q)
    for a, b in ((0, 1), (1, 3), (3, 4), (4, 6), (6, 8)):
        qc.cx(a, b)
    # X on an idle qubit: the term is 0; Z on an idle qubit: factor 1
    obs = SparsePauliOp(["ZIZIIIIIZ", "IXIIZIIII", "IIIIIIIZZ", "ZZZZZZZZZ"], [0.5, 1, -1, 0.25])
    result = cut_and_run(qc, obs, pools=["cpu"], max_subcircuit_qubits=3)
    config = result.configuration
    assert config["idle_qubits_removed"] == 3 and config["input_qubits"] == 9
    assert sum(p["qubits"] for p in config["partitions"]) == 6
    used = {q for p in config["partitions"] for q in p["original_qubits"]}
    assert used == {0, 1, 3, 4, 6, 8}
    assert all(c["qubits"][0] in used and c["qubits"][1] in used for c in config["cuts"])
    assert result.value == pytest.approx(exact(qc, obs), abs=1e-9)
    assert result.reference == pytest.approx(result.value, abs=1e-9)


def test_partitions_without_cut_sites_among_cut_ones(pools: Path) -> None:
    qc = chain(6)
    for q in range(6):
        qc.rx(0.2 * q, q)
    wide = QuantumCircuit(8)
    wide.compose(qc, range(6), inplace=True)
    wide.h(6)
    wide.cz(6, 7)
    wide.ry(0.8, 7)
    obs = mean_z(8) + SparsePauliOp("XZIIIIIX", 0.4)
    result = cut_and_run(wide, obs, pools=["cpu"], max_subcircuit_qubits=3)
    config = result.configuration
    widths = [p["qubits"] for p in config["partitions"]]
    assert max(widths) <= 3 and len(config["cuts"]) >= 1
    uncut = [p for p in config["partitions"] if p["original_qubits"] == [6, 7]]
    assert len(uncut) == 1 and uncut[0]["subexperiments"] == 1
    assert result.value == pytest.approx(exact(wide, obs), abs=1e-9)


@pytest.mark.parametrize("gates", [False, True], ids=["zero-gate", "one-gate"])
def test_one_qubit_and_zero_gate_circuits(pools: Path, gates: bool) -> None:
    one = QuantumCircuit(1)
    if gates:
        one.rx(0.7, 0)
    obs = SparsePauliOp(["Z", "Y"], [1.0, 0.5])
    assert cut_and_run(one, obs, pools=["cpu"]).value == pytest.approx(exact(one, obs), abs=1e-12)
    empty = QuantumCircuit(3)
    obs3 = SparsePauliOp(["ZIZ", "IXI", "III"], [0.3, 2.0, -0.1])
    result = cut_and_run(empty, obs3, pools=["cpu"], max_subcircuit_qubits=2)
    assert result.value == pytest.approx(0.2, abs=1e-12)


def test_barriers_and_final_measurements_are_ignored(pools: Path) -> None:
    qc = chain(5)
    qc.barrier()
    qc.rz(0.3, 2)
    qc.sx(2)
    qc.barrier([1, 2])
    qc.measure_all()
    qc.delay(100, 0)  # scheduled circuits idle after their measurements
    obs = SparsePauliOp(["ZZIII", "IIYII", "XXXXX"], [1.0, 0.5, 0.25])
    result = cut_and_run(qc, obs, pools=["cpu"], max_subcircuit_qubits=3)
    assert len(result.configuration["cuts"]) >= 1
    assert result.value == pytest.approx(exact(qc, obs), abs=1e-9)


def mid_measure() -> QuantumCircuit:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)
    return qc


def reset() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.reset(1)
    return qc


def classical() -> QuantumCircuit:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    return qc


def initialize() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(1)
    qc.initialize([0, 1, 0, 0], [0, 1])
    return qc


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (mid_measure, "unsupported instruction 'measure' at position 1 on qubit 0"),
        (reset, "unsupported instruction 'reset' at position 2 on qubit(s) 1"),
        (classical, "unsupported instruction 'if_else' at position 2"),
        (initialize, "unsupported instruction 'initialize' at position 1: it contains 'reset'"),
    ],
    ids=["mid-circuit-measure", "reset", "classical-control", "initialize"],
)
def test_unsupported_instructions_are_named_with_their_position(make, text: str) -> None:
    with pytest.raises(CuttingError) as info:
        normalize(make(), [SparsePauliOp("ZZ")])
    assert str(info.value).startswith(text) and "\n" not in str(info.value)


def cli(tmp_path: Path, circuit: QuantumCircuit, *sets: str) -> subprocess.CompletedProcess:
    path = tmp_path / "circuit.qasm"
    try:
        path.write_text(qasm2.dumps(circuit))
    except qasm2.QASM2ExportError:  # classical control needs OpenQASM 3
        path.write_text(qasm3.dumps(circuit))
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "run",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        "--set",
        "pools=cpu",
        "--set",
        f"circuit.qasm={path}",
        *(x for s in sets for x in ("--set", s)),
        "--json",
        str(tmp_path / "result.json"),
        "--run-dir",
        str(tmp_path / "run"),
        "--no-monitoring",
        "--quiet",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)


def test_cli_runs_the_uncut_and_the_unconnected_circuits(tmp_path: Path) -> None:
    two = QuantumCircuit(6)
    two.compose(chain(4), range(4), inplace=True)
    two.x(4)
    two.h(5)
    proc = cli(
        tmp_path,
        two,
        "observable=mean-z",
        "planner.max_subcircuit_qubits=4",
        "execution.reference=always",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["configuration"]["cuts"] == []
    assert sorted(p["qubits"] for p in data["configuration"]["partitions"]) == [1, 1, 4]
    assert data["value"] == pytest.approx(exact(two, mean_z(6)), abs=1e-10)
    assert data["value"] == pytest.approx(data["reference"], abs=1e-10)


@pytest.mark.parametrize("make", [mid_measure, reset, classical])
def test_cli_refuses_unsupported_instructions_with_exit_2(tmp_path: Path, make) -> None:
    proc = cli(tmp_path, make(), "planner.max_subcircuit_qubits=2")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "unsupported instruction" in err and "position" in err


def test_a_refusal_is_one_line_with_exit_2(tmp_path: Path) -> None:
    dense = QuantumCircuit(6)
    for a in range(6):
        for b in range(a + 1, 6):
            dense.cx(a, b)
            dense.cx(b, a)
    proc = cli(tmp_path, dense, "planner.max_subcircuit_qubits=1", "planner.wire_cuts=false")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no cut" in proc.stderr


def test_observable_values_on_idle_qubits_fold_into_coefficients() -> None:
    qc = QuantumCircuit(3)
    qc.h(1)
    norm = normalize(qc, [SparsePauliOp(["ZXZ", "XXI", "IXI"], [2.0, 1.0, 3.0])])
    assert norm.wires == (1,)
    assert norm.term_labels == ["X"]
    assert np.allclose(norm.coefficients, [[5.0]])


def test_every_standard_one_qubit_gate_is_kept_as_it_is(pools: Path) -> None:
    qc = QuantumCircuit(4)
    qc.r(0.3, 0.7, 0)
    qc.u(0.2, 0.4, 0.6, 1)
    qc.append(U1Gate(0.5), [2])
    qc.append(U2Gate(0.1, 0.9), [3])
    qc.append(U3Gate(0.8, 0.2, 0.3), [0])
    for q in range(3):
        qc.cx(q, q + 1)
    qc.r(1.1, -0.4, 3)
    norm = normalize(qc, [mean_z(4)])
    assert [i.operation.name for i in norm.circuit.data] == [i.operation.name for i in qc.data]
    obs = mean_z(4) + SparsePauliOp("XYZX", 0.5)
    result = cut_and_run(qc, obs, pools=["cpu"], max_subcircuit_qubits=2, reference="never")
    assert result.configuration["cuts"]
    assert result.value == pytest.approx(exact(qc, obs), abs=1e-10)


def test_a_circuit_already_in_the_basis_lowers_as_one_that_needs_dropping() -> None:
    # the shortcut for circuits with nothing to lower or drop gives what the general path gives
    qc = QuantumCircuit(QuantumRegister(2, "a"), QuantumRegister(2, "b"), global_phase=0.7)
    qc.rx(0.3, 0)
    for q in range(3):
        qc.cx(q, q + 1)
    qc.rz(0.2, 3)
    measured = qc.copy()
    measured.measure_all()
    fast, fast_positions = lower(qc)
    general, general_positions = lower(measured)
    assert fast == general and fast_positions == general_positions == list(range(5))
    assert fast.global_phase == 0 and [r.name for r in fast.qregs] == ["q"]


def isa_circuit() -> tuple[QuantumCircuit, QuantumCircuit]:
    """An 8-qubit efficient_su2 and its ISA form on a 27-qubit fake device (layout set)."""
    from qiskit import transpile
    from qiskit.circuit.library import efficient_su2
    from qiskit_ibm_runtime.fake_provider import FakeKolkataV2

    logical = efficient_su2(8, reps=2, entanglement="linear")
    logical = logical.assign_parameters(
        np.random.default_rng(1).uniform(-np.pi, np.pi, logical.num_parameters)
    )
    isa = transpile(logical, FakeKolkataV2(), optimization_level=1, seed_transpiler=3)
    return logical, isa


def test_an_isa_circuit_gives_the_logical_circuits_value(pools: Path) -> None:
    logical, isa = isa_circuit()
    assert isa.num_qubits == 27 and isa.layout is not None
    obs = mean_z(8) + SparsePauliOp.from_sparse_list([("XY", [0, 5], 0.3)], 8)
    expected = exact(logical, obs)
    # the logical observable is mapped through the layout; a laid-out one is taken as it is
    for given in (obs, obs.apply_layout(isa.layout)):
        result = cut_and_run(isa, given, pools=["cpu"], max_subcircuit_qubits=4)
        config = result.configuration
        assert config["input_qubits"] == 27 and config["idle_qubits_removed"] == 19
        assert result.value == pytest.approx(expected, abs=1e-9)
        for cut in config["cuts"]:
            inst = isa.data[cut["instruction"]]
            assert inst.operation.name == cut["gate"]
            assert [isa.find_bit(q).index for q in inst.qubits] == cut["qubits"]
    with pytest.raises(CuttingError, match="acts on 5 qubits but the circuit has 27 or its 8"):
        cut_and_run(isa, mean_z(5), pools=["cpu"], max_subcircuit_qubits=4)


def test_cli_runs_an_isa_circuit_from_qasm(tmp_path: Path) -> None:
    logical, isa = isa_circuit()
    proc = cli(tmp_path, isa, "observable=mean-z", "planner.max_subcircuit_qubits=4")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "result.json").read_text())
    # mean of Z over all 27 wires: the 8 logical qubits plus 19 wires left in |0>
    expected = (8 * exact(logical, mean_z(8)) + 19) / 27
    assert data["value"] == pytest.approx(expected, abs=1e-9)
    assert data["configuration"]["idle_qubits_removed"] == 19


def test_plan_names_every_cut_and_draws_the_circuit_with_them(tmp_path: Path) -> None:
    picture = tmp_path / "cuts.png"
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "plan",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        *("--set", "pools=cpu", "--set", "circuit.generator=bus", "--set", "circuit.qubits=9"),
        *("--set", "circuit.depth=1", "--set", "planner.max_subcircuit_qubits=5"),
        *("--run-dir", str(tmp_path / "plan"), "--circuit-picture", str(picture)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "cuts of the chosen configuration" in proc.stdout
    # the bus qubit's wire is cut once, just before its CX onto qubit 5 (instruction 21)
    row = next(
        line
        for line in proc.stdout.splitlines()
        if line.startswith("│") and "wire" in line and "21" in line
    )
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "0",
        "wire",
        "21",
        "cx",
        "0,5",
        "0",
        "0-1",
    ]
    assert picture.read_bytes()[:4] == b"\x89PNG"


def mixed_shapes() -> QuantumCircuit:
    """A 6-qubit chain that must be cut at width 3, a separate 2-qubit piece (a partition
    without cut sites), an idle qubit, barriers and final measurements."""
    qc = QuantumCircuit(9)
    qc.compose(chain(6), range(6), inplace=True)
    qc.ry(0.3, 2)
    qc.barrier()
    qc.h(7)
    qc.cz(7, 8)
    qc.rx(0.4, 8)
    qc.measure_all()
    return qc


@pytest.mark.parametrize(
    ("make", "limit", "cuts"),
    [(mixed_shapes, 3, True), (lambda: QuantumCircuit(1), 2, False)],
    ids=["cut-uncut-idle-measured", "one-qubit-zero-gate"],
)
def test_cli_runs_mixed_shapes_and_a_zero_gate_circuit(
    tmp_path: Path, make, limit: int, cuts: bool
) -> None:
    qc = make()
    proc = cli(tmp_path, qc, "observable=mean-z", f"planner.max_subcircuit_qubits={limit}")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "result.json").read_text())
    config = data["configuration"]
    assert bool(config["cuts"]) == cuts
    assert data["value"] == pytest.approx(exact(qc, mean_z(qc.num_qubits)), abs=1e-9)
    if cuts:
        assert config["idle_qubits_removed"] == 1
        assert any(p["original_qubits"] == [7, 8] for p in config["partitions"])
