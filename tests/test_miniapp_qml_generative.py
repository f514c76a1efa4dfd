"""The QML-generative mini-app: targets, kernel, MMD parameter-shift gradients, exact and sampled
distributions from the backends, and Born machines trained on a local CPU pool reaching the
stated KL divergence (and sampled on the noisy fake device)."""

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

from miniapps import qml_generative as qcbm
from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU, get_backend
from parsl_quantum.workflow import cli

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("qml-generative")
    with parsl.load(configs.local(run_dir, pools=("cpu", "qpu"), monitoring=False)):
        yield run_dir


def probabilities(model, rows: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([Statevector(model.assign_parameters(r)).probabilities() for r in rows])


# --- targets, kernel, gradient, no Parsl ----------------------------------------------------


def test_bars_and_stripes_patterns() -> None:
    p = qcbm.bars_and_stripes(2, 2)
    assert list(np.flatnonzero(p)) == [0, 3, 5, 10, 12, 15]  # 00/11 rows or columns
    assert np.allclose(p[p > 0], 1 / 6)
    assert np.count_nonzero(qcbm.bars_and_stripes(3, 3)) == 14
    assert np.count_nonzero(qcbm.bars_and_stripes(1, 1)) == 2  # degenerate: both pixels
    # every pattern of 3x3 has equal rows or equal columns
    for x in np.flatnonzero(qcbm.bars_and_stripes(3, 3)):
        grid = np.array([(x >> i) & 1 for i in range(9)]).reshape(3, 3)
        assert (grid == grid[0]).all() or (grid.T[0] == grid.T).all()


def test_discretized_gaussian() -> None:
    p = qcbm.discretized_gaussian(6)
    x = np.arange(64)
    assert p.sum() == pytest.approx(1.0)
    assert float(p @ x) == pytest.approx(31.5, abs=1e-9)
    assert float(np.sqrt(p @ (x - 31.5) ** 2)) == pytest.approx(8.0, rel=0.01)
    assert qcbm.discretized_gaussian(1, mean=0.0, sigma=0.5)[0] > 0.8


def test_kernel_is_positive_definite_and_kl_is_zero_only_at_the_target() -> None:
    for target, n in (("bars-and-stripes", 4), ("gaussian", 5)):
        k = qcbm.gaussian_kernel(qcbm.features(target, n), (0.25, 4.0))
        assert np.allclose(k, k.T) and np.linalg.eigvalsh(k).min() > 0
    p = qcbm.bars_and_stripes(2, 2)
    assert qcbm.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    uniform = np.full(16, 1 / 16)
    assert qcbm.kl_divergence(p, uniform) == pytest.approx(np.log(16 / 6))
    # a model missing the support is floored, not infinite
    assert np.isfinite(qcbm.kl_divergence(p, np.eye(16)[1]))


def test_walsh_hadamard_inverts_z_strings() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8))
    labels = qcbm.z_string_labels(3)
    assert labels[0] == "III" and labels[1] == "IIZ" and labels[5] == "ZIZ"
    z = np.array([sum(p[x] * (-1) ** bin(m & x).count("1") for x in range(8)) for m in range(8)])
    np.testing.assert_allclose(qcbm.walsh_hadamard(z), p, atol=1e-15)
    np.testing.assert_allclose(qcbm.walsh_hadamard(np.array([1.0])), [1.0])


def test_mmd_parameter_shift_gradient_is_exact() -> None:
    model = qcbm.born_machine(3, 2)
    target = qcbm.discretized_gaussian(3)
    kernel = qcbm.gaussian_kernel(qcbm.features("gaussian", 3), (0.25, 4.0))
    x = np.random.default_rng(4).uniform(-3, 3, model.num_parameters)
    loss, grad = qcbm.mmd_loss_and_gradient(
        probabilities(model, qcbm.shifted_points(x)), target, kernel
    )

    def mmd(y: np.ndarray) -> float:
        d = probabilities(model, y[None, :])[0] - target
        return float(d @ kernel @ d)

    assert loss == pytest.approx(mmd(x), abs=1e-14)
    eps = 1e-6
    for i in range(model.num_parameters):
        e = np.zeros_like(x)
        e[i] = eps
        assert grad[i] == pytest.approx((mmd(x + e) - mmd(x - e)) / (2 * eps), abs=1e-7)


