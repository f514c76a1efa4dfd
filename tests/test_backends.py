"""The backend registry: names, specs, primitives, fake-device behaviour, pickling, worker cache.

Everything runs on real Aer simulators and qiskit-ibm-runtime fake devices; tiny circuits only.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.backends import (
    DEFAULT_FAKE_QPU,
    BackendSpec,
    BackendTransientError,
    BackendUnavailableError,
    QuantumBackend,
    UnknownBackendError,
    available_backends,
    bound_backends,
    canonical_name,
    get_backend,
    worker_backend,
)
from parsl_quantum.backends.aer import gpu_missing_reason
from parsl_quantum.backends.base import PassManagers
from parsl_quantum.backends.ibm import TOKEN_ENV, IBMBackend, ibm_credentials_available

GPU_REASON = gpu_missing_reason()


def bell(measure: bool = False) -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    if measure:
        qc.measure_all()
    return qc


@pytest.mark.parametrize(
    ("name", "canon"),
    [
        ("aer", "aer"),
        ("AER:automatic", "aer"),
        ("aer:mps", "aer:matrix_product_state"),
        ("aer:sv", "aer:statevector"),
        ("aer:density_matrix", "aer:density_matrix"),
        ("fake:manila", "fake:fake_manila"),
        ("fake:fake_torino", "fake:fake_torino"),
        ("ibm:ibm_fez", "ibm:ibm_fez"),
    ],
)
def test_canonical_names(name: str, canon: str) -> None:
    assert canonical_name(name) == canon


@pytest.mark.parametrize("name", ["fake:fake_torin", "aer:foo", "qpu", "fake:", "ibm:"])
def test_unknown_names_raise_one_line_with_hints(name: str) -> None:
    with pytest.raises(UnknownBackendError) as info:
        get_backend(name)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and "fake:<device>" in message
    if name == "fake:fake_torin":
        assert "fake:fake_torino" in message


def test_available_backends_lists_aer_and_every_fake_device() -> None:
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    names = available_backends()
    assert names[0] == "aer" and "aer:matrix_product_state" in names
    assert DEFAULT_FAKE_QPU in names
    assert {f"fake:{b.name}" for b in FakeProviderForBackendV2().backends()} <= set(names)
    assert ("aer-gpu" in names) == (GPU_REASON is None)
    assert not any(n.startswith("ibm:") for n in names)  # remote names only on request


def test_aer_spec_and_exact_estimator() -> None:
    backend = get_backend("aer")
    assert isinstance(backend, QuantumBackend)
    spec = backend.spec
    assert isinstance(spec, BackendSpec)
    assert (spec.kind, spec.exact, spec.noisy, spec.max_concurrent_jobs) == (
        "cpu-sim",
        True,
        False,
        None,
    )
    assert spec.max_qubits >= 20
    (isa,) = backend.transpile([bell()])
    observables = [SparsePauliOp(p) for p in ("ZZ", "XX", "ZI")]
    result = backend.estimator().run([(isa, observables)]).result()
    np.testing.assert_allclose(result[0].data.evs, [1.0, 1.0, 0.0], atol=1e-12)


def test_aer_methods_and_seeded_sampler() -> None:
    assert get_backend("aer", method="mps").name == "aer:matrix_product_state"
    mps = get_backend("aer:mps").spec
    dm = get_backend("aer:dm").spec
    sv = get_backend("aer:statevector").spec
    assert dm.max_qubits < sv.max_qubits < mps.max_qubits
    backend = get_backend("aer:statevector")
    (isa,) = backend.transpile([bell(measure=True)])
    counts = [backend.sampler(seed=5).run([isa], shots=200).result()[0].data.meas.get_counts()]
    counts.append(backend.sampler(seed=5).run([isa], shots=200).result()[0].data.meas.get_counts())
    assert counts[0] == counts[1] and set(counts[0]) == {"00", "11"}


def test_backend_options_are_checked() -> None:
    with pytest.raises(ValueError, match="does not accept option"):
        get_backend("aer", shots_per_second=3)
    with pytest.raises(ValueError, match="max_concurrent_jobs"):
        get_backend("aer", max_concurrent_jobs=0)
    assert get_backend("aer", max_concurrent_jobs=2).spec.max_concurrent_jobs == 2


def test_fake_device_spec_transpile_and_isa_check() -> None:
    backend = get_backend(DEFAULT_FAKE_QPU)
    spec = backend.spec
    device = backend.device  # type: ignore[attr-defined]
    assert (spec.kind, spec.exact, spec.noisy, spec.max_concurrent_jobs) == ("qpu", False, True, 1)
    assert spec.max_qubits == device.num_qubits <= 16
    assert spec.coupling_map and set(spec.coupling_map) == set(device.coupling_map.get_edges())
    (isa,) = backend.transpile([bell(measure=True)], seed=3)
    assert isa.num_qubits == device.num_qubits  # laid out on the device's physical qubits
    assert set(isa.count_ops()) <= set(spec.basis_gates or ()) | {"barrier", "measure"}
    with pytest.raises(ValueError, match="outside the .* ISA"):
        backend.sampler().run([bell(measure=True)])


def test_fake_device_is_noisy_and_seedable() -> None:
    backend = get_backend("fake:fake_manila")
    (isa,) = backend.transpile([bell(measure=True)], seed=1)
    runs = [
        backend.sampler(seed=11).run([isa], shots=2000).result()[0].data.meas.get_counts()
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert set(runs[0]) - {"00", "11"}, "a noisy device produces some 01/10 outcomes"
    (isa2,) = backend.transpile([bell()], seed=1)
    obs = SparsePauliOp("ZZ").apply_layout(isa2.layout)
    data = backend.estimator(seed=2).run([(isa2, obs)], precision=0.02).result()[0].data
    assert 0.5 < float(data.evs) < 1.0 and float(data.stds) > 0


def test_fake_failure_injection_is_seeded_and_transient() -> None:
    def outcomes(seed: int) -> list[str]:
        backend = get_backend("fake:fake_manila", failure_rate=0.5, failure_seed=seed)
        (isa,) = backend.transpile([bell(measure=True)], seed=1)
        out = []
        for _ in range(12):
            try:
                backend.sampler(seed=1).run([isa], shots=10).result()
                out.append("ok")
            except BackendTransientError:
                out.append("fail")
        return out

    first = outcomes(4)
    assert first == outcomes(4)  # reproducible for a given failure_seed
    assert {"ok", "fail"} == set(first)  # a retry after a failure can succeed
    always = get_backend("fake:fake_manila", failure_rate=1.0, queue_delay=0.01)
    (isa,) = always.transpile([bell(measure=True)])
    with pytest.raises(BackendTransientError, match="transient"):
        always.sampler().run([isa])
    with pytest.raises(ValueError, match="failure_rate"):
        get_backend("fake:fake_manila", failure_rate=2.0)


def test_handles_pickle_to_name_and_options() -> None:
    backend = get_backend("fake:fake_manila", failure_rate=0.25, failure_seed=1)
    backend.spec  # noqa: B018 (builds the lazy device state)
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.name == backend.name and clone.options == backend.options
    assert clone.spec == backend.spec


def test_ibm_handle_never_carries_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "not-a-real-token-0123456789"
    monkeypatch.setenv(TOKEN_ENV, secret)
    handle = get_backend("ibm:ibm_fez")
    assert isinstance(handle, IBMBackend)
    assert secret.encode() not in pickle.dumps(handle)
    assert secret not in repr(handle)
    with pytest.raises(ValueError, match="tokens are never passed"):
        get_backend("ibm:ibm_fez", token=secret)


@pytest.mark.ibm
@pytest.mark.skipif(not ibm_credentials_available(), reason="no IBM Quantum token or account")
def test_ibm_backend_spec_from_service() -> None:
    from parsl_quantum.backends.ibm import runtime_service

    name = runtime_service().least_busy(operational=True, simulator=False).name
    spec = get_backend(f"ibm:{name}").spec
    assert spec.kind == "qpu" and spec.max_qubits > 0 and not spec.exact


def test_aer_gpu_absent_says_what_is_missing() -> None:
    if GPU_REASON is None:
        pytest.skip("a GPU and qiskit-aer-gpu are present")
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("aer-gpu")
    assert "qiskit-aer-gpu" in str(info.value) or "GPU" in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=GPU_REASON or "")
def test_aer_gpu_runs_exactly() -> None:
    backend = get_backend("aer-gpu")
    assert backend.spec.kind == "gpu-sim"
    (isa,) = backend.transpile([bell()])
    evs = backend.estimator().run([(isa, SparsePauliOp("ZZ"))]).result()[0].data.evs
    assert float(evs) == pytest.approx(1.0)


def test_worker_backend_is_set_up_once_per_process() -> None:
    first = worker_backend("aer:mps")
    assert worker_backend("aer:matrix_product_state") is first
    assert bound_backends()["aer:matrix_product_state"] is first
    configured = worker_backend("aer:mps", max_concurrent_jobs=3)
    assert configured is not first and configured.spec.max_concurrent_jobs == 3
    assert worker_backend("aer:mps") is configured  # no options: whatever is bound


def test_pass_managers_transpile_like_a_preset_pass_manager_of_that_seed() -> None:
    from qiskit.transpiler import generate_preset_pass_manager

    device = get_backend(DEFAULT_FAKE_QPU).device  # type: ignore[attr-defined]
    managers = PassManagers()
    assert managers.transpile([], 5, optimization_level=1, backend=device) == []
    circuits = [bell(measure=True), bell()]
    preset = generate_preset_pass_manager(optimization_level=1, backend=device, seed_transpiler=5)
    expected = preset.run(circuits)
    for _ in range(2):  # the second call reuses the pass manager built by the first
        got = managers.transpile(circuits, 5, optimization_level=1, backend=device)
        assert got == expected
        assert [c.layout.final_index_layout() for c in got] == [
            c.layout.final_index_layout() for c in expected
        ]


def test_fake_device_names_are_the_providers_and_need_no_import_of_the_runtime() -> None:
    from parsl_quantum.backends.fake import fake_device_classes
    from parsl_quantum.backends.registry import fake_device_names

    assert fake_device_names() == frozenset(fake_device_classes())
    code = (
        "import sys\n"
        "from parsl_quantum.backends import canonical_name\n"
        "assert canonical_name('FAKE:perth') == 'fake:fake_perth'\n"
        "print(any(m.startswith('qiskit_ibm_runtime') for m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
