"""Candidate cut configurations as task DAGs, scheduled on heterogeneous pools (HEFT).

For a workload the planner enumerates configurations - the whole circuit uncut as one Aer task
on a simulator pool (statevector, or matrix product state when the circuit's two-qubit gate
structure predicts a small bond dimension), no cut with our engine when a pool can hold the
circuit, balanced cuts into 2..P partitions, uneven cuts with one partition as narrow as a
narrower pool (a QPU beside wider simulators), and the cut of qiskit-addon-cutting's
``find_cuts`` when it uses wire cuts (one qubit meeting many others in turn) - builds each one's
networkx DiGraph (``cut`` -> batched ``evaluate`` tasks with resource requests ->
``reconstruct``), predicts per-node time and memory with the
:class:`~parsl_quantum.planner.cost.CostModel`, schedules it with a list scheduler (upward
ranks, earliest finish time over the worker slots of every allowed pool, submissions serialised
on the driver) and keeps the lowest predicted makespan that fits in memory.

Costs: building a DAG is O(tasks * sites) after an O(subexperiments) precomputation per
partition, and :func:`heft` is O(tasks * (pools + log slots)); enumerating is O(candidates)
cuts of the circuit, each O(qubits * (qubits + gates)) to place plus the cutting itself.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import networkx as nx
import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.cutting.errors import CuttingError, NoCutFoundError
from parsl_quantum.cutting.normalize import Normalized, normalize
from parsl_quantum.cutting.problem import CutProblem, cut_by_labels, find_cut_problem
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.reconstruct import BOOTSTRAP_REPLICATES
from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.cost import (
    DRIVER,
    MPS_MAX_BOND,
    CostModel,
    RowCosting,
    contraction_work,
    mps_bond_bound,
    whole_work,
)
from parsl_quantum.planner.partitioning import balanced_widths, block_labels, interaction_graph

Mode = Literal["auto", "exact", "sampled"]

#: Candidates with a partition that would need more distinct subexperiments are skipped.
MAX_SUBEXPERIMENTS = 1_000_000
#: Narrowest partition the default enumeration goes down to.
MIN_WIDTH = 3
#: Distinct local options per cut site assumed when screening candidates before cutting.
OPTIONS_PER_SITE = 5
#: Bytes per amplitude of the batched statevector engine, counting its working copies.
BYTES_PER_AMPLITUDE = 16 * 3
#: Upper bound of one stacked state array in the engine (it splits larger stacks).
ENGINE_STACK_BYTES = 2 * 1024**3
#: Tasks the dispatcher lets a pool hold beyond its worker slots (its ``prefetch``): the next
#: task is sent to a pool only when fewer than slots + this many are in flight there, so HEFT
#: holds a pool's later tasks back until enough of its results are in.
DISPATCH_PREFETCH = 1
#: Batchings tried per candidate: evaluate tasks per worker slot (more tasks balance the load
#: across pools, fewer share more work between subexperiments and pay less per-task overhead).
TASKS_PER_SLOT = (1.0, 2.0, 4.0)
#: Bound on qiskit-addon-cutting's ``find_cuts`` search for the wire-cut candidate (about 0.1 s
#: for 48 qubits; past the bound it returns its greedy best).
FIND_CUTS_BACKJUMPS = 100
#: Seconds the ``find_cuts`` search (with the cutting of what it finds) is expected to take per
#: two-qubit gate of the circuit: about 1.3-1.8 ms on ``efficient_su2`` chains of 4-48 qubits
#: and 1.3-2.7 ms on QAOA and bus circuits, measured on 2 cores. The search is skipped when
#: the best candidate without it is predicted to finish sooner than the search takes
#: (:func:`wire_search_pays`).
FIND_CUTS_SECONDS_PER_GATE = 1e-3
#: Bytes per amplitude of Aer's statevector method, with room for its working copy.
AER_BYTES_PER_AMPLITUDE = 16 * 2
#: How far beyond its predicted bond dimension an uncut MPS task may grow before it falls back.
MPS_BOND_SLACK = 4


@dataclass
class Candidate:
    """One cut configuration, its task DAG and its predicted schedule.

    Attributes
    ----------
    parts : int
        Number of partitions.
    widths : list of int
        Width of each partition.
    problem : CutProblem
        The cut problem.
    graph : networkx.DiGraph
        The task DAG.
    makespan : float
        Predicted seconds of the whole run (infinite until scheduled).
    peak_memory : int
        Peak bytes of tasks running at once.
    assignment : dict of str to str
        Node -> pool of the schedule.
    fits : bool
        Whether every task fits its pool's memory.
    note : str
        Why the candidate was left out or changed, if it was.
    method : str
        ``engine`` (pieces evaluated by the batched statevector engine, or the whole circuit
        when it fits a piece), or ``statevector``/``mps``: the whole circuit as one Aer task.
    """

    parts: int
    widths: list[int]
    problem: CutProblem
    graph: nx.DiGraph
    makespan: float = math.inf
    peak_memory: int = 0
    assignment: dict[str, str] = field(default_factory=dict)
    fits: bool = True
    note: str = ""
    #: ``engine`` (pieces evaluated by the batched statevector engine, or the whole circuit
    #: when it fits a piece), or ``statevector``/``mps``: the whole circuit as one Aer task.
    method: str = "engine"

    @property
    def label(self) -> str:
        """How the candidate evaluates the circuit, as plans and results say it."""
        if self.method != "engine":
            return f"uncut ({self.method})"
        return "no cut" if self.parts == 1 else f"widths {self.widths}"

    @property
    def pools_used(self) -> list[str]:
        """The pools the schedule assigns tasks to (the driver left out), sorted."""
        return sorted(set(self.assignment.values()) - {DRIVER})

    @property
    def tasks(self) -> int:
        """The number of evaluate tasks in the DAG."""
        return sum(1 for _, d in self.graph.nodes(data=True) if d["kind"] == "evaluate")

    def summary(self) -> dict[str, Any]:
        """Plain data describing the candidate, for plan files and results.

        Returns
        -------
        dict of str to Any
            Partitions, widths, cuts, subexperiments, tasks, pools, makespan, peak memory, fits,
            note, method and label.
        """
        return {
            "partitions": self.parts,
            "widths": self.widths,
            "cuts": len(self.problem.cuts),
            "subexperiments": self.problem.num_subexperiments,
            "tasks": self.tasks,
            "pools": self.pools_used,
            "makespan": self.makespan,
            "peak_memory": self.peak_memory,
            "fits": self.fits,
            "note": self.note,
            "method": self.method,
            "label": self.label,
        }


@dataclass
class PlanResult:
    """All candidates considered, the chosen one, and why.

    Attributes
    ----------
    candidates : list of Candidate
        Every candidate considered.
    chosen : Candidate
        The candidate to run.
    reason : str
        Why it was chosen.
    model_source : str
        Where the cost model's coefficients came from.
    planning_time : float
        Seconds the planning took.
    execution : Any
        Filled in by the workflow once the chosen DAG has run: the late-binding dispatcher's
        record (:class:`~parsl_quantum.planner.dispatch.DispatchReport`).
    normalized : Normalized or None
        The normalized circuit and observables the candidates cut.
    """

    candidates: list[Candidate]
    chosen: Candidate
    reason: str
    model_source: str
    planning_time: float
    execution: Any = None
    normalized: Normalized | None = None


def all_rows(problem: CutProblem, p: int) -> np.ndarray:
    """Every subexperiment of partition ``p`` as option-index rows, in C order.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    p : int
        Partition index.

    Returns
    -------
    numpy.ndarray
        One row of option indices per subexperiment.
    """
    dims = [len(s.options) for s in problem.partitions[p].sites]
    if not dims:
        return np.zeros((1, 0), dtype=np.int64)
    return np.indices(dims).reshape(len(dims), -1).T.astype(np.int64)


def shot_allocation(problem: CutProblem, total_shots: int, min_shots: int = 32) -> list[np.ndarray]:
    """Split a shot budget over every subexperiment.

    In proportion to the magnitude of its reconstruction weight: the product, over its cut
    sites, of the absolute coefficient mass attached to the option it takes.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    total_shots : int
        The shot budget.
    min_shots : int
        Fewest shots any subexperiment gets.

    Returns
    -------
    list of numpy.ndarray
        Shots per subexperiment, one array per partition.
    """
    masses: list[np.ndarray] = []
    for p, part in enumerate(problem.partitions):
        mass = np.ones(1)
        for cut_index in part.cuts:
            cut = problem.cuts[cut_index]
            w = np.abs(cut.weights)
            per_option = w.sum(axis=1) if cut.a == p else w.sum(axis=0)
            mass = np.outer(mass, per_option).ravel()
        masses.append(mass)
    total_mass = sum(float(m.sum()) for m in masses)
    return [
        np.maximum(min_shots, np.round(total_shots * m / total_mass)).astype(np.int64)
        for m in masses
    ]


def payload_program(program: PartitionProgram, exact: bool) -> PartitionProgram:
    """The program as sent to a task.

    Exact evaluation never reads the Qiskit circuit (only sampled evaluation rebuilds circuits
    from it), so exact tasks carry an empty one, which halves what the driver serialises per
    task.

    Parameters
    ----------
    program : PartitionProgram
        The partition's program.
    exact : bool
        Whether the task evaluates exactly.

    Returns
    -------
    PartitionProgram
        ``program``, without its circuit when ``exact``.
    """
    if not exact:
        return program
    return replace(program, circuit=QuantumCircuit(program.num_qubits))


def runs_exact(pool: PoolInfo, mode: Mode) -> bool:
    """Whether a task on ``pool`` is evaluated exactly under ``mode`` (else by shots).

    Parameters
    ----------
    pool : PoolInfo
        The pool.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.

    Returns
    -------
    bool
        True for exact evaluation.
    """
    return pool.exact and mode != "sampled"


def usable_pools(pools: Mapping[str, PoolInfo], mode: Mode) -> dict[str, PoolInfo]:
    """Pools that may evaluate anything under ``mode``.

    All, except that a sampled-only pool never gets work of a run that must be exact.

    Parameters
    ----------
    pools : Mapping of str to PoolInfo
        The pools by name.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.

    Returns
    -------
    dict of str to PoolInfo
        The usable pools by name.
    """
    return {name: info for name, info in pools.items() if mode != "exact" or info.exact}


def allowed_pools(width: int, pools: Mapping[str, PoolInfo], mode: Mode) -> list[str]:
    """Usable pools (:func:`usable_pools`) wide enough for a partition of ``width`` qubits.

    Parameters
    ----------
    width : int
        Partition width.
    pools : Mapping of str to PoolInfo
        The pools by name.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.

    Returns
    -------
    list of str
        Names of the pools.
    """
    return [n for n, info in usable_pools(pools, mode).items() if info.max_qubits >= width]


def aligned_bounds(dims: Sequence[int] | np.ndarray, batches: int) -> np.ndarray:
    """``batches`` contiguous row ranges over the C-order product of ``dims``.

    Boundaries fall on whole prefixes of the shallowest level that has enough of them, so
    tasks split the work where the fewest shared prefixes are lost.

    Parameters
    ----------
    dims : Sequence of int or numpy.ndarray
        Options per cut site.
    batches : int
        Number of ranges wanted.

    Returns
    -------
    numpy.ndarray
        One (start, stop) row per range.
    """
    rows = int(np.prod(dims)) if len(dims) else 1
    batches = max(1, min(batches, rows))
    prefixes, stride, level = 1, rows, 0
    while prefixes < batches and level < len(dims):
        prefixes *= int(dims[level])
        stride //= int(dims[level])
        level += 1
    groups = np.array_split(np.arange(prefixes), batches)
    starts = np.array([g[0] for g in groups if len(g)], dtype=np.int64) * stride
    stops = np.append(starts[1:], rows)
    return np.stack([starts, stops], axis=1)


def build_graph(
    problem: CutProblem,
    pools: Mapping[str, PoolInfo],
    model: CostModel,
    mode: Mode,
    shots: int,
    *,
    tasks_per_slot: float = 2.0,
    task_rows: int | None = None,
    replicates: int = BOOTSTRAP_REPLICATES,
    costings: Sequence[RowCosting] | None = None,
) -> nx.DiGraph:
    """The task DAG of a configuration, with per-pool predicted times on each evaluate node.

    Each partition's subexperiments are split into contiguous batches, one evaluate task each:
    ``task_rows`` rows per task when given, else about ``tasks_per_slot`` tasks per worker slot
    shared out in proportion to each partition's work, no task much shorter than the per-task
    overhead (the slot's and the driver's). Evaluate nodes carry ``partition``, ``rows`` (start,
    stop), ``qubits``, ``shots``, ``pool_costs`` (pool -> seconds on a worker slot), ``latency``
    (pool -> seconds to reach a free worker and for the result to come back), ``modes``
    (pool -> exact/sampled), ``submit`` and ``collect`` (driver seconds before and after the
    task) and ``memory`` (bytes).

    Parameters
    ----------
    problem : CutProblem
        The cut problem.
    pools : Mapping of str to PoolInfo
        The pools by name.
    model : parsl_quantum.planner.cost.CostModel
        Predicts task times.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    tasks_per_slot : float
        Evaluate tasks per worker slot.
    task_rows : int or None
        Rows per task, overriding ``tasks_per_slot``.
    replicates : int
        Bootstrap replicates of the reconstruction when any row is sampled.
    costings : Sequence of RowCosting or None
        One :class:`~parsl_quantum.planner.cost.RowCosting` per partition, passed in when the
        same problem is batched several ways.

    Returns
    -------
    networkx.DiGraph
        The task DAG.
    """
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={DRIVER: model.driver.per_run}, memory=0)
    graph.add_node("reconstruct", kind="reconstruct", memory=0)
    total_slots = sum(max(1, info.workers) for info in pools.values())
    allocation = shot_allocation(problem, shots) if mode != "exact" else None
    parts = []
    for p, part in enumerate(problem.partitions):
        allowed = allowed_pools(part.num_qubits, pools, mode)
        if not allowed:
            widest = max((i.max_qubits for i in pools.values()), default=0)
            raise NoCutFoundError(
                f"partition of {part.num_qubits} qubits fits no pool"
                f"{' that evaluates exactly' if mode == 'exact' else ''} (widest: {widest} qubits)"
            )
        costing = costings[p] if costings is not None else RowCosting(part)
        whole = _work(costing, np.array([[0, costing.rows]]), allocation, p)
        full = min(_costs(model, pools, a, mode, whole)[0] for a in allowed)
        parts.append((p, allowed, costing, full))
    total_work = sum(full for *_, full in parts) or 1.0
    for p, allowed, costing, full in parts:
        part = problem.partitions[p]
        submit = {a: model.submit_time(a, part) for a in allowed}
        if task_rows is not None:
            batches = math.ceil(costing.rows / max(1, task_rows))
        else:
            overhead = model.driver.per_result + min(
                model.coefficients(a).overhead + submit[a] for a in allowed
            )
            batches = round(tasks_per_slot * total_slots * full / total_work)
            batches = int(min(max(1, batches), max(1, full // (2 * overhead))))
        bounds = aligned_bounds(costing.dims, batches)
        work = _work(costing, bounds, allocation, p)
        costs = {a: _costs(model, pools, a, mode, work) for a in allowed}
        modes = {a: "exact" if runs_exact(pools[a], mode) else "sampled" for a in allowed}
        memory = _memory(costing, work[0])
        node_shots = (
            np.add.reduceat(allocation[p], bounds[:, 0]) if allocation is not None else None
        )
        for b, (lo, hi) in enumerate(bounds):
            node = f"evaluate:{p}:{b}"
            graph.add_node(
                node,
                kind="evaluate",
                partition=p,
                rows=(int(lo), int(hi)),
                qubits=part.num_qubits,
                shots=int(node_shots[b]) if node_shots is not None else 0,
                pool_costs={a: float(costs[a][b]) for a in allowed},
                latency={a: model.coefficients(a).latency for a in allowed},
                modes=modes,
                submit=min(submit.values()),
                collect=model.driver.per_result,
                memory=int(memory[b]),
            )
            graph.add_edge("cut", node)
            graph.add_edge(node, "reconstruct")
    base = model.reconstruction_time(contraction_work(problem))
    graph.nodes["reconstruct"].update(
        pool_costs={DRIVER: base},
        sampled_cost=base * (1 + replicates),
        boot_row_cost=model.driver.per_boot_row * replicates,
    )
    return graph


def build_whole_graph(
    problem: CutProblem,
    pools: Mapping[str, PoolInfo],
    model: CostModel,
    method: str,
    memory_limit: int,
) -> nx.DiGraph | None:
    """The DAG of the uncut candidate.

    One evaluate task running the whole one-partition ``problem`` with Aer's ``method`` on a
    simulator pool that evaluates exactly. Either method runs only on simulator pools at least
    as wide as the circuit (a pool's width is what it says it can hold); an MPS task carries its
    bond cap and the widest circuit it may fall back to statevector for (``whole``).

    Parameters
    ----------
    problem : CutProblem
        A one-partition problem.
    pools : Mapping of str to PoolInfo
        The pools by name.
    model : parsl_quantum.planner.cost.CostModel
        Predicts task times.
    method : str
        ``statevector`` or ``mps``.
    memory_limit : int
        Bytes a task may use.

    Returns
    -------
    networkx.DiGraph or None
        The DAG, or None when no pool can take it.
    """
    program = problem.partitions[0]
    n = program.num_qubits
    simulators = {name: info for name, info in pools.items() if info.kind != "qpu" and info.exact}
    memory_qubits = int(math.log2(max(1, memory_limit) / AER_BYTES_PER_AMPLITUDE))
    allowed = [name for name, info in simulators.items() if info.max_qubits >= n]
    if method == "statevector":
        bond = 0
        memory = AER_BYTES_PER_AMPLITUDE * 2**n
    else:
        bond = mps_bond_bound(program)
        if bond > MPS_MAX_BOND:
            return None
        memory = 4 * n * (bond * MPS_BOND_SLACK) ** 2 * 16
    if not allowed:
        return None
    work = whole_work(program, method, bond)
    costs = {}
    for name in allowed:
        c = model.coefficients(name)
        costs[name] = float(c.slot_seconds(c.whole_seconds(method, work)))
    graph = nx.DiGraph()
    graph.add_node("cut", kind="cut", pool_costs={DRIVER: model.driver.per_run}, memory=0)
    graph.add_node(
        "evaluate:0:0",
        kind="evaluate",
        partition=0,
        rows=(0, 1),
        qubits=n,
        shots=0,
        pool_costs=costs,
        latency={name: model.coefficients(name).latency for name in allowed},
        modes={name: "exact" for name in allowed},
        submit=min(model.submit_time(name, program) for name in allowed),
        collect=model.driver.per_result,
        memory=int(memory),
        whole={
            "method": method,
            "max_bond": max(2, bond * MPS_BOND_SLACK),
            "statevector_qubits": min(
                [memory_qubits, *(simulators[name].max_qubits for name in allowed)]
            ),
        },
    )
    graph.add_node(
        "reconstruct",
        kind="reconstruct",
        memory=0,
        pool_costs={DRIVER: model.reconstruction_time(contraction_work(problem))},
        sampled_cost=0.0,
        boot_row_cost=0.0,
    )
    graph.add_edge("cut", "evaluate:0:0")
    graph.add_edge("evaluate:0:0", "reconstruct")
    return graph


def _work(
    costing: RowCosting, bounds: np.ndarray, allocation: list[np.ndarray] | None, p: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact work features of each row range and, when shots are allocated, sampled ones:
    computed once per batching and shared by every pool's cost and the memory estimate."""
    lo, hi = bounds[:, 0], bounds[:, 1]
    sampled = costing.sampled(lo, hi, allocation[p]) if allocation is not None else None
    return costing.exact(lo, hi), sampled


def _costs(
    model: CostModel,
    pools: Mapping[str, PoolInfo],
    pool: str,
    mode: Mode,
    work: tuple[np.ndarray, np.ndarray | None],
) -> np.ndarray:
    """Seconds each row range (its :func:`_work`) occupies a worker slot of ``pool``."""
    c = model.coefficients(pool)
    exact, sampled = work
    if runs_exact(pools[pool], mode):
        return c.slot_seconds(c.exact_seconds(exact))
    assert sampled is not None
    return c.slot_seconds(c.sampled_seconds(sampled))


def _memory(costing: RowCosting, exact_work: np.ndarray) -> np.ndarray:
    """Peak bytes of each task: its largest stack of states (the engine caps one stack)."""
    final_stack = exact_work[:, 3] / (costing.obs_passes * costing.dim)
    per_state = costing.dim * BYTES_PER_AMPLITUDE
    return np.minimum(final_stack * per_state, ENGINE_STACK_BYTES + per_state)


def upward_ranks(graph: nx.DiGraph) -> dict[str, float]:
    """HEFT's upward rank: a node's mean cost over its pools plus its heaviest path below.

    Parameters
    ----------
    graph : networkx.DiGraph
        The task DAG.

    Returns
    -------
    dict of str to float
        Rank per node.
    """
    rank: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        costs = graph.nodes[node]["pool_costs"]
        mean = sum(costs.values()) / len(costs)
        rank[node] = mean + max((rank[s] for s in graph.successors(node)), default=0.0)
    return rank


def heft(
    graph: nx.DiGraph, pools: Mapping[str, PoolInfo], prefetch: int = DISPATCH_PREFETCH
) -> tuple[float, dict[str, str], int]:
    """Schedule the DAG: upward ranks, then earliest finish time over all worker slots.

    Evaluate tasks are submitted one after another by the driver (their ``submit`` seconds) in
    rank order; each reaches a worker slot its pool's ``latency`` (in, out) after its
    submission, or when the slot frees up if later, and its result reaches the driver the
    outward latency after it ends. As the dispatcher does, a pool is sent a task only while
    fewer than its worker slots plus ``prefetch`` of its tasks are out: a later one waits for an
    earlier one's result. After its last submission the driver collects their results
    one after another,
    in the order they finish (their ``collect`` seconds), and the reconstruction starts when it
    has them all. The reconstruction costs more when any of its inputs was sampled (bootstrap).
    Sets ``pool``, ``rank``, ``start`` and ``finish`` on every node.

    Parameters
    ----------
    graph : networkx.DiGraph
        The task DAG.
    pools : Mapping of str to PoolInfo
        The pools by name.
    prefetch : int
        Tasks a pool may hold beyond its worker slots (the dispatcher's ``prefetch``).

    Returns
    -------
    tuple of (float, dict of str to str, int)
        The makespan, the node -> pool assignment and the peak memory of tasks running at once.
    """
    rank = upward_ranks(graph)
    window = {name: max(1, info.workers) + max(0, prefetch) for name, info in pools.items()}
    # per pool, the latest ``window`` result times of its tasks so far (a min-heap): a new
    # task is sent once the earliest of them is back
    returned: dict[str, list[float]] = {name: [] for name in pools}
    topo = {n: i for i, n in enumerate(nx.topological_sort(graph))}
    slots: dict[str, list[float]] = {
        name: [0.0] * max(1, info.workers) for name, info in pools.items()
    }
    slots[DRIVER] = [0.0]
    finish: dict[str, float] = {}
    assignment: dict[str, str] = {}
    driver_clock = 0.0
    for node in sorted(graph.nodes, key=lambda v: (-rank[v], topo[v])):
        data = graph.nodes[node]
        ready = max((finish[p] for p in graph.predecessors(node)), default=0.0)
        costs = dict(data["pool_costs"])
        if data["kind"] == "reconstruct":
            collected = driver_clock
            inputs = [
                (finish[p], graph.nodes[p].get("collect", 0.0)) for p in graph.predecessors(node)
            ]
            for done, collect in sorted(inputs):
                collected = max(collected, done) + collect
            ready = max(ready, collected)
            sampled_rows = sum(
                graph.nodes[p]["rows"][1] - graph.nodes[p]["rows"][0]
                for p in graph.predecessors(node)
                if graph.nodes[p].get("modes", {}).get(assignment[p]) == "sampled"
            )
            if sampled_rows:
                costs[DRIVER] = data["sampled_cost"] + data["boot_row_cost"] * sampled_rows
        latency = data.get("latency", {})
        evaluate = data["kind"] == "evaluate"
        best: tuple[float, str, float, float, float] | None = None
        for pool, cost in costs.items():
            sent = ready
            if evaluate:
                out = returned[pool]
                held = out[0] if len(out) >= window[pool] else 0.0
                sent = max(driver_clock, ready, held) + data.get("submit", 0.0)
            lat_in, lat_out = latency.get(pool, (0.0, 0.0))
            start = max(slots[pool][0], sent + lat_in)
            if best is None or start + cost + lat_out < best[0]:
                best = (start + cost + lat_out, pool, start, start + cost, sent)
        assert best is not None
        done, pool, start, end, sent = best
        if evaluate:
            driver_clock = sent
            out = returned[pool]
            (heapq.heappushpop if len(out) >= window[pool] else heapq.heappush)(out, done)
        heapq.heapreplace(slots[pool], end)
        finish[node] = done
        assignment[node] = pool
        data.update(pool=pool, rank=rank[node], start=start, finish=done)
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


def candidate_widths(
    n: int,
    pools: Mapping[str, PoolInfo],
    mode: Mode,
    limit: int,
    max_parts: int | None = None,
    parts: Sequence[int] | None = None,
) -> list[list[int]]:
    """Width vectors to try.

    Balanced cuts into ``ceil(n / limit)`` up to about five times that many partitions (at least
    four more, none narrower than :data:`MIN_WIDTH` qubits), and, for each usable pool narrower
    than ``limit``, cuts with one partition of exactly that pool's width and the rest balanced.

    Parameters
    ----------
    n : int
        Qubits to cut.
    pools : Mapping of str to PoolInfo
        The pools by name.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    limit : int
        Widest piece.
    max_parts : int or None
        Most partitions to try.
    parts : Sequence of int or None
        Keep only these partition counts.

    Returns
    -------
    list of list of int
        The width vectors.
    """
    low = max(1, math.ceil(n / max(1, limit)))
    high = max_parts or max(low, min(max(low + 4, 5 * low), n // MIN_WIDTH))
    wanted = set(parts) if parts else set(range(low, high + 1))
    out: list[list[int]] = []
    for k in sorted(wanted):
        widths = balanced_widths(n, k) if k <= n else []
        if widths and max(widths) <= limit:
            out.append(widths)
    usable = {p.max_qubits for p in usable_pools(pools, mode).values()}
    for narrow in sorted(w for w in usable if w < limit):
        rest = n - narrow
        if rest < 1:
            continue
        first = max(1, math.ceil(rest / limit))
        for k_rest in range(first, first + 3):
            widths = [*balanced_widths(rest, k_rest), narrow]
            if (
                k_rest + 1 in wanted
                and k_rest <= rest
                and max(widths) <= limit
                and min(widths[:-1]) > narrow
                and widths not in out
            ):
                out.append(widths)
    return out


def estimated_subexperiments(graph_q: nx.Graph, labels: Sequence[int], parts: int) -> int:
    """Upper estimate of the largest partition's subexperiments, before cutting.

    Parameters
    ----------
    graph_q : networkx.Graph
        The circuit's interaction graph.
    labels : Sequence of int
        A partition label per qubit.
    parts : int
        Number of partitions.

    Returns
    -------
    int
        The estimate.
    """
    sites = [0] * parts
    for a, b, d in graph_q.edges(data=True):
        if labels[a] != labels[b]:
            sites[labels[a]] += d["weight"]
            sites[labels[b]] += d["weight"]
    return OPTIONS_PER_SITE ** max(sites, default=0)


def wire_cut_problem(
    circuit: QuantumCircuit, observable: SparsePauliOp, limit: int, *, wire_only: bool = True
) -> CutProblem | None:
    """The cut qiskit-addon-cutting's ``find_cuts`` picks for pieces of at most ``limit`` qubits.

    Kept when it uses at least one wire cut or ``wire_only`` is off (a cut of gate cuts only is
    a labelling the block enumeration usually covers; it is kept when that enumeration found
    nothing). The search is bounded (:data:`FIND_CUTS_BACKJUMPS`): on large circuits it returns
    its greedy best, which is still a valid cut.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        The circuit to cut.
    observable : qiskit.quantum_info.SparsePauliOp
        The observable.
    limit : int
        Widest piece.
    wire_only : bool
        Keep the cut only when it has a wire cut.

    Returns
    -------
    CutProblem or None
        The cut problem, or None when there is none to keep.
    """
    try:
        problem = find_cut_problem(circuit, observable, limit, max_backjumps=FIND_CUTS_BACKJUMPS)
    except CuttingError:
        return None
    if wire_only and not any(c.kind == "wire" for c in problem.cuts):
        return None
    if max(p.num_qubits for p in problem.partitions) > limit:
        return None
    return problem


def wire_search_pays(graph_q: nx.Graph, candidates: Sequence[Candidate]) -> tuple[bool, str]:
    """Whether the ``find_cuts`` wire-cut search may pay for itself, and why not.

    Any candidate the search adds can shorten the run by at most the predicted makespan of the
    best candidate already found (that fits in memory); the search itself takes about
    :data:`FIND_CUTS_SECONDS_PER_GATE` per two-qubit gate. When the best makespan is below that,
    planning without the search finishes the run sooner than any cut the search could find.

    Parameters
    ----------
    graph_q : networkx.Graph
        The circuit's interaction graph (edge weights: two-qubit gates per pair).
    candidates : Sequence of Candidate
        The candidates found without the search.

    Returns
    -------
    tuple of bool and str
        True and ``""`` when the search should run; else False and why it is skipped.
    """
    best = min((c.makespan for c in candidates if c.fits), default=math.inf)
    gates = sum(w for _, _, w in graph_q.edges(data="weight", default=1))
    search = FIND_CUTS_SECONDS_PER_GATE * gates
    if best < search:
        return False, (
            f"find_cuts search skipped: the best candidate's predicted {best:.3g}s is less than "
            f"the search's expected {search:.3g}s ({gates} two-qubit gates)"
        )
    return True, ""


def plan_workload(
    circuit: QuantumCircuit,
    observable: SparsePauliOp | Sequence[SparsePauliOp],
    pools: Mapping[str, PoolInfo],
    *,
    max_subcircuit_qubits: int | None = None,
    model: CostModel,
    mode: Mode = "auto",
    shots: int = 100_000,
    memory_limit: int = 8 * 1024**3,
    max_parts: int | None = None,
    parts: Sequence[int] | None = None,
    widths: Sequence[Sequence[int]] | None = None,
    task_rows: int | None = None,
    wire_cuts: bool = True,
    max_subexperiments: int = MAX_SUBEXPERIMENTS,
) -> PlanResult:
    """Enumerate, schedule and choose a cut configuration for the workload.

    The circuit is first normalized (:func:`~parsl_quantum.cutting.normalize.normalize`: no-ops
    and final measurements dropped, idle wires removed, observables laid out).

    With ``max_subcircuit_qubits`` unset the planner chooses freely: the whole circuit uncut as
    one Aer task on a simulator pool (:func:`build_whole_graph`, unless ``mode`` is
    ``sampled``), and cuts of the whole circuit into pieces as wide as the widest pool allows.
    Set, it bounds every piece, and the uncut Aer candidates are offered only when the whole
    circuit fits it: unconnected components that fit become partitions of their own, uncut, and
    when every component fits that (with the uncut Aer candidates) is all that is considered;
    otherwise the candidates cut the components that do not fit. Pieces only go to pools at
    least as wide (a QPU's pieces never exceed its device).

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        The circuit.
    observable : SparsePauliOp or Sequence of SparsePauliOp
        One or several observables (their distinct terms are evaluated together).
    pools : Mapping of str to PoolInfo
        The pools by name.
    max_subcircuit_qubits : int or None
        Widest piece, if bounded.
    model : parsl_quantum.planner.cost.CostModel
        Predicts task times.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    memory_limit : int
        Bytes a task may use.
    max_parts : int or None
        Most partitions to try.
    parts : Sequence of int or None
        Keep only candidates with these partition counts.
    widths : Sequence of Sequence of int or None
        Try exactly these width vectors over the active wires (forcing a configuration).
    task_rows : int or None
        Rows per task, fixed.
    wire_cuts : bool
        Add the :func:`wire_cut_problem` candidate when there is one.
    max_subexperiments : int
        Candidates with a partition of more distinct subexperiments than this are skipped.

    Returns
    -------
    PlanResult
        All candidates, the chosen one and why.
    """
    started = time.perf_counter()
    observables = [observable] if isinstance(observable, SparsePauliOp) else list(observable)
    free = max_subcircuit_qubits is None
    if max_subcircuit_qubits is not None and max_subcircuit_qubits < 1:
        raise CuttingError("planner.max_subcircuit_qubits must be at least 1")
    norm = normalize(circuit, observables)
    active = norm.circuit
    terms = norm.observable
    n = active.num_qubits
    widest = max((i.max_qubits for i in usable_pools(pools, mode).values()), default=0)
    if widest == 0:
        raise NoCutFoundError(f"no pool can evaluate {mode} subexperiments")
    limit = widest if max_subcircuit_qubits is None else min(max_subcircuit_qubits, widest)
    graph_q = interaction_graph(active)
    components = sorted((sorted(c) for c in nx.connected_components(graph_q)), key=min)
    small = [c for c in components if len(c) <= limit]
    large = sorted(q for c in components if len(c) > limit for q in c)
    candidates: list[Candidate] = []
    skipped: list[str] = []

    def consider(problem: CutProblem, w: list[int], note: str = "") -> None:
        problem = norm.locate(problem)
        if max(p.num_subexperiments for p in problem.partitions) > max_subexperiments:
            skipped.append(f"widths {w} ({problem.num_subexperiments} subexperiments)")
            return
        best: Candidate | None = None
        costings = [RowCosting(part) for part in problem.partitions]
        for tps in TASKS_PER_SLOT if task_rows is None else (1.0,):
            graph = build_graph(
                problem,
                pools,
                model,
                mode,
                shots,
                tasks_per_slot=tps,
                task_rows=task_rows,
                costings=costings,
            )
            if best is not None and graph.number_of_nodes() == best.graph.number_of_nodes():
                continue
            makespan, assignment, peak = heft(graph, pools)
            cand = Candidate(len(w), list(w), problem, graph, makespan, peak, assignment)
            if best is None or cand.makespan < best.makespan:
                best = cand
        assert best is not None
        best.fits = best.peak_memory <= memory_limit
        best.note = note
        if not note and len(set(w)) > 1 and w[-1] < min(w[:-1]):
            narrow = [p for p in best.pools_used if pools[p].max_qubits == w[-1]]
            best.note = f"uneven: a {w[-1]}-qubit partition" + (
                f" for {', '.join(narrow)}" if narrow else ""
            )
        candidates.append(best)

    uncut_fits = free or (max_subcircuit_qubits is not None and n <= max_subcircuit_qubits)
    if widths is None and n and mode != "sampled" and uncut_fits and (not parts or 1 in parts):
        whole = norm.locate(cut_by_labels(active, terms, [0] * n))
        for method in ("statevector", "mps"):
            graph = build_whole_graph(whole, pools, model, method, memory_limit)
            if graph is None:
                continue
            makespan, assignment, peak = heft(graph, pools)
            cand = Candidate(1, [n], whole, graph, makespan, peak, assignment, method=method)
            cand.fits = peak <= memory_limit
            if method == "mps":
                bond = graph.nodes["evaluate:0:0"]["whole"]["max_bond"] // MPS_BOND_SLACK
                cand.note = f"predicted bond dimension {bond}"
            candidates.append(cand)
    if widths is None and not large and (not parts or len(components) in parts):
        labels = [0] * n
        for label, comp in enumerate(components):
            for q in comp:
                labels[q] = label
        note = "no cut" if len(components) == 1 else f"no cut: {len(components)} unconnected pieces"
        consider(cut_by_labels(active, terms, labels), [len(c) for c in components], note)
        if not free:
            return _choose(candidates, model, started, norm)
    if widths is not None:
        for w in widths:
            if sum(w) != n or min(w) < 1 or max(w) > limit:
                raise CuttingError(
                    f"widths {list(w)} must be positive, add up to {n} and be at most {limit}"
                )
        blocks: list[tuple[list[int], list[int], QuantumCircuit, list[list[int]]]] = [
            (list(w), list(range(n)), active, []) for w in widths
        ]
    else:
        # cut only the components too wide for the limit; the others stay whole pieces
        # (unset limit: every cut of the whole circuit competes with the uncut candidates)
        fixed = [] if parts or free else small
        cut_qubits = list(range(n)) if parts or free else large
        sub = active
        if len(cut_qubits) < n:
            index = {q: i for i, q in enumerate(cut_qubits)}
            sub = QuantumCircuit(len(cut_qubits))
            for inst in active.data:
                qs = [active.find_bit(q).index for q in inst.qubits]
                if qs[0] in index:
                    sub.append(inst.operation, [index[q] for q in qs])
        blocks = [
            (w, cut_qubits, sub, fixed)
            for w in candidate_widths(len(cut_qubits), pools, mode, limit, max_parts, parts)
            if not (free and len(w) == 1)  # the no-cut candidate above
        ]
    for w, cut_qubits, sub, fixed in blocks:
        sub_labels, _ = block_labels(sub, w)
        labels = [0] * n
        for i, q in enumerate(cut_qubits):
            labels[q] = sub_labels[i]
        for j, comp in enumerate(fixed):
            for q in comp:
                labels[q] = len(w) + j
        full_w = [*w, *(len(c) for c in fixed)]
        if estimated_subexperiments(graph_q, labels, len(full_w)) > max_subexperiments:
            skipped.append(f"widths {full_w}")
            continue
        consider(cut_by_labels(active, terms, labels), full_w)
    wanted = wire_cuts and widths is None
    search, skip_note = wire_search_pays(graph_q, candidates) if wanted else (False, "")
    if search:
        found = wire_cut_problem(active, terms, limit, wire_only=bool(candidates))
        if found is not None and (not parts or len(found.partitions) in parts):
            w = [part.num_qubits for part in found.partitions]
            kinds = [c.kind for c in found.cuts]
            consider(
                found,
                w,
                f"find_cuts: {kinds.count('wire')} wire and {kinds.count('gate')} gate cut(s)",
            )
    if not candidates:
        detail = f"; skipped {', '.join(skipped)}" if skipped else ""
        idle = circuit.num_qubits - n
        what = f"{n}-qubit circuit" + (f" ({idle} idle qubits removed)" if idle > 0 else "")
        raise NoCutFoundError(
            f"no cut of the {what} into pieces of at most {limit} qubits is feasible{detail}"
        )
    result = _choose(candidates, model, started, norm)
    if skip_note:
        result.reason += f"; {skip_note}"
    return result


def _choose(
    candidates: list[Candidate], model: CostModel, started: float, norm: Normalized
) -> PlanResult:
    fitting = [c for c in candidates if c.fits] or candidates
    chosen = min(fitting, key=lambda c: c.makespan)
    others = sorted((c for c in fitting if c is not chosen), key=lambda c: c.makespan)
    reason = f"lowest predicted makespan {chosen.makespan:.3g}s ({chosen.label}"
    reason += f", {chosen.tasks} tasks on {', '.join(chosen.pools_used) or 'no pool'})"
    if chosen.note:
        reason += f"; {chosen.note}"
    if others:
        reason += f"; next: {others[0].label} at {others[0].makespan:.3g}s"
    if len(fitting) < len(candidates):
        reason += f"; {len(candidates) - len(fitting)} candidate(s) exceed the memory limit"
    return PlanResult(
        candidates, chosen, reason, model.source, time.perf_counter() - started, None, norm
    )
