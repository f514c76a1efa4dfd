"""The vendor simulators behind the registry (``braket:local``, ``pennylane:lightning.qubit``):
names, specs, and their estimator and sampler against Aer on the same circuits (exact to
1e-8, sampled within 4 standard errors), and a mini-app running on a pool of each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import parsl
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.quantum_info import SparsePauliOp

from miniapps import ensemble, qml_generative
from parsl_quantum import configs
from parsl_quantum.backends import (
    BackendUnavailableError,
    available_backends,
    canonical_name,
    get_backend,
)
from parsl_quantum.backends.vendor_packages import VENDOR_PACKAGES, vendor_missing_reason

VENDORS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(module) is None, reason=f"{dist} is not installed"
        ),
    )
    for name, (module, dist) in VENDOR_PACKAGES.items()
]


def circuits() -> list[QuantumCircuit]:
    """Entangling circuits with every gate family the compilers emit, and a parameterized one."""
    rng = np.random.default_rng(11)
    ghz = QuantumCircuit(4, name="ghz-phases")
    ghz.h(0)
    for q in range(3):
        ghz.cx(q, q + 1)
    ghz.rz(0.3, 2)
    ghz.s(1)
    ghz.t(3)
    ghz.sx(0)
    mixed = QuantumCircuit(3, name="mixed")
    mixed.ry(0.4, 0)
    mixed.crx(0.9, 0, 2)
    mixed.swap(1, 2)
    mixed.rzz(0.7, 0, 1)
    mixed.u(0.1, 0.2, 0.3, 2)
    mixed.ccx(0, 1, 2)
    su2 = efficient_su2(5, reps=2, entanglement="circular")
    return [ghz, mixed, su2.assign_parameters(rng.uniform(-np.pi, np.pi, su2.num_parameters))]


def test_names_are_canonical_and_listed() -> None:
    assert canonical_name("braket:local") == "braket:local"
    assert canonical_name("PennyLane:Lightning") == "pennylane:lightning.qubit"
    assert canonical_name("pennylane:lightning.qubit") == "pennylane:lightning.qubit"
    for name in VENDOR_PACKAGES:
        assert (name in available_backends()) == (vendor_missing_reason(name) is None)


def test_unknown_vendor_name_suggests_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="did you mean braket:local"):
        canonical_name("braket:locl")


@pytest.mark.parametrize("name", VENDORS)
def test_spec_and_options(name: str) -> None:
    backend = get_backend(name, max_concurrent_jobs=2)
    spec = backend.spec
    assert spec.name == name and spec.kind == "cpu-sim" and spec.exact and not spec.noisy
    assert spec.max_concurrent_jobs == 2 and spec.max_qubits >= 20
    assert isinstance(backend.estimator(), BaseEstimatorV2)
    assert isinstance(backend.sampler(), BaseSamplerV2)
    with pytest.raises(ValueError, match="does not accept option"):
        get_backend(name, method="statevector")


def test_missing_package_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *a: None if module == "qiskit_braket_provider" else real(module, *a),
    )
    with pytest.raises(BackendUnavailableError, match="qiskit-braket-provider package"):
        get_backend("braket:local")


@pytest.mark.parametrize("name", VENDORS)
def test_idle_qubits_and_empty_circuits_keep_their_width(name: str) -> None:
    from qiskit.quantum_info import Statevector

    backend = get_backend(name)
    idle = QuantumCircuit(3)
    idle.h(0)  # qubits 1 and 2 untouched
    for qc in (idle, QuantumCircuit(2), QuantumCircuit(1)):
        state = backend.statevector(qc)
        np.testing.assert_allclose(state, Statevector(qc).data, atol=1e-12)
    prep = QuantumCircuit(2)
    prep.reset(0)  # a reset before any gate is a no-op
    prep.x(1)
    np.testing.assert_allclose(backend.statevector(prep), np.eye(4)[2], atol=1e-12)
    prep.reset(1)
    with pytest.raises(ValueError, match="resets only before any gate"):
        backend.statevector(prep)


@pytest.mark.parametrize("name", VENDORS)
def test_estimator_matches_aer_exactly(name: str) -> None:
    vendor, aer = get_backend(name), get_backend("aer")
    for qc in circuits():
        n = qc.num_qubits
        obs = SparsePauliOp.from_sparse_list(
            [("Z", [0], 0.5), ("XX", [0, n - 1], -1.2), ("YZ", [1, 2], 0.7)], n
        )
        (v_isa,) = vendor.transpile([qc], seed=1)
        (a_isa,) = aer.transpile([qc], seed=1)
        got = vendor.estimator().run([(v_isa, obs)]).result()[0].data.evs
        want = aer.estimator().run([(a_isa, obs)]).result()[0].data.evs
        assert float(got) == pytest.approx(float(want), abs=1e-8), qc.name
    # a parameter array and an observable array broadcast as in every EstimatorV2
    theta = ParameterVector("t", 2)
    pc = QuantumCircuit(2)
    pc.ry(theta[0], 0)
    pc.cx(0, 1)
    pc.rx(theta[1], 1)
    points = np.random.default_rng(2).uniform(-3, 3, (5, 2))
    observables = [[SparsePauliOp("ZI")], [SparsePauliOp("XY")], [SparsePauliOp("ZZ")]]
    (v_isa,) = vendor.transpile([pc])
    (a_isa,) = aer.transpile([pc])
    got = vendor.estimator().run([(v_isa, observables, points)]).result()[0].data.evs
    want = aer.estimator().run([(a_isa, observables, points)]).result()[0].data.evs
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, want, atol=1e-8)


@pytest.mark.parametrize("name", VENDORS)
def test_sampler_matches_aer_within_four_standard_errors(name: str) -> None:
    vendor, aer = get_backend(name), get_backend("aer")
    shots = 20000
    for qc in circuits():
        measured = qc.measure_all(inplace=False)
        (v_isa,) = vendor.transpile([measured], seed=1)
        (a_isa,) = aer.transpile([measured], seed=1)
        got = vendor.sampler(seed=5).run([v_isa], shots=shots).result()[0].data.meas
        want = aer.sampler(seed=6).run([a_isa], shots=shots).result()[0].data.meas
        assert got.num_shots == shots and got.num_bits == qc.num_qubits
        exact = qml_generative.distributions(aer.transpile([qc])[0], np.zeros((1, 0)), "aer")[0]
        f_got = np.zeros(1 << qc.num_qubits)
        f_want = np.zeros(1 << qc.num_qubits)
        for value, count in got.get_int_counts().items():
            f_got[value] = count / shots
        for value, count in want.get_int_counts().items():
            f_want[value] = count / shots
        # two independent samples: the difference has variance 2 p (1 - p) / shots
        bound = 4 * np.sqrt(2 * exact * (1 - exact) / shots) + 1e-12
        assert np.all(np.abs(f_got - f_want) <= bound), qc.name


@pytest.mark.parametrize("name", VENDORS)
def test_sampler_keeps_registers_and_refuses_mid_circuit_measurements(name: str) -> None:
    vendor = get_backend(name)
    qc = QuantumCircuit(2)
    qc.x(1)
    qc.measure_all()
    (isa,) = vendor.transpile([qc])
    counts = vendor.sampler(seed=1).run([isa], shots=50).result()[0].data.meas.get_counts()
    assert counts == {"10": 50}  # qubit 1 is the leftmost bit, as in Qiskit
    bad = QuantumCircuit(1, 1)
    bad.measure(0, 0)
    bad.x(0)
    with pytest.raises(ValueError, match="measurements are all final"):
        vendor.sampler().run([bad]).result()


@pytest.mark.parametrize("name", VENDORS)
def test_a_mini_app_runs_on_a_vendor_pool(name: str, tmp_path: Path) -> None:
    config = configs.local(tmp_path, pools=("cpu",), backends={"cpu": (name,)}, monitoring=False)
    with parsl.load(config):
        result = ensemble.run(
            count=6, qubits=3, depth=3, batch_size=2, pools=["cpu"], run_dir=tmp_path / "ens"
        )
    assert set(result.max_error) == {"cpu"} and result.max_error["cpu"] < 1e-8
