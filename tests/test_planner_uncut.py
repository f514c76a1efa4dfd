"""The planner may decide not to cut: uncut Aer candidates (statevector, MPS), their bounds,
the uncut task's MPS cap and fallback, and uncut runs on real local pools and from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import parsl
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from parsl_quantum import configs
from parsl_quantum.circuits import efficient_su2_circuit, exact_values, parse_observable
from parsl_quantum.cutting.problem import cut_by_labels
from parsl_quantum.executors import PoolInfo
from parsl_quantum.executors.whole import MPSBoundExceeded, evaluate_whole
from parsl_quantum.planner.cost import MPS_MAX_BOND, CostModel, mps_bond_bound
from parsl_quantum.planner.plan import plan_workload
from parsl_quantum.workflow.cut_and_run import cut_and_run, plan_cutting, reference_method

ROOT = Path(__file__).resolve().parent.parent

CPU = PoolInfo("cpu", ("aer",), 2, "cpu-sim", 30, True)
QPU = PoolInfo("qpu", ("fake:fake_perth",), 1, "qpu", 7, False)
MODEL = CostModel(kinds={"cpu": "cpu-sim", "qpu": "qpu"})
UNCUT = {"statevector", "mps"}


def reference_value(circuit: QuantumCircuit, obs: SparsePauliOp, force: bool = False) -> float:
    """The exact value by direct Aer simulation, with the method the cutting job would use."""
    method = reference_method(circuit, force=force)
    assert method is not None
    return float(exact_values(circuit, [obs], method=method)[0].real)


def main_job(n: int = 24) -> tuple[QuantumCircuit, SparsePauliOp]:
    """The circuit and observable of ``workflows/circuit-cutting.yaml``."""
    return efficient_su2_circuit(n, 2, "linear", seed=1234), parse_observable("mean-z", n)


def scrambler(n: int, layers: int, seed: int = 5) -> QuantumCircuit:
    """Random rotations and CX gates between random pairs: entangles far beyond a small bond."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    for _ in range(layers):
        for q in range(n):
            qc.rx(rng.uniform(0, np.pi), q)
            qc.rz(rng.uniform(0, np.pi), q)
        for a in range(n):
            b = int(rng.integers(n - 1))
            qc.cx(a, b if b < a else b + 1)
    return qc


def exact(qc: QuantumCircuit, labels: list[str]) -> np.ndarray:
    state = Statevector(qc)
    return np.array([state.expectation_value(SparsePauliOp(label)).real for label in labels])


def methods(plan) -> set[str]:
    return {c.method for c in plan.candidates}


# -- the planner, without Parsl ------------------------------------------------------------


def test_a_one_qubit_circuit_unset_limit_offers_uncut_and_no_cut() -> None:
    qc = QuantumCircuit(1)
    qc.h(0)
    plan = plan_workload(qc, SparsePauliOp("X"), {"cpu": CPU}, model=MODEL)
    assert methods(plan) == {"engine", "statevector", "mps"}
    for cand in plan.candidates:
        s = cand.summary()
        assert (s["partitions"], s["cuts"], s["widths"]) == (1, 0, [1])
    mps = next(c for c in plan.candidates if c.method == "mps")
    assert mps.label == "uncut (mps)" and mps.summary()["label"] == "uncut (mps)"


def test_an_empty_circuit_stays_on_the_engine() -> None:
    # idle wires are dropped down to one; the Aer task's overhead is not worth paying for it
    plan = plan_workload(QuantumCircuit(2), SparsePauliOp("ZZ"), {"cpu": CPU}, model=MODEL)
    assert methods(plan) == {"engine", "statevector", "mps"}
    assert plan.chosen.method == "engine" and plan.chosen.label == "no cut"


def test_the_main_job_with_the_limit_unset_weighs_uncut_against_cuts() -> None:
    circuit, obs = main_job()
    plan = plan_workload(circuit, obs, {"cpu": CPU, "qpu": QPU}, model=MODEL)
    assert methods(plan) >= {"statevector", "mps", "engine"}
    assert any(c.parts > 1 for c in plan.candidates)
    assert plan.chosen.makespan == min(c.makespan for c in plan.candidates if c.fits)
    assert plan.chosen.label in plan.reason
    # statevector: ~2^n work; the MPS prediction follows the circuit's small bond dimension
    sv = next(c for c in plan.candidates if c.method == "statevector")
    mps = next(c for c in plan.candidates if c.method == "mps")
    assert mps.makespan < sv.makespan
    assert sv.peak_memory == 32 * 2**24


def test_a_limit_below_the_width_never_yields_uncut() -> None:
    circuit, obs = main_job()
    for limit in (6, 12, 23):
        plan = plan_workload(circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=limit, model=MODEL)
        assert not methods(plan) & UNCUT
        assert all(max(c.widths) <= limit for c in plan.candidates)


