"""Content hashes for Parsl's memoizer of the task arguments Parsl does not know.

Importing this module registers, with Parsl's ``id_for_memo``, deterministic hashes for the
argument types of the cutting apps and the mini-apps: numpy arrays and scalars (dtype, shape and
bytes), :class:`~parsl_quantum.cutting.PartitionProgram` (its gate matrices, sites and
observables; the Qiskit circuit it was compiled from is derived data and left out), Qiskit
circuits (instructions, their parameters by value or by name, qubit and clbit positions, global
phase; not the circuit's name or metadata, which differ between otherwise equal circuits) and
``SparsePauliOp`` (Pauli labels and coefficients).
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import numpy as np
from parsl.dataflow.memoization import id_for_memo
from qiskit.circuit import ParameterExpression, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.program import LocalOp, PartitionProgram


def _update_array(h: Any, arr: np.ndarray) -> None:
    a = np.ascontiguousarray(arr)
    if a.dtype.hasobject:
        raise ValueError("unknown type for memoization: numpy array of Python objects")
    h.update(repr((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())


@id_for_memo.register(np.ndarray)
def id_for_array(arr: np.ndarray, output_ref: bool = False) -> bytes:
    """Content identity of a numeric array: equal dtype, shape and values give equal ids.

    Parameters
    ----------
    arr : numpy.ndarray
        A task argument.
    output_ref : bool
        Part of Parsl's ``id_for_memo`` signature; the id does not depend on it.

    Returns
    -------
    bytes
        The id Parsl's memoizer hashes.
    """
    h = hashlib.sha256()
    _update_array(h, arr)
    return pickle.dumps(("numpy.ndarray", h.hexdigest()))


@id_for_memo.register(np.generic)
def id_for_scalar(value: np.generic, output_ref: bool = False) -> bytes:
    """Content identity of a numpy scalar (``np.int64(3)`` and ``np.float64(3)`` differ).

    Parameters
    ----------
    value : numpy.generic
        A task argument.
    output_ref : bool
        Part of Parsl's ``id_for_memo`` signature; the id does not depend on it.

    Returns
    -------
    bytes
        The id Parsl's memoizer hashes.
    """
    return pickle.dumps(("numpy.generic", np.dtype(type(value)).str, value.tobytes()))


def _update_param(h: Any, param: Any) -> None:
    if isinstance(param, QuantumCircuit):
        _update_circuit(h, param)
    elif isinstance(param, ParameterExpression):
        h.update(b"expr:" + str(param).encode())
    elif isinstance(param, np.ndarray):
        _update_array(h, param)
    else:
        h.update(repr(param).encode())


def _update_circuit(h: Any, circuit: QuantumCircuit) -> None:
    h.update(repr((circuit.num_qubits, circuit.num_clbits)).encode())
    _update_param(h, circuit.global_phase)
    for instruction in circuit.data:
        op = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        clbits = [circuit.find_bit(c).index for c in instruction.clbits]
        h.update(repr((op.name, op.num_qubits, qubits, clbits)).encode())
        for param in op.params:
            _update_param(h, param)


@id_for_memo.register(QuantumCircuit)
def id_for_circuit(circuit: QuantumCircuit, output_ref: bool = False) -> bytes:
    """Content identity of a Qiskit circuit: equal instructions on equal bit positions.

    Parameters
    ----------
    circuit : QuantumCircuit
        A task argument.
    output_ref : bool
        Part of Parsl's ``id_for_memo`` signature; the id does not depend on it.

    Returns
    -------
    bytes
        The id Parsl's memoizer hashes.
    """
    h = hashlib.sha256()
    _update_circuit(h, circuit)
    return pickle.dumps(("QuantumCircuit", h.hexdigest()))


@id_for_memo.register(SparsePauliOp)
def id_for_pauli_sum(op: SparsePauliOp, output_ref: bool = False) -> bytes:
    """Content identity of a Pauli sum: its labels and coefficients, in order.

    Parameters
    ----------
    op : SparsePauliOp
        A task argument.
    output_ref : bool
        Part of Parsl's ``id_for_memo`` signature; the id does not depend on it.

    Returns
    -------
    bytes
        The id Parsl's memoizer hashes.
    """
    h = hashlib.sha256()
    h.update(repr(op.paulis.to_labels()).encode())
    _update_array(h, op.coeffs)
    return pickle.dumps(("SparsePauliOp", h.hexdigest()))


def _update_op(h: Any, op: LocalOp) -> None:
    h.update(op.kind.encode())
    if op.matrix is not None:
        _update_array(h, op.matrix)


@id_for_memo.register(PartitionProgram)
def id_for_program(program: PartitionProgram, output_ref: bool = False) -> bytes:
    """Content identity of a compiled partition: segments, sites and observables.

    Parameters
    ----------
    program : PartitionProgram
        A task argument.
    output_ref : bool
        Part of Parsl's ``id_for_memo`` signature; the id does not depend on it.

    Returns
    -------
    bytes
        The id Parsl's memoizer hashes.
    """
    h = hashlib.sha256()
    h.update(repr((program.num_qubits, list(program.observables))).encode())
    for segment in program.segments:
        h.update(b"segment")
        for gate in segment:
            h.update(repr((gate.name, gate.qubits)).encode())
            _update_array(h, gate.matrix)
    for site in program.sites:
        h.update(repr(("site", site.cut, site.qubit, site.labels, site.gate)).encode())
        for option in site.options:
            h.update(b"option")
            for op in option:
                _update_op(h, op)
    return pickle.dumps(("PartitionProgram", h.hexdigest()))
