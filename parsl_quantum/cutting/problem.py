"""Cutting problems: a circuit and observable split into compiled partitions and cut matrices.

A :class:`CutProblem` is what the planner sizes and the task layer evaluates. Gate cuts come from
partition labels (every two-qubit gate between partitions is cut) and wire cuts from
qiskit-addon-cutting's ``find_cuts``/``cut_wires``; either way the addon's ``partition_problem``
separates the circuit and observables, and :func:`compile_partition` turns each piece into plain
data.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

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

    Attributes
    ----------
    index : int
        The global cut index.
    kind : str
        ``"gate"`` or ``"wire"``.
    gate : str
        The name of the cut gate (for a wire cut, of the two-qubit gate just after the cut once
        located, else ``move``).
    a : int
        The partition holding side 0 of the cut gate.
    b : int
        The partition holding side 1.
    weights : numpy.ndarray
        ``weights[i, j]`` is the sum of the QPD coefficients of the terms whose local operations
        are option ``i`` of ``a``'s site and option ``j`` of ``b``'s site.
    num_terms : int
        The number of QPD terms of the cut.
    position : int
        The index (in ``circuit.data``) of the two-qubit gate that is cut, or for a wire cut the
        two-qubit gate just after the cut on the wire; -1 when unknown.
    qubits : tuple[int, ...]
        That gate's two qubits.
    wire : int or None
        For wire cuts only, the qubit whose wire is cut.
    """

    index: int
    kind: str  # "gate" or "wire"
    gate: str
    a: int
    b: int
    weights: np.ndarray
    num_terms: int
    position: int = -1
    qubits: tuple[int, ...] = ()
    wire: int | None = None

    def location(self) -> dict[str, object]:
        """Plain-data description of where the cut is (for reports and JSON).

        Returns
        -------
        dict[str, object]
            ``kind``, ``instruction``, ``gate``, ``qubits``, ``wire`` (wire cuts only) and
            ``between`` (the two partitions).
        """
        out: dict[str, object] = {
            "kind": self.kind,
            "instruction": self.position,
            "gate": self.gate,
            "qubits": list(self.qubits),
        }
        if self.wire is not None:
            out["wire"] = self.wire
        out["between"] = [self.a, self.b]
        return out

    @property
    def gamma(self) -> float:
        """The cut's sampling overhead factor (the 1-norm of its QPD coefficients)."""
        return float(np.abs(self.weights).sum())


@dataclass
class CutProblem:
    """A circuit cut into partitions, plus everything needed to reconstruct an observable.

    Attributes
    ----------
    num_qubits : int
        The width of the circuit that was cut.
    partitions : list[PartitionProgram]
        The compiled partitions.
    qubits : list[tuple[int, ...]]
        The circuit's qubits each partition holds.
    cuts : list[Cut]
        The cuts, by global index.
    term_coeffs : numpy.ndarray
        ``term_coeffs[t]``: the coefficient of term t of the observable.
    term_index : numpy.ndarray
        ``term_index[t, p]``: term t is the product over partitions p of
        ``partitions[p].observables[term_index[t, p]]``.
    term_labels : list[str]
        The observable's Pauli terms on the circuit's qubits.
    labels : list[Hashable] or None
        How the cuts were placed, to cut a circuit of the same structure again (:func:`recut`):
        the partition labels of a gate-cut problem (None otherwise).
    marked : QuantumCircuit or None
        ``find_cuts``'s marked circuit of a problem cut by it, for :func:`recut`.
    """

    num_qubits: int
    partitions: list[PartitionProgram]
    qubits: list[tuple[int, ...]]
    cuts: list[Cut]
    term_coeffs: np.ndarray
    term_index: np.ndarray
    term_labels: list[str] = field(default_factory=list)
    labels: list[Hashable] | None = None
    marked: QuantumCircuit | None = field(default=None, repr=False)

    @property
    def widths(self) -> list[int]:
        """The width of each partition."""
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
        total_terms = math.prod(c.num_terms for c in self.cuts)  # exact: no int64 overflow
        return len(self.partitions) * total_terms

    @property
    def sampling_overhead(self) -> float:
        """Product of the cuts' squared gammas: the shot multiplier of sampled evaluation."""
        return float(np.prod([c.gamma**2 for c in self.cuts]))

    def describe(self) -> dict[str, object]:
        """Plain-data summary for reports and JSON output.

        Returns
        -------
        dict[str, object]
            ``partitions`` (width, subexperiments and cuts of each), ``cuts`` (their
            :meth:`Cut.location`) and the total ``subexperiments``.
        """
        return {
            "partitions": [
                {
                    "qubits": p.num_qubits,
                    "subexperiments": p.num_subexperiments,
                    "cuts": list(p.cuts),
                }
                for p in self.partitions
            ],
            "cuts": [c.location() for c in self.cuts],
            "subexperiments": self.num_subexperiments,
        }