def test_a_limit_at_or_above_the_width_offers_uncut() -> None:
    circuit, obs = main_job(10)
    for limit in (10, 30):
        plan = plan_workload(circuit, obs, {"cpu": CPU}, max_subcircuit_qubits=limit, model=MODEL)
        assert methods(plan) == {"engine", "statevector", "mps"}


def test_a_sampled_run_gets_no_uncut_candidate() -> None:
    circuit, obs = main_job(10)
    plan = plan_workload(circuit, obs, {"cpu": CPU}, model=MODEL, mode="sampled")
    assert not methods(plan) & UNCUT


def test_uncut_is_offered_only_on_pools_that_hold_the_circuit() -> None:
    circuit, obs = main_job(24)
    narrow = PoolInfo("cpu", ("aer",), 2, "cpu-sim", 20, True)
    plan = plan_workload(circuit, obs, {"cpu": narrow, "wide": CPU}, model=MODEL)
    for cand in plan.candidates:
        if cand.method in UNCUT:
            assert set(cand.graph.nodes["evaluate:0:0"]["pool_costs"]) == {"wide"}
    plan = plan_workload(circuit, obs, {"cpu": narrow}, model=MODEL)
    assert not methods(plan) & UNCUT


def test_qpu_pieces_and_uncut_tasks_never_exceed_the_device_width() -> None:
    circuit, obs = main_job(16)
    pools = {"cpu": CPU, "qpu": QPU}
    for mode in ("auto", "sampled"):
        plan = plan_workload(circuit, obs, pools, model=MODEL, mode=mode)
        for cand in plan.candidates:
            for _, data in cand.graph.nodes(data=True):
                if data["kind"] != "evaluate":
                    continue
                if "qpu" in data["pool_costs"]:
                    assert data["qubits"] <= QPU.max_qubits
                if "whole" in data:
                    assert set(data["pool_costs"]) == {"cpu"}
    only_qpu = plan_workload(circuit, obs, {"qpu": QPU}, model=MODEL)
    assert not methods(only_qpu) & UNCUT
    assert all(max(c.widths) <= QPU.max_qubits for c in only_qpu.candidates)


def test_bond_bound_follows_the_two_qubit_gate_structure() -> None:
    ghz = QuantumCircuit(6)
    ghz.h(0)
    for q in range(5):
        ghz.cx(q, q + 1)

    def bound(qc: QuantumCircuit) -> int:
        return mps_bond_bound(
            cut_by_labels(qc, SparsePauliOp("I" * qc.num_qubits), [0] * qc.num_qubits).partitions[0]
        )

    assert bound(QuantumCircuit(1)) == 1
    assert bound(ghz) == 2
    assert bound(main_job(24)[0]) == 4  # reps=2 of a linear CX chain
    swaps = QuantumCircuit(4)
    swaps.swap(0, 3)  # operator Schmidt rank 4 across every bond, capped at the edges
    assert bound(swaps) == 4
    assert bound(scrambler(24, 4)) > MPS_MAX_BOND


def test_a_circuit_too_entangled_for_mps_gets_no_mps_candidate() -> None:
    qc = scrambler(24, 4)
    plan = plan_workload(qc, parse_observable("mean-z", 24), {"cpu": CPU}, model=MODEL)
    assert "mps" not in methods(plan) and "statevector" in methods(plan)


# -- the uncut task, without Parsl ---------------------------------------------------------


def test_uncut_task_is_exact_with_both_methods() -> None:
    qc = efficient_su2_circuit(6, 2, "circular", seed=2)
    labels = ["ZIIIIZ", "XXIIII", "IIYIZI", "IIIIII"]
    want = exact(qc, labels)
    for method, name in (("statevector", "aer-statevector"), ("mps", "aer-mps")):
        result = evaluate_whole(qc, labels, method=method, max_bond=64, statevector_qubits=6)
        assert result.method == name
        np.testing.assert_allclose(result.values[0], want, atol=1e-10)


def test_mps_that_needs_a_larger_bond_falls_back_to_statevector_exactly() -> None:
    qc = scrambler(8, 3)
    labels = ["ZZZZZZZZ", "IIIXIIII"]
    result = evaluate_whole(qc, labels, method="mps", max_bond=2, statevector_qubits=8)
    assert result.method == "aer-mps>statevector"
    np.testing.assert_allclose(result.values[0], exact(qc, labels), atol=1e-10)


def test_mps_that_needs_a_larger_bond_and_cannot_fall_back_fails_in_one_line() -> None:
    qc = scrambler(8, 3)
    with pytest.raises(MPSBoundExceeded) as info:
        evaluate_whole(qc, ["Z" * 8], method="mps", max_bond=2, statevector_qubits=6)
    message = str(info.value)
    assert "\n" not in message
    assert "bond dimension above 2" in message and "max_subcircuit_qubits" in message


