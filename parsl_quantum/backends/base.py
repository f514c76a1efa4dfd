"""The backend interface: one description (:class:`BackendSpec`) and one API
(:class:`QuantumBackend`) for simulators and QPUs alike.

A real device is configuration, not a code path: every backend hands out Qiskit primitives V2
(``SamplerV2``/``EstimatorV2``) and a ``transpile`` to its instruction-set architecture (ISA), so
task code written against a simulator runs unchanged on a fake or a real IBM device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
    from qiskit.transpiler import PassManager

BackendKind = Literal["cpu-sim", "gpu-sim", "qpu"]


class UnknownBackendError(ValueError):
    """The backend name is not in the registry (the message lists close or valid names)."""


class BackendUnavailableError(RuntimeError):
    """The backend is known but cannot be used here (missing package, device or credentials)."""


class BackendTransientError(RuntimeError):
    """A transient backend failure (a job that failed or timed out in the queue).

    Retrying the same work may succeed, so a Parsl ``retry_handler`` can recognise this class
    and retry the task; the fake devices raise it on purpose when given a ``failure_rate``.
    """


@dataclass(frozen=True)
class BackendSpec:
    """What a planner needs to know about a backend, as plain data.

    Attributes
    ----------
    name : str
        The backend's canonical registry name.
    kind : BackendKind
        ``"cpu-sim"``, ``"gpu-sim"`` or ``"qpu"``.
    max_qubits : int
        The widest circuit the backend runs.
    exact : bool
        True when the backend can return exact expectation values (simulators).
    noisy : bool
        True when results carry device noise.
    max_concurrent_jobs : int or None
        How many jobs may run on it at once (``None``: unlimited), which the QPU-aware executor
        enforces across all of a pool's workers.
    basis_gates : tuple[str, ...] or None
        The instructions of the backend's ISA (``None``: any).
    coupling_map : tuple[tuple[int, int], ...] or None
        The device's qubit couplings as directed edges (``None``: all-to-all).
    """

    name: str
    kind: BackendKind
    max_qubits: int
    exact: bool
    noisy: bool
    max_concurrent_jobs: int | None
    basis_gates: tuple[str, ...] | None
    coupling_map: tuple[tuple[int, int], ...] | None


class QuantumBackend(ABC):
    """A backend handle: a name plus options, with primitives built on first use.

    Handles are cheap to construct and pickle to their name and options only (simulators,
    noise models and remote services are rebuilt lazily in the process that uses them), so a
    handle never carries credentials into a task payload.

    Parameters
    ----------
    name : str
        The canonical registry name.
    options : dict[str, Any]
        Backend-specific options (copied).
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = dict(options)

    @property
    @abstractmethod
    def spec(self) -> BackendSpec:
        """The backend's description."""

    @abstractmethod
    def sampler(self, *, seed: int | None = None) -> BaseSamplerV2:
        """A SamplerV2 on this backend.

        Parameters
        ----------
        seed : int or None
            Makes simulated shots reproducible.

        Returns
        -------
        qiskit.primitives.BaseSamplerV2
            The sampler.
        """

    @abstractmethod
    def estimator(self, *, seed: int | None = None) -> BaseEstimatorV2:
        """An EstimatorV2 on this backend.

        Parameters
        ----------
        seed : int or None
            Makes simulated noise reproducible.

        Returns
        -------
        qiskit.primitives.BaseEstimatorV2
            The estimator.
        """

    @abstractmethod
    def transpile(
        self, circuits: Sequence[QuantumCircuit], *, seed: int | None = None
    ) -> list[QuantumCircuit]:
        """Compile circuits to this backend's ISA (layout and routing on devices).

        Observables for the estimator must follow the returned circuits' ``layout``
        (``SparsePauliOp.apply_layout``).

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

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"{type(self).__name__}({self.name!r}{', ' if opts else ''}{opts})"


def check_options(name: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Reject options a backend does not understand, naming them and the accepted ones.

    Parameters
    ----------
    name : str
        The backend's name, for the message.
    options : dict[str, Any]
        The options given.
    allowed : Sequence[str]
        The options the backend accepts.

    Raises
    ------
    ValueError
        When an option is not in ``allowed``.
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"backend {name!r} does not accept option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(allowed))}"
        )


def check_limit(name: str, value: Any) -> int | None:
    """Validate a ``max_concurrent_jobs`` option.

    Parameters
    ----------
    name : str
        The backend's name, for the message.
    value : Any
        The option's value.

    Returns
    -------
    int or None
        ``value``: a positive int, or None for no limit.

    Raises
    ------
    ValueError
        When ``value`` is neither a positive int nor None.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"backend {name!r}: max_concurrent_jobs must be a positive int or None")
    return value


class PassManagers:
    """A backend's preset pass managers, one per transpiler seed, each built on first use.

    Building a preset pass manager costs about as much as transpiling a small circuit, and a
    worker transpiles many batches for one backend, so each backend handle keeps its own.
    """

    def __init__(self) -> None:
        self._by_seed: dict[int | None, PassManager] = {}

    def transpile(
        self, circuits: Sequence[QuantumCircuit], seed: int | None, **options: Any
    ) -> list[QuantumCircuit]:
        """Run ``circuits`` through the pass manager of ``seed``.

        The pass manager is built on first use with
        ``generate_preset_pass_manager(seed_transpiler=seed, **options)`` (the options of a backend
        do not change between calls).

        Parameters
        ----------
        circuits : Sequence[QuantumCircuit]
            The circuits to compile.
        seed : int or None
            The transpiler seed, which selects the pass manager.
        **options : Any
            Arguments of ``generate_preset_pass_manager`` (optimization level, backend or basis
            gates), used when the pass manager is built.

        Returns
        -------
        list[QuantumCircuit]
            The compiled circuits, in the order given.
        """
        if seed not in self._by_seed:
            from qiskit.transpiler import generate_preset_pass_manager

            self._by_seed[seed] = generate_preset_pass_manager(seed_transpiler=seed, **options)
        return list(self._by_seed[seed].run(list(circuits)))
