"""Exact evaluation of a partition's subexperiments with batched, branching statevectors.

All requested subexperiments of a partition are evaluated in one pass over its program: the
states of every branch are stacked in one array, each unitary segment is applied to the whole
stack at once, and at each cut site the stack expands into the requested options. Work before a
site is therefore shared by every subexperiment that agrees on the earlier sites (shared-prefix
reuse), and numpy's per-call overhead is paid once per gate instead of once per gate per
subexperiment.

Mid-circuit measurements of QPD terms are evaluated exactly, not sampled: a signed Z measurement
splits a branch into its two projections with signs +1 and -1, and a reset into its two
projections with the second flipped back to ``|0>``. The expectation of a Pauli is the signed sum
of ``<psi_b|P|psi_b>`` over a subexperiment's branches (the branches are unnormalised).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parsl_quantum.cutting.partition import GateOp, LocalOp, PartitionProgram

#: Upper bound on the bytes of one stacked state array; larger stacks are split.
DEFAULT_MEMORY_BYTES = 2 * 1024**3

_X = np.array([[0, 1], [1, 0]], dtype=complex)


def _apply_1q(states: np.ndarray, n: int, q: int, u: np.ndarray) -> np.ndarray:
    b = states.shape[0]
    view = states.reshape(b << (n - 1 - q), 2, 1 << q)
    if u[0, 1] == 0 and u[1, 0] == 0:
        view = view.copy()
        view[:, 0, :] *= u[0, 0]
        view[:, 1, :] *= u[1, 1]
        return view.reshape(b, -1)
    return np.matmul(u, view).reshape(b, -1)


def _apply_2q(states: np.ndarray, n: int, qa: int, qb: int, u: np.ndarray) -> np.ndarray:
    """Apply a 4x4 unitary on (qa, qb); Qiskit's matrix index is ``2 * bit(qb) + bit(qa)``."""
    b = states.shape[0]
    hi, lo = max(qa, qb), min(qa, qb)
    view = states.reshape(b << (n - 1 - hi), 2, 1 << (hi - lo - 1), 2, 1 << lo)
    t = u.reshape(2, 2, 2, 2)  # [out_b, out_a, in_b, in_a]
    diag = np.diagonal(u)
    if np.allclose(u, np.diag(diag)):
        d = diag.reshape(2, 2)  # [b, a]
        if qb == hi:
            return (view * d[None, :, None, :, None]).reshape(b, -1)
        return (view * d.T[None, :, None, :, None]).reshape(b, -1)
    if qb == hi:
        out = np.einsum("abcd,mcndl->manbl", t, view)
    else:
        out = np.einsum("abcd,mdncl->mbnal", t, view)
    return out.reshape(b, -1)


def apply_gates(states: np.ndarray, n: int, gates: Sequence[GateOp]) -> np.ndarray:
    """Apply unitary gates to every state of a stack.

    Parameters
    ----------
    states : numpy.ndarray
        A stack of shape (branches, 2**n).
    n : int
        The number of qubits.
    gates : Sequence[GateOp]
        The gates, in order.

    Returns
    -------
    numpy.ndarray
        The stack after the gates.
    """
    for g in gates:
        if len(g.qubits) == 1:
            states = _apply_1q(states, n, g.qubits[0], g.matrix)
        else:
            states = _apply_2q(states, n, g.qubits[0], g.qubits[1], g.matrix)
    return states