# -- on real local pools and from the CLI --------------------------------------------------


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("pools")
    with parsl.load(configs.local(run_dir, ("cpu", "qpu"), monitoring=False)):
        yield run_dir
    parsl.clear()


def test_main_job_with_the_limit_unset_equals_the_reference(pools: Path) -> None:
    circuit, obs = main_job()
    result = cut_and_run(circuit, obs, pools=["cpu", "qpu"], mode="exact", run_dir=pools / "a")
    assert result.value == pytest.approx(reference_value(circuit, obs), abs=1e-10)
    assert result.std_error == 0.0
    assert result.configuration["candidate"] == result.plan.chosen.label


def test_an_uncut_mps_run_reports_one_piece_and_no_cut(pools: Path) -> None:
    circuit, obs = main_job()
    infos = {"cpu": CPU}
    plan = plan_cutting(circuit, obs, infos, partitions=[1])
    assert plan.chosen.method == "mps"
    result = cut_and_run(circuit, obs, pools=["cpu"], plan=plan, run_dir=pools / "b")
    assert result.value == pytest.approx(reference_value(circuit, obs), abs=1e-10)
    assert result.std_error == 0.0
    config = result.configuration
    assert config["candidate"] == "uncut (mps)" and "uncut (mps)" in config["reason"]
    assert config["cuts"] == [] and config["methods"] == ["aer-mps"]
    assert [p["qubits"] for p in config["partitions"]] == [24]
    assert result.tasks == 1
    saved = json.loads((pools / "b" / "plan.json").read_text())
    assert saved["chosen"]["label"] == "uncut (mps)" and saved["chosen"]["cuts"] == 0


def plan_cli(tmp_path: Path, *sets: str) -> tuple[str, dict]:
    out = tmp_path / "plan.json"
    cmd = [sys.executable, "-m", "parsl_quantum.workflow.cli", "plan"]
    cmd += [str(ROOT / "workflows" / "circuit-cutting.yaml"), "--json", str(out)]
    cmd += ["--run-dir", str(tmp_path / "run")]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_cli_plan_lists_uncut_rows_beside_cut_ones(tmp_path: Path) -> None:
    stdout, doc = plan_cli(tmp_path, "planner.max_subcircuit_qubits=null")
    rows = [line for line in stdout.splitlines() if "│" in line]
    assert any("statevector" in r for r in rows) and any(" mps " in r for r in rows)
    labels = [c["label"] for c in doc["candidates"]]
    assert "uncut (statevector)" in labels and "uncut (mps)" in labels
    assert any(c["cuts"] > 0 for c in doc["candidates"])
    assert doc["chosen"]["label"] in doc["reason"]


def test_cli_plan_with_the_old_limit_lists_no_uncut_row(tmp_path: Path) -> None:
    _, doc = plan_cli(tmp_path, "planner.max_subcircuit_qubits=12")
    assert {c["method"] for c in doc["candidates"]} == {"engine"}


def forced_mps(circuit: QuantumCircuit, obs: SparsePauliOp, max_bond: int, sv_qubits: int):
    """A plan whose chosen candidate is the uncut MPS one with a bond cap below what the
    circuit needs (as if the prediction were wrong) and a given statevector fallback width."""
    plan = plan_cutting(circuit, obs, {"cpu": CPU}, partitions=[1])
    plan.chosen = next(c for c in plan.candidates if c.method == "mps")
    plan.chosen.graph.nodes["evaluate:0:0"]["whole"].update(
        max_bond=max_bond, statevector_qubits=sv_qubits
    )
    return plan


def test_a_wrong_mps_guess_falls_back_to_statevector_in_a_run(pools: Path) -> None:
    qc, obs = scrambler(8, 3), parse_observable("mean-z", 8)
    result = cut_and_run(qc, obs, pools=["cpu"], plan=forced_mps(qc, obs, 2, 8))
    assert result.configuration["methods"] == ["aer-mps>statevector"]
    assert result.value == pytest.approx(reference_value(qc, obs, force=True), abs=1e-10)


def test_a_wrong_mps_guess_without_room_for_statevector_ends_the_run_in_one_line(
    pools: Path,
) -> None:
    from parsl_quantum.planner.dispatch import DispatchError

    qc, obs = scrambler(8, 3), parse_observable("mean-z", 8)
    with pytest.raises(DispatchError) as info:
        cut_and_run(qc, obs, pools=["cpu"], plan=forced_mps(qc, obs, 2, 6))
    message = str(info.value)
    assert "\n" not in message and "set planner.max_subcircuit_qubits to cut it" in message
