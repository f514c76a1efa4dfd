"""Compiling one partition's Qiskit subcircuit into plain data that travels to workers.

A partition's subcircuit, as produced by qiskit-addon-cutting's ``partition_problem``, holds
``SingleQubitQPDGate`` placeholders where cuts touch it. We compile it once, on the driver, into a
:class:`~parsl_quantum.cutting.partition.PartitionProgram`: unitary segments (gate matrices)
separated by *sites*, each site listing the distinct local operation sequences that the cut's QPD
terms apply on this side. Only distinct sequences are kept (a CX cut has 6 terms but 5 distinct
sequences per side), which is what makes the number of subexperiments a product over the cuts
touching the partition, and no more.

The program types live in the numpy-only :mod:`parsl_quantum.cutting.partition` (re-exported
here), so workers that evaluate them need no Qiskit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit_addon_cutting.qpd import SingleQubitQPDGate

from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.partition import GateOp, LocalOp, OpKind, PartitionProgram, Site

#: Qiskit instruction names that are not gates but are allowed (and ignored) in a partition.
_IGNORED = frozenset({"barrier", "delay", "id"})

__all__ = [
    "GateOp",
    "LocalOp",
    "OpKind",
    "PartitionProgram",
    "Site",
    "compile_partition",
    "parse_qpd_label",
]


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
    """The cut gate's name and the cut index from a label ``partition_problem`` wrote.

    Parameters
    ----------
    label : str or None
        A label such as ``cut_cx_3`` (gate ``cx``, cut 3) or ``cut_move_0`` (a wire cut).

    Returns
    -------
    tuple[str, int]
        The gate's name and the cut index.

    Raises
    ------
    CuttingError
        When the label does not end with a cut index.
    """
    head, _, tail = str(label).rpartition("_")
    try:
        return head.removeprefix("cut_") or "gate", int(tail)
    except ValueError as exc:  # pragma: no cover - labels are set by partition_problem
        raise CuttingError(f"QPD gate label {label!r} does not end with a cut index") from exc


def compile_partition(
    circuit: QuantumCircuit, observables: Sequence[str]
) -> tuple[PartitionProgram, dict[int, tuple[int, list[int]]]]:
    """Compile a partition subcircuit with ``SingleQubitQPDGate`` placeholders.

    Parameters
    ----------
    circuit : QuantumCircuit
        The partition's subcircuit, as ``partition_problem`` produces it.
    observables : Sequence[str]
        The Pauli labels the reconstruction needs from this partition.

    Returns
    -------
    tuple[PartitionProgram, dict[int, tuple[int, list[int]]]]
        The program and, per cut index, ``(side, term_to_option)``: which side of the cut this
        partition holds and which distinct option each QPD term maps to.

    Raises
    ------
    CuttingError
        For unbound parameters, measurements, resets, gates on more than two qubits, or gates
        without a matrix.
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