def test_distributions_exact_and_sampled_against_the_statevector() -> None:
    model = qcbm.born_machine(4, 2)
    rows = np.random.default_rng(1).uniform(-3, 3, (3, model.num_parameters))
    ref = probabilities(model, rows)
    aer = get_backend("aer")
    (isa,) = aer.transpile([model])
    np.testing.assert_allclose(qcbm.distributions(isa, rows, "aer"), ref, atol=1e-12)
    shots = 20000
    (measured,) = aer.transpile([model.measure_all(inplace=False)])
    sampled = qcbm.distributions(measured, rows, "aer", shots=shots, seed=3)
    assert np.allclose(sampled.sum(axis=1), 1.0)
    # within 4 standard errors of a binomial count, per bit string
    assert np.all(np.abs(sampled - ref) <= 4 * np.sqrt(ref * (1 - ref) / shots) + 1e-12)
    # the fake device samples on its own layout; the result is still over the 16 bit strings
    fake = get_backend(DEFAULT_FAKE_QPU)
    (device,) = fake.transpile([model.measure_all(inplace=False)], seed=1)
    noisy = qcbm.distributions(device, rows[:1], DEFAULT_FAKE_QPU, shots=4000, seed=3)
    assert noisy.shape == (1, 16) and noisy.sum() == pytest.approx(1.0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        qcbm.check_inputs({}, ["cpu"], [], "cats", 4, None)
    with pytest.raises(ValueError, match="1 to 12 qubits"):
        qcbm.check_inputs({}, ["cpu"], [], "gaussian", 13, None)


def test_cli_refuses_exact_training_on_the_noisy_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "bad"
    code = cli.main(
        [
            "run",
            str(WORKFLOWS / "qml-generative.yaml"),
            "--set",
            "pools=qpu",
            "--run-dir",
            str(run_dir),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "has no exact estimator: set shots" in err[0]
    assert not (run_dir / "tasks.csv").exists()


# --- training on the local pools ------------------------------------------------------------


def test_gaussian_born_machine_reaches_the_target_kl(pools: Path) -> None:
    run_dir = pools / "gaussian"
    result = qcbm.run(tasks_per_step=2, run_dir=run_dir)  # defaults: 6 qubits, exact on cpu
    assert result.qubits == 6 and result.target == "gaussian"
    assert result.reached and result.kl < 0.05
    assert result.initial_kl > 1.0  # the random start is far from the target
    assert set(result.kl_by_pool) == {"cpu", "qpu"}
    assert result.kl_by_pool["cpu"] < 0.05  # 20000 ideal samples agree with the exact model
    # the noisy device is worse than ideal sampling, but still far better than the start
    assert result.kl_by_pool["cpu"] < result.kl_by_pool["qpu"] < result.initial_kl / 4
    assert result.history[-1] < result.history[0] / 100
    with (run_dir / "tasks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    steps = [r for r in rows if r["kind"] == "qcbm-distribution" and r["task"].startswith("step")]
    assert len(steps) % 2 == 0 and all(r["pool"] == "cpu" for r in steps)
    assert any(r["pool"] == "qpu" and r["task"] == "sample-qpu-0" for r in rows)
    assert all(r["status"] == "done" for r in rows)
    assert (run_dir / "born-machine.png").stat().st_size > 10_000


def test_bars_and_stripes_born_machine(pools: Path) -> None:
    params = qcbm.GenerativeParams(target="bars-and-stripes", rows=2, cols=2)
    assert params.width == 4
    result = qcbm.run(
        params,
        max_iterations=100,
        evaluate_on=["cpu"],
        run_dir=pools / "bas",
    )
    assert result.qubits == 4 and result.kl < 0.05 and result.kl < result.initial_kl / 20
    model = np.asarray(result.model_distribution)
    assert model[qcbm.bars_and_stripes(2, 2) > 0].sum() > 0.95  # mass on the patterns


def test_sampled_training_with_adam_runs(pools: Path) -> None:
    result = qcbm.run(
        target="bars-and-stripes",
        method="adam",
        shots=2000,
        max_iterations=3,
        evaluate_on=[],
        run_dir=pools / "sampled",
    )
    assert result.shots == 2000 and result.iterations == 3 and result.kl_by_pool == {}
    assert np.isclose(sum(result.model_distribution), 1.0)


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "qml-generative.yaml",
        ["target.qubits=3", "optimizer.max_iterations=3", "eval_shots=500"],
        run_dir,
    )
    assert out["qubits"] == 3 and out["iterations"] <= 3
    assert set(out["kl_by_pool"]) == {"cpu", "qpu"}
    assert out["value"] == out["kl"] >= 0.0


def test_params_from_template_bodies() -> None:
    assert qcbm.GenerativeParams.from_template({}) == qcbm.GenerativeParams()
    body = {
        "target": {
            "name": "bars-and-stripes",
            "rows": 3,
            "cols": 2,
            "qubits": 5,
            "mean": 3.0,
            "sigma": 1.5,
        },
        "model": {"layers": 2},
        "bandwidths": [1, 2],
        "optimizer": {"method": "adam", "max_iterations": 7, "learning_rate": 0.2, "seed": 4},
        "shots": 100,
        "eval_shots": 500,
        "target_kl": 0.1,
        "tasks_per_step": 2,
    }
    params = qcbm.GenerativeParams.from_template(body)
    assert params == qcbm.GenerativeParams(
        target="bars-and-stripes",
        rows=3,
        cols=2,
        qubits=5,
        mean=3.0,
        sigma=1.5,
        layers=2,
        bandwidths=(1.0, 2.0),
        method="adam",
        max_iterations=7,
        learning_rate=0.2,
        seed=4,
        shots=100,
        eval_shots=500,
        target_kl=0.1,
        tasks_per_step=2,
    )
    assert params.width == 6 and qcbm.GenerativeParams(qubits=5).width == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        qcbm.GenerativeParams().layers = 1  # type: ignore[misc]
