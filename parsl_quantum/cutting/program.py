"""Compiled form of one partition: plain data that travels to workers.

A partition's subcircuit, as produced by qiskit-addon-cutting's ``partition_problem``, holds
``SingleQubitQPDGate`` placeholders where cuts touch it. We compile it once, on the driver, into a
:class:`PartitionProgram`: unitary segments (gate matrices) separated by *sites*, each site listing
the distinct local operation sequences that the cut's QPD terms apply on this side. Only distinct
sequences are kept (a CX cut has 6 terms but 5 distinct sequences per side), which is what makes
the number of subexperiments a product over the cuts touching the partition, and no more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit_addon_cutting.qpd import SingleQubitQPDGate

from parsl_quantum.cutting.errors import CuttingError

#: Qiskit instruction names that are not gates but are allowed (and ignored) in a partition.
_IGNORED = frozenset({"barrier", "delay", "id"})

OpKind = Literal["unitary", "measure", "reset"]


@dataclass(frozen=True)
class LocalOp:
    """One operation of a QPD term on a single qubit: a 2x2 unitary, a signed Z measurement
    (outcome ``m`` multiplies the estimate by ``(-1)**m``), or a reset to ``|0>``."""

    kind: OpKind
    matrix: np.ndarray | None = None

    def key(self) -> tuple[object, ...]:
        """A hashable identity used to deduplicate QPD terms."""
        if self.matrix is None:
            return (self.kind,)
        return (self.kind, tuple(np.round(self.matrix, 12).ravel().tolist()))


@dataclass(frozen=True)
class GateOp:
    """A unitary on one or two qubits of the partition (qubit order as in Qiskit's ``qargs``)."""

    qubits: tuple[int, ...]
    matrix: np.ndarray
    name: str


@dataclass(frozen=True)
class Site:
    """Where cut ``cut`` touches this partition, on local qubit ``qubit``.

    ``options[a]`` is the a-th distinct local operation sequence; the reconstruction indexes the
    partition tensor by ``a``.
    """

    cut: int
    qubit: int
    options: tuple[tuple[LocalOp, ...], ...]
    labels: tuple[str, ...]
    gate: str


@dataclass
class PartitionProgram:
    """A partition ready for evaluation: ``segments[0], sites[0], segments[1], ... segments[k]``.

    ``observables`` are the distinct Pauli labels (Qiskit order, rightmost = local qubit 0) whose
    expectation values the reconstruction needs from this partition.
    """

    num_qubits: int
    segments: list[list[GateOp]]
    sites: list[Site]
    observables: list[str]
    circuit: QuantumCircuit = field(repr=False)

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


def _local_ops(instructions: Sequence[object]) -> tuple[LocalOp, ...]:
    ops: list[LocalOp] = []
    for inst in instructions:
        name = inst.name  # type: ignore[attr-defined]
        if name == "qpd_measure":
            ops.append(LocalOp("measure"))
        elif name == "reset":
            ops.append(LocalOp("reset"))
        elif name in _IGNORED:
            continue
        else:
            ops.append(LocalOp("unitary", np.asarray(inst.to_matrix(), dtype=complex)))  # type: ignore[attr-defined]
    return tuple(ops)


def parse_qpd_label(label: str | None) -> tuple[str, int]:
    """The cut gate's name and the cut index from a label ``partition_problem`` wrote, such as
    ``cut_cx_3`` (gate ``cx``, cut 3) or ``cut_move_0`` (a wire cut)."""
    head, _, tail = str(label).rpartition("_")
    try:
        return head.removeprefix("cut_") or "gate", int(tail)
    except ValueError as exc:  # pragma: no cover - labels are set by partition_problem
        raise CuttingError(f"QPD gate label {label!r} does not end with a cut index") from exc


def compile_partition(
    circuit: QuantumCircuit, observables: Sequence[str]
) -> tuple[PartitionProgram, dict[int, tuple[int, list[int]]]]:
    """Compile a partition subcircuit with ``SingleQubitQPDGate`` placeholders.

    Returns the program and, per cut index, ``(side, term_to_option)``: which side of the cut this
    partition holds and which distinct option each QPD term maps to.
    """
    if circuit.num_parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters)[:5])
        raise CuttingError(f"circuit has unbound parameters: {names}")
    segments: list[list[GateOp]] = [[]]
    sites: list[Site] = []
    term_maps: dict[int, tuple[int, list[int]]] = {}
    for inst in circuit.data:
        op = inst.operation
        qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
        if isinstance(op, SingleQubitQPDGate):
            gate, cut = parse_qpd_label(op.label)
            side = int(op.qubit_id)
            keys: dict[tuple[object, ...], int] = {}
            options: list[tuple[LocalOp, ...]] = []
            labels: list[str] = []
            term_to_option: list[int] = []
            for term in op.basis.maps:
                ops = _local_ops(term[side])
                key = tuple(o.key() for o in ops)
                if key not in keys:
                    keys[key] = len(options)
                    options.append(ops)
                    labels.append("+".join(i.name for i in term[side]) or "id")
                term_to_option.append(keys[key])
            sites.append(Site(cut, qubits[0], tuple(options), tuple(labels), gate))
            term_maps[cut] = (side, term_to_option)
            segments.append([])
        elif op.name in _IGNORED:
            continue
        elif op.name in ("measure", "reset") or op.num_qubits > 2 or inst.clbits:
            raise CuttingError(
                f"unsupported instruction {op.name!r} on {op.num_qubits} qubit(s); "
                "decompose to one- and two-qubit gates without measurements first"
            )
        else:
            try:
                matrix = np.asarray(op.to_matrix(), dtype=complex)
            except Exception as exc:  # qiskit raises CircuitError for gates without a matrix
                raise CuttingError(f"unsupported gate {op.name!r}: it has no matrix") from exc
            segments[-1].append(GateOp(qubits, matrix, op.name))
    program = PartitionProgram(circuit.num_qubits, segments, sites, list(observables), circuit)
    return program, term_maps
