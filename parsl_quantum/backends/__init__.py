"""The backend registry: simulators and QPUs behind one interface (resource layer).

``get_backend(name, **options)`` returns a :class:`QuantumBackend` whose :class:`BackendSpec`
describes it and whose ``sampler()``/``estimator()`` are Qiskit primitives V2;
``worker_backend(name)`` is the per-worker-process cache tasks use on workers.
"""

from parsl_quantum.backends.base import (
    BackendKind,
    BackendSpec,
    BackendTransientError,
    BackendUnavailableError,
    QuantumBackend,
    UnknownBackendError,
)
from parsl_quantum.backends.registry import (
    DEFAULT_FAKE_QPU,
    available_backends,
    bind_worker_backend,
    bound_backends,
    canonical_name,
    get_backend,
    worker_backend,
)

__all__ = [
    "DEFAULT_FAKE_QPU",
    "BackendKind",
    "BackendSpec",
    "BackendTransientError",
    "BackendUnavailableError",
    "QuantumBackend",
    "UnknownBackendError",
    "available_backends",
    "bind_worker_backend",
    "bound_backends",
    "canonical_name",
    "get_backend",
    "worker_backend",
]
