"""Circuits and observables named by templates: library generators, QASM files, Pauli sums.

Every generator is seeded, so a template names one circuit exactly. Generated circuits are
returned decomposed to one- and two-qubit gates with all parameters bound; QASM circuits are
checked and returned as read (the cutting engine lowers them), so cut positions refer to the
file's instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.normalize import check_instructions, lower

#: Aer methods of an exact reference: the full statevector, or an untruncated matrix product
#: state (exact at any width while the circuit's entanglement stays low).
ReferenceMethod = Literal["statevector", "matrix_product_state"]

GENERATORS = ("efficient_su2", "qaoa", "random_2local", "clustered", "bus")

CIRCUIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "generator": {"enum": list(GENERATORS)},
        "qasm": {"type": "string"},
        "qubits": {"type": "integer", "minimum": 1, "maximum": 1000},
        "reps": {"type": "integer", "minimum": 1},
        "entanglement": {"enum": ["linear", "circular", "full", "reverse_linear", "pairwise"]},
        "graph": {"enum": ["ring", "3-regular"]},
        "depth": {"type": "integer", "minimum": 1},
        "clusters": {"type": "integer", "minimum": 1},
        "links": {"type": "integer", "minimum": 0},
        "seed": {"type": "integer"},
    },
    "additionalProperties": False,
}


class CircuitError(ValueError):
    """A circuit that cannot be built or read; the message is one line."""


def _angles(qc: QuantumCircuit, seed: int) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    return qc.assign_parameters(rng.uniform(-np.pi, np.pi, qc.num_parameters))


def efficient_su2_circuit(
    qubits: int, reps: int = 2, entanglement: str = "linear", seed: int = 1234
) -> QuantumCircuit:
    """Qiskit's efficient_su2, decomposed, with seeded angles.

    Parameters
    ----------
    qubits : int
        Number of qubits.
    reps : int
        Repetitions of the rotation and entanglement layers.
    entanglement : str
        Qiskit's entanglement pattern (``"linear"``, ``"full"``, ...).
    seed : int
        The angles are ``default_rng(seed).uniform(-pi, pi)``.

    Returns
    -------
    qiskit.QuantumCircuit
        The bound circuit.
    """
    return _angles(efficient_su2(qubits, entanglement=entanglement, reps=reps).decompose(), seed)


def qaoa_circuit(
    qubits: int, reps: int = 1, graph: str = "ring", seed: int = 1234
) -> QuantumCircuit:
    """A MaxCut QAOA circuit on a ring or a random 3-regular graph, with seeded angles.

    Parameters
    ----------
    qubits : int
        Number of qubits (graph nodes).
    reps : int
        QAOA layers (one cost and one mixer layer each).
    graph : str
        ``"ring"``, or any other value for a random 3-regular graph.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the angles (and the random graph).

    Returns
    -------
    qiskit.QuantumCircuit
        The bound circuit.
    """
    g = nx.cycle_graph(qubits) if graph == "ring" else nx.random_regular_graph(3, qubits, seed=seed)
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(qubits)
    qc.h(range(qubits))
    for _ in range(reps):
        gamma, beta = rng.uniform(-np.pi, np.pi, 2)
        for a, b in sorted(g.edges):
            qc.rzz(gamma, a, b)
        for q in range(qubits):
            qc.rx(beta, q)
    return qc


def random_2local_circuit(qubits: int, depth: int = 4, seed: int = 1234) -> QuantumCircuit:
    """Layers of random single-qubit rotations and CX gates on random neighbouring pairs.

    Parameters
    ----------
    qubits : int
        Number of qubits.
    depth : int
        Number of layers.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the angles and the pairs.

    Returns
    -------
    qiskit.QuantumCircuit
        The bound circuit.
    """
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(qubits)
    for _ in range(depth):
        for q in range(qubits):
            qc.u(*rng.uniform(-np.pi, np.pi, 3), q)
        start = int(rng.integers(0, 2))
        for a in range(start, qubits - 1, 2):
            if rng.random() < 0.75:
                qc.cx(a, a + 1)
    return qc


def clustered_circuit(
    qubits: int, clusters: int = 2, depth: int = 3, links: int = 1, seed: int = 1234
) -> QuantumCircuit:
    """Dense blocks (all-to-all CZ layers inside each cluster) joined by ``links`` CX gates.

    Parameters
    ----------
    qubits : int
        Number of qubits.
    clusters : int
        Number of blocks the qubits are split into.
    depth : int
        Number of layers of rotations and CZ gates.
    links : int
        Number of layers (the first ones) that join neighbouring blocks with a CX gate.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the angles.

    Returns
    -------
    qiskit.QuantumCircuit
        The bound circuit.
    """
    rng = np.random.default_rng(seed)
    bounds = np.array_split(np.arange(qubits), clusters)
    qc = QuantumCircuit(qubits)
    for layer in range(depth):
        for q in range(qubits):
            qc.ry(float(rng.uniform(-np.pi, np.pi)), q)
            qc.rz(float(rng.uniform(-np.pi, np.pi)), q)
        for block in bounds:
            for i, a in enumerate(block):
                for b in block[i + 1 :]:
                    qc.cz(int(a), int(b))
        if layer < links:
            for left, right in zip(bounds, bounds[1:], strict=False):
                qc.cx(int(left[-1]), int(right[0]))
    return qc


def bus_circuit(qubits: int, clusters: int = 2, depth: int = 3, seed: int = 1234) -> QuantumCircuit:
    """A bus qubit (qubit 0) that couples to each of ``clusters`` registers in turn.

    The bus rotates and applies a CX onto every qubit of the register, then the register runs
    ``depth`` layers of rotations and a linear CX chain. Separating the registers takes a gate cut
    per coupling but a single wire cut of the bus between registers.

    Parameters
    ----------
    qubits : int
        Number of qubits, the bus included (at least 3).
    clusters : int
        Number of registers.
    depth : int
        Layers of rotations and CX chain each register runs.
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the angles.

    Returns
    -------
    qiskit.QuantumCircuit
        The bound circuit.

    Raises
    ------
    CircuitError
        For fewer than 3 qubits.
    """
    if qubits < 3:
        raise CircuitError("a bus circuit needs at least 3 qubits")
    rng = np.random.default_rng(seed)
    registers = np.array_split(np.arange(1, qubits), min(clusters, qubits - 1))
    qc = QuantumCircuit(qubits)
    qc.h(0)
    for register in registers:
        for q in register:
            qc.ry(float(rng.uniform(-np.pi, np.pi)), 0)
            qc.cx(0, int(q))
        for _ in range(depth):
            for q in register:
                qc.ry(float(rng.uniform(-np.pi, np.pi)), int(q))
                qc.rz(float(rng.uniform(-np.pi, np.pi)), int(q))
            for a, b in zip(register, register[1:], strict=False):
                qc.cx(int(a), int(b))
    return qc


def read_qasm(path: str | Path) -> QuantumCircuit:
    """Read an OpenQASM 2 or 3 file (the version line decides).

    Parameters
    ----------
    path : str or pathlib.Path
        The QASM file.

    Returns
    -------
    qiskit.QuantumCircuit
        The circuit the file describes.

    Raises
    ------
    CircuitError
        When the file is missing, unreadable, not text, or not valid QASM.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise CircuitError(f"QASM file not found: {p}") from None
    except UnicodeDecodeError:
        raise CircuitError(f"QASM file {p} is not text (not UTF-8): is it a QASM file?") from None
    except OSError as exc:
        raise CircuitError(f"cannot read QASM file {p}: {exc.strerror}") from None
    try:
        if "OPENQASM 3" in text:
            return qasm3.loads(text)
        return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except Exception as exc:  # the QASM parsers raise several unrelated exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CircuitError(f"malformed QASM in {p}: {first}") from None


