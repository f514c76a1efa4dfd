"""Real IBM Quantum devices (``ibm:<device>``) through qiskit-ibm-runtime.

Credentials come only from the environment (``QISKIT_IBM_TOKEN``, optionally
``QISKIT_IBM_CHANNEL`` and ``QISKIT_IBM_INSTANCE``) or from an account saved with
``QiskitRuntimeService.save_account``. The token is read when the service is first needed in
the process that runs the job; it is never logged, never stored on the handle and never part of
a pickled handle (which carries only the device name and options).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from parsl_quantum.backends.base import (
    BackendSpec,
    BackendUnavailableError,
    PassManagers,
    QuantumBackend,
    check_limit,
    check_options,
)

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
    from qiskit.providers import BackendV2

TOKEN_ENV = "QISKIT_IBM_TOKEN"
CHANNEL_ENV = "QISKIT_IBM_CHANNEL"
INSTANCE_ENV = "QISKIT_IBM_INSTANCE"

#: Block-level binding exported by :class:`~parsl_quantum.providers.QPUSessionProvider` into the
#: environment of the workers it starts: jobs of that backend run inside the block's session.
SESSION_ID_ENV = "PQ_SESSION_ID"
SESSION_BACKEND_ENV = "PQ_SESSION_BACKEND"
SESSION_MODE_ENV = "PQ_SESSION_MODE"

IBM_OPTIONS = (
    "max_concurrent_jobs",
    "optimization_level",
    "default_shots",
    "session_id",
    "session_mode",
    "channel",
    "instance",
)


def ibm_credentials_available() -> bool:
    """True when a token is in the environment or an account is saved locally (no network)."""
    if os.environ.get(TOKEN_ENV):
        return True
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService

        return bool(QiskitRuntimeService.saved_accounts())
    except Exception:
        return False


def runtime_service(channel: str | None = None, instance: str | None = None) -> Any:
    """A QiskitRuntimeService from the environment token or a saved account.

    Raises :class:`BackendUnavailableError` (without echoing any secret) when neither exists.
    """
    from qiskit_ibm_runtime import QiskitRuntimeService

    channel = channel or os.environ.get(CHANNEL_ENV) or None
    instance = instance or os.environ.get(INSTANCE_ENV) or None
    token = os.environ.get(TOKEN_ENV)
    if token:
        return QiskitRuntimeService(
            channel=channel or "ibm_quantum_platform",
            token=token,
            instance=instance,
        )
    if not ibm_credentials_available():
        raise BackendUnavailableError(
            f"no IBM Quantum credentials: set {TOKEN_ENV} or save an account with "
            "QiskitRuntimeService.save_account()"
        )
    return QiskitRuntimeService(channel=channel, instance=instance)


class IBMBackend(QuantumBackend):
    """An IBM Quantum device; the service and device are resolved lazily, per process.

    Options: ``max_concurrent_jobs`` (default 1), ``optimization_level`` (default 1),
    ``default_shots``, ``session_id`` with ``session_mode`` (``session`` or ``batch``) to run
    inside an existing session, ``channel`` and ``instance``. Passing a token is refused.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        if "token" in options:
            raise ValueError(
                f"backend {name!r}: tokens are never passed as options; set {TOKEN_ENV} "
                "or save an account instead"
            )
        super().__init__(name, options)
        check_options(name, self.options, IBM_OPTIONS)
        self.device_name = name.split(":", 1)[1]
        self.max_concurrent_jobs = check_limit(name, self.options.get("max_concurrent_jobs", 1))
        self.optimization_level = int(self.options.get("optimization_level", 1))
        mode = self.options.get("session_mode", "session")
        if mode not in ("session", "batch"):
            raise ValueError(f"backend {name!r}: session_mode must be 'session' or 'batch'")
        self._service: Any = None
        self._device: BackendV2 | None = None
        self._spec: BackendSpec | None = None
        self._pass_managers = PassManagers()

    @property
    def service(self) -> Any:
        """The runtime service (network on first use, in this process)."""
        if self._service is None:
            opts = self.options
            self._service = runtime_service(opts.get("channel"), opts.get("instance"))
        return self._service

    @property
    def device(self) -> BackendV2:
        """The IBMBackend of the device (network on first use)."""
        if self._device is None:
            self._device = self.service.backend(self.device_name)
        return self._device

    @property
    def spec(self) -> BackendSpec:
        if self._spec is None:
            device = self.device
            edges = tuple(sorted({(int(a), int(b)) for a, b in device.coupling_map.get_edges()}))
            self._spec = BackendSpec(
                name=self.name,
                kind="qpu",
                max_qubits=int(device.num_qubits),
                exact=False,
                noisy=True,
                max_concurrent_jobs=self.max_concurrent_jobs,
                basis_gates=tuple(sorted(device.operation_names)),
                coupling_map=edges,
            )
        return self._spec

    def session_binding(self) -> tuple[str, str] | None:
        """(session id, mode) this process should run jobs in, if any.

        An explicit ``session_id`` option wins; otherwise the block-level binding a
        :class:`~parsl_quantum.providers.QPUSessionProvider` exported to its workers applies when
        it names this backend.
        """
        if self.options.get("session_id"):
            return str(self.options["session_id"]), str(self.options.get("session_mode", "session"))
        if os.environ.get(SESSION_BACKEND_ENV) == self.name and os.environ.get(SESSION_ID_ENV):
            return os.environ[SESSION_ID_ENV], os.environ.get(SESSION_MODE_ENV, "session")
        return None

    def _mode(self) -> Any:
        binding = self.session_binding()
        if binding is None:
            return self.device
        from qiskit_ibm_runtime import Batch, Session

        session_id, mode = binding
        cls = Batch if mode == "batch" else Session
        return cls.from_id(session_id, service=self.service)

    def sampler(self, *, seed: int | None = None) -> BaseSamplerV2:
        """Runtime SamplerV2 (``seed`` has no effect on hardware shots)."""
        from qiskit_ibm_runtime import SamplerV2

        sampler = SamplerV2(mode=self._mode())
        if "default_shots" in self.options:
            sampler.options.default_shots = int(self.options["default_shots"])
        return sampler

    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        """Runtime EstimatorV2; ``seed`` seeds its randomised mitigation (``seed_estimator``)."""
        from qiskit_ibm_runtime import EstimatorV2

        estimator = EstimatorV2(mode=self._mode())
        if seed is not None:
            estimator.options.seed_estimator = seed
        return estimator

    def transpile(
        self, circuits: Sequence[QuantumCircuit], *, seed: int | None = None
    ) -> list[QuantumCircuit]:
        """Layout, routing and basis translation to the device with a preset pass manager."""
        return self._pass_managers.transpile(
            circuits, seed, optimization_level=self.optimization_level, backend=self.device
        )
