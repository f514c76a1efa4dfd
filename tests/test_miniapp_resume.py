"""``parsl-quantum run --resume`` on mini-app templates: every task the first run finished is
taken from its checkpoint (warm-ups, which exist to run, excepted), and the resumed run gives
the same answer."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from parsl_quantum.reliability.memo_ids import id_for_memo

CLI = [sys.executable, "-m", "parsl_quantum.workflow.cli"]
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # kind: (template, changes, result field that must come back identical)
    "ensemble": (
        "ensemble.yaml",
        {"pools": ["cpu"], "circuits": {"count": 12, "qubits": 4, "depth": 4, "seed": 3}},
        "values",
    ),
    "variational": (
        "variational.yaml",
        {
            "hamiltonian": {"model": "heisenberg", "qubits": 4, "periodic": False},
            "ansatz": {"layers": 1},
            "optimizer": {"method": "lbfgs", "max_iterations": 12, "seed": 3},
        },
        "value",
    ),
    "error-mitigation": (
        "error-mitigation.yaml",
        {"circuits": {"family": "mirror", "count": 2, "qubits": 3, "layers": 2, "seed": 5}},
        "value",
    ),
    "qml-compression": (
        "qml-compression.yaml",
        {
            "data": {"qubits": 4, "train": 3},
            "model": {"latent": 2, "layers": 1},
            "optimizer": {"method": "lbfgs", "max_iterations": 3, "seed": 1},
        },
        "value",
    ),
    "qml-generative": (
        "qml-generative.yaml",
        {
            "target": {"name": "bars-and-stripes", "rows": 2, "cols": 2},
            "optimizer": {"method": "lbfgs", "max_iterations": 3, "seed": 1},
            "eval_shots": 500,
        },
        "value",
    ),
    "qml-training": (
        "qml-training.yaml",
        {
            "dataset": {"train": 40, "test": 40, "seed": 1},
            "training": {"steps": 4, "batch_size": 16, "eval_every": 2, "seed": 1},
            "target_accuracy": 0.0,
        },
        "value",
    ),
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CLI, "run", *args, "--quiet"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done


def cacheable_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "tasks.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["kind"] != "warmup"]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_resumed_mini_app_reuses_every_finished_task(kind: str, tmp_path: Path) -> None:
    name, changes, field = CASES[kind]
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"

    run_cli(str(path), "--run-dir", str(run_dir))
    first = json.loads((run_dir / "result.json").read_text())
    finished = cacheable_rows(run_dir)
    assert finished and all(r["status"] == "done" for r in finished)

    run_cli("--resume", str(run_dir))
    again = json.loads((run_dir / "result.json").read_text())
    assert again["configuration"]["reused_from_checkpoint"] == len(finished)
    assert len(cacheable_rows(run_dir)) == len(finished)
    np.testing.assert_array_equal(np.asarray(again[field]), np.asarray(first[field]))


def test_circuit_and_operator_ids_follow_content_not_identity() -> None:
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp

    def circuit(angle: float, name: str) -> QuantumCircuit:
        qc = QuantumCircuit(2, name=name)
        qc.ry(angle, 0)
        qc.cx(0, 1)
        return qc

    assert id_for_memo(circuit(0.5, "a")) == id_for_memo(circuit(0.5, "b"))
    assert id_for_memo(circuit(0.5, "a")) != id_for_memo(circuit(0.25, "a"))
    flipped = QuantumCircuit(2)
    flipped.ry(0.5, 0)
    flipped.cx(1, 0)
    assert id_for_memo(flipped) != id_for_memo(circuit(0.5, "a"))

    def ansatz() -> QuantumCircuit:  # fresh Parameter objects (new UUIDs) each call
        theta = ParameterVector("t", 2)
        qc = QuantumCircuit(1)
        qc.rx(theta[0], 0)
        qc.rz(theta[1], 0)
        return qc

    assert id_for_memo(ansatz()) == id_for_memo(ansatz())
    assert id_for_memo(SparsePauliOp(["ZI", "IZ"], [0.5, 0.5])) == id_for_memo(
        SparsePauliOp(["ZI", "IZ"], [0.5, 0.5])
    )
    assert id_for_memo(SparsePauliOp(["ZI", "IZ"], [0.5, 0.5])) != id_for_memo(
        SparsePauliOp(["ZI", "IZ"], [0.5, -0.5])
    )
    assert id_for_memo(np.int64(3)) != id_for_memo(np.float64(3))
