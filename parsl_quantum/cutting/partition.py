"""A compiled partition as plain numpy data: what an exact evaluation task needs, and no more.

This module imports numpy only, so a worker that evaluates subexperiments exactly never loads
Qiskit. :func:`~parsl_quantum.cutting.program.compile_partition` builds these types on the
driver from a Qiskit subcircuit.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit

OpKind = Literal["unitary", "measure", "reset"]


@dataclass(frozen=True)
class LocalOp:
    """One operation of a QPD term on a single qubit.

    Attributes
    ----------
    kind : OpKind
        ``"unitary"``; ``"measure"``, a signed Z measurement (outcome ``m`` multiplies the estimate
        by ``(-1)**m``); or ``"reset"`` to ``|0>``.
    matrix : numpy.ndarray or None
        The 2x2 unitary of a ``"unitary"`` operation; None otherwise.
    """

    kind: OpKind
    matrix: np.ndarray | None = None

    def key(self) -> tuple[object, ...]:
        """A hashable identity used to deduplicate QPD terms.

        Returns
        -------
        tuple[object, ...]
            The kind, and the matrix rounded to 12 digits when there is one.
        """
        if self.matrix is None:
            return (self.kind,)
        return (self.kind, tuple(np.round(self.matrix, 12).ravel().tolist()))


@dataclass(frozen=True)
class GateOp:
    """A unitary on one or two qubits of the partition.

    Attributes
    ----------
    qubits : tuple[int, ...]
        Local qubits, in the order of Qiskit's ``qargs``.
    matrix : numpy.ndarray
        The gate's unitary.
    name : str
        The gate's Qiskit name.
    """

    qubits: tuple[int, ...]
    matrix: np.ndarray
    name: str


@dataclass(frozen=True)
class Site:
    """Where cut ``cut`` touches this partition, on local qubit ``qubit``.

    Attributes
    ----------
    cut : int
        The global cut index.
    qubit : int
        The local qubit the cut touches.
    options : tuple[tuple[LocalOp, ...], ...]
        ``options[a]`` is the a-th distinct local operation sequence; the reconstruction indexes
        the partition tensor by ``a``.
    labels : tuple[str, ...]
        A readable name of each option.
    gate : str
        The name of the cut gate (``move`` for a wire cut).
    """

    cut: int
    qubit: int
    options: tuple[tuple[LocalOp, ...], ...]
    labels: tuple[str, ...]
    gate: str


#: The pickled form of ``PartitionProgram.circuit`` in a program's serialised state.
_CIRCUIT_BYTES = "_circuit_bytes"


@dataclass
class PartitionProgram:
    """A partition ready for evaluation: ``segments[0], sites[0], segments[1], ... segments[k]``.

    Attributes
    ----------
    num_qubits : int
        The partition's width.
    segments : list[list[GateOp]]
        The unitary segments between the sites.
    sites : list[Site]
        Where cuts touch the partition, in circuit order.
    observables : list[str]
        The distinct Pauli labels (Qiskit order, rightmost = local qubit 0) whose expectation
        values the reconstruction needs from this partition.
    circuit : QuantumCircuit
        The Qiskit subcircuit it was compiled from, which only sampled evaluation reads: a
        serialised program carries it as bytes that are unpickled (importing Qiskit) on first
        access, so exact evaluation on a worker never loads Qiskit.
    """

    num_qubits: int
    segments: list[list[GateOp]]
    sites: list[Site]
    observables: list[str]
    circuit: QuantumCircuit = field(repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        blob = state.pop(_CIRCUIT_BYTES, None)
        if "circuit" in state:
            blob = pickle.dumps(state.pop("circuit"), protocol=pickle.HIGHEST_PROTOCOL)
        state[_CIRCUIT_BYTES] = blob
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # The state goes through the standard (C) pickler as one bytes object, whatever
        # pickler serialises the program: Parsl's dill pickles its many small matrices in
        # Python, several times slower, and that is paid on the driver for every task sent.
        return _unpickle_program, (pickle.dumps(self.__getstate__(), pickle.HIGHEST_PROTOCOL),)

    def __repr__(self) -> str:
        # Short: Parsl logs every task's arguments' reprs at DEBUG level, on the driver,
        # before sending it; the gate matrices' reprs would cost milliseconds per task.
        return (
            f"{type(self).__name__}(num_qubits={self.num_qubits}, gates={self.num_gates}, "
            f"sites={len(self.sites)}, observables={len(self.observables)})"
        )

    def __getattr__(self, name: str) -> Any:
        # Reached only for attributes not set: the circuit of an unpickled program.
        blob = self.__dict__.get(_CIRCUIT_BYTES) if name == "circuit" else None
        if blob is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        circuit = pickle.loads(blob)
        self.__dict__["circuit"] = circuit
        return circuit

    @property
    def cuts(self) -> tuple[int, ...]:
        """Global cut indices, in the order of the partition tensor's cut axes."""
        return tuple(s.cut for s in self.sites)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the partition tensor: (observables, options of each site...)."""
        return (len(self.observables), *(len(s.options) for s in self.sites))

    @property
    def num_subexperiments(self) -> int:
        """Distinct subexperiments: one per combination of the site options (an exact integer:
        a partition with many cut sites must compare as huge, not wrap around)."""
        return math.prod(len(s.options) for s in self.sites)

    @property
    def num_gates(self) -> int:
        """Gates in all segments, a size measure for the cost model."""
        return sum(len(seg) for seg in self.segments)


def _unpickle_program(blob: bytes) -> PartitionProgram:
    """A program from the bytes :meth:`PartitionProgram.__reduce__` made."""
    program = PartitionProgram.__new__(PartitionProgram)
    program.__setstate__(pickle.loads(blob))
    return program
