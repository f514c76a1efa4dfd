"""The error-mitigation mini-app: folding keeps the ideal circuit, extrapolation is exact on
polynomials, and on the noisy fake QPU zero-noise extrapolation measurably beats the raw value."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import parsl
import pytest
from conftest import RunTemplate
from qiskit.quantum_info import Operator, SparsePauliOp

from miniapps import mitigation as zne
from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU, get_backend


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("mitigation")
    with parsl.load(configs.local(run_dir, pools=("cpu", "qpu"), monitoring=False)):
        yield run_dir


# --- no Parsl -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["global", "gates_at_random"])
def test_folding_keeps_the_unitary_and_scales_the_gates(method: zne.Fold) -> None:
    qc = zne.layered_circuit(3, 3, seed=4)
    for scale in (3.0, 5.0):
        folded = zne.fold(qc, scale, method, seed=1)
        assert Operator(folded).equiv(Operator(qc))
        assert folded.size() == pytest.approx(scale * qc.size(), rel=0.1)


def test_mirror_circuits_have_ideal_value_one() -> None:
    obs = SparsePauliOp.from_sparse_list([("Z", [q], 0.25) for q in range(4)], 4)
    for seed in range(3):
        assert zne.ideal_value(zne.mirror_circuit(4, 3, seed), obs) == pytest.approx(1.0)


def test_device_chain_is_a_connected_path_on_the_fake_device() -> None:
    coupling = get_backend(DEFAULT_FAKE_QPU).spec.coupling_map
    assert coupling is not None
    edges = {tuple(e) for e in coupling} | {(b, a) for a, b in coupling}
    path = zne.device_chain(coupling, 4)
    assert path is not None and len(set(path)) == 4
    assert all((a, b) in edges for a, b in zip(path, path[1:], strict=False))
    assert zne.device_chain(None, 4) is None
    with pytest.raises(ValueError, match="no chain of 40"):
        zne.device_chain(coupling, 40)


def test_extrapolation_is_exact_on_polynomial_data() -> None:
    scales = [1.0, 3.0, 5.0]
    quad = [0.9 - 0.05 * s + 0.002 * s**2 for s in scales]
    assert zne.extrapolate("richardson", scales, quad) == pytest.approx(0.9)
    assert zne.extrapolate("linear", scales[:2], [0.8, 0.6]) == pytest.approx(0.9)


# --- on the local pools ---------------------------------------------------------------------


def test_zne_beats_the_unmitigated_value_on_the_noisy_qpu(pools: Path) -> None:
    run_dir = pools / "qpu"
    result = zne.run(count=4, qubits=4, layers=4, pools=["qpu"], run_dir=run_dir)
    noisy = np.asarray(result.noisy)
    # the folds survived compilation: 1:3:5 two-qubit gates, and the value decays with scale
    assert all(g[1] == 3 * g[0] and g[2] == 5 * g[0] for g in result.two_qubit_gates)
    assert np.all(np.diff(noisy, axis=1) < 0)
    assert result.ideal == pytest.approx([1.0] * 4)
    # the headline: mitigation measurably reduces the error against the ideal value
    assert result.unmitigated_error > 0.05
    assert result.mitigated_error["richardson"] < 0.7 * result.unmitigated_error
    assert result.mitigated_error["linear"] < result.unmitigated_error
    assert result.tasks == 12
    with (run_dir / "tasks.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "zne-point"]
    assert len(rows) == 12 and {r["backend"] for r in rows} == {DEFAULT_FAKE_QPU}
    assert {r["shots"] for r in rows} == {"10000"}
    assert (run_dir / "zne.png").stat().st_size > 10_000


def test_on_an_exact_pool_every_scale_gives_the_ideal_value(pools: Path) -> None:
    circuits = zne.make_circuits("random", 2, 3, 2, seed=9)
    result = zne.run(
        circuits, observable="ZZI", pools=["cpu"], precision=None, run_dir=pools / "cpu"
    )
    for row, ideal in zip(result.noisy, result.ideal, strict=True):
        assert row == pytest.approx([ideal] * 3, abs=1e-9)
    assert result.mitigated_error["richardson"] < 1e-8


def test_template_runs_and_returns_json(pools: Path, run_template: RunTemplate) -> None:
    run_dir = pools / "template"
    out = run_template(
        "error-mitigation.yaml",
        ["circuits.count=1", "circuits.layers=2", "scale_factors=[1, 3]", "factories=[linear]"],
        run_dir,
    )
    assert out["tasks"] == 2 and list(out["mitigated"]) == ["linear"]
    assert out["value"] == out["mitigated_error"]["linear"]


def test_params_from_template_bodies() -> None:
    assert zne.MitigationParams.from_template({}) == zne.MitigationParams()
    body = {
        "circuits": {"family": "random", "count": 2, "qubits": 3, "layers": 1, "seed": 4},
        "observable": "ZZI",
        "scale_factors": [1, 3],
        "fold": "gates_at_random",
        "factories": ["linear"],
        "precision": 0.02,
        "seed": 5,
    }
    assert zne.MitigationParams.from_template(body) == zne.MitigationParams(
        family="random",
        count=2,
        qubits=3,
        layers=1,
        circuit_seed=4,
        observable="ZZI",
        scale_factors=(1, 3),
        fold_method="gates_at_random",
        factories=("linear",),
        precision=0.02,
        seed=5,
    )
    qasm = zne.MitigationParams.from_template({"circuits": {"qasm": ["a.qasm"]}})
    assert qasm.qasm == ("a.qasm",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        zne.MitigationParams().seed = 1  # type: ignore[misc]
