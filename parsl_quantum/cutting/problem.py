"""Cutting problems: a circuit and observable split into compiled partitions and cut matrices.

A :class:`CutProblem` is what the planner sizes and the task layer evaluates. Gate cuts come from
partition labels (every two-qubit gate between partitions is cut) and wire cuts from
qiskit-addon-cutting's ``find_cuts``/``cut_wires``; either way the addon's ``partition_problem``
separates the circuit and observables, and :func:`compile_partition` turns each piece into plain
data.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp
from qiskit_addon_cutting import (
    DeviceConstraints,
    OptimizationParameters,
    find_cuts,
    partition_problem,
)
from qiskit_addon_cutting.instructions import Move
from qiskit_addon_cutting.qpd import TwoQubitQPDGate

from parsl_quantum.cutting.errors import CuttingError, NoCutFoundError
from parsl_quantum.cutting.program import PartitionProgram, compile_partition


@dataclass(frozen=True)
class Cut:
    """One cut between partitions ``a`` and ``b`` (side 0 of the cut gate is in ``a``).

    ``weights[i, j]`` is the sum of the QPD coefficients of the terms whose local operations are
    option ``i`` of ``a``'s site and option ``j`` of ``b``'s site.
    """

    index: int
    kind: str  # "gate" or "wire"
    gate: str
    a: int
    b: int
    weights: np.ndarray
    num_terms: int

    @property
    def gamma(self) -> float:
        """The cut's sampling overhead factor (the 1-norm of its QPD coefficients)."""
        return float(np.abs(self.weights).sum())


@dataclass
class CutProblem:
    """A circuit cut into partitions, plus everything needed to reconstruct an observable.

    ``term_coeffs[t]`` and ``term_index[t, p]`` describe the observable: term t is the product
    over partitions p of ``partitions[p].observables[term_index[t, p]]``.
    """

    num_qubits: int
    partitions: list[PartitionProgram]
    qubits: list[tuple[int, ...]]
    cuts: list[Cut]
    term_coeffs: np.ndarray
    term_index: np.ndarray

    @property
    def widths(self) -> list[int]:
        return [p.num_qubits for p in self.partitions]

    @property
    def num_subexperiments(self) -> int:
        """Distinct subexperiments over all partitions (what this engine evaluates)."""
        return sum(p.num_subexperiments for p in self.partitions)

    @property
    def num_generated_addon(self) -> int:
        """Subexperiments qiskit-addon-cutting's ``generate_cutting_experiments`` produces for the
        same cuts: every partition gets the product of all cuts' term counts (one commuting
        observable group assumed per partition)."""
        total_terms = int(np.prod([c.num_terms for c in self.cuts], dtype=np.int64))
        return len(self.partitions) * total_terms

    @property
    def sampling_overhead(self) -> float:
        """Product of the cuts' squared gammas: the shot multiplier of sampled evaluation."""
        return float(np.prod([c.gamma**2 for c in self.cuts]))

    def describe(self) -> dict[str, object]:
        """Plain-data summary for reports and JSON output."""
        return {
            "partitions": [
                {
                    "qubits": p.num_qubits,
                    "subexperiments": p.num_subexperiments,
                    "cuts": list(p.cuts),
                }
                for p in self.partitions
            ],
            "cuts": [
                {"index": c.index, "kind": c.kind, "gate": c.gate, "between": [c.a, c.b]}
                for c in self.cuts
            ],
            "subexperiments": self.num_subexperiments,
        }


def observable_from_terms(observable: SparsePauliOp) -> tuple[PauliList, np.ndarray]:
    """Split an observable into Pauli terms (phase-free) and real coefficients."""
    op = observable.simplify(atol=0)
    if np.abs(op.coeffs.imag).max(initial=0) > 1e-12:
        raise CuttingError("the observable must be Hermitian with real coefficients")
    paulis = op.paulis.copy()
    coeffs = op.coeffs.real.copy()
    phase = paulis.phase % 4
    # fold (-i)^phase into the coefficient: phases 0 and 2 only for Hermitian terms
    coeffs = coeffs * np.where(phase == 2, -1.0, 1.0)
    paulis.phase = 0
    return paulis, coeffs


def _build(
    circuit: QuantumCircuit, labels: Sequence[Hashable], paulis: PauliList, coeffs: np.ndarray
) -> CutProblem:
    try:
        part = partition_problem(circuit, partition_labels=list(labels), observables=paulis)
    except ValueError as exc:
        raise CuttingError(str(exc).splitlines()[0]) from None
    order = sorted(part.subcircuits, key=str)
    qubits = [tuple(i for i, lab in enumerate(labels) if lab == key) for key in order]
    subobs = part.subobservables or {}
    programs: list[PartitionProgram] = []
    term_index = np.zeros((len(paulis), len(order)), dtype=np.int64)
    sides: dict[int, dict[int, tuple[int, list[int]]]] = {}
    gates: dict[int, str] = {}
    for p, key in enumerate(order):
        labels_p = [pl.to_label() for pl in subobs[key]]
        distinct = list(dict.fromkeys(labels_p))
        index = {lab: i for i, lab in enumerate(distinct)}
        term_index[:, p] = [index[lab] for lab in labels_p]
        program, term_maps = compile_partition(part.subcircuits[key], distinct)
        programs.append(program)
        gates.update({site.cut: site.gate for site in program.sites})
        for cut, side_map in term_maps.items():
            sides.setdefault(cut, {})[p] = side_map
    cuts = []
    for idx, basis in enumerate(part.bases):
        by_side = {side: (p, mapping) for p, (side, mapping) in sides.get(idx, {}).items()}
        if set(by_side) != {0, 1}:
            raise CuttingError(f"cut {idx} does not join two partitions")
        pa, map_a = by_side[0]
        pb, map_b = by_side[1]
        weights = np.zeros((max(map_a) + 1, max(map_b) + 1))
        for term, coeff in enumerate(basis.coeffs):
            weights[map_a[term], map_b[term]] += coeff
        kind = "wire" if gates[idx] == "move" else "gate"
        cuts.append(Cut(idx, kind, gates[idx], pa, pb, weights, len(basis.coeffs)))
    return CutProblem(circuit.num_qubits, programs, qubits, cuts, coeffs, term_index)


