"""Candidate cut configurations as task DAGs, scheduled on heterogeneous pools (HEFT).

For a workload the planner enumerates configurations - no cut when a pool can hold the circuit,
and cuts into 2..P partitions - builds each one's networkx DiGraph (``cut`` -> batched
``evaluate`` tasks with resource requests -> ``reconstruct``), predicts per-node time and memory
with the :class:`~parsl_quantum.planner.cost.CostModel`, schedules it with a list scheduler
(upward ranks, earliest finish time over every worker slot of every allowed pool) and keeps the
lowest predicted makespan that fits in memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.errors import CuttingError, NoCutFoundError
from parsl_quantum.cutting.problem import CutProblem, cut_by_labels
from parsl_quantum.planner.cost import CostModel
from parsl_quantum.planner.partitioning import balanced_widths, block_labels, interaction_graph
from parsl_quantum.workflow.context import PoolInfo

Mode = Literal["auto", "exact", "sampled"]

#: Candidates whose partitions would need more distinct subexperiments than this are skipped.
MAX_SUBEXPERIMENTS = 2_000_000
#: Bytes per amplitude of the batched statevector engine, counting its working copies.
BYTES_PER_AMPLITUDE = 16 * 3


@dataclass
class Candidate:
    """One cut configuration, its task DAG and its predicted schedule."""

    parts: int
    widths: list[int]
    problem: CutProblem
    graph: nx.DiGraph
    makespan: float = math.inf
    peak_memory: int = 0
    assignment: dict[str, str] = field(default_factory=dict)
    fits: bool = True
    note: str = ""

    @property
    def pools_used(self) -> list[str]:
        return sorted(set(self.assignment.values()) - {"driver"})

    def summary(self) -> dict[str, Any]:
        return {
            "partitions": self.parts,
            "widths": self.widths,
            "cuts": len(self.problem.cuts),
            "subexperiments": self.problem.num_subexperiments,
            "tasks": sum(1 for _, d in self.graph.nodes(data=True) if d["kind"] == "evaluate"),
            "pools": self.pools_used,
            "makespan": self.makespan,
            "peak_memory": self.peak_memory,
            "fits": self.fits,
        }


@dataclass
class PlanResult:
    """All candidates considered, the chosen one, and why."""

    candidates: list[Candidate]
    chosen: Candidate
    reason: str
    model_source: str
    planning_time: float


def _rows_of(problem: CutProblem, p: int) -> np.ndarray:
    part = problem.partitions[p]
    dims = [len(s.options) for s in part.sites]
    if not dims:
        return np.zeros((1, 0), dtype=np.int64)
    return np.indices(dims).reshape(len(dims), -1).T.astype(np.int64)


def shot_allocation(problem: CutProblem, total_shots: int, min_shots: int = 32) -> list[np.ndarray]:
    """Split a shot budget over every subexperiment in proportion to the magnitude of its
    reconstruction weight: the product, over its cut sites, of the absolute coefficient mass
    attached to the option it takes."""
    masses: list[np.ndarray] = []
    for p, part in enumerate(problem.partitions):
        rows = _rows_of(problem, p)
        mass = np.ones(len(rows))
        for axis, cut_index in enumerate(part.cuts):
            cut = problem.cuts[cut_index]
            w = np.abs(cut.weights)
            per_option = w.sum(axis=1) if cut.a == p else w.sum(axis=0)
            mass *= per_option[rows[:, axis]]
        masses.append(mass)
    total_mass = sum(float(m.sum()) for m in masses)
    return [
        np.maximum(min_shots, np.round(total_shots * m / total_mass)).astype(np.int64)
        for m in masses
    ]


def _allowed_pools(width: int, pools: Mapping[str, PoolInfo], mode: Mode) -> list[str]:
    out = []
    for name, info in pools.items():
        if info.max_qubits < width:
            continue
        if mode == "exact" and not info.exact:
            continue
        out.append(name)
    return out


def build_graph(
    problem: CutProblem,
    pools: Mapping[str, PoolInfo],
    model: CostModel,
    mode: Mode,
    shots: int,
) -> nx.DiGraph:
    """The task DAG of a configuration, with per-pool predicted times on each evaluate node."""
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={"driver": 0.0}, memory=0)
    graph.add_node("reconstruct", kind="reconstruct", memory=0)
    total_slots = sum(info.workers for info in pools.values())
    allocation = shot_allocation(problem, shots) if mode != "exact" else None
    works = []
    for p, part in enumerate(problem.partitions):
        allowed = _allowed_pools(part.num_qubits, pools, mode)
        if not allowed:
            widest = max((i.max_qubits for i in pools.values()), default=0)
            raise NoCutFoundError(
                f"partition of {part.num_qubits} qubits fits no pool (widest: {widest} qubits)"
            )
        rows = _rows_of(problem, p)
        works.append((p, allowed, rows))
    costs_full = []
    for p, allowed, rows in works:
        part = problem.partitions[p]
        costs_full.append(
            min(_node_cost(model, pools[a], part, rows, allocation, p) for a in allowed)
        )
    total_cost = sum(costs_full) or 1.0
    for (p, allowed, rows), full in zip(works, costs_full, strict=True):
        part = problem.partitions[p]
        overhead = min(model.coefficients(a).overhead for a in allowed)
        share = full / total_cost
        batches = max(1, round(2 * total_slots * share))
        batches = int(min(batches, len(rows), max(1, full // (4 * overhead))))
        for b, chunk in enumerate(np.array_split(np.arange(len(rows)), batches)):
            if len(chunk) == 0:
                continue
            node = f"evaluate:{p}:{b}"
            sub = rows[chunk]
            pool_costs = {
                a: _node_cost(model, pools[a], part, sub, allocation, p, chunk) for a in allowed
            }
            shots_node = int(allocation[p][chunk].sum()) if allocation is not None else 0
            graph.add_node(
                node,
                kind="evaluate",
                partition=p,
                rows=(int(chunk[0]), int(chunk[-1]) + 1),
                qubits=part.num_qubits,
                shots=shots_node,
                pool_costs=pool_costs,
                memory=_node_memory(part.num_qubits, sub, part),
            )
            graph.add_edge("cut", node)
            graph.add_edge(node, "reconstruct")
    entries = sum(int(np.prod(p.shape)) for p in problem.partitions) * len(problem.term_coeffs)
    graph.nodes["reconstruct"]["pool_costs"] = {"driver": model.reconstruction_time(entries)}
    return graph


def _node_cost(
    model: CostModel,
    pool: PoolInfo,
    part: Any,
    rows: np.ndarray,
    allocation: list[np.ndarray] | None,
    p: int,
    chunk: np.ndarray | None = None,
) -> float:
    if pool.exact:
        return model.exact_time(pool.label, part, rows)
    assert allocation is not None
    shots = allocation[p] if chunk is None else allocation[p][chunk]
    return model.sampled_time(pool.label, part, int(shots.sum()), len(rows))


def _node_memory(width: int, rows: np.ndarray, part: Any) -> int:
    growth = 1
    for s in part.sites:
        growth = max(growth, max(1 << sum(o.kind != "unitary" for o in opts) for opts in s.options))
    branches = min(len(rows) * growth, 1 << 20)
    return int(min(branches * (1 << width) * BYTES_PER_AMPLITUDE, 2 * 1024**3 + (1 << width) * 48))


def heft(graph: nx.DiGraph, pools: Mapping[str, PoolInfo]) -> tuple[float, dict[str, str], int]:
    """Schedule the DAG: upward ranks, then earliest finish time over all worker slots.

    Sets ``pool``, ``start`` and ``finish`` on every node and returns the makespan, the
    node -> pool assignment and the peak memory of tasks running at once.
    """
    rank: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        costs = graph.nodes[node]["pool_costs"]
        mean = sum(costs.values()) / len(costs)
        rank[node] = mean + max((rank[s] for s in graph.successors(node)), default=0.0)
    slots: dict[str, list[float]] = {
        name: [0.0] * max(1, info.workers) for name, info in pools.items()
    }
    slots["driver"] = [0.0]
    finish: dict[str, float] = {}
    assignment: dict[str, str] = {}
    for node in sorted(graph.nodes, key=lambda v: -rank[v]):
        ready = max((finish[p] for p in graph.predecessors(node)), default=0.0)
        best: tuple[float, str, int, float] | None = None
        for pool, cost in graph.nodes[node]["pool_costs"].items():
            for i, free in enumerate(slots[pool]):
                start = max(free, ready)
                if best is None or start + cost < best[0]:
                    best = (start + cost, pool, i, start)
        assert best is not None
        end, pool, i, start = best
        slots[pool][i] = end
        finish[node] = end
        assignment[node] = pool
        graph.nodes[node].update(pool=pool, start=start, finish=end)
    peak = _peak_memory(graph)
    return max(finish.values(), default=0.0), assignment, peak


def _peak_memory(graph: nx.DiGraph) -> int:
    events = []
    for _, d in graph.nodes(data=True):
        if d.get("memory"):
            events.append((d["start"], d["memory"]))
            events.append((d["finish"], -d["memory"]))
    peak = current = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        current += delta
        peak = max(peak, current)
    return peak


def plan_workload(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    pools: Mapping[str, PoolInfo],
    *,
    max_subcircuit_qubits: int,
    model: CostModel,
    mode: Mode = "auto",
    shots: int = 100_000,
    memory_limit: int = 8 * 1024**3,
    max_parts: int | None = None,
    parts: Sequence[int] | None = None,
) -> PlanResult:
    """Enumerate, schedule and choose a cut configuration for the workload."""
    started = time.perf_counter()
    n = circuit.num_qubits
    if max_subcircuit_qubits < 1:
        raise CuttingError("planner.max_subcircuit_qubits must be at least 1")
    graph_q = interaction_graph(circuit)
    widest = max((i.max_qubits for i in pools.values()), default=0)
    limit = min(max_subcircuit_qubits, widest)
    low = max(1, math.ceil(n / max(1, limit)))
    high = max_parts or min(n, max(low + 4, 2 * low))
    choices = sorted(set(parts)) if parts else list(range(low, high + 1))
    candidates: list[Candidate] = []
    skipped: list[str] = []
    for k in choices:
        widths = balanced_widths(n, k)
        if max(widths) > limit:
            continue
        labels, _ = block_labels(circuit, widths, graph_q)
        problem = cut_by_labels(circuit, observable, labels)
        if max(p.num_subexperiments for p in problem.partitions) > MAX_SUBEXPERIMENTS:
            skipped.append(f"{k} partitions ({problem.num_subexperiments} subexperiments)")
            continue
        graph = build_graph(problem, pools, model, mode, shots)
        makespan, assignment, peak = heft(graph, pools)
        cand = Candidate(k, widths, problem, graph, makespan, peak, assignment)
        cand.fits = peak <= memory_limit
        candidates.append(cand)
    if not candidates:
        detail = f"; skipped {', '.join(skipped)}" if skipped else ""
        raise NoCutFoundError(
            f"no cut of the {n}-qubit circuit into pieces of at most {limit} qubits is "
            f"feasible{detail}"
        )
    fitting = [c for c in candidates if c.fits] or candidates
    chosen = min(fitting, key=lambda c: c.makespan)
    others = sorted((c for c in fitting if c is not chosen), key=lambda c: c.makespan)
    reason = f"lowest predicted makespan {chosen.makespan:.3g}s"
    if others:
        reason += f" (next: {others[0].parts} partitions at {others[0].makespan:.3g}s)"
    if len(fitting) < len(candidates):
        reason += f"; {len(candidates) - len(fitting)} candidate(s) exceed the memory limit"
    return PlanResult(candidates, chosen, reason, model.source, time.perf_counter() - started)
