"""The QML-training mini-app: dataset, model, parameter-shift gradients, and data-parallel
training on a local CPU pool reaching the stated test accuracy."""

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

from miniapps import qml
from parsl_quantum import configs


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("qml")
    with parsl.load(configs.local(run_dir, pools=("cpu",), monitoring=False)):
        yield run_dir


def output(model: qml.Classifier, row: np.ndarray) -> float:
    qc = model.circuit.assign_parameters(row)
    return float(Statevector(qc).expectation_value(model.observable).real)


# --- no Parsl -------------------------------------------------------------------------------


def test_dataset_is_seeded_balanced_and_not_linearly_separable() -> None:
    x, y = qml.circle_dataset(400, seed=3)
    x2, y2 = qml.circle_dataset(400, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert 0.35 < np.mean(y == 1) < 0.5  # pi r^2 / 4 = 0.43
    assert np.all((np.sum(x**2, axis=1) < qml.CIRCLE_RADIUS**2) == (y == 1))
    # the best linear classifier (least squares) is no better than guessing the majority
    a = np.c_[x, np.ones(len(x))]
    w = np.linalg.lstsq(a, y, rcond=None)[0]
    assert np.mean(np.sign(a @ w) == y) < np.mean(y == -1) + 0.05


def test_shard_gradient_matches_finite_differences() -> None:
    model = qml.reuploading_classifier(2, 2)
    x, y = qml.circle_dataset(3, seed=1)
    w = np.random.default_rng(2).normal(0, 0.5, model.num_weights)
    values = np.array([output(model, r) for r in qml.shard_points(model, w, x)])
    loss, grad, _ = qml.loss_and_gradient(values, y, model.num_weights)

    def total_loss(weights: np.ndarray) -> float:
        rows = model.values(np.tile(weights, (len(x), 1)), x)
        return float(sum((output(model, r) - t) ** 2 for r, t in zip(rows, y, strict=True)))

    assert loss == pytest.approx(total_loss(w), abs=1e-12)
    eps = 1e-6
    for i in range(model.num_weights):
        d = np.zeros_like(w)
        d[i] = eps
        assert grad[i] == pytest.approx(
            (total_loss(w + d) - total_loss(w - d)) / (2 * eps), abs=1e-6
        )


# --- training on the local CPU pool ---------------------------------------------------------


def test_training_reaches_the_target_test_accuracy(pools: Path) -> None:
    run_dir = pools / "train"
    result = qml.run(qml.QMLParams(steps=40, batch_size=32, shards=2), run_dir=run_dir)
    assert result.reached and result.test_accuracy >= 0.85
    assert result.test_accuracies[0] < 0.75  # it learned: the untrained model is far worse
    assert result.test_accuracy > result.majority_baseline + 0.25
    assert result.test_losses[-1] < result.test_losses[0] / 2
    with (run_dir / "tasks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    shards = [r for r in rows if r["kind"] == "qml-shard"]
    assert len(shards) == 2 * 40  # data-parallel: two shard tasks per step
    assert all(r["status"] == "done" for r in rows)
    assert (run_dir / "training.png").stat().st_size > 10_000


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "qml-training.yaml",
        ["training.steps=4", "training.eval_every=2", "dataset.test=40"],
        run_dir,
    )
    assert out["eval_steps"] == [0, 2, 4] and len(out["train_loss"]) == 4
    assert 0.0 <= out["value"] <= 1.0 and out["value"] == out["test_accuracy"]


def test_params_from_template_bodies() -> None:
    assert qml.QMLParams.from_template({}) == qml.QMLParams()
    body = {
        "dataset": {"train": 8, "test": 6, "seed": 3},
        "model": {"qubits": 3, "layers": 1},
        "training": {
            "steps": 2,
            "batch_size": 4,
            "shards": 2,
            "learning_rate": 0.3,
            "eval_every": 1,
            "seed": 5,
        },
        "target_accuracy": 0.5,
        "precision": 0.1,
    }
    assert qml.QMLParams.from_template(body) == qml.QMLParams(
        train=8,
        test=6,
        data_seed=3,
        qubits=3,
        layers=1,
        steps=2,
        batch_size=4,
        shards=2,
        learning_rate=0.3,
        eval_every=1,
        seed=5,
        target_accuracy=0.5,
        precision=0.1,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        qml.QMLParams().steps = 1  # type: ignore[misc]