def _check_widths(circuit: QuantumCircuit, observable: SparsePauliOp) -> None:
    if observable.num_qubits != circuit.num_qubits:
        raise CuttingError(
            f"the observable acts on {observable.num_qubits} qubits but the circuit has "
            f"{circuit.num_qubits}"
        )


def cut_by_labels(
    circuit: QuantumCircuit, observable: SparsePauliOp, labels: Sequence[int]
) -> CutProblem:
    """Gate-cut every two-qubit gate whose qubits have different partition labels."""
    if len(labels) != circuit.num_qubits:
        raise CuttingError(
            f"{len(labels)} partition labels for a circuit of {circuit.num_qubits} qubits"
        )
    _check_widths(circuit, observable)
    paulis, coeffs = observable_from_terms(observable)
    return _build(circuit, labels, paulis, coeffs)


def cut_with_wires(
    cut_circuit: QuantumCircuit, original: QuantumCircuit, observable: SparsePauliOp
) -> CutProblem:
    """Build a problem from a circuit holding QPD gates and ``CutWire`` markers (the output of
    qiskit-addon-cutting's ``find_cuts``); wire cuts become ``Move`` cuts onto new qubits, and
    partitions are the connected pieces that remain."""
    _check_widths(original, observable)
    paulis, coeffs = observable_from_terms(observable)
    moved, final_wire = wires_to_moves(cut_circuit)
    labels = []
    for label in paulis.to_labels():
        wide = ["I"] * moved.num_qubits
        for q, ch in enumerate(reversed(label)):
            wide[final_wire[q]] = ch
        labels.append("".join(reversed(wide)))
    expanded = PauliList(labels)
    problem = _build(moved, _connectivity_labels(moved), expanded, coeffs)
    problem.num_qubits = original.num_qubits
    return problem


def find_cut_problem(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    max_width: int,
    *,
    seed: int = 0,
    max_backjumps: int = 10_000,
) -> CutProblem:
    """Cut with qiskit-addon-cutting's ``find_cuts``: the gate and wire cuts of least sampling
    overhead that leave no piece wider than ``max_width`` qubits (a wire cut's new wire
    included). Where one qubit meets many others in turn, one wire cut can replace several gate
    cuts. Seeded, so the same inputs give the same cuts. Past ``max_backjumps`` the search
    returns its greedy best; :class:`NoCutFoundError` when it finds no cut at all."""
    _check_widths(circuit, observable)
    params = OptimizationParameters(
        seed=seed, gate_lo=True, wire_lo=True, max_backjumps=max_backjumps
    )
    constraints = DeviceConstraints(qubits_per_subcircuit=max_width)
    try:
        cut_circuit, _ = find_cuts(circuit, params, constraints)
    except ValueError as exc:  # a gate on more than two qubits
        raise NoCutFoundError(f"find_cuts: {exc}") from None
    except AttributeError:  # the search found nothing (the addon then reads None's actions)
        raise NoCutFoundError(
            f"find_cuts found no cut into pieces of at most {max_width} qubits"
        ) from None
    return cut_with_wires(cut_circuit, circuit, observable)


def wires_to_moves(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[int]]:
    """Replace each ``CutWire`` on qubit q by a ``Move`` from q's current wire to a fresh one.

    Returns the new circuit and, per original qubit, the wire holding its final state. (This
    replaces qiskit-addon-cutting's ``cut_wires``, which allocates too few wires when a qubit has
    non-consecutive wire cuts.)
    """
    cuts_per_qubit = [0] * circuit.num_qubits
    for inst in circuit.data:
        if inst.operation.name == "cut_wire":
            cuts_per_qubit[circuit.find_bit(inst.qubits[0]).index] += 1
    current = list(np.cumsum([0] + [c + 1 for c in cuts_per_qubit[:-1]]))
    moved = QuantumCircuit(sum(c + 1 for c in cuts_per_qubit))
    for inst in circuit.data:
        idx = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "cut_wire":
            q = idx[0]
            moved.append(TwoQubitQPDGate.from_instruction(Move()), [current[q], current[q] + 1])
            current[q] += 1
        else:
            moved.append(inst.operation, [current[i] for i in idx])
    return moved, [int(c) for c in current]


def _connectivity_labels(circuit: QuantumCircuit) -> list[int]:
    """Partition labels from the connected components of the interaction graph, ignoring the
    two-qubit QPD gates that mark cuts."""
    graph = nx.Graph()
    graph.add_nodes_from(range(circuit.num_qubits))
    for inst in circuit.data:
        if inst.operation.name == "qpd_2q" or len(inst.qubits) < 2:
            continue
        qs = [circuit.find_bit(q).index for q in inst.qubits]
        graph.add_edges_from(zip(qs, qs[1:], strict=False))
    labels = [0] * circuit.num_qubits
    for i, comp in enumerate(sorted(nx.connected_components(graph), key=min)):
        for q in comp:
            labels[q] = i
    return labels
