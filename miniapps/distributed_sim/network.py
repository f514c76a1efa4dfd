"""The contraction math of the distributed simulation: circuits, their tensor networks, the
sliced contraction tree that bounds every task's memory, the slice-contracting task, and the
exact reference it is checked against."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit

#: What a run computes: an amplitude <b|C|0> or a local expectation value.
Quantity = Literal["amplitude", "expectation"]
#: Which exact reference to compute (see :func:`reference_method`).
ReferenceChoice = Literal["auto", "statevector", "mps", "none"]

#: Bytes per tensor entry (complex128).
ITEMSIZE = 16
#: The largest width for which the reference is a full statevector (16 MiB at 20 qubits).
STATEVECTOR_MAX_QUBITS = 22
#: Pauli matrices for local observables.
_PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def grid_circuit(rows: int, cols: int, depth: int, seed: int = 1234) -> QuantumCircuit:
    """A random circuit on a ``rows x cols`` grid (qubit ``r * cols + c``), in the style of
    random-circuit-sampling experiments: each cycle applies seeded ``ry``/``rz`` rotations to
    every qubit, then CZ gates on one of four edge patterns (horizontal even/odd, vertical
    even/odd) in turn. Its tensor network grows wide with depth in both grid directions, which
    is what makes slicing necessary."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    patterns: list[list[tuple[int, int]]] = [[], [], [], []]
    for r in range(rows):
        for c in range(cols):
            q = r * cols + c
            if c + 1 < cols:
                patterns[c % 2].append((q, q + 1))
            if r + 1 < rows:
                patterns[2 + r % 2].append((q, q + cols))
    patterns = [p for p in patterns if p] or [[]]
    qc = QuantumCircuit(n, name=f"grid-{rows}x{cols}-d{depth}-s{seed}")
    for cycle in range(depth):
        for q in range(n):
            qc.ry(float(rng.uniform(0, np.pi)), q)
            qc.rz(float(rng.uniform(0, 2 * np.pi)), q)
        for a, b in patterns[cycle % len(patterns)]:
            qc.cz(a, b)
    return qc


def to_quimb(circuit: QuantumCircuit) -> Any:
    """The circuit as a quimb ``Circuit``, gate by gate from each gate's matrix.

    Qiskit orders a gate's matrix with its first qubit least significant, quimb with its first
    site most significant, hence the reversed sites. Barriers are dropped; measurements and
    classical bits are refused.
    """
    import quimb.tensor as qtn

    circ = qtn.Circuit(circuit.num_qubits)
    for inst in circuit.data:
        op = inst.operation
        if op.name == "barrier":
            continue
        if inst.clbits or op.name in ("measure", "reset"):
            raise ValueError(f"cannot simulate {op.name!r} as a tensor network (unitary only)")
        sites = tuple(circuit.find_bit(q).index for q in inst.qubits)
        circ.apply_gate_raw(np.asarray(op.to_matrix(), dtype=complex), tuple(reversed(sites)))
    return circ


def local_operator(pauli: str, qubits: Sequence[int]) -> np.ndarray:
    """The dense operator of a Pauli product on ``qubits`` in quimb's order (first qubit most
    significant), e.g. ``("ZZ", (3, 4))`` for ``Z_3 Z_4``."""
    if len(pauli) != len(qubits):
        raise ValueError(f"observable {pauli!r} needs {len(pauli)} qubits, got {list(qubits)}")
    op = np.array([[1.0 + 0j]])
    for p in pauli:
        op = np.kron(op, _PAULI[p])
    return op


# ------------------------------------------------------------------------------------------
# Planning: the tensor network and its sliced contraction tree


@dataclass
class SlicedContraction:
    """A tensor network ready for sliced contraction: its arrays, the sliced tree, and the
    scale factor ``10**exponent`` quimb stripped while simplifying."""

    arrays: list[np.ndarray]
    tree: Any  # cotengra.ContractionTree with sliced indices
    exponent: float
    nslices: int
    width_unsliced: float  # log2 of the largest intermediate without slicing
    width_sliced: float  # log2 of the largest intermediate of one slice
    flops_unsliced: float
    flops_sliced: float  # summed over all slices
    peak_bytes: int  # estimated peak memory of contracting one slice, inputs included
    input_bytes: int  # the network's input tensors (sent with every task)
    search_s: float = 0.0  # seconds the contraction search took


