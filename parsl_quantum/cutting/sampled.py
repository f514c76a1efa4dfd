"""Shot-based evaluation of subexperiments, for QPUs and sampling simulators.

Each subexperiment becomes one circuit per qubit-wise commuting group of the partition's
observables: the QPD terms' measurements write to a ``qpd`` register and the observable is
measured in its group's basis into an ``obs`` register. An outcome contributes
``(-1)^(parity of qpd bits) * (-1)^(parity of the Pauli's obs bits)``. Counts are kept so the
driver can bootstrap a standard error through the whole reconstruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qiskit.circuit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting.qpd import SingleQubitQPDGate

from parsl_quantum.cutting.program import PartitionProgram


@dataclass
class SampledRow:
    """Outcomes of one subexperiment, per commuting group.

    Attributes
    ----------
    qpd : list[numpy.ndarray]
        Per group, the QPD measurement bits of each distinct outcome, as integers.
    obs : list[numpy.ndarray]
        Per group, the observable measurement bits of each distinct outcome, as integers.
    counts : list[numpy.ndarray]
        Per group, how often each distinct outcome occurred.
    """

    qpd: list[np.ndarray]
    obs: list[np.ndarray]
    counts: list[np.ndarray]

    @property
    def shots(self) -> int:
        """The total number of shots over all groups."""
        return int(sum(c.sum() for c in self.counts))


def commuting_groups(observables: Sequence[str]) -> list[list[int]]:
    """Indices of the partition observables grouped qubit-wise commuting.

    Parameters
    ----------
    observables : Sequence[str]
        Pauli labels.

    Returns
    -------
    list[list[int]]
        Groups of indices into ``observables``; each index is in one group.
    """
    if not observables:
        return []
    plist = PauliList(list(observables))
    groups: list[list[int]] = []
    for group in plist.group_qubit_wise_commuting():
        labels = {p.to_label() for p in group}
        groups.append([i for i, lab in enumerate(observables) if lab in labels])
    seen: set[int] = set()
    unique = []
    for g in groups:
        g = [i for i in g if i not in seen]
        seen.update(g)
        if g:
            unique.append(g)
    return unique


def _basis_of(observables: Sequence[str], group: Sequence[int]) -> list[str]:
    """Per local qubit, the measurement basis ('X', 'Y', 'Z') the group needs."""
    n = len(observables[group[0]])
    basis = ["Z"] * n
    for i in group:
        for q, ch in enumerate(reversed(observables[i])):
            if ch != "I":
                basis[q] = ch
    return basis


def build_circuits(program: PartitionProgram, row: Sequence[int]) -> list[QuantumCircuit]:
    """The measured circuits of one subexperiment, one per commuting observable group.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    row : Sequence[int]
        The option index of each site.

    Returns
    -------
    list[QuantumCircuit]
        One circuit per group of :func:`commuting_groups`, with registers ``qpd`` and ``obs``.
    """
    n = program.num_qubits
    n_meas = sum(
        op.kind == "measure"
        for site, opt in zip(program.sites, row, strict=True)
        for op in site.options[opt]
    )
    groups = commuting_groups(program.observables)
    base = QuantumCircuit(QuantumRegister(n, "q"))
    qpd = ClassicalRegister(max(1, n_meas), "qpd")
    base.add_register(qpd)
    site_iter = iter(zip(program.sites, row, strict=True))
    mbit = 0
    for inst in program.circuit.data:
        qubits = [program.circuit.find_bit(q).index for q in inst.qubits]
        if isinstance(inst.operation, SingleQubitQPDGate):
            site, opt = next(site_iter)
            for op in site.options[opt]:
                if op.kind == "measure":
                    base.measure(qubits[0], qpd[mbit])
                    mbit += 1
                elif op.kind == "reset":
                    base.reset(qubits[0])
                else:
                    assert op.matrix is not None
                    base.unitary(op.matrix, [qubits[0]])
        elif inst.operation.name not in ("barrier",):
            base.append(inst.operation, [base.qubits[q] for q in qubits])
    circuits = []
    for group in groups:
        circ = base.copy()
        obs = ClassicalRegister(n, "obs")
        circ.add_register(obs)
        for q, ch in enumerate(_basis_of(program.observables, group)):
            if ch == "X":
                circ.h(q)
            elif ch == "Y":
                circ.sdg(q)
                circ.h(q)
        circ.measure(range(n), obs)
        circuits.append(circ)
    return circuits


def _parity(values: np.ndarray, mask: int | None = None) -> np.ndarray:
    """``(-1)^popcount(values & mask)`` as floats (all bits when ``mask`` is None)."""
    bits = values.copy() if mask is None else np.bitwise_and(values, mask)
    parity = np.zeros_like(bits)
    while np.any(bits):
        parity ^= bits & 1
        bits = bits >> 1
    return 1.0 - 2.0 * parity


def row_expectations(program: PartitionProgram, row: SampledRow) -> np.ndarray:
    """Estimate every observable of a subexperiment from its groups' outcome counts.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    row : SampledRow
        The subexperiment's outcomes.

    Returns
    -------
    numpy.ndarray
        One estimate per observable of the partition.
    """
    values = np.zeros(len(program.observables))
    groups = commuting_groups(program.observables)
    for group, qpd, obs, cnt in zip(groups, row.qpd, row.obs, row.counts, strict=True):
        weights = np.asarray(cnt, dtype=float)
        total = weights.sum()
        qpd_sign = _parity(np.asarray(qpd, dtype=np.int64))
        for i in group:
            label = program.observables[i]
            zmask = sum(1 << q for q, ch in enumerate(reversed(label)) if ch != "I")
            sign = qpd_sign * _parity(np.asarray(obs, dtype=np.int64), zmask)
            values[i] = float(sign @ weights) / total if total else 0.0
    return values


def _register_ints(bitarray: object) -> np.ndarray:
    """Per-shot integers of a SamplerV2 ``BitArray`` register."""
    arr = np.asarray(bitarray.array, dtype=np.int64)  # type: ignore[attr-defined]
    out: np.ndarray = np.zeros(arr.shape[0], dtype=np.int64)
    for col in range(arr.shape[1]):
        out = (out << 8) | arr[:, col]
    return out


def sample_rows(
    program: PartitionProgram,
    rows: np.ndarray,
    shots: Sequence[int],
    sampler: object,
    transpile: object,
) -> list[SampledRow]:
    """Run the measured circuits of ``rows`` with a SamplerV2 and collect their outcome counts.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    rows : numpy.ndarray
        The option rows of the subexperiments (subexperiments x sites).
    shots : Sequence[int]
        Shots of each row.
    sampler : object
        A SamplerV2.
    transpile : object
        A callable that maps circuits to the backend's ISA.

    Returns
    -------
    list[SampledRow]
        The outcomes of each row.
    """
    circuits: list[QuantumCircuit] = []
    owners: list[tuple[int, int]] = []
    for r, row in enumerate(rows):
        for circ in build_circuits(program, row):
            owners.append((r, int(shots[r])))
            circuits.append(circ)
    isa = transpile(circuits)  # type: ignore[operator]
    pubs = [(c, None, s) for c, (_, s) in zip(isa, owners, strict=True)]
    result = sampler.run(pubs).result()  # type: ignore[attr-defined]
    out = [SampledRow([], [], []) for _ in range(len(rows))]
    for (r, _), pub in zip(owners, result, strict=True):
        qpd = _register_ints(pub.data.qpd)
        obs = _register_ints(pub.data.obs)
        key = (obs << 32) | qpd
        uniq, cnt = np.unique(key, return_counts=True)
        out[r].qpd.append(uniq & 0xFFFFFFFF)
        out[r].obs.append(uniq >> 32)
        out[r].counts.append(cnt)
    return out