def observable_from_terms(observable: SparsePauliOp) -> tuple[PauliList, np.ndarray]:
    """Split an observable into Pauli terms (phase-free) and real coefficients.

    Parameters
    ----------
    observable : SparsePauliOp
        A Hermitian observable.

    Returns
    -------
    tuple[PauliList, numpy.ndarray]
        The phase-free Pauli terms and their real coefficients.

    Raises
    ------
    CuttingError
        When a coefficient is not real.
    """
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


Location = tuple[int, tuple[int, ...], "int | None"]


def _build(
    circuit: QuantumCircuit,
    labels: Sequence[Hashable],
    paulis: PauliList,
    coeffs: np.ndarray,
    locations: Sequence[Location] = (),
) -> CutProblem:
    """Partition ``circuit`` by ``labels``; ``locations[i]`` is where cut i is (position, gate
    qubits, cut wire), in the circuit's own indices."""
    if not _crossing(circuit, labels):
        return _build_uncut(circuit, labels, paulis, coeffs)
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
        position, gate_qubits, wire = locations[idx] if idx < len(locations) else (-1, (), None)
        cuts.append(
            Cut(
                idx,
                kind,
                gates[idx],
                pa,
                pb,
                weights,
                len(basis.coeffs),
                position,
                gate_qubits,
                wire,
            )
        )
    return CutProblem(
        circuit.num_qubits, programs, qubits, cuts, coeffs, term_index, paulis.to_labels()
    )


def _crossing(circuit: QuantumCircuit, labels: Sequence[Hashable]) -> list[Location]:
    """Where the gates between differently labelled qubits are, in circuit order (the order in
    which ``partition_problem`` numbers its cuts)."""
    out: list[Location] = []
    for pos, inst in enumerate(circuit.data):
        if inst.operation.name == "barrier" or len(inst.qubits) < 2:
            continue
        qs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        if len({labels[q] for q in qs}) > 1:
            out.append((pos, qs, None))
    return out


def _build_uncut(
    circuit: QuantumCircuit, labels: Sequence[Hashable], paulis: PauliList, coeffs: np.ndarray
) -> CutProblem:
    """Partitions that share no gate: each is compiled on its own, without cut machinery, and
    a Pauli term's value is the product of its restrictions' values."""
    order = sorted(set(labels), key=str)
    qubits = [tuple(i for i, lab in enumerate(labels) if lab == key) for key in order]
    owner = {q: (p, k) for p, qs in enumerate(qubits) for k, q in enumerate(qs)}
    subs = [QuantumCircuit(len(qs)) for qs in qubits]
    for inst in circuit.data:
        if inst.operation.name == "barrier":
            continue
        qs = [circuit.find_bit(q).index for q in inst.qubits]
        p = owner[qs[0]][0]
        subs[p].append(inst.operation, [owner[q][1] for q in qs])
    n = circuit.num_qubits
    full = paulis.to_labels()
    programs = []
    term_index = np.zeros((len(full), len(order)), dtype=np.int64)
    for p, part_qubits in enumerate(qubits):
        restricted = ["".join(label[n - 1 - q] for q in reversed(part_qubits)) for label in full]
        distinct = list(dict.fromkeys(restricted))
        index = {lab: i for i, lab in enumerate(distinct)}
        term_index[:, p] = [index[lab] for lab in restricted]
        programs.append(compile_partition(subs[p], distinct)[0])
    return CutProblem(n, programs, qubits, [], coeffs, term_index, full)


