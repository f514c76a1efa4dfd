"""Checkpointed task results, so that a run killed part-way resumes without redoing work.

Parsl's memoizer identifies a task by a hash of its function and arguments
(:func:`parsl.dataflow.memoization.id_for_memo`) and, with ``checkpoint_mode="task_exit"``,
appends every finished task's result to ``RUN_DIR/parsl/NNN/checkpoint/tasks.pkl``. A later run
that loads those files gets each already-finished task's result from the file instead of a
worker. Apps opt in with ``cache=True``.

Importing this module registers deterministic content hashes for the argument types of the
cutting apps and the mini-apps that Parsl does not know: numpy arrays and scalars (dtype, shape
and bytes), :class:`~parsl_quantum.cutting.PartitionProgram` (its gate matrices, sites and
observables; the Qiskit circuit it was compiled from is derived data and left out), Qiskit
circuits (instructions, their parameters by value or by name, qubit and clbit positions, global
phase; not the circuit's name or metadata, which differ between otherwise equal circuits) and
``SparsePauliOp`` (Pauli labels and coefficients).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from parsl.dataflow.memoization import BasicMemoizer, id_for_memo
from parsl.utils import get_all_checkpoints
from qiskit.circuit import ParameterExpression, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.program import LocalOp, PartitionProgram

logger = logging.getLogger(__name__)


def _update_array(h: Any, arr: np.ndarray) -> None:
    a = np.ascontiguousarray(arr)
    if a.dtype.hasobject:
        raise ValueError("unknown type for memoization: numpy array of Python objects")
    h.update(repr((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())


@id_for_memo.register(np.ndarray)
def id_for_array(arr: np.ndarray, output_ref: bool = False) -> bytes:
    """Content identity of a numeric array: equal dtype, shape and values give equal ids."""
    h = hashlib.sha256()
    _update_array(h, arr)
    return pickle.dumps(("numpy.ndarray", h.hexdigest()))


@id_for_memo.register(np.generic)
def id_for_scalar(value: np.generic, output_ref: bool = False) -> bytes:
    """Content identity of a numpy scalar (``np.int64(3)`` and ``np.float64(3)`` differ)."""
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
    """Content identity of a Qiskit circuit: equal instructions on equal bit positions."""
    h = hashlib.sha256()
    _update_circuit(h, circuit)
    return pickle.dumps(("QuantumCircuit", h.hexdigest()))


@id_for_memo.register(SparsePauliOp)
def id_for_pauli_sum(op: SparsePauliOp, output_ref: bool = False) -> bytes:
    """Content identity of a Pauli sum: its labels and coefficients, in order."""
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
    """Content identity of a compiled partition: segments, sites and observables."""
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


def repair(checkpoint_dir: str | Path) -> int:
    """Cut a torn last record off ``checkpoint_dir/tasks.pkl`` (a driver killed while writing
    it) and return how many whole records the file holds."""
    path = Path(checkpoint_dir) / "tasks.pkl"
    records = good = 0
    with path.open("r+b") as fh:
        while True:
            try:
                pickle.load(fh)
            except EOFError:
                break
            except Exception:  # a torn record raises any of several unpickling errors
                logger.warning("truncating torn checkpoint record in %s at byte %d", path, good)
                fh.truncate(good)
                break
            records += 1
            good = fh.tell()
    return records


def resumable_checkpoints(parsl_run_dir: str | Path) -> list[str]:
    """Every checkpoint directory of earlier runs under a Parsl run directory, repaired."""
    dirs = [d for d in get_all_checkpoints(str(parsl_run_dir)) if os.path.exists(f"{d}/tasks.pkl")]
    for d in dirs:
        repair(d)
    return dirs


class CheckpointMemoizer(BasicMemoizer):
    """Parsl's memoizer checkpointing each task as it finishes, loading ``resume_from`` (and
    nothing else: a fresh run never picks up another run's results), and counting reuse."""

    def __init__(self, resume_from: Sequence[str] = ()) -> None:
        super().__init__(checkpoint_mode="task_exit", checkpoint_files=list(resume_from))
        self.reused = 0
        self._count_lock = threading.Lock()

    def check_memo(self, task: Any) -> Future[Any] | None:
        found = super().check_memo(task)
        if found is not None:
            with self._count_lock:
                self.reused += 1
        return found
