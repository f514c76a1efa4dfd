"""CuttingEstimator against Qiskit's StatevectorEstimator on the same PUBs, on real local pools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import parsl
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.primitives import BaseEstimatorV2, StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

from parsl_quantum import configs
from parsl_quantum.primitives import CuttingEstimator, precision_shots

NUM_QUBITS = 6


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("estimator")
    with parsl.load(configs.local(run_dir, ("cpu",), monitoring=False)):
        yield run_dir
    parsl.clear()


@pytest.fixture(scope="module")
def ansatz() -> QuantumCircuit:
    return efficient_su2(NUM_QUBITS, reps=1, entanglement="linear")


def values(shape: tuple[int, ...], num_parameters: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (*shape, num_parameters))


def compare(pubs: list, estimator: CuttingEstimator | None = None) -> list:
    """Run the PUBs on both estimators; evs of equal shapes agree to 1e-8. Returns ours."""
    ours = (estimator or CuttingEstimator(max_subcircuit_qubits=3)).run(pubs).result()
    reference = StatevectorEstimator().run(pubs).result()
    assert len(ours) == len(reference) == len(pubs)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.data.shape == theirs.data.shape
        assert mine.data.evs.shape == theirs.data.evs.shape == mine.data.stds.shape
        np.testing.assert_allclose(mine.data.evs, theirs.data.evs, rtol=0, atol=1e-8)
    return list(ours)


def test_it_is_an_estimator_v2_at_the_top_of_the_package() -> None:
    import parsl_quantum

    assert parsl_quantum.CuttingEstimator is CuttingEstimator
    assert isinstance(CuttingEstimator(), BaseEstimatorV2)


def test_no_pubs_gives_an_empty_result(pools: Path) -> None:
    assert len(CuttingEstimator().run([]).result()) == 0


def test_zero_parameter_sets_give_empty_arrays(pools: Path, ansatz: QuantumCircuit) -> None:
    pub = (ansatz, "Z" * NUM_QUBITS, np.zeros((0, ansatz.num_parameters)))
    (result,) = compare([pub])
    assert result.data.evs.shape == (0,)
    assert result.metadata["cutting"]["evaluations"] == 0


def test_unparameterized_circuit_scalar_observable(pools: Path) -> None:
    circuit = efficient_su2(NUM_QUBITS, reps=1, entanglement="linear").assign_parameters(
        values((), 4 * NUM_QUBITS, 1)
    )
    (result,) = compare([(circuit, SparsePauliOp.from_list([("ZZIIII", 0.5), ("IIXIIY", -1)]))])
    assert result.data.evs.shape == ()
    assert result.data.stds == 0.0
    plan = result.metadata["cutting"]
    assert len(plan["cuts"]) >= 1 and len(plan["partitions"]) == 2
    assert all(p["qubits"] <= 3 for p in plan["partitions"]) and plan["pools"] == ["cpu"]
    assert plan["tasks"] >= 2 and set(plan["timings"]) >= {"plan", "evaluate", "reconstruct"}


def test_one_dimensional_parameters(pools: Path, ansatz: QuantumCircuit) -> None:
    pub = (ansatz, "IIXXII", values((3,), ansatz.num_parameters, 2))
    (result,) = compare([pub])
    assert result.data.evs.shape == (3,)
    assert result.metadata["cutting"]["evaluations"] == 3


def test_two_dimensional_parameters_broadcast_against_observables(
    pools: Path, ansatz: QuantumCircuit
) -> None:
    pub = (ansatz, [["ZIIIIZ"], ["IIZZII"]], values((2, 2), ansatz.num_parameters, 3))
    (result,) = compare([pub])
    assert result.data.evs.shape == (2, 2)


def test_several_observables_and_elementwise_broadcasting(
    pools: Path, ansatz: QuantumCircuit
) -> None:
    obs = ["ZIIIII", SparsePauliOp.from_list([("XXIIII", 1), ("IIIYYI", 2)]), "IIIIIZ"]
    many_obs = (ansatz, obs, values((), ansatz.num_parameters, 4))
    paired = (ansatz, obs, values((3,), ansatz.num_parameters, 5))
    results = compare([many_obs, paired])
    assert [r.data.evs.shape for r in results] == [(3,), (3,)]


def test_a_repeated_parameter_set_reuses_its_plan(pools: Path, ansatz: QuantumCircuit) -> None:
    row = values((), ansatz.num_parameters, 8)
    (result,) = compare([(ansatz, ["ZIIIIZ", "ZIIIIZ"], np.stack([row, row]))])
    plan = result.metadata["cutting"]
    assert (plan["evaluations"], plan["plans"]) == (4, 1)
    assert result.data.evs[0] == result.data.evs[1]


def test_sampled_precision_sets_shots_and_errors(pools: Path) -> None:
    circuit = efficient_su2(4, reps=1, entanglement="linear").assign_parameters(values((), 16, 6))
    obs = SparsePauliOp("ZZZZ")
    estimator = CuttingEstimator(max_subcircuit_qubits=2, mode="sampled", seed=7)
    (result,) = estimator.run([(circuit, obs)], precision=0.05).result()
    (exact,) = StatevectorEstimator().run([(circuit, obs)]).result()
    plan = result.metadata["cutting"]
    assert result.metadata["target_precision"] == 0.05
    overhead = float(np.prod([9.0 for c in plan["cuts"] if c["gate"] == "cx"]))
    assert plan["shots"] == [precision_shots(0.05, overhead)]
    assert 0 < float(result.data.stds) < 0.2
    assert abs(float(result.data.evs) - float(exact.data.evs)) < 5 * float(result.data.stds)


def test_bad_input_fails_at_run(pools: Path, ansatz: QuantumCircuit) -> None:
    with pytest.raises(ValueError, match="number of qubits"):
        CuttingEstimator().run([(ansatz, "ZZ", values((), ansatz.num_parameters, 0))])
    with pytest.raises(ValueError, match="unknown pool 'gpu0'"):
        CuttingEstimator(pools=["gpu0"]).run([(ansatz, "Z" * NUM_QUBITS, np.zeros(24))])
    with pytest.raises(ValueError, match="max_subcircuit_qubits"):
        CuttingEstimator(max_subcircuit_qubits=0)
    with pytest.raises(ValueError, match="precision 0"):
        precision_shots(0.0, 1.0)


def vqe(estimator: BaseEstimatorV2, ansatz: QuantumCircuit, hamiltonian: SparsePauliOp) -> float:
    """A textbook VQE loop written for any Estimator V2."""

    def energy(theta: np.ndarray) -> float:
        return float(estimator.run([(ansatz, hamiltonian, theta)]).result()[0].data.evs)

    start = np.full(ansatz.num_parameters, 0.1)
    return float(minimize(energy, start, method="COBYLA", options={"maxiter": 400}).fun)


def test_vqe_loop_runs_unchanged(pools: Path) -> None:
    """Optimiser paths part at rounding-level differences; both reach the ground energy."""
    ansatz = real_amplitudes(4, reps=1)
    hamiltonian = SparsePauliOp.from_list(
        [("ZZII", 1.0), ("IZZI", 1.0), ("IIZZ", 1.0), ("XIII", 0.5), ("IIIX", 0.5)]
    )
    ground = float(np.linalg.eigvalsh(hamiltonian.to_matrix())[0])
    reference = vqe(StatevectorEstimator(), ansatz, hamiltonian)
    cut = vqe(CuttingEstimator(max_subcircuit_qubits=2, mode="exact"), ansatz, hamiltonian)
    assert reference == pytest.approx(ground, abs=1e-6)
    assert cut == pytest.approx(reference, abs=1e-6)
