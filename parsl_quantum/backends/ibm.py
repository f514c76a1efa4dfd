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
    """Whether IBM Quantum credentials are available, without contacting the service.

    Returns
    -------
    bool
        True when a token is in the environment or an account is saved locally.
    """
    if os.environ.get(TOKEN_ENV):
        return True
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService

        return bool(QiskitRuntimeService.saved_accounts())
    except Exception:
        return False


def runtime_service(channel: str | None = None, instance: str | None = None) -> Any:
    """A QiskitRuntimeService from the environment token or a saved account.

    Parameters
    ----------
    channel : str or None
        The service channel (``$QISKIT_IBM_CHANNEL`` by default).
    instance : str or None
        The service instance (``$QISKIT_IBM_INSTANCE`` by default).

    Returns
    -------
    qiskit_ibm_runtime.QiskitRuntimeService
        The service.

    Raises
    ------
    BackendUnavailableError
        When neither a token nor a saved account exists (without echoing any secret).
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

    Parameters
    ----------
    name : str
        The canonical registry name (see :func:`~parsl_quantum.backends.canonical_name`).
    options : dict[str, Any]
        Backend options, as listed above; unknown ones are refused.

    Raises
    ------
    ValueError
        For a ``token`` option, an unknown option, a bad ``max_concurrent_jobs`` or a
        ``session_mode`` other than ``session`` or ``batch``.
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
        """The session this process should run jobs in, if any.

        An explicit ``session_id`` option wins; otherwise the block-level binding a
        :class:`~parsl_quantum.providers.QPUSessionProvider` exported to its workers applies when
        it names this backend.

        Returns
        -------
        tuple[str, str] or None
            (session id, mode), or None to run jobs outside a session.
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
        """Runtime SamplerV2.

        Parameters
        ----------
        seed : int or None
            No effect on hardware shots.

        Returns
        -------
        qiskit.primitives.BaseSamplerV2
            The sampler, in the bound session if any (:meth:`session_binding`).
        """
        from qiskit_ibm_runtime import SamplerV2

        sampler = SamplerV2(mode=self._mode())
        if "default_shots" in self.options:
            sampler.options.default_shots = int(self.options["default_shots"])
        return sampler

    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        """Runtime EstimatorV2.

        Parameters
        ----------
        seed : int or None
            Seeds its randomised mitigation (``seed_estimator``).

        Returns
        -------
        qiskit.primitives.BaseEstimatorV2
            The estimator, in the bound session if any (:meth:`session_binding`).
        """
        from qiskit_ibm_runtime import EstimatorV2

        estimator = EstimatorV2(mode=self._mode())
        if seed is not None:
            estimator.options.seed_estimator = seed
        return estimator

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