def _check_widths(circuit: QuantumCircuit, observable: SparsePauliOp) -> None:
    if observable.num_qubits != circuit.num_qubits:
        raise CuttingError(
            f"the observable acts on {observable.num_qubits} qubits but the circuit has "
            f"{circuit.num_qubits}"
        )


def cut_by_labels(
    circuit: QuantumCircuit, observable: SparsePauliOp, labels: Sequence[Hashable]
) -> CutProblem:
    """Gate-cut every two-qubit gate whose qubits have different partition labels.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit to cut.
    observable : SparsePauliOp
        The observable on the circuit's qubits.
    labels : Sequence[Hashable]
        One partition label per qubit.

    Returns
    -------
    CutProblem
        The problem, with ``labels`` kept for :func:`recut`.

    Raises
    ------
    CuttingError
        When the number of labels or the observable's width differs from the circuit's width.
    """
    if len(labels) != circuit.num_qubits:
        raise CuttingError(
            f"{len(labels)} partition labels for a circuit of {circuit.num_qubits} qubits"
        )
    _check_widths(circuit, observable)
    paulis, coeffs = observable_from_terms(observable)
    problem = _build(circuit, labels, paulis, coeffs, _crossing(circuit, labels))
    problem.labels = list(labels)
    return problem


def cut_with_wires(
    cut_circuit: QuantumCircuit, original: QuantumCircuit, observable: SparsePauliOp
) -> CutProblem:
    """Build a problem from a circuit holding QPD gates and ``CutWire`` markers.

    The circuit is the output of qiskit-addon-cutting's ``find_cuts``; wire cuts become ``Move``
    cuts onto new qubits, and partitions are the connected pieces that remain.

    Parameters
    ----------
    cut_circuit : QuantumCircuit
        ``find_cuts``'s output.
    original : QuantumCircuit
        The circuit that was cut.
    observable : SparsePauliOp
        The observable on the original circuit's qubits.

    Returns
    -------
    CutProblem
        The problem, on the original circuit's qubits, with ``cut_circuit`` kept for
        :func:`recut`.

    Raises
    ------
    CuttingError
        When the observable's width differs from the circuit's.
    """
    _check_widths(original, observable)
    paulis, coeffs = observable_from_terms(observable)
    moves = wires_to_moves(cut_circuit)
    moved = moves.circuit
    labels = []
    for label in paulis.to_labels():
        wide = ["I"] * moved.num_qubits
        for q, ch in enumerate(reversed(label)):
            wide[moves.final_wire[q]] = ch
        labels.append("".join(reversed(wide)))
    expanded = PauliList(labels)
    problem = _build(moved, _connectivity_labels(moved), expanded, coeffs, moves.locations)
    problem.num_qubits = original.num_qubits
    problem.qubits = [tuple(sorted({moves.owner[w] for w in qs})) for qs in problem.qubits]
    problem.term_labels = paulis.to_labels()
    problem.labels = None
    problem.marked = cut_circuit
    return problem


def recut(problem: CutProblem, circuit: QuantumCircuit, observable: SparsePauliOp) -> CutProblem:
    """The cuts of ``problem`` applied to another circuit of the same structure.

    How a parameterized circuit is cut once and bound many times. The QPD coefficients of cut
    parametric gates are those of the new angles.

    Parameters
    ----------
    problem : CutProblem
        A problem made by :func:`cut_by_labels` or :func:`find_cut_problem`.
    circuit : QuantumCircuit
        A circuit of the same structure as the one ``problem`` was cut from (the same
        instructions on the same qubits) with other gate parameters.
    observable : SparsePauliOp
        The observable on the circuit's qubits.

    Returns
    -------
    CutProblem
        The same cuts on ``circuit``.

    Raises
    ------
    CuttingError
        When the circuit does not have the structure of the one that was cut.
    """
    if problem.labels is not None:
        return cut_by_labels(circuit, observable, problem.labels)
    assert problem.marked is not None
    marked = QuantumCircuit(problem.marked.num_qubits)
    source = iter(circuit.data)
    for inst in problem.marked.data:
        if inst.operation.name == "cut_wire":
            marked.append(inst)
            continue
        new = next(source, None)
        if new is None or [circuit.find_bit(q).index for q in new.qubits] != [
            problem.marked.find_bit(q).index for q in inst.qubits
        ]:
            raise CuttingError("the circuit does not have the structure of the one that was cut")
        op = new.operation
        if inst.operation.name == "qpd_2q":
            op = TwoQubitQPDGate.from_instruction(op)
        marked.append(op, [marked.qubits[problem.marked.find_bit(q).index] for q in inst.qubits])
    return cut_with_wires(marked, circuit, observable)