def check_circuit(circuit: QuantumCircuit) -> QuantumCircuit:
    """Refuse a template's circuit that cannot be cut.

    Refused, with a one-line error naming the instruction and its position: unbound parameters
    (a template binds none), mid-circuit measurements, resets, classical control. Barriers and
    final measurements are dropped later.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        The circuit to check.

    Returns
    -------
    qiskit.QuantumCircuit
        The circuit unchanged, so that cut positions refer to its instructions.

    Raises
    ------
    CircuitError
        When the circuit has no qubits or an instruction that cannot be cut.
    """
    if circuit.num_qubits == 0:
        raise CircuitError("the circuit has no qubits")
    if circuit.num_parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters)[:5])
        raise CircuitError(f"circuit has unbound parameters: {names}")
    try:
        check_instructions(circuit)
    except CuttingError as exc:
        raise CircuitError(str(exc)) from None
    return circuit


def prepare(circuit: QuantumCircuit) -> QuantumCircuit:
    """Check a circuit (:func:`check_circuit`) and lower it to the cutting engine's basis.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        The circuit to prepare.

    Returns
    -------
    qiskit.QuantumCircuit
        The lowered circuit: every gate on at most two qubits, no measurements, barriers or
        classical bits.

    Raises
    ------
    CircuitError
        When the circuit cannot be cut.
    """
    try:
        return lower(check_circuit(circuit))[0]
    except CuttingError as exc:
        raise CircuitError(str(exc)) from None


