"""The pool model: what the planner, the dispatcher, reliability and the mini-apps know about
the pools (executors) of a Parsl config.

A *pool* is one executor of the Config, named by its label. A QPU-aware pool
(:class:`QPUAwarePool`: :class:`~parsl_quantum.executors.QPUHighThroughputExecutor`, or the
Globus Compute pool of :mod:`parsl_quantum.configs.globus`) declares its backends and takes
parsl-quantum's resource specification; any other executor (a user's plain HTEX, a thread pool)
is described by the local convention and gets no specification beyond ``priority``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from parsl.config import Config
from parsl.executors.base import ParslExecutor

from parsl_quantum.backends import (
    DEFAULT_FAKE_QPU,
    BackendSpec,
    BackendUnavailableError,
    get_backend,
)
from parsl_quantum.executors.qpu_htex import PoolCapacity


@runtime_checkable
class QPUAwarePool(Protocol):
    """An executor whose workers are bound to quantum backends.

    It names its ``backends``, describes those it can (``backend_specs``; a remote pool may
    describe only some), validates parsl-quantum's resource specification keys
    (:data:`~parsl_quantum.executors.ACCEPTED_KEYS`) and gives a live :meth:`capacity` view,
    or None where it has none. ``isinstance(executor, QPUAwarePool)`` reads ``backend_specs``,
    which resolves the backends once.
    """

    label: str
    backends: tuple[str, ...]

    @property
    def backend_specs(self) -> Mapping[str, BackendSpec]:
        """Spec of each backend that can be described in the submitting process."""
        ...

    def capacity(self) -> PoolCapacity | None:
        """Live connected workers, busy slots and outstanding tasks.

        Returns
        -------
        PoolCapacity or None
            The view, or None without a live view (the dispatcher then counts on the pool's planned
            workers).
        """
        ...


@dataclass(frozen=True)
class PoolInfo:
    """A named pool of a config: its executor label, backends and worker slots.

    Attributes
    ----------
    label : str
        The executor label.
    backends : tuple[str, ...]
        Backend names the pool serves, the first one the default for its tasks.
    workers : int
        Worker slots the planner counts on.
    kind : str
        ``"cpu-sim"``, ``"gpu-sim"`` or ``"qpu"``: the kind of its first described backend.
    max_qubits : int
        The widest circuit one of its backends takes.
    exact : bool
        Whether every backend computes exact expectation values (simulators without noise).
    accepts_spec : bool
        Whether its executor takes parsl-quantum's resource specification keys (``backend``,
        ``qubits``, ``shots``...); a plain HTEX accepts only ``priority``.
    """

    label: str
    backends: tuple[str, ...]
    workers: int
    kind: str
    max_qubits: int
    exact: bool
    accepts_spec: bool = True

    def resource_spec(
        self, qubits: int = 0, shots: int = 0, backend: str | None = None
    ) -> dict[str, Any]:
        """The :func:`resource_spec` of a task on this pool.

        Parameters
        ----------
        qubits : int
            Width of the task; left out when 0.
        shots : int
            Shots of the task; left out when 0.
        backend : str or None
            The backend the task asks for (the pool's first by default).

        Returns
        -------
        dict[str, Any]
            The specification, or an empty one where the executor takes no such keys.

        Raises
        ------
        ValueError
            When ``qubits`` or ``shots`` is not a non-negative int.
        """
        if not self.accepts_spec:
            return {}
        return resource_spec(backend or self.backends[0], qubits, shots)


def resource_spec(backend: str, qubits: int = 0, shots: int = 0) -> dict[str, Any]:
    """A task's resource specification for a QPU-aware pool.

    Parameters
    ----------
    backend : str
        The backend the task asks for.
    qubits : int
        Width of the task; left out when 0 (a negative value is an error).
    shots : int
        Shots of the task; left out when 0 (a negative value is an error).

    Returns
    -------
    dict[str, Any]
        ``{"backend": ..., "qubits": ..., "shots": ...}``, which the pool's
        ``validate_resource_spec`` checks against its backends.

    Raises
    ------
    ValueError
        For an empty backend name, or ``qubits`` or ``shots`` that is not a non-negative int.
    """
    if not backend:
        raise ValueError("a resource specification needs a backend name")
    spec: dict[str, Any] = {"backend": backend}
    for key, value in (("qubits", qubits), ("shots", shots)):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{key} must be a non-negative int, got {value!r}")
        if value > 0:
            spec[key] = int(value)
    return spec


#: What a QPU-aware pool is assumed to offer when none of its backends can be described here
#: (a remote GPU, an IBM device whose credentials live on an endpoint): kind, width, exactness.
_UNRESOLVED = {
    "qpu": ("qpu", 127, False),
    "gpu-sim": ("gpu-sim", 32, True),
    "cpu-sim": ("cpu-sim", 30, True),
}


def kind_by_name(name: str) -> str:
    """The kind of a backend from its canonical name alone, without describing it.

    Parameters
    ----------
    name : str
        A canonical backend name.

    Returns
    -------
    str
        ``qpu`` for ``ibm:`` and ``fake:`` devices, ``gpu-sim`` for GPU simulators, else
        ``cpu-sim``.
    """
    if name.startswith(("ibm:", "fake:")):
        return "qpu"
    return "gpu-sim" if "gpu" in name else "cpu-sim"


def default_backend(label: str) -> str:
    """The backend tasks on a pool that declares none run on.

    Parameters
    ----------
    label : str
        The pool's executor label.

    Returns
    -------
    str
        The local convention: the default fake device for a pool labelled ``qpu``, Aer
        otherwise.
    """
    return DEFAULT_FAKE_QPU if label == "qpu" else "aer"


def worker_slots(executor: ParslExecutor) -> int:
    """Worker slots of an executor.

    Parameters
    ----------
    executor : parsl.executors.base.ParslExecutor
        Any Parsl executor.

    Returns
    -------
    int
        Its ``max_workers_per_node`` (or a thread pool's ``max_threads``) when that is a finite
        positive number, else 1.
    """
    for attribute in ("max_workers_per_node", "max_threads"):
        value = getattr(executor, attribute, None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and value >= 1:
            return int(value)
    return 1


def _describe(executor: ParslExecutor) -> PoolInfo:
    try:
        if isinstance(executor, QPUAwarePool):
            aware, names = True, tuple(executor.backends)
            specs: list[BackendSpec] = list(executor.backend_specs.values())
        else:
            aware, names, specs = False, (default_backend(executor.label),), []
    except Exception as exc:  # a device asked over the network: no credentials, no network
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"pool {executor.label!r}: cannot reach its backends: {first}") from None
    if not aware:
        try:
            specs = [get_backend(names[0]).spec]
        except (BackendUnavailableError, RuntimeError, ImportError) as exc:
            raise ValueError(
                f"pool {executor.label!r}: its default backend {names[0]!r} is not available "
                f"here: {exc}"
            ) from None
    if specs:
        kind = str(specs[0].kind)
        width = max(s.max_qubits for s in specs)
        exact = all(s.exact for s in specs)
    else:
        kind, width, exact = _UNRESOLVED[kind_by_name(names[0])]
    return PoolInfo(executor.label, names, worker_slots(executor), kind, width, exact, aware)


def pool_infos(
    pools: Config | Iterable[ParslExecutor], names: Sequence[str] | None = None
) -> dict[str, PoolInfo]:
    """Describe the pools of a config: backends, worker slots, width, exactness.

    Parameters
    ----------
    pools : parsl.config.Config or Iterable[ParslExecutor]
        A Config (before or after ``parsl.load``), or executors such as a loaded
        DataFlowKernel's ``config.executors``.
    names : Sequence[str] or None
        Labels to describe, in this order; all pools when omitted.

    Returns
    -------
    dict[str, PoolInfo]
        ``{label: PoolInfo}``. A QPU-aware pool is described by its backends; backends it
        cannot describe here are assumed to be of their kind's documented defaults. Any other
        executor is described by :func:`default_backend`.

    Raises
    ------
    ValueError
        A name that is not a pool of the config, or a pool whose backends cannot be reached.
    """
    executors = list(pools.executors if isinstance(pools, Config) else pools)
    by_label = {ex.label: ex for ex in executors}
    wanted = list(by_label) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in by_label]
    if unknown:
        raise ValueError(
            f"pool(s) {', '.join(unknown)} not in the Parsl config "
            f"(executor labels: {', '.join(by_label)})"
        )
    return {label: _describe(by_label[label]) for label in wanted}


#: The label of the executor a DataFlowKernel adds for its own internal tasks.
PARSL_INTERNAL_EXECUTOR = "_parsl_internal"


def loaded_executors(dfk: Any) -> list[ParslExecutor]:
    """The pools of a loaded DataFlowKernel: its Config's executors and any added later with
    ``add_executors``, without the executor Parsl adds for its own tasks (which Parsl's own
    ``submit`` leaves out the same way).

    Parameters
    ----------
    dfk : parsl.dataflow.dflow.DataFlowKernel
        The loaded DataFlowKernel.

    Returns
    -------
    list of ParslExecutor
        The pools, in the order they were added.
    """
    return [e for label, e in dfk.executors.items() if label != PARSL_INTERNAL_EXECUTOR]


def physical_model(pool: PoolInfo) -> str:
    """The physical model a pool's results follow.

    All subexperiments of one partition must share it, or the reconstruction mixes models.

    Parameters
    ----------
    pool : PoolInfo
        The pool.

    Returns
    -------
    str
        ``"ideal"`` for simulators (exact or sampled, the same expectation values), else its
        noisy device's backend name.
    """
    return "ideal" if pool.kind != "qpu" else pool.backends[0]