def build_network(
    circuit: QuantumCircuit,
    quantity: Quantity,
    bitstring: str | None = None,
    pauli: str | None = None,
    qubits: Sequence[int] | None = None,
) -> Any:
    """The simplified quimb tensor network of ``quantity`` (scalar output).

    ``amplitude``: ``<bitstring|C|0>``, bit ``i`` of ``bitstring`` is qubit ``i``.
    ``expectation``: ``<C^dag P C>`` with ``P = pauli`` on ``qubits``, using only the gates in
    the reverse light cone of ``qubits``.
    """
    circ = to_quimb(circuit)
    if quantity == "amplitude":
        if bitstring is None or len(bitstring) != circuit.num_qubits:
            raise ValueError(f"amplitude needs a bitstring of {circuit.num_qubits} bits")
        return circ.amplitude_tn(bitstring, simplify_equalize_norms=False)
    if quantity == "expectation":
        if not pauli or qubits is None:
            raise ValueError("expectation needs an observable (pauli and qubits)")
        bad = [q for q in qubits if not 0 <= q < circuit.num_qubits]
        if bad:
            raise ValueError(f"observable qubits {bad} outside 0..{circuit.num_qubits - 1}")
        return circ.local_expectation_tn(
            local_operator(pauli, qubits), tuple(qubits), simplify_equalize_norms=False
        )
    raise ValueError(f"unknown quantity {quantity!r} (amplitude or expectation)")


def plan_slices(
    tn: Any,
    task_memory_mb: float,
    *,
    max_repeats: int = 32,
    max_time: float | None = None,
    seed: int = 0,
) -> SlicedContraction:
    """Find a contraction tree whose slices fit ``task_memory_mb`` each.

    cotengra's ``HyperOptimizer`` samples greedy trees with slicing built into every trial
    (``slicing_opts={"target_size": ...}``), so a tree is chosen for its cost *after* slicing
    rather than sliced after the fact (slicing a tree found for the unsliced contraction can
    cost orders of magnitude more). The largest intermediate is held to a quarter of the
    budget, leaving room for its two operands; the inputs (the gate tensors, a few bytes per
    gate) come on top and are reported in ``input_bytes``. The slicing overhead is reported
    against the same tree unsliced.
    """
    import cotengra as ctg

    started = time.perf_counter()
    budget = int(task_memory_mb * 2**20)
    target = max(2, budget // ITEMSIZE // 4)
    optimizer = ctg.HyperOptimizer(
        methods=["greedy"],
        max_repeats=max_repeats,
        max_time=max_time,
        parallel=False,
        slicing_opts={"target_size": target, "max_repeats": 4, "seed": seed},
        optlib_opts={"seed": seed},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cotengra warns about optional optimisers it lacks
        tree = tn.contraction_tree(optimize=optimizer, output_inds=())
    full = tree.copy()
    full.unslice_all_()
    arrays = [np.asarray(t.data) for t in tn]
    return SlicedContraction(
        arrays=arrays,
        tree=tree,
        exponent=float(getattr(tn, "exponent", 0.0)),
        nslices=int(tree.nslices),
        width_unsliced=math.log2(float(full.max_size())),
        width_sliced=math.log2(float(tree.max_size())),
        flops_unsliced=float(full.contraction_cost()),
        flops_sliced=float(tree.contraction_cost()),
        peak_bytes=int(float(tree.peak_size()) * ITEMSIZE),
        input_bytes=int(sum(a.nbytes for a in arrays)),
        search_s=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------------
# Tasks


@dataclass
class SliceOutcome:
    """Partial sum of a group of slices and the time spent contracting them."""

    value: complex
    slices: int
    compute_s: float


def contract_slices(
    tree: Any, arrays: Sequence[np.ndarray], indices: Sequence[int]
) -> SliceOutcome:
    """Contract slices ``indices`` of the network and return their sum (a task).

    Each slice fixes the sliced indices to one combination of values; cotengra cuts the input
    arrays accordingly and contracts the remaining, smaller network.
    """
    start = time.perf_counter()
    total = 0j
    for i in indices:
        total += complex(tree.contract_slice(arrays, int(i)))
    return SliceOutcome(total, len(indices), time.perf_counter() - start)


def warm_up_contraction() -> int:
    """Import quimb and cotengra in this worker (a task), so that the timed contraction
    describes the steady state rather than a worker's first imports."""
    import cotengra  # noqa: F401
    import quimb.tensor  # noqa: F401

    return os.getpid()


def is_chain(circuit: QuantumCircuit) -> bool:
    """True when every multi-qubit gate acts on neighbouring qubits ``i, i+1`` (a 1D circuit,
    whose matrix product state stays exact at modest bond dimension)."""
    for inst in circuit.data:
        idx = sorted(circuit.find_bit(q).index for q in inst.qubits)
        if len(idx) > 1 and idx[-1] - idx[0] != len(idx) - 1:
            return False
    return True


def reference_method(circuit: QuantumCircuit, reference: ReferenceChoice = "auto") -> str | None:
    """The Aer method of the exact reference (None: no reference).

    ``auto``: the statevector up to :data:`STATEVECTOR_MAX_QUBITS` qubits; beyond that a matrix
    product state, but only for chain circuits (:func:`is_chain`). On 2D circuits Aer's MPS
    needs bond dimensions exponential in the width and its value drifts (a 4x5 grid of depth 12
    took minutes and missed the statevector amplitude), so ``auto`` gives no reference there.
    """
    if reference == "none":
        return None
    if reference == "statevector":
        return "statevector"
    if reference == "mps":
        return "matrix_product_state"
    if circuit.num_qubits <= STATEVECTOR_MAX_QUBITS:
        return "statevector"
    return "matrix_product_state" if is_chain(circuit) else None