def find_cut_problem(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    max_width: int,
    *,
    seed: int = 0,
    max_backjumps: int = 10_000,
) -> CutProblem:
    """Cut with qiskit-addon-cutting's ``find_cuts``.

    The gate and wire cuts of least sampling overhead that leave no piece wider than
    ``max_width`` qubits (a wire cut's new wire included). Where one qubit meets many others in
    turn, one wire cut can replace several gate cuts. Seeded, so the same inputs give the same
    cuts.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit to cut.
    observable : SparsePauliOp
        The observable on the circuit's qubits.
    max_width : int
        The widest piece allowed, in qubits.
    seed : int
        Seed of the search.
    max_backjumps : int
        Past this many backjumps the search returns its greedy best.

    Returns
    -------
    CutProblem
        The problem of the cuts found.

    Raises
    ------
    NoCutFoundError
        When the search finds no cut at all (or the circuit has a gate on more than two qubits).
    CuttingError
        When the observable's width differs from the circuit's.
    """
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


@dataclass
class MovedCircuit:
    """A circuit whose wire cuts became ``Move`` gates onto fresh wires.

    Attributes
    ----------
    circuit : QuantumCircuit
        The circuit with ``Move`` QPD gates.
    final_wire : list[int]
        ``final_wire[q]``: the wire holding input qubit q's final state.
    owner : list[int]
        ``owner[w]``: the input qubit whose state wire w carries.
    locations : list[Location]
        Where each QPD gate (gate cut or move) is, in the input circuit's indices, in circuit
        order.
    """

    circuit: QuantumCircuit
    final_wire: list[int]
    owner: list[int]
    locations: list[Location]


def wires_to_moves(circuit: QuantumCircuit) -> MovedCircuit:
    """Replace each ``CutWire`` on qubit q by a ``Move`` from q's current wire to a fresh one.

    This replaces qiskit-addon-cutting's ``cut_wires``, which allocates too few wires when a
    qubit has non-consecutive wire cuts. ``find_cuts`` inserts each ``CutWire`` just before the
    two-qubit gate whose input wire it cuts; positions count the input circuit's instructions,
    without the markers.

    Parameters
    ----------
    circuit : QuantumCircuit
        A ``find_cuts`` output.

    Returns
    -------
    MovedCircuit
        The moved circuit, its wire map and the cut locations.
    """
    cuts_per_qubit = [0] * circuit.num_qubits
    for inst in circuit.data:
        if inst.operation.name == "cut_wire":
            cuts_per_qubit[circuit.find_bit(inst.qubits[0]).index] += 1
    current = list(np.cumsum([0] + [c + 1 for c in cuts_per_qubit[:-1]]))
    owner = [q for q, c in enumerate(cuts_per_qubit) for _ in range(c + 1)]
    moved = QuantumCircuit(len(owner))
    markers = {i for i, inst in enumerate(circuit.data) if inst.operation.name == "cut_wire"}
    locations: list[Location] = []
    position = 0
    for i, inst in enumerate(circuit.data):
        idx = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "cut_wire":
            q = idx[0]
            moved.append(TwoQubitQPDGate.from_instruction(Move()), [current[q], current[q] + 1])
            current[q] += 1
            nxt = next(j for j in range(i + 1, len(circuit.data)) if j not in markers)
            gate_qubits = tuple(circuit.find_bit(x).index for x in circuit.data[nxt].qubits)
            locations.append((position, gate_qubits, q))
            continue
        if inst.operation.name == "qpd_2q":
            locations.append((position, tuple(idx), None))
        moved.append(inst.operation, [current[i] for i in idx])
        position += 1
    return MovedCircuit(moved, [int(c) for c in current], owner, locations)


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
