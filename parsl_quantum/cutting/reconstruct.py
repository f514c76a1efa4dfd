"""Factorized reconstruction: contract partition tensors over cut indices.

Partition p's results form a tensor ``T_p[o, a_1, ..., a_k]`` (observable o, option a_i at each
cut site). Each cut c contributes a matrix ``W_c[a, b]`` joining the option index of its two
partitions. The expectation value of term t is the contraction of all ``T_p[term_index[t, p]]``
with all ``W_c`` - a small tensor network whose cost grows with the number of partitions and the
cuts each one touches, not with the product over all cuts.

:func:`reconstruct_all` assembles those tensors from the results of a plan's evaluate tasks and
adds the statistical error of sampled rows by a parametric bootstrap through the contraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import networkx as nx
import numpy as np

from parsl_quantum.cutting.problem import CutProblem
from parsl_quantum.cutting.sampled import SampledRow
from parsl_quantum.cutting.uncertainty import bootstrap_rows

#: Bootstrap replicates of the standard error of sampled runs.
BOOTSTRAP_REPLICATES = 200


class RowResults(Protocol):
    """What reconstruction reads of one evaluate task's result (the task layer's
    ``BatchResult`` is one): ``values[r, o]`` per row and observable, and the outcome counts
    behind sampled rows (None when every row was exact)."""

    @property
    def values(self) -> np.ndarray: ...

    @property
    def samples(self) -> Sequence[SampledRow] | None: ...


def _pair(
    x: tuple[np.ndarray, tuple[int, ...]], y: tuple[np.ndarray, tuple[int, ...]]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Contract two batched tensors over the cut indices they share (batch axis 0 is kept).

    As one batched matrix product: ``x`` becomes ``[batch, own, shared]`` and ``y`` becomes
    ``[batch, shared, own]``, so BLAS does the work whatever the axes' memory order (einsum
    with a batch index falls back to a loop that is several times slower on the strided
    tensors the cut matrices leave behind)."""
    (tx, ix), (ty, iy) = x, y
    shared = [c for c in ix if c in iy]
    x_own = [c for c in ix if c not in shared]
    y_own = [c for c in iy if c not in shared]
    x_dims = {c: tx.shape[1 + k] for k, c in enumerate(ix)}
    y_dims = {c: ty.shape[1 + k] for k, c in enumerate(iy)}
    batch = tx.shape[0]
    mx = np.transpose(tx, [0, *(1 + ix.index(c) for c in x_own + shared)]).reshape(
        batch, _size(x_dims, x_own), _size(x_dims, shared)
    )
    my = np.transpose(ty, [0, *(1 + iy.index(c) for c in shared + y_own)]).reshape(
        batch, _size(y_dims, shared), _size(y_dims, y_own)
    )
    out = np.matmul(mx, my).reshape(batch, *(x_dims[c] for c in x_own), *(y_dims[c] for c in y_own))
    return out, tuple(x_own + y_own)


def _size(dims: dict[int, int], axes: Sequence[int]) -> int:
    return int(np.prod([dims[c] for c in axes], dtype=np.int64))


def contract(problem: CutProblem, tensors: Sequence[np.ndarray]) -> np.ndarray:
    """Contract the partition tensors into the value of each observable term (unweighted).

    Each cut matrix is first absorbed into the tensor of its second partition; the network is
    then contracted pairwise, always merging the pair with the smallest result (a greedy path, as
    in opt_einsum's ``greedy``).

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    tensors : Sequence[numpy.ndarray]
        ``tensors[p]`` has shape ``problem.partitions[p].shape``.

    Returns
    -------
    numpy.ndarray
        The value of each of the problem's observable terms.
    """
    nodes: list[tuple[np.ndarray, tuple[int, ...]]] = []
    for p, (part, tensor) in enumerate(zip(problem.partitions, tensors, strict=True)):
        t = np.asarray(tensor, dtype=float)[problem.term_index[:, p]]
        axes = part.cuts
        for c in problem.cuts:
            if c.b == p:
                pos = 1 + axes.index(c.index)
                t = np.moveaxis(np.tensordot(t, c.weights, axes=([pos], [1])), -1, pos)
        nodes.append((t, axes))
    while len(nodes) > 1:
        pairs = [(i, j) for i in range(len(nodes)) for j in range(i + 1, len(nodes))]
        i, j = min(pairs, key=lambda ij: _pair_cost(nodes[ij[0]], nodes[ij[1]]))
        merged = _pair(nodes[i], nodes[j])
        nodes = [n for k, n in enumerate(nodes) if k not in (i, j)] + [merged]
    return nodes[0][0].reshape(-1)


