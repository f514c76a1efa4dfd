"""Backend names, their canonical spelling, and the per-worker-process backend cache.

Names: ``aer`` and ``aer:<method>`` (``statevector``, ``matrix_product_state``/``mps``,
``density_matrix``/``dm``), ``aer-gpu`` and ``aer-gpu:<method>``, ``fake:<device>`` for every
fake device of qiskit-ibm-runtime (``fake:fake_torino``; ``fake:torino`` is accepted too), and
``ibm:<device>``. Every name is reduced to one canonical spelling, so a pool and a task that
spell a backend differently still agree.
"""

from __future__ import annotations

import difflib
import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any

from parsl_quantum.backends.aer import (
    CPU_METHODS,
    GPU_METHODS,
    METHOD_ALIASES,
    AerBackend,
    AerGPUBackend,
    gpu_missing_reason,
)
from parsl_quantum.backends.base import QuantumBackend, UnknownBackendError
from parsl_quantum.backends.vendor_packages import VENDOR_PACKAGES, vendor_missing_reason

#: Spellings of the vendor simulators' names.
VENDOR_ALIASES = {
    "braket:local": "braket:local",
    "pennylane:lightning.qubit": "pennylane:lightning.qubit",
    "pennylane:lightning": "pennylane:lightning.qubit",
}

#: The local default QPU: a small (7-qubit) noisy fake device that simulates quickly.
DEFAULT_FAKE_QPU = "fake:fake_perth"


@cache
def fake_device_names() -> frozenset[str]:
    """The names of qiskit-ibm-runtime's fake devices (``fake_torino``), found without
    importing the package.

    qiskit-ibm-runtime keeps each fake device in ``fake_provider/backends/<device>/``, its
    backend named ``fake_<device>``. Listing those directories takes a millisecond, where
    importing the package (its runtime service client with it) takes most of a second, and
    checking a pool's backend names needs only the names. Should the package be laid out
    otherwise, the names come from its ``FakeProviderForBackendV2``.

    Returns
    -------
    frozenset[str]
        Device names, e.g. ``fake_torino``.
    """
    spec = importlib.util.find_spec("qiskit_ibm_runtime")
    if spec is not None and spec.origin is not None:
        backends = Path(spec.origin).parent / "fake_provider" / "backends"
        names = frozenset(
            f"fake_{d.name}"
            for d in (backends.iterdir() if backends.is_dir() else ())
            if (d / f"fake_{d.name}.py").is_file()
        )
        if names:
            return names
    from parsl_quantum.backends.fake import fake_device_classes

    return frozenset(fake_device_classes())


def _valid_names_hint() -> str:
    return (
        f"valid: aer, aer:<{'|'.join(CPU_METHODS[1:])}>, aer-gpu, aer-gpu:<{'|'.join(GPU_METHODS)}>"
        f", fake:<device> ({len(fake_device_names())} devices, e.g. {DEFAULT_FAKE_QPU})"
        ", ibm:<device>"
        f", {', '.join(VENDOR_PACKAGES)}"
    )


def _unknown(name: str, candidates: list[str]) -> UnknownBackendError:
    close = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UnknownBackendError(f"unknown backend {name!r}; {hint}{_valid_names_hint()}")


def canonical_name(name: str) -> str:
    """The one spelling of a backend name.

    ``ibm:`` names are only checked for shape here: whether the device exists is known to the
    IBM service, which is not contacted.

    Parameters
    ----------
    name : str
        A registry name in any accepted spelling (case, aliases, ``fake:torino``).

    Returns
    -------
    str
        The canonical name.

    Raises
    ------
    UnknownBackendError
        When the name is not in the registry (the message lists close or valid names).
    """
    raw = name.strip().lower()
    family, sep, rest = raw.partition(":")
    if family in ("aer", "aer-gpu"):
        methods = CPU_METHODS if family == "aer" else GPU_METHODS
        default = "automatic" if family == "aer" else "statevector"
        method = METHOD_ALIASES.get(rest, rest) or default
        if method not in methods:
            raise _unknown(name, [f"{family}:{m}" for m in methods])
        return family if method == default else f"{family}:{method}"
    if family == "fake" and rest:
        device = rest if rest.startswith("fake_") else f"fake_{rest}"
        devices = fake_device_names()
        if device not in devices:
            raise _unknown(name, [f"fake:{d}" for d in devices])
        return f"fake:{device}"
    if family == "ibm" and rest:
        return f"ibm:{rest}"
    vendor = VENDOR_ALIASES.get(raw)
    if vendor:
        return vendor
    raise _unknown(name, ["aer", "aer-gpu", DEFAULT_FAKE_QPU, *VENDOR_PACKAGES])


