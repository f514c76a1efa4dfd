"""Validation of a task's resource specification against the backends of a pool.

Pure functions over :class:`~parsl_quantum.backends.BackendSpec` values, testable without Parsl
pools: they decide whether a request fits the pool at all (so a misfit fails at submit time,
not on a worker) and which of the pool's backends may serve it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsl.executors.errors import InvalidResourceSpecification

from parsl_quantum.backends import BackendSpec, UnknownBackendError, canonical_name

#: Keys a task may put in ``parsl_resource_specification`` for a QPU-aware pool.
ACCEPTED_KEYS = ("backend", "qpu", "qubits", "shots", "priority")


def _positive_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidResourceSpecification({key}, f"{key!r} must be a positive int, got {value!r}")
    return value


def _describe(specs: Mapping[str, BackendSpec]) -> str:
    return ", ".join(f"{s.name} ({s.kind}, {s.max_qubits} qubits)" for s in specs.values())


def select_backends(
    spec: Mapping[str, Any] | None, backends: Mapping[str, BackendSpec], pool: str = "pool"
) -> list[str]:
    """The pool's backends that can serve ``spec``, in pool order (never empty).

    Parameters
    ----------
    spec : Mapping[str, Any] or None
        The task's resource specification (keys of :data:`ACCEPTED_KEYS`).
    backends : Mapping[str, BackendSpec]
        The pool's backends, by canonical name, in pool order.
    pool : str
        How messages name the pool.

    Returns
    -------
    list[str]
        The names of the backends that fit.

    Raises
    ------
    parsl.executors.errors.InvalidResourceSpecification
        Naming the offending key(s): unknown keys (listing the accepted ones), ill-typed values,
        a ``backend`` the pool does not have, a ``qpu`` flag no backend matches, or ``qubits``
        wider than every candidate.
    """
    spec = spec or {}
    unknown = set(spec) - set(ACCEPTED_KEYS)
    if unknown:
        raise InvalidResourceSpecification(
            unknown,
            f"unknown resource specification key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"accepted keys: {', '.join(ACCEPTED_KEYS)}",
        )
    qubits = _positive_int(spec, "qubits")
    _positive_int(spec, "shots")
    priority = spec.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int | float)
    ):
        raise InvalidResourceSpecification({"priority"}, "'priority' must be a number")
    qpu = spec.get("qpu")
    if qpu is not None and not isinstance(qpu, bool):
        raise InvalidResourceSpecification({"qpu"}, f"'qpu' must be a bool, got {qpu!r}")

    candidates = dict(backends)
    requested = spec.get("backend")
    if requested is not None:
        try:
            name = canonical_name(str(requested))
        except UnknownBackendError as exc:
            raise InvalidResourceSpecification({"backend"}, str(exc)) from None
        if name not in backends:
            raise InvalidResourceSpecification(
                {"backend"},
                f"backend {requested!r} is not served by {pool}; its backends: "
                f"{', '.join(backends)}",
            )
        candidates = {name: backends[name]}
    if qpu is not None:
        candidates = {n: s for n, s in candidates.items() if (s.kind == "qpu") == qpu}
        if not candidates:
            want = "a QPU" if qpu else "a simulator"
            raise InvalidResourceSpecification(
                {"qpu"}, f"qpu={qpu} asks for {want}, but {pool} offers {_describe(backends)}"
            )
    if qubits is not None:
        wide = {n: s for n, s in candidates.items() if s.max_qubits >= qubits}
        if not wide:
            raise InvalidResourceSpecification(
                {"qubits"},
                f"{qubits} qubits is wider than every eligible backend of {pool}: "
                f"{_describe(candidates)}",
            )
        candidates = wide
    return list(candidates)
