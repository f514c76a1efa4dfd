"""The QML-compression mini-app: the Ising data, the trash projector, parameter-shift gradients,
the reconstruction circuit against the statevector, and training on a local CPU pool reaching
the stated held-out reconstruction fidelity."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import parsl
import pytest
from conftest import RunTemplate
from qiskit.quantum_info import Statevector

from miniapps import qml_compression as qae
from parsl_quantum import configs
from parsl_quantum.workflow import cli


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("qml-compression")
    with parsl.load(configs.local(run_dir, pools=("cpu",), monitoring=False)):
        yield run_dir


def trash_fidelity(state: np.ndarray, model, x: np.ndarray, latent: int) -> float:  # type: ignore[no-untyped-def]
    qc = qae.training_circuit(state, model).assign_parameters(x)
    return float(Statevector(qc).probabilities(range(latent, model.num_qubits))[0])


# --- data, model and gradient, no Parsl -----------------------------------------------------


def test_ground_states_have_the_free_fermion_energy() -> None:
    # periodic TFIM, even-parity sector: E0 = -sum_k sqrt(1 + h^2 - 2 h cos k), k = +-pi/6,
    # +-pi/2, +-5pi/6 for 6 sites
    for h in (0.3, 1.0, 1.7):
        ham = qae.ising_hamiltonian(6, h)
        psi = qae.ground_state(ham)
        ks = [s * math.pi * (2 * m + 1) / 6 for m in range(3) for s in (1, -1)]
        exact = -sum(math.sqrt(1 + h * h - 2 * h * math.cos(k)) for k in ks)
        assert float(np.real(psi @ ham.to_matrix() @ psi)) == pytest.approx(exact, abs=1e-9)
        assert np.linalg.norm(psi) == pytest.approx(1.0, abs=1e-12)
        assert np.max(np.abs(psi)) == np.max(psi)  # the phase is fixed


def test_fields_split_into_training_and_held_out_midpoints() -> None:
    train, held_out = qae.field_values(8, 0.2, 2.0)
    assert len(train) == 8 and len(held_out) == 7
    assert train[0] == pytest.approx(0.2) and train[-1] == pytest.approx(2.0)
    assert np.all((held_out > train[:-1]) & (held_out < train[1:]))
    single, other = qae.field_values(1, 0.5, 1.5)
    assert list(single) == [0.5] and list(other) == [1.5]


def test_zero_projector_is_the_projector() -> None:
    proj = qae.zero_projector([1, 2], 3).to_matrix()
    expected = np.zeros((8, 8))
    for i in range(8):
        if (i >> 1) & 3 == 0:
            expected[i, i] = 1.0
    np.testing.assert_allclose(proj, expected, atol=1e-12)


def test_parameter_shift_gradient_of_the_trash_infidelity_is_exact() -> None:
    model = qae.encoder(4, 2)
    states = qae.ising_states(4, [0.4, 1.3])
    x = np.random.default_rng(5).normal(0, 1.0, model.num_parameters)
    values = np.array(
        [[trash_fidelity(s, model, p, 2) for p in qae.shifted_points(x)] for s in states]
    )
    cost, grad = qae.cost_and_gradient(values)

    def total(y: np.ndarray) -> float:
        return 1.0 - float(np.mean([trash_fidelity(s, model, y, 2) for s in states]))

    assert cost == pytest.approx(total(x), abs=1e-12)
    eps = 1e-5
    for i in range(model.num_parameters):
        d = np.zeros_like(x)
        d[i] = eps
        assert grad[i] == pytest.approx((total(x + d) - total(x - d)) / (2 * eps), abs=1e-7)


def test_reconstruction_circuit_gives_the_reconstruction_fidelity() -> None:
    model = qae.encoder(4, 2)
    states = qae.ising_states(4, [0.3, 0.9, 1.8])
    obs = qae.zero_projector(range(4), 6)
    for seed in range(2):
        x = np.random.default_rng(seed).normal(0, 2.0, model.num_parameters)
        exact = qae.exact_reconstruction(states, model.assign_parameters(x), 2)
        for s, f in zip(states, exact, strict=True):
            qc = qae.reconstruction_circuit(s, model, 2).assign_parameters(x)
            assert float(Statevector(qc).expectation_value(obs).real) == pytest.approx(f, abs=1e-9)
    # degenerate: 2 -> 1 qubit; at zero angles the encoder leaves |00> alone, so |00> is
    # reconstructed perfectly and |10> (trash qubit 1 set) not at all
    small = qae.encoder(2, 1)
    basis = np.eye(4)[[0, 2]]
    ident = qae.exact_reconstruction(basis, small.assign_parameters(np.zeros(4)), 1)
    np.testing.assert_allclose(ident, [1.0, 0.0], atol=1e-12)
    obs2 = qae.zero_projector(range(2), 3)
    for s, f in zip(basis, ident, strict=True):
        qc = qae.reconstruction_circuit(s, small, 1).assign_parameters(np.zeros(4))
        assert float(Statevector(qc).expectation_value(obs2).real) == pytest.approx(f, abs=1e-9)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="latent must be between 1 and qubits - 1"):
        qae.check_inputs({}, ["cpu"], 4, 4, 0.2, 2.0)
    with pytest.raises(ValueError, match="latent must be between"):
        qae.check_inputs({}, ["cpu"], 4, 0, 0.2, 2.0)
    with pytest.raises(ValueError, match="field_max"):
        qae.check_inputs({}, ["cpu"], 4, 2, 1.0, 1.0)


def test_cli_refuses_a_latent_register_as_wide_as_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "bad"
    code = cli.main(
        [
            "run",
            str(Path(__file__).resolve().parents[1] / "workflows" / "qml-compression.yaml"),
            "--set",
            "model.latent=6",
            "--run-dir",
            str(run_dir),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "latent must be between 1 and qubits - 1" in err[0]
    assert not (run_dir / "tasks.csv").exists()


# --- training on the local CPU pool ---------------------------------------------------------


def test_autoencoder_reaches_the_target_reconstruction_fidelity(pools: Path) -> None:
    run_dir = pools / "train"
    result = qae.run(shards=2, run_dir=run_dir)  # defaults: 6 -> 3 qubits, 8 training fields
    assert result.qubits == 6 and result.latent == 3
    assert result.reached and result.fidelity >= 0.95
    assert result.initial_fidelity < 0.5  # the untrained encoder loses most of each state
    assert result.train_fidelity >= 0.95 and result.trash_fidelity >= 0.95
    assert len(result.fidelities) == 7 and min(result.fidelities) > 0.9
    assert result.history[-1] < result.history[0] / 10
    # the backend's reconstruction agrees with the statevector of the trained encoder
    model = qae.encoder(6, 5).assign_parameters(result.optimal_parameters)
    _, held_out = qae.field_values(8, 0.2, 2.0)
    exact = qae.exact_reconstruction(qae.ising_states(6, held_out), model, 3)
    np.testing.assert_allclose(result.fidelities, exact, atol=1e-8)
    with (run_dir / "tasks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    evals = [r for r in rows if r["kind"] == "qae-fidelity"]
    assert all(r["status"] == "done" for r in rows)
    assert len([r for r in evals if r["task"].startswith("step-")]) % 2 == 0  # two shards a step
    assert (run_dir / "compression.png").stat().st_size > 10_000


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "qml-compression.yaml",
        [
            "data.qubits=4",
            "data.train=3",
            "model.latent=2",
            "model.layers=1",
            "optimizer.max_iterations=3",
        ],
        run_dir,
    )
    assert out["qubits"] == 4 and out["latent"] == 2 and len(out["test_fields"]) == 2
    assert 0.0 <= out["value"] <= 1.0 + 1e-9 and out["value"] == out["fidelity"]
    assert out["iterations"] <= 3


def test_params_from_template_bodies() -> None:
    assert qae.CompressionParams.from_template({}) == qae.CompressionParams()
    body = {
        "data": {"qubits": 4, "train": 3, "field_min": 0.5, "field_max": 1.5, "coupling": 2.0},
        "model": {"latent": 2, "layers": 1},
        "optimizer": {
            "method": "adam",
            "max_iterations": 5,
            "learning_rate": 0.1,
            "init_scale": 1.0,
            "seed": 2,
        },
        "target_fidelity": 0.9,
        "shards": 2,
        "precision": 0.05,
    }
    assert qae.CompressionParams.from_template(body) == qae.CompressionParams(
        qubits=4,
        train=3,
        field_min=0.5,
        field_max=1.5,
        coupling=2.0,
        latent=2,
        layers=1,
        method="adam",
        max_iterations=5,
        learning_rate=0.1,
        init_scale=1.0,
        seed=2,
        target_fidelity=0.9,
        shards=2,
        precision=0.05,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        qae.CompressionParams().qubits = 4  # type: ignore[misc]