def circuit_from_spec(spec: Mapping[str, Any], base_dir: Path | None = None) -> QuantumCircuit:
    """The circuit a template's ``circuit`` section names.

    Parameters
    ----------
    spec : Mapping[str, Any]
        The ``circuit`` section: a ``qasm`` file, or a library ``generator`` with its ``qubits``
        and options.
    base_dir : pathlib.Path or None
        Directory a relative ``qasm`` path is resolved against when it does not exist as given
        (the template's directory).

    Returns
    -------
    qiskit.QuantumCircuit
        The checked circuit (:func:`check_circuit`) of a QASM file, or the prepared circuit
        (:func:`prepare`) of a generator.

    Raises
    ------
    CircuitError
        When the section names no qubits for a generator, asks for an impossible graph, or the
        circuit cannot be read or cut.
    """
    seed = int(spec.get("seed", 1234))
    if "qasm" in spec:
        path = Path(spec["qasm"])
        if base_dir is not None and not path.is_absolute() and not path.exists():
            path = base_dir / path
        return check_circuit(read_qasm(path))
    generator = spec.get("generator", "efficient_su2")
    qubits = spec.get("qubits")
    if qubits is None:
        raise CircuitError("circuit.qubits is required for a library generator")
    if generator == "efficient_su2":
        qc = efficient_su2_circuit(
            qubits, spec.get("reps", 2), spec.get("entanglement", "linear"), seed
        )
    elif generator == "qaoa":
        if spec.get("graph", "ring") == "3-regular" and (qubits * 3) % 2:
            raise CircuitError("a 3-regular graph needs an even number of qubits")
        qc = qaoa_circuit(qubits, spec.get("reps", 1), spec.get("graph", "ring"), seed)
    elif generator == "random_2local":
        qc = random_2local_circuit(qubits, spec.get("depth", 4), seed)
    elif generator == "bus":
        qc = bus_circuit(qubits, spec.get("clusters", 2), spec.get("depth", 3), seed)
    else:
        qc = clustered_circuit(
            qubits, spec.get("clusters", 2), spec.get("depth", 3), spec.get("links", 1), seed
        )
    return prepare(qc)


def parse_observable(text: str, num_qubits: int) -> SparsePauliOp:
    """Parse an observable given as text.

    Parameters
    ----------
    text : str
        ``mean-z`` (the mean of Z over all qubits) or comma-separated Pauli labels in Qiskit's
        order (rightmost character is qubit 0), each optionally ``COEF*LABEL``.
    num_qubits : int
        Number of qubits of the circuit; every label must have this length.

    Returns
    -------
    qiskit.quantum_info.SparsePauliOp
        The observable.

    Raises
    ------
    CircuitError
        For an empty observable, a coefficient that is not a finite number, a label that is not
        of I, X, Y, Z, or a label of the wrong length.
    """
    text = str(text).strip()
    if text == "mean-z":
        return SparsePauliOp.from_sparse_list(
            [("Z", [i], 1.0 / num_qubits) for i in range(num_qubits)], num_qubits
        )
    labels, coeffs = [], []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        coef_text, star, label = item.rpartition("*")
        try:
            coeff = float(coef_text) if star else 1.0
        except ValueError:
            raise CircuitError(f"observable term {item!r}: {coef_text!r} is not a number") from None
        if not np.isfinite(coeff):
            raise CircuitError(f"observable term {item!r}: the coefficient is not finite")
        label = label.strip().upper()
        if not label or set(label) - set("IXYZ"):
            raise CircuitError(f"observable term {item!r} is not a Pauli label of I, X, Y, Z")
        if len(label) != num_qubits:
            raise CircuitError(
                f"observable term {label!r} has {len(label)} qubits "
                f"but the circuit has {num_qubits}"
            )
        labels.append(label)
        coeffs.append(coeff)
    if not labels:
        raise CircuitError("the observable is empty")
    return SparsePauliOp(labels, np.array(coeffs))


def exact_values(
    circuit: QuantumCircuit,
    observables: Sequence[SparsePauliOp | str] = (),
    *,
    amplitudes: Sequence[int] = (),
    method: ReferenceMethod = "statevector",
) -> np.ndarray:
    """Exact values of ``circuit`` by direct simulation with Aer.

    The reference that cut, sliced or sampled results are checked against.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        A circuit without unbound parameters, run from ``|0...0>``.
    observables : Sequence[SparsePauliOp or str]
        Operators (or Pauli labels, rightmost character = qubit 0) on all of the circuit's
        qubits; each gives ``<0|C^dag O C|0>``.
    amplitudes : Sequence[int]
        Basis-state indices ``b`` (bit i = qubit i); each gives ``<b|C|0>``.
    method : ReferenceMethod
        ``statevector``, or ``matrix_product_state`` (no truncation, so exact; cheap at any
        width while the entanglement stays low).

    Returns
    -------
    numpy.ndarray
        Complex values: the amplitudes first, then the expectation values, in the order given.
        One simulation serves them all.

    Raises
    ------
    CircuitError
        When an observable's width differs from the circuit's.
    """
    from qiskit_aer import AerSimulator

    ops = [SparsePauliOp(o) if isinstance(o, str) else o for o in observables]
    for op in ops:
        if op.num_qubits != circuit.num_qubits:
            raise CircuitError(
                f"observable on {op.num_qubits} qubits for a {circuit.num_qubits}-qubit circuit"
            )
    qc = circuit.copy()
    if amplitudes:
        qc.save_amplitudes([int(b) for b in amplitudes])
    for k, op in enumerate(ops):
        qc.save_expectation_value(op, list(range(qc.num_qubits)), label=f"observable{k}")
    data = AerSimulator(method=method).run(qc).result().data()
    values = list(data["amplitudes"]) if amplitudes else []
    values += [data[f"observable{k}"] for k in range(len(ops))]
    return np.asarray(values, dtype=complex)
