"""Noisy fake IBM devices (``fake:<device>``): the devices qiskit-ibm-runtime ships, simulated
by Aer with each device's noise model, coupling map and basis gates.

They behave like a QPU on purpose: one job at a time by default, circuits must be compiled to
the device ISA first (``transpile``), estimates come from shots, and an optional
``queue_delay`` and ``failure_rate`` imitate a shared device's queue and its transient failures
(:class:`~parsl_quantum.backends.BackendTransientError`, seedable with ``failure_seed``).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike

from parsl_quantum.backends.base import (
    BackendSpec,
    BackendTransientError,
    PassManagers,
    QuantumBackend,
    check_limit,
    check_options,
)

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.providers import BackendV2
    from qiskit_aer import AerSimulator

FAKE_OPTIONS = (
    "queue_delay",
    "failure_rate",
    "failure_seed",
    "max_concurrent_jobs",
    "optimization_level",
    "default_shots",
)

#: Instructions every device accepts although they are not in its basis gate list.
_ALWAYS_ALLOWED = frozenset({"barrier", "measure", "delay", "reset"})


@cache
def fake_device_classes() -> dict[str, type]:
    """The fake devices of qiskit-ibm-runtime's ``FakeProviderForBackendV2``.

    Returns
    -------
    dict[str, type]
        Device name (``fake_torino``) -> fake backend class.
    """
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():  # some devices warn that their error values are not typical
        warnings.simplefilter("ignore")
        return {b.name.lower(): type(b) for b in FakeProviderForBackendV2().backends()}


class _FaultInjector:
    """Simulated queue wait and transient failures, drawn from one seeded stream per handle.

    The stream advances across jobs, so a retried job draws a fresh number (a retry can
    succeed) while a whole run stays reproducible for a given ``failure_seed``.
    """

    def __init__(self, name: str, queue_delay: float, failure_rate: float, seed: int | None):
        import numpy as np

        if queue_delay < 0:
            raise ValueError(f"backend {name!r}: queue_delay must be >= 0")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"backend {name!r}: failure_rate must be in [0, 1]")
        self.name = name
        self.queue_delay = queue_delay
        self.failure_rate = failure_rate
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def before_job(self) -> None:
        if self.queue_delay:
            time.sleep(self.queue_delay)
        if self.failure_rate:
            with self._lock:
                failed = self._rng.random() < self.failure_rate
            if failed:
                raise BackendTransientError(
                    f"{self.name}: simulated transient job failure "
                    f"(failure_rate={self.failure_rate}); retrying may succeed"
                )


def _check_isa(name: str, circuits: Iterable[QuantumCircuit], allowed: frozenset[str]) -> None:
    for circuit in circuits:
        bad = sorted(set(circuit.count_ops()) - allowed)
        if bad:
            raise ValueError(
                f"circuit {circuit.name!r} uses instructions outside the {name} ISA "
                f"({', '.join(bad)}); compile it first with backend.transpile(circuits)"
            )


class DeviceSamplerV2(BaseSamplerV2):
    """Aer's noisy SamplerV2 behind the device's ISA check, queue delay and failures.

    Parameters
    ----------
    inner : qiskit.primitives.BaseSamplerV2
        The noisy sampler that runs the shots.
    backend : FakeDeviceBackend
        The device whose ISA, queue delay and failures apply.
    """

    def __init__(self, inner: BaseSamplerV2, backend: FakeDeviceBackend) -> None:
        self._inner = inner
        self._backend = backend

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> Any:
        """Sample on the device, after its ISA check, queue delay and failures.

        Parameters
        ----------
        pubs : Iterable[SamplerPubLike]
            The sampler PUBs.
        shots : int or None
            Shots per PUB that sets none (the backend's ``default_shots`` by default).

        Returns
        -------
        qiskit.primitives.BasePrimitiveJob
            The inner sampler's job.

        Raises
        ------
        ValueError
            When a circuit uses instructions outside the device ISA.
        BackendTransientError
            A simulated transient failure (``failure_rate``).
        """
        coerced = [SamplerPub.coerce(p, shots) for p in pubs]
        _check_isa(self._backend.name, (p.circuit for p in coerced), self._backend.isa)
        self._backend.faults.before_job()
        return self._inner.run(coerced, shots=shots)


class DeviceEstimatorV2(BaseEstimatorV2):
    """Shot-based estimation on the noisy device, behind its ISA check, queue and failures.

    Parameters
    ----------
    inner : qiskit.primitives.BaseEstimatorV2
        The noisy estimator that runs the shots.
    backend : FakeDeviceBackend
        The device whose ISA, queue delay and failures apply.
    """

    def __init__(self, inner: BaseEstimatorV2, backend: FakeDeviceBackend) -> None:
        self._inner = inner
        self._backend = backend

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> Any:
        """Estimate on the device, after its ISA check, queue delay and failures.

        Parameters
        ----------
        pubs : Iterable[EstimatorPubLike]
            The estimator PUBs.
        precision : float or None
            Target precision of PUBs that set none.

        Returns
        -------
        qiskit.primitives.BasePrimitiveJob
            The inner estimator's job.

        Raises
        ------
        ValueError
            When a circuit uses instructions outside the device ISA.
        BackendTransientError
            A simulated transient failure (``failure_rate``).
        """
        coerced = [EstimatorPub.coerce(p, precision) for p in pubs]
        _check_isa(self._backend.name, (p.circuit for p in coerced), self._backend.isa)
        self._backend.faults.before_job()
        return self._inner.run(coerced, precision=precision)


class FakeDeviceBackend(QuantumBackend):
    """A fake IBM device simulated with its noise model.

    Options: ``max_concurrent_jobs`` (default 1, like a QPU), ``queue_delay`` seconds slept
    before each job, ``failure_rate`` probability that a job raises
    :class:`BackendTransientError`, ``failure_seed``, ``optimization_level`` of the preset
    pass manager (default 1) and ``default_shots`` (1024).

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    ValueError
        For an unknown option, a bad ``max_concurrent_jobs``, a negative ``queue_delay`` or a
        ``failure_rate`` outside [0, 1].
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        check_options(name, self.options, FAKE_OPTIONS)
        self.device_name = name.split(":", 1)[1]
        self.max_concurrent_jobs = check_limit(name, self.options.get("max_concurrent_jobs", 1))
        self.optimization_level = int(self.options.get("optimization_level", 1))
        self.faults = _FaultInjector(
            name,
            float(self.options.get("queue_delay", 0.0)),
            float(self.options.get("failure_rate", 0.0)),
            self.options.get("failure_seed"),
        )
        self._pass_managers = PassManagers()

    @cached_property
    def device(self) -> BackendV2:
        """The qiskit-ibm-runtime fake backend (properties and noise data of the device)."""
        return fake_device_classes()[self.device_name]()

    @cached_property
    def simulator(self) -> AerSimulator:
        """AerSimulator carrying the device's noise model and target (built once per handle)."""
        from qiskit_aer import AerSimulator

        return AerSimulator.from_backend(self.device)

    @cached_property
    def isa(self) -> frozenset[str]:
        """Instruction names the device accepts."""
        return frozenset(self.device.operation_names) | _ALWAYS_ALLOWED

    @cached_property
    def spec(self) -> BackendSpec:
        device = self.device
        edges = tuple(sorted({(int(a), int(b)) for a, b in device.coupling_map.get_edges()}))
        return BackendSpec(
            name=self.name,
            kind="qpu",
            max_qubits=int(device.num_qubits),
            exact=False,
            noisy=True,
            max_concurrent_jobs=self.max_concurrent_jobs,
            basis_gates=tuple(sorted(device.operation_names)),
            coupling_map=edges,
        )

    def sampler(self, *, seed: int | None = None) -> BaseSamplerV2:
        """Aer's SamplerV2 with the device's noise model, behind the device checks
        (:class:`DeviceSamplerV2`).

        Parameters
        ----------
        seed : int or None
            Seed of the simulated shots, for reproducible samples.

        Returns
        -------
        qiskit.primitives.BaseSamplerV2
            The sampler.
        """
        from qiskit_aer.primitives import SamplerV2

        inner = SamplerV2.from_backend(
            self.simulator, default_shots=int(self.options.get("default_shots", 1024)), seed=seed
        )
        return DeviceSamplerV2(inner, self)

    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        """A shot-based estimator on the noisy simulator, behind the device checks
        (:class:`DeviceEstimatorV2`).

        Parameters
        ----------
        seed : int or None
            Seed of the simulated noise or shots, for reproducible estimates.

        Returns
        -------
        qiskit.primitives.BaseEstimatorV2
            The estimator.
        """
        from qiskit.primitives import BackendEstimatorV2

        options = {} if seed is None else {"seed_simulator": seed}
        inner = BackendEstimatorV2(backend=self.simulator, options=options)
        return DeviceEstimatorV2(inner, self)

    def transpile(
        self, circuits: Sequence[QuantumCircuit], *, seed: int | None = None
    ) -> list[QuantumCircuit]:
        """Layout, routing and basis translation to the device with a preset pass manager.

        Parameters
        ----------
        circuits : Sequence[QuantumCircuit]
            The circuits to compile.
        seed : int or None
            Seed of the transpiler (``seed_transpiler``), for a reproducible layout and routing.

        Returns
        -------
        list[QuantumCircuit]
            The compiled circuits, in the order given.
        """
        return self._pass_managers.transpile(
            circuits, seed, optimization_level=self.optimization_level, backend=self.device
        )