def _pair_cost(
    x: tuple[np.ndarray, tuple[int, ...]], y: tuple[np.ndarray, tuple[int, ...]]
) -> tuple[int, int]:
    """Prefer pairs that share a cut, then the smallest result tensor."""
    shared = set(x[1]) & set(y[1])
    dims = {c: int(x[0].shape[1 + k]) for k, c in enumerate(x[1])}
    dims.update({c: int(y[0].shape[1 + k]) for k, c in enumerate(y[1])})
    size = x[0].shape[0] * int(np.prod([d for c, d in dims.items() if c not in shared]))
    return (0 if shared else 1, size)


def expectation_value(problem: CutProblem, tensors: Sequence[np.ndarray]) -> float:
    """The reconstructed expectation value of the whole observable.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    tensors : Sequence[numpy.ndarray]
        ``tensors[p]`` has shape ``problem.partitions[p].shape``.

    Returns
    -------
    float
        The terms' values weighted by ``problem.term_coeffs``.
    """
    return float(problem.term_coeffs @ contract(problem, tensors))


def _tensors(
    problem: CutProblem, graph: nx.DiGraph, rows_values: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    flat = [np.zeros((p.num_subexperiments, len(p.observables))) for p in problem.partitions]
    for node, values in rows_values.items():
        d = graph.nodes[node]
        lo, hi = d["rows"]
        flat[d["partition"]][lo:hi] = values
    out = []
    for part, arr in zip(problem.partitions, flat, strict=True):
        site_dims = [len(s.options) for s in part.sites]
        out.append(np.moveaxis(arr.reshape(*site_dims, len(part.observables)), -1, 0))
    return out


def reconstruct(
    problem: CutProblem, graph: nx.DiGraph, results: Mapping[str, RowResults], seed: int | None
) -> tuple[float, float]:
    """The expectation value of the problem's observable and its standard error.

    See :func:`reconstruct_all`.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    graph : networkx.DiGraph
        The plan's task DAG: each evaluate node named in ``results`` carries its ``partition``
        and its ``rows`` range.
    results : Mapping[str, RowResults]
        Each evaluate node's results.
    seed : int or None
        Seed of the bootstrap of sampled results.

    Returns
    -------
    tuple[float, float]
        The value and its standard error (0 when every subexperiment was exact).
    """
    values, errors = reconstruct_all(problem, graph, results, seed, problem.term_coeffs[None, :])
    return float(values[0]), float(errors[0])


def reconstruct_all(
    problem: CutProblem,
    graph: nx.DiGraph,
    results: Mapping[str, RowResults],
    seed: int | None,
    coefficients: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Values and standard errors of several observables (one contraction serves them all).

    The error of sampled subexperiments is a parametric bootstrap
    (:data:`BOOTSTRAP_REPLICATES` redraws, seeded by ``seed``) through the contraction: the
    statistical (shot-noise) error only.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    graph : networkx.DiGraph
        The plan's task DAG: each evaluate node named in ``results`` carries its ``partition``
        and its ``rows`` range.
    results : Mapping[str, RowResults]
        Each evaluate node's results.
    seed : int or None
        Seed of the bootstrap.
    coefficients : numpy.ndarray
        ``coefficients[k]`` weights the problem's terms for observable k.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        The value and the standard error of each observable (errors of 0 when every
        subexperiment was exact).
    """
    values = {node: r.values for node, r in results.items()}
    value = coefficients @ contract(problem, _tensors(problem, graph, values))
    sampled = {node: r for node, r in results.items() if r.samples is not None}
    if not sampled:
        return value, np.zeros(len(coefficients))
    rng = np.random.default_rng(seed)
    boot = {
        node: bootstrap_rows(
            problem.partitions[graph.nodes[node]["partition"]],
            r.samples or [],
            BOOTSTRAP_REPLICATES,
            rng,
        )
        for node, r in sampled.items()
    }
    replicas = []
    for b in range(BOOTSTRAP_REPLICATES):
        vals = {node: (boot[node][b] if node in boot else v) for node, v in values.items()}
        replicas.append(coefficients @ contract(problem, _tensors(problem, graph, vals)))
    return value, np.std(np.array(replicas), axis=0, ddof=1)