def get_backend(name: str, **options: Any) -> QuantumBackend:
    """A backend handle by registry name.

    Parameters
    ----------
    name : str
        A registry name (see :func:`canonical_name`).
    **options : Any
        Backend-specific options (see each class). For ``aer`` the method may also be given as
        ``method=...``.

    Returns
    -------
    QuantumBackend
        The handle (nothing is set up until first use).

    Raises
    ------
    UnknownBackendError
        For names not in the registry.
    BackendUnavailableError
        When the backend cannot run here (``aer-gpu`` without a GPU or qiskit-aer-gpu).
    ValueError
        When ``method`` conflicts with the name's method, or an option is refused.
    """
    family = name.strip().lower().partition(":")[0]
    if family in ("aer", "aer-gpu") and "method" in options:
        method = str(options.pop("method"))
        if ":" in name and canonical_name(name) != canonical_name(f"{family}:{method}"):
            raise ValueError(f"backend {name!r} conflicts with method={method!r}")
        name = f"{family}:{method}"
    canon = canonical_name(name)
    if family == "aer":
        return AerBackend(canon, options)
    if family == "aer-gpu":
        return AerGPUBackend(canon, options)
    if family == "fake":
        from parsl_quantum.backends.fake import FakeDeviceBackend

        return FakeDeviceBackend(canon, options)
    if canon == "braket:local":
        from parsl_quantum.backends.vendors import BraketLocalBackend

        return BraketLocalBackend(canon, options)
    if canon == "pennylane:lightning.qubit":
        from parsl_quantum.backends.vendors import LightningQubitBackend

        return LightningQubitBackend(canon, options)
    from parsl_quantum.backends.ibm import IBMBackend

    return IBMBackend(canon, options)


def available_backends(*, include_remote: bool = False) -> list[str]:
    """Names usable on this machine now.

    Aer CPU methods, ``aer-gpu`` when a GPU and qiskit-aer-gpu are present, every fake device,
    the vendor simulators whose packages are installed, and the IBM devices of the account when
    asked for.

    Parameters
    ----------
    include_remote : bool
        Also list the IBM devices of the account (only with IBM credentials, since it contacts
        the service).

    Returns
    -------
    list[str]
        The backend names.
    """
    names = ["aer", *(f"aer:{m}" for m in CPU_METHODS[1:])]
    if gpu_missing_reason() is None:
        names += ["aer-gpu", *(f"aer-gpu:{m}" for m in GPU_METHODS[1:])]
    names += [f"fake:{d}" for d in sorted(fake_device_names())]
    names += [v for v in VENDOR_PACKAGES if vendor_missing_reason(v) is None]
    if include_remote:
        from parsl_quantum.backends.ibm import ibm_credentials_available, runtime_service

        if ibm_credentials_available():
            names += sorted(f"ibm:{b.name}" for b in runtime_service().backends())
    return names


_worker_lock = threading.Lock()
_worker_backends: dict[str, tuple[QuantumBackend, dict[str, Any]]] = {}
_worker_options: dict[str, dict[str, Any]] = {}


def bind_worker_backend(name: str, **options: Any) -> None:
    """Bind this process to backend ``name`` with ``options``, without setting it up yet.

    The QPU-aware HTEX's worker hook calls this before each task, so a later
    ``worker_backend(name)`` builds the backend with the pool's ``backend_options``. Setting up
    is deferred to that first use: tasks that never touch a backend (exact evaluation) keep the
    worker free of Qiskit and Aer imports.

    Parameters
    ----------
    name : str
        A registry name.
    **options : Any
        The pool's ``backend_options`` for that backend.

    Raises
    ------
    UnknownBackendError
        For names not in the registry.
    """
    key = canonical_name(name)
    with _worker_lock:
        hit = _worker_backends.get(key)
        if hit is not None and hit[1] != options:
            del _worker_backends[key]
        _worker_options[key] = dict(options)


def worker_backend(name: str, **options: Any) -> QuantumBackend:
    """The backend handle of this process, set up on first use and reused by later tasks.

    On a QPU-aware HTEX worker the executor binds each task's backend (with the pool's
    ``backend_options``, :func:`bind_worker_backend`) before the task runs, so a task's
    ``worker_backend(name)`` sets up that backend with the pool's options on first use and
    returns the same instance afterwards.

    Parameters
    ----------
    name : str
        A registry name.
    **options : Any
        Backend options; without any, the bound options apply. Passing different ``options``
        replaces the cached instance.

    Returns
    -------
    QuantumBackend
        The cached handle.

    Raises
    ------
    UnknownBackendError
        For names not in the registry.
    """
    key = canonical_name(name)
    with _worker_lock:
        if not options:
            options = _worker_options.get(key, {})
        hit = _worker_backends.get(key)
        if hit is not None and (not options or hit[1] == options):
            return hit[0]
        backend = get_backend(key, **options)
        _worker_backends[key] = (backend, dict(options))
        return backend


def bound_backends() -> dict[str, QuantumBackend]:
    """The backends this process is bound to or has set up (bound ones are set up now).

    Returns
    -------
    dict[str, QuantumBackend]
        Handles by canonical name.
    """
    with _worker_lock:
        pending = [key for key in _worker_options if key not in _worker_backends]
    for key in pending:
        worker_backend(key)
    with _worker_lock:
        return {name: hit[0] for name, hit in _worker_backends.items()}