def _apply_local(
    states: np.ndarray, signs: np.ndarray, n: int, q: int, ops: Sequence[LocalOp]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a QPD term's local operations; returns new states, signs and parent indices."""
    parents = np.arange(states.shape[0])
    for op in ops:
        if op.kind == "unitary":
            assert op.matrix is not None
            states = _apply_1q(states, n, q, op.matrix)
            continue
        b = states.shape[0]
        view = states.reshape(b << (n - 1 - q), 2, 1 << q)
        zero: np.ndarray = view.copy()
        zero[:, 1, :] = 0
        one: np.ndarray = view.copy()
        one[:, 0, :] = 0
        if op.kind == "measure":
            new_signs = np.concatenate([signs, -signs])
        else:  # reset: the |1> projection is flipped back to |0>
            one = one[:, ::-1, :]
            new_signs = np.concatenate([signs, signs])
        states = np.concatenate([zero.reshape(b, -1), np.ascontiguousarray(one).reshape(b, -1)])
        signs = new_signs
        parents = np.concatenate([parents, parents])
    # drop branches that a projection emptied (e.g. a reset of a qubit already in |0>)
    norms = np.einsum("ij,ij->i", states.real, states.real) + np.einsum(
        "ij,ij->i", states.imag, states.imag
    )
    keep = norms > 1e-24
    return states[keep], signs[keep], parents[keep]


def _pauli_masks(label: str) -> tuple[int, int, int]:
    """x mask, z mask and number of Y factors of a Pauli label (rightmost char = qubit 0)."""
    x = z = ny = 0
    for q, ch in enumerate(reversed(label)):
        if ch in "XY":
            x |= 1 << q
        if ch in "ZY":
            z |= 1 << q
        if ch == "Y":
            ny += 1
    return x, z, ny


def _parity_signs(indices: np.ndarray, mask: int) -> np.ndarray:
    bits = np.bitwise_and(indices, mask)
    parity = np.zeros_like(bits)
    while mask:
        parity ^= bits & 1
        bits >>= 1
        mask >>= 1
    return 1 - 2 * parity.astype(np.float64)


def pauli_expectations(states: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """``<psi_b|P_j|psi_b>`` for every branch b and Pauli label j.

    Parameters
    ----------
    states : numpy.ndarray
        A stack of shape (branches, 2**n); states may be unnormalised.
    labels : Sequence[str]
        Pauli labels (rightmost character is qubit 0).

    Returns
    -------
    numpy.ndarray
        Real values of shape (branches, labels).
    """
    b, dim = states.shape
    idx = np.arange(dim, dtype=np.int64)
    out = np.empty((b, len(labels)))
    by_x: dict[int, list[int]] = {}
    masks = [_pauli_masks(lab) for lab in labels]
    for j, (x, _, _) in enumerate(masks):
        by_x.setdefault(x, []).append(j)
    for x, cols in by_x.items():
        # conj(psi[i ^ x]) * psi[i], shared by every Pauli with this x mask
        prod = np.conj(states[:, idx ^ x]) * states if x else (np.abs(states) ** 2).astype(complex)
        signs = np.stack([_parity_signs(idx, masks[j][1]) for j in cols], axis=1)
        phases = np.array([(1j) ** masks[j][2] for j in cols])
        out[:, cols] = ((prod @ signs) * phases).real
    return out


def evaluate_exact(
    program: PartitionProgram,
    rows: np.ndarray | None = None,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> np.ndarray:
    """Exact expectation values of a partition's subexperiments.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    rows : numpy.ndarray or None
        An int array (subexperiments x sites) of option indices, one row per requested
        subexperiment; ``None`` means all of them in C order.
    memory_bytes : int
        Upper bound on the bytes of one stacked state array; larger stacks are split.

    Returns
    -------
    numpy.ndarray
        Shape (len(rows), len(program.observables)).
    """
    n = program.num_qubits
    k = len(program.sites)
    if rows is None:
        dims = [len(s.options) for s in program.sites]
        rows = np.indices(dims).reshape(k, -1).T if k else np.zeros((1, 0), dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(len(rows), k)
    result = np.zeros((rows.shape[0], len(program.observables)))
    state = np.zeros((1, 1 << n), dtype=complex)
    state[0, 0] = 1.0
    state = apply_gates(state, n, program.segments[0])
    walker = _Walker(program, rows, memory_bytes)
    walker.run(0, state, np.ones(1), np.zeros(1, dtype=np.int64))
    result[:] = walker.acc[walker.row_prefix]
    return result


class _Walker:
    """Breadth-first walk over the sites, splitting the stack when it would not fit in memory.

    Branches are grouped by prefix: the prefixes of length ``l`` of the requested rows are
    numbered ``0..P_l-1`` and ``gid[b]`` is the prefix of branch b. ``children[l][o]`` maps a
    prefix of length l to its extension by option o (or -1), so expanding a level is a handful
    of array operations whatever the number of subexperiments.
    """

    def __init__(self, program: PartitionProgram, rows: np.ndarray, memory_bytes: int) -> None:
        self.program = program
        self.n = program.num_qubits
        self.max_states = max(1, memory_bytes // ((1 << self.n) * 16 * 3))
        k = len(program.sites)
        ids = np.zeros(len(rows), dtype=np.int64)  # prefix id of each row at the current level
        count = 1
        self.children: list[list[np.ndarray]] = []
        for level in range(k):
            pair = ids * len(program.sites[level].options) + rows[:, level]
            uniq, inverse = np.unique(pair, return_inverse=True)
            per_option = []
            for opt in range(len(program.sites[level].options)):
                child = np.full(count, -1, dtype=np.int64)
                mine = (uniq % len(program.sites[level].options)) == opt
                child[uniq[mine] // len(program.sites[level].options)] = np.nonzero(mine)[0]
                per_option.append(child)
            self.children.append(per_option)
            ids, count = inverse.reshape(-1), len(uniq)
        self.row_prefix = ids
        self.acc = np.zeros((count, len(program.observables)))

    def run(self, level: int, states: np.ndarray, signs: np.ndarray, gid: np.ndarray) -> None:
        program = self.program
        if level == len(program.sites):
            values = pauli_expectations(states, program.observables) * signs[:, None]
            np.add.at(self.acc, gid, values)
            return
        site = program.sites[level]
        children = self.children[level]
        growth = [1 << sum(op.kind != "unitary" for op in opts) for opts in site.options]
        expected = sum(
            int((child[gid] >= 0).sum()) * g for child, g in zip(children, growth, strict=True)
        )
        prefixes = np.unique(gid)
        if expected > self.max_states and len(prefixes) > 1:
            half = prefixes[len(prefixes) // 2]
            for keep in (gid < half, gid >= half):
                self.run(level, states[keep], signs[keep], gid[keep])
            return
        new_states: list[np.ndarray] = []
        new_signs: list[np.ndarray] = []
        new_gid: list[np.ndarray] = []
        for opt, child in enumerate(children):
            target = child[gid]
            sel = target >= 0
            if not sel.any():
                continue
            st, sg, parent = _apply_local(
                states[sel], signs[sel], self.n, site.qubit, site.options[opt]
            )
            new_states.append(st)
            new_signs.append(sg)
            new_gid.append(target[sel][parent])
        if not new_states:
            return
        states = apply_gates(np.concatenate(new_states), self.n, program.segments[level + 1])
        self.run(level + 1, states, np.concatenate(new_signs), np.concatenate(new_gid))
