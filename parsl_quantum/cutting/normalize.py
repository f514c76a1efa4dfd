"""From the circuit a user brings to the circuit the cutting engine works on.

Users bring circuits from anywhere: QASM files, ``qiskit.circuit.library`` families, circuits
transpiled for a device (hundreds of wires, most of them idle, and a layout), circuits with final
measurements and barriers. :func:`normalize` turns one of them, with its observables, into the
engine's input, keeping what is needed to report results in the user's terms:

- barriers, delays, identity gates and final measurements are dropped (Estimator semantics:
  they do not change an expectation value); mid-circuit measurements, resets and classical
  control are refused with a one-line :class:`~parsl_quantum.cutting.errors.CuttingError` that
  names the instruction and its position;
- gates on more than two qubits, and gates outside :data:`BASIS`, are lowered to :data:`BASIS`;
- observables of a laid-out circuit (``circuit.layout`` set, as ``transpile`` leaves it) that act
  on the logical qubits are mapped through the layout with ``SparsePauliOp.apply_layout``, as
  Qiskit's Estimator expects;
- idle wires (no gate acts on them) are removed: they stay in ``|0>``, so a Pauli term with
  ``X`` or ``Y`` on one has expectation 0 and ``I``/``Z`` factors there contribute 1.

Everything downstream sees only the active wires; :class:`Normalized` maps cut positions and
qubits back to the input circuit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from qiskit import transpile
from qiskit.circuit import ControlFlowOp, Gate, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.problem import CutProblem, observable_from_terms

#: Gates the engine takes as they are: standard one-qubit gates and the two-qubit gates that
#: qiskit-addon-cutting can cut. Anything else (gates on three or more qubits first) is lowered.
BASIS = [
    *("id", "rx", "ry", "rz", "r", "p", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg"),
    *("u", "u1", "u2", "u3"),
    *("cx", "cy", "cz", "ch", "ecr", "crx", "cry", "crz", "cp", "rxx", "ryy", "rzz"),
    *("swap", "iswap", "dcx", "cs", "csdg", "csx"),
]

#: Instructions that do not change an expectation value and are dropped.
NO_OPS = frozenset({"barrier", "delay", "id"})


@dataclass
class Normalized:
    """A circuit reduced to its active wires, its observables on those wires, and the map back.

    Attributes
    ----------
    circuit : QuantumCircuit
        The lowered circuit on the active wires only.
    wires : tuple[int, ...]
        ``wires[w]`` is the input qubit of active wire ``w``.
    positions : tuple[int, ...]
        ``positions[i]`` is the index in the input circuit's ``data`` of the instruction that
        instruction ``i`` of ``circuit`` comes from (a lowered gate gives several instructions the
        same position).
    num_input_qubits : int
        The width of the input circuit.
    term_labels : list[str]
        The distinct Pauli terms of all observables on the active wires (Qiskit order, rightmost
        is wire 0).
    coefficients : numpy.ndarray
        ``coefficients[k, t]``: the real coefficient of term t in observable k.
    """

    circuit: QuantumCircuit
    wires: tuple[int, ...]
    positions: tuple[int, ...]
    num_input_qubits: int
    term_labels: list[str]
    coefficients: np.ndarray

    @property
    def observable(self) -> SparsePauliOp:
        """Every distinct term once, with coefficient 1: what the cut problem evaluates."""
        return SparsePauliOp(self.term_labels, np.ones(len(self.term_labels)))

    def coefficient_matrix(self, labels: Sequence[str]) -> np.ndarray:
        """``coefficients`` with its columns in the order of ``labels``.

        Parameters
        ----------
        labels : Sequence[str]
            Terms of :attr:`term_labels` in a problem's order.

        Returns
        -------
        numpy.ndarray
            One row per observable, one column per label.
        """
        index = {lab: t for t, lab in enumerate(self.term_labels)}
        return self.coefficients[:, [index[lab] for lab in labels]]

    def locate(self, problem: CutProblem) -> CutProblem:
        """The same problem in the input circuit's indices.

        Qubits, cut positions and cut qubits are given in the input circuit's indices, and the terms
        are weighted by the first observable's coefficients.

        Parameters
        ----------
        problem : CutProblem
            A problem built on :attr:`circuit` and :attr:`observable`.

        Returns
        -------
        CutProblem
            The located copy.
        """
        cuts = []
        for c in problem.cuts:
            cuts.append(
                replace(
                    c,
                    # a wire cut is named by the gate after it on the cut wire
                    gate=self.circuit.data[c.position].operation.name
                    if c.kind == "wire"
                    else c.gate,
                    position=self.positions[c.position] if c.position >= 0 else -1,
                    qubits=tuple(self.wires[q] for q in c.qubits),
                    wire=self.wires[c.wire] if c.wire is not None else None,
                )
            )
        located = replace(
            problem,
            cuts=cuts,
            qubits=[tuple(self.wires[q] for q in qs) for qs in problem.qubits],
            term_coeffs=self.coefficient_matrix(problem.term_labels)[0],
        )
        located.num_qubits = self.num_input_qubits
        return located


def check_instructions(circuit: QuantumCircuit) -> None:
    """Refuse what the engine cannot evaluate.

    Refused: mid-circuit measurements, resets, classical control and any other instruction on
    classical bits. Final measurements are allowed.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit to check.

    Raises
    ------
    CuttingError
        Naming the first such instruction and its position (its index in ``circuit.data``).
    """
    measured: dict[int, int] = {}  # qubit -> position of its measurement
    for pos, inst in enumerate(circuit.data):
        op = inst.operation
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        where = f"at position {pos} on qubit(s) {', '.join(map(str, qubits))}"
        if isinstance(op, ControlFlowOp):
            raise CuttingError(
                f"unsupported instruction {op.name!r} at position {pos}: classical control is "
                "not supported (remove it or bind the branch taken)"
            )
        if op.name in NO_OPS:
            continue
        later = [q for q in qubits if q in measured]
        if later and op.name != "measure":
            first = measured[later[0]]
            raise CuttingError(
                f"unsupported instruction 'measure' at position {first} on qubit {later[0]}: "
                f"a mid-circuit measurement ({op.name!r} at position {pos} follows it); only "
                "final measurements are allowed"
            )
        if op.name == "measure":
            measured.update((q, pos) for q in qubits)
        elif op.name == "reset":
            raise CuttingError(
                f"unsupported instruction 'reset' {where}: resets are not supported "
                "(circuits start in |0>)"
            )
        elif inst.clbits or getattr(op, "condition", None) is not None:
            raise CuttingError(
                f"unsupported instruction {op.name!r} {where}: classical control is not supported"
            )


def _needs_lowering(op: object) -> bool:
    return op.num_qubits > 2 or op.name not in BASIS  # type: ignore[attr-defined]


def lower(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[int]]:
    """The circuit with every gate in :data:`BASIS`.

    Final measurements, barriers and no-ops are dropped. Gates to lower are transpiled
    together, separated by barriers, so each keeps its position.

    Parameters
    ----------
    circuit : QuantumCircuit
        A circuit that passed :func:`check_instructions`.

    Returns
    -------
    tuple[QuantumCircuit, list[int]]
        The lowered circuit, and for each of its instructions the position of the input
        instruction it comes from.

    Raises
    ------
    CuttingError
        For a gate that cannot be lowered, or an instruction that contains a non-gate.
    """
    kept: list[tuple[int, object, list[int]]] = []
    for pos, inst in enumerate(circuit.data):
        op = inst.operation
        if op.name in NO_OPS or op.name == "measure":
            continue
        kept.append((pos, op, [circuit.find_bit(q).index for q in inst.qubits]))
    todo = [k for k in kept if _needs_lowering(k[1])]
    if not todo and len(kept) == len(circuit.data) and not circuit.clbits:
        # already in the basis, nothing to drop: the same gates on a plain circuit, as below
        plain = QuantumCircuit(circuit.num_qubits).compose(circuit, range(circuit.num_qubits))
        plain.global_phase = 0
        return plain, list(range(len(kept)))
    lowered: dict[int, list[tuple[object, list[int]]]] = {}
    if todo:
        batch = QuantumCircuit(circuit.num_qubits)
        for _, op, qubits in todo:
            batch.append(op, qubits)
            batch.barrier()
        try:
            out = transpile(batch, basis_gates=BASIS, optimization_level=0)
        except Exception as exc:  # transpile raises TranspilerError/QiskitError subclasses
            raise CuttingError(f"unsupported gate: {str(exc).splitlines()[0]}") from None
        pieces: list[list[tuple[object, list[int]]]] = [[]]
        for inst in out.data:
            if inst.operation.name == "barrier":
                pieces.append([])
            elif inst.operation.name not in NO_OPS:
                pieces[-1].append((inst.operation, [out.find_bit(q).index for q in inst.qubits]))
        for (pos, op, _), piece in zip(todo, pieces, strict=False):
            bad = [sub.name for sub, _ in piece if not isinstance(sub, Gate)]  # type: ignore[attr-defined]
            if bad:
                raise CuttingError(
                    f"unsupported instruction {op.name!r} at position {pos}: "  # type: ignore[attr-defined]
                    f"it contains {bad[0]!r}, which is not a gate"
                )
            lowered[pos] = piece
    result = QuantumCircuit(circuit.num_qubits)
    positions: list[int] = []
    for pos, op, qubits in kept:
        for sub_op, sub_qubits in lowered.get(pos, [(op, qubits)]):
            result.append(sub_op, sub_qubits)
            positions.append(pos)
    return result, positions


def laid_out(circuit: QuantumCircuit, observable: SparsePauliOp) -> SparsePauliOp:
    """The observable on the circuit's qubits.

    On a laid-out circuit an observable of the logical width is mapped through the layout
    (``SparsePauliOp.apply_layout``); one of the circuit's full width is taken as already laid
    out, as Qiskit's Estimator takes ISA observables.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit, with its ``layout`` when transpiled.
    observable : SparsePauliOp
        An observable on the circuit's full width or its logical qubits.

    Returns
    -------
    SparsePauliOp
        The observable on the circuit's full width.

    Raises
    ------
    CuttingError
        When the observable's width matches neither.
    """
    n = circuit.num_qubits
    if observable.num_qubits == n:
        return observable
    layout = circuit.layout
    if layout is not None and observable.num_qubits == len(layout.final_index_layout()):
        return observable.apply_layout(layout)
    logical = f" or its {len(layout.final_index_layout())} logical qubits" if layout else ""
    raise CuttingError(
        f"the observable acts on {observable.num_qubits} qubits but the circuit has {n}{logical}"
    )


def normalize(circuit: QuantumCircuit, observables: Sequence[SparsePauliOp]) -> Normalized:
    """Check, lower and reduce ``circuit`` to its active wires, with ``observables`` on them.

    See the module docstring. A circuit with no gate at all keeps wire 0 so that there is one
    piece to evaluate.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit the user brings.
    observables : Sequence[SparsePauliOp]
        Observables on the circuit's full width or, for a laid-out circuit, its logical qubits.

    Returns
    -------
    Normalized
        The reduced circuit, its observables' terms and coefficients, and the map back.

    Raises
    ------
    CuttingError
        For an instruction the engine cannot evaluate, an observable of the wrong width, or a
        circuit without qubits.
    """
    check_instructions(circuit)
    full = [laid_out(circuit, obs) for obs in observables]
    body, positions = lower(circuit)
    n = circuit.num_qubits
    used = sorted({body.find_bit(q).index for inst in body.data for q in inst.qubits})
    wires = tuple(used) if used else (0,) if n else ()
    if not wires:
        raise CuttingError("the circuit has no qubits")
    index = {q: w for w, q in enumerate(wires)}
    if len(wires) == n:
        reduced = body  # every wire is active: the lowered circuit is already on them
    else:
        reduced = QuantumCircuit(len(wires))
        for inst in body.data:
            reduced.append(inst.operation, [index[body.find_bit(q).index] for q in inst.qubits])
    idle = [q for q in range(n) if q not in index]
    terms: list[dict[str, float]] = []
    for obs in full:
        paulis, coeffs = observable_from_terms(obs)
        mine: dict[str, float] = {}
        for label, coeff in zip(paulis.to_labels(), coeffs, strict=True):
            if any(label[n - 1 - q] in "XY" for q in idle):
                continue  # <0|X|0> = <0|Y|0> = 0
            short = "".join(label[n - 1 - q] for q in reversed(wires))
            mine[short] = mine.get(short, 0.0) + float(coeff)
        terms.append(mine)
    labels = list(dict.fromkeys(lab for mine in terms for lab in mine))
    if not labels:
        labels = ["I" * len(wires)]
    coefficients = np.array([[mine.get(lab, 0.0) for lab in labels] for mine in terms])
    return Normalized(
        reduced, wires, tuple(positions), n, labels, coefficients.reshape(-1, len(labels))
    )
