"""Backend selection policies of the QPU-aware executor.

When a task may run on more than one backend of a pool (no ``backend`` in its resource
specification), the pool's ``selection`` policy picks one:

``first-fit``
    the first candidate, in pool order, with room under its concurrency limit; when all are
    saturated, the one with the fewest held tasks.
``round-robin``
    the candidates in turn, continuing after the backend chosen last.
``least-busy``
    the candidate with the fewest tasks in flight or held.
``least-error``
    the candidate whose estimated error on the task's circuit, after layout and routing onto
    the device, is lowest (:func:`circuit_error`); ties go to a candidate with room.

The scores are computed in the submitting process from the backends' own
:class:`~qiskit.transpiler.Target` properties, so a choice costs one transpilation per
candidate and circuit (cached by circuit content).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.transpiler import Target

    from parsl_quantum.backends import QuantumBackend

Selection = Literal["first-fit", "round-robin", "least-busy", "least-error"]

#: The policy names a pool accepts.
SELECTION_POLICIES: tuple[str, ...] = get_args(Selection)


def check_selection(selection: str) -> str:
    """Check that ``selection`` names a policy.

    Parameters
    ----------
    selection : str
        A policy name.

    Returns
    -------
    str
        ``selection``, unchanged.

    Raises
    ------
    ValueError
        A one-line error listing the policies when it names none.
    """
    if selection not in SELECTION_POLICIES:
        raise ValueError(
            f"unknown backend selection policy {selection!r}; "
            f"choose one of: {', '.join(SELECTION_POLICIES)}"
        )
    return selection


def backend_target(backend: QuantumBackend) -> Target | None:
    """The device Target of a backend handle.

    Parameters
    ----------
    backend : QuantumBackend
        A backend handle.

    Returns
    -------
    qiskit.transpiler.Target or None
        The device's Target, or None for a backend without device data (an ideal simulator).
    """
    device = getattr(backend, "device", None)
    target = getattr(device, "target", None)
    return target


def _error(target: Target, name: str, qubits: tuple[int, ...]) -> float:
    if name not in target.operation_names:
        return 0.0
    props = target[name].get(qubits)
    err = getattr(props, "error", None)
    return float(err) if err is not None else 0.0


def isa_error(isa: QuantumCircuit, target: Target) -> float:
    """Estimated probability that a compiled circuit runs wrong on the device.

    One minus the product of the success probabilities of its two-qubit gates and of the
    readout of its measured qubits (of every qubit it touches when it has no measurements).

    Parameters
    ----------
    isa : QuantumCircuit
        A circuit compiled to the device's ISA.
    target : qiskit.transpiler.Target
        The device's Target, with its error data.

    Returns
    -------
    float
        The estimated error probability.
    """
    index = {q: i for i, q in enumerate(isa.qubits)}
    success = 1.0
    measured: set[int] = set()
    touched: set[int] = set()
    for inst in isa.data:
        qubits = tuple(index[q] for q in inst.qubits)
        name = inst.operation.name
        if name == "barrier":
            continue
        touched.update(qubits)
        if name == "measure":
            measured.update(qubits)
        elif len(qubits) == 2:
            success *= 1.0 - _error(target, name, qubits)
    for q in sorted(measured or touched):
        success *= 1.0 - _error(target, "measure", (q,))
    return 1.0 - success


def circuit_error(backend: QuantumBackend, circuit: QuantumCircuit, seed: int = 0) -> float:
    """:func:`isa_error` of ``circuit`` after the backend's own transpilation.

    Parameters
    ----------
    backend : QuantumBackend
        The backend whose layout, routing and basis apply.
    circuit : QuantumCircuit
        The circuit to score.
    seed : int
        Transpiler seed.

    Returns
    -------
    float
        The estimated error probability; 0.0 for a backend without device error data.
    """
    target = backend_target(backend)
    if target is None:
        return 0.0
    (isa,) = backend.transpile([circuit], seed=seed)
    return isa_error(isa, target)


def task_circuits(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[QuantumCircuit]:
    """The quantum circuits among a task's arguments (top level and inside lists/tuples).

    Parameters
    ----------
    args : Sequence[Any]
        The task's positional arguments.
    kwargs : Mapping[str, Any]
        The task's keyword arguments.

    Returns
    -------
    list[QuantumCircuit]
        The circuits found, in argument order.
    """
    from qiskit import QuantumCircuit

    found: list[QuantumCircuit] = []

    def visit(values: Iterable[Any]) -> None:
        for v in values:
            if isinstance(v, QuantumCircuit):
                found.append(v)
            elif isinstance(v, list | tuple):
                found.extend(x for x in v if isinstance(x, QuantumCircuit))

    visit(args)
    visit(kwargs.values())
    return found


def _probe_circuit() -> QuantumCircuit:
    """A Bell pair measured: scores a backend when the task carries no circuit."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


class ErrorScorer:
    """Scores of (backend, circuit) pairs, cached by the circuit's content.

    Parameters
    ----------
    backends : Mapping[str, QuantumBackend]
        The backend handles to score on, by name.
    size : int
        The most scores kept; the oldest go first.
    """

    def __init__(self, backends: Mapping[str, QuantumBackend], size: int = 4096) -> None:
        self.backends = dict(backends)
        self.size = size
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def score(self, name: str, circuits: Sequence[QuantumCircuit]) -> float:
        """Summed estimated error of ``circuits`` on backend ``name``.

        Parameters
        ----------
        name : str
            A key of the scorer's ``backends``.
        circuits : Sequence[QuantumCircuit]
            The task's circuits; a Bell pair is scored when there are none.

        Returns
        -------
        float
            The sum of :func:`circuit_error` over the circuits.
        """
        from qiskit import qasm3

        total = 0.0
        for circuit in circuits or [_probe_circuit()]:
            try:
                key: tuple[str, str] | None = (name, qasm3.dumps(circuit))
            except Exception:  # a circuit OpenQASM 3 cannot express is scored, not cached
                key = None
            with self._lock:
                cached = self._cache.get(key) if key else None
            if cached is None:
                cached = circuit_error(self.backends[name], circuit)
                if key:
                    with self._lock:
                        self._cache[key] = cached
                        while len(self._cache) > self.size:
                            self._cache.popitem(last=False)
            total += cached
        return total
