"""Circuit execution ensemble: many independent circuits fanned out across pools in batches.

The loosely coupled motif (parameter sweeps, benchmarking suites, sampling studies): ``N``
circuits, each with the same observables, are grouped into batches, and each batch is one Parsl
task that compiles its circuits for the pool's backend and estimates every observable in one
primitive call. Batches are bound to pools late: each pool keeps as many batches in flight as
it has worker slots, and whichever pool finishes a batch gets the next one, so a fast pool
takes more of the work than a slow one. The run reports throughput (circuits/s) per pool and
the per-task overhead (a task's time in Parsl minus the time it spent computing on the worker),
and checks the values of exact pools against a statevector reference.

Python API: :func:`run` with an :class:`EnsembleParams`; template kind ``ensemble``
(:data:`TEMPLATE_SCHEMA`, :func:`run_template`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from miniapps import _common
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext

#: One line for the list of template kinds.
DESCRIPTION = "Fan many independent circuits out across pools."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "circuits": {
            "type": "object",
            "description": "Random circuits (count, qubits, depth, seed) or QASM files.",
            "properties": {
                "count": {"type": "integer", "minimum": 1},
                "qubits": {"type": "integer", "minimum": 1, "maximum": 64},
                "depth": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer"},
                "qasm": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "additionalProperties": False,
        },
        "observables": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Observables per circuit: 'mean-z' or comma-separated Pauli labels.",
        },
        "batch_size": {"type": "integer", "minimum": 1},
        "precision": {"type": "number", "exclusiveMinimum": 0},
        "seed": {"type": "integer"},
        "reference": {"type": "boolean"},
        "warmup": {"type": "boolean"},
    },
    "required": ["circuits"],
}

#: Largest circuit width for which the statevector reference is computed by default.
REFERENCE_MAX_QUBITS = 14


@dataclass(frozen=True)
class EnsembleParams:
    """What an ensemble evaluates and how it batches the work.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments, a template takes them from its envelope.

    Attributes
    ----------
    count, qubits, depth : int
        The random circuits evaluated when no circuits (and no ``qasm``) are given: ``count``
        circuits of ``qubits`` qubits and ``depth`` layers.
    circuit_seed : int
        Seed of the random circuits (circuit ``i`` uses ``circuit_seed + i``).
    qasm : sequence of str, or None
        QASM files to evaluate instead of random circuits (a relative path is also looked up
        from the template's folder).
    observables : sequence of str
        Observables per circuit: ``mean-z`` or comma-separated Pauli labels.
    batch_size : int
        Circuits per task.
    precision : float or None
        The estimator's target standard error (None: the backend's default, exact on Aer).
    seed : int or None
        Seed of the estimators' shot sampling.
    reference : bool or None
        Compare with a statevector reference; None: when the circuits have at most
        :data:`REFERENCE_MAX_QUBITS` qubits.
    warmup : bool
        First run one small task per worker slot, so the figures describe the steady state.
    """

    count: int = 32
    qubits: int = 4
    depth: int = 4
    circuit_seed: int = 1234
    qasm: Sequence[str] | None = None
    observables: Sequence[str] = ("mean-z",)
    batch_size: int = 8
    precision: float | None = None
    seed: int | None = 1234
    reference: bool | None = None
    warmup: bool = True

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> EnsembleParams:
        """The parameters of a validated ``kind: ensemble`` template body; what the body
        leaves out keeps its default."""
        circuits = body["circuits"]
        given: dict[str, Any] = {
            k: circuits[k] for k in ("count", "qubits", "depth") if k in circuits
        }
        if "seed" in circuits:
            given["circuit_seed"] = circuits["seed"]
        if "qasm" in circuits:
            given["qasm"] = tuple(circuits["qasm"])
        if "observables" in body:
            given["observables"] = tuple(body["observables"])
        given |= {
            k: body[k]
            for k in ("batch_size", "precision", "seed", "reference", "warmup")
            if k in body
        }
        return cls(**given)


@dataclass
class BatchOutcome:
    """What one batch task returns: values per circuit and observable, and worker timings."""

    values: list[list[float]]
    compute_s: float
    transpile_s: float
    backend: str
    pid: int


def evaluate_batch(
    circuits: Sequence[QuantumCircuit],
    observables: Sequence[SparsePauliOp],
    backend: str,
    precision: float | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> BatchOutcome:
    """Compile ``circuits`` for ``backend`` and estimate every observable on each (a task).

    One estimator call serves the whole batch, which is what makes batching pay: the
    per-call costs (building the simulator or opening a device job) are paid once per batch.
    """
    from parsl_quantum.backends import worker_backend

    start = time.perf_counter()
    qb = worker_backend(backend)
    isa = qb.transpile(list(circuits), seed=seed)
    compiled = time.perf_counter()
    pubs = []
    for circuit in isa:
        layout = circuit.layout
        obs = [o.apply_layout(layout) if layout is not None else o for o in observables]
        pubs.append((circuit, obs))
    result = qb.estimator(seed=seed).run(pubs, precision=precision).result()
    values = [np.asarray(r.data.evs, dtype=float).reshape(-1).tolist() for r in result]
    end = time.perf_counter()
    return BatchOutcome(values, end - start, compiled - start, backend, os.getpid())


def random_circuits(count: int, qubits: int, depth: int, seed: int = 1234) -> list[QuantumCircuit]:
    """``count`` Qiskit random circuits (one- and two-qubit gates), circuit ``i`` seeded
    ``seed + i`` so a subset or a longer ensemble reproduces the same circuits."""
    out = []
    for i in range(count):
        qc = random_circuit(qubits, depth, max_operands=2, seed=seed + i)
        qc.name = f"random-{seed + i}"
        out.append(qc)
    return out


def observables_for(specs: Sequence[str], num_qubits: int) -> list[SparsePauliOp]:
    """Parse observable texts ('mean-z' or Pauli labels) for circuits of ``num_qubits``."""
    from parsl_quantum.circuits import parse_observable

    return [parse_observable(s, num_qubits) for s in specs]


def exact_values(
    circuits: Sequence[QuantumCircuit], observables: Sequence[SparsePauliOp]
) -> np.ndarray:
    """Statevector expectation values, shape (circuits, observables): the reference."""
    return np.array(
        [[float(Statevector(c).expectation_value(o).real) for o in observables] for c in circuits]
    )


@dataclass
class EnsembleResult:
    """Values and throughput of an ensemble run."""

    values: np.ndarray  # (circuits, observables)
    pool_of_circuit: list[str]
    throughput: float  # circuits per second over the whole run
    pool_throughput: dict[str, float]  # circuits per second of each pool's busy span
    pool_circuits: dict[str, int]
    overhead_s: dict[str, float]  # median per-task overhead per pool
    max_error: dict[str, float]  # max |value - reference| per pool (empty without reference)
    tasks: int
    timings: dict[str, float]
    run_dir: Path
    figure: Path | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (values included, batches summarised)."""
        return _common.jsonable(
            {
                "value": self.throughput,
                "throughput": self.throughput,
                "pool_throughput": self.pool_throughput,
                "pool_circuits": self.pool_circuits,
                "overhead_s": self.overhead_s,
                "max_error": self.max_error,
                "values": self.values,
                "pool_of_circuit": self.pool_of_circuit,
                "tasks": self.tasks,
                "timings": self.timings,
                "run_dir": self.run_dir,
                "figure": self.figure,
            }
        )


def _dispatch(
    ctx: RunContext,
    pools: Sequence[str],
    batches: list[list[int]],
    circuits: Sequence[QuantumCircuit],
    observables: Sequence[SparsePauliOp],
    precision: float | None,
    seed: int | None,
) -> list[tuple[int, str, BatchOutcome, dict[str, Any]]]:
    """Late binding: keep each pool's worker slots busy, give the next batch to whichever pool
    frees a slot. Returns (batch index, pool, outcome, metrics row) per batch."""
    backends = {p: _common.pool_backend(p) for p in pools}
    slots = {p: max(1, ctx.pools[p].workers if p in ctx.pools else 1) for p in pools}
    in_flight: dict[Future[Any], tuple[int, str, dict[str, Any]]] = {}
    pending = list(range(len(batches)))
    done: list[tuple[int, str, BatchOutcome, dict[str, Any]]] = []
    shots = _common.precision_shots(precision)
    width = max(c.num_qubits for c in circuits)

    def launch(pool: str) -> None:
        index = pending.pop(0)
        members = [circuits[i] for i in batches[index]]
        fut = _common.submit(
            ctx,
            evaluate_batch,
            pool,
            members,
            list(observables),
            backends[pool],
            precision,
            seed,
            task=f"batch-{index}",
            kind="ensemble-batch",
            backend=backends[pool],
            qubits=width,
            shots=shots,
        )
        in_flight[fut] = (index, pool, ctx.recorder.rows[-1])

    for pool in pools:
        for _ in range(slots[pool]):
            if pending:
                launch(pool)
    while in_flight:
        finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for fut in finished:
            index, pool, row = in_flight.pop(fut)
            done.append((index, pool, fut.result(), row))
            ctx.progress("+".join(pools), len(done), len(batches))
            if pending:
                launch(pool)
    return done


def _settle(rows: Sequence[dict[str, Any]], timeout: float = 5.0) -> None:
    """Wait briefly for metrics callbacks (they run just after a future completes)."""
    deadline = time.monotonic() + timeout
    while any(r.get("end_time") is None for r in rows) and time.monotonic() < deadline:
        time.sleep(0.01)


def _figure(result: EnsembleResult, pools: Sequence[str], path: Path) -> Path:
    fig = _common.new_figure(10, 4)
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    colours = {p: f"C{i}" for i, p in enumerate(pools)}
    rates = [result.pool_throughput.get(p, 0.0) for p in pools]
    bars = left.bar(pools, rates, color=[colours[p] for p in pools])
    for bar, pool in zip(bars, pools, strict=True):
        over = result.overhead_s.get(pool)
        note = f"{result.pool_circuits.get(pool, 0)} circ"
        if over is not None:
            note += f"\n{over * 1e3:.0f} ms/task"
        left.annotate(
            note,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    left.set_ylabel("throughput (circuits/s)")
    left.set_title(f"total {result.throughput:.1f} circuits/s")
    left.margins(y=0.25)
    t0 = min((b["start"] for b in result.batches), default=0.0)
    lanes: dict[str, int] = {}
    for b in sorted(result.batches, key=lambda b: b["start"]):
        lane = lanes.setdefault(f"{b['pool']}:{b['pid']}", len(lanes))
        right.barh(
            lane,
            b["end"] - b["start"],
            left=b["start"] - t0,
            color=colours[b["pool"]],
            edgecolor="white",
            height=0.8,
        )
    right.set_yticks(range(len(lanes)), list(lanes))
    right.set_xlabel("seconds since first batch started")
    right.set_title("batches per worker (pool:pid)")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    circuits: Sequence[QuantumCircuit],
    params: EnsembleParams | None = None,
    *,
    pools: Sequence[str],
) -> EnsembleResult:
    """Run an ensemble of ``circuits`` on ``pools`` inside ``ctx``.

    The engine of :func:`run` and :func:`run_template`.

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    circuits : Sequence of QuantumCircuit
        The circuits.
    params : EnsembleParams, optional
        The parameters; the defaults when None.
    pools : Sequence of str
        The pools to run on.

    Returns
    -------
    EnsembleResult
        The run's result.
    """
    params = params or EnsembleParams()
    if not circuits:
        raise ValueError("the ensemble has no circuits")
    if params.batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    timings = _common.Timings()
    width = max(c.num_qubits for c in circuits)
    _common.check_width(ctx.pools, pools, width)
    ops = observables_for(list(params.observables), width)
    batches = [
        list(range(i, min(i + params.batch_size, len(circuits))))
        for i in range(0, len(circuits), params.batch_size)
    ]
    if params.warmup:
        with timings.stage("warmup"):
            _common.warm_pools(ctx, pools)
    with timings.stage("execute"):
        started = time.time()
        done = _dispatch(ctx, pools, batches, circuits, ops, params.precision, params.seed)
        elapsed = time.time() - started
    _settle([row for *_, row in done])

    values = np.zeros((len(circuits), len(ops)))
    pool_of = [""] * len(circuits)
    records = []
    for index, pool, outcome, row in done:
        for i, vals in zip(batches[index], outcome.values, strict=True):
            values[i] = vals
            pool_of[i] = pool
        span = (row["end_time"] or 0.0) - (row["start_time"] or row["submit_time"])
        records.append(
            {
                "batch": index,
                "pool": pool,
                "pid": outcome.pid,
                "circuits": len(batches[index]),
                "start": row["start_time"] or row["submit_time"],
                "end": row["end_time"],
                "compute_s": outcome.compute_s,
                "overhead_s": max(0.0, span - outcome.compute_s),
            }
        )

    pool_circuits = {p: sum(r["circuits"] for r in records if r["pool"] == p) for p in pools}
    pool_rate, overhead = {}, {}
    for pool in pools:
        mine = [r for r in records if r["pool"] == pool]
        if mine:
            busy = max(r["end"] for r in mine) - min(r["start"] for r in mine)
            pool_rate[pool] = pool_circuits[pool] / busy if busy > 0 else float("inf")
            overhead[pool] = float(np.median([r["overhead_s"] for r in mine]))

    max_error: dict[str, float] = {}
    reference = params.reference
    if reference is None:
        reference = width <= REFERENCE_MAX_QUBITS
    if reference:
        with timings.stage("reference"):
            exact = exact_values(circuits, ops)
        for pool in pools:
            rows = [i for i, p in enumerate(pool_of) if p == pool]
            if rows:
                max_error[pool] = float(np.max(np.abs(values[rows] - exact[rows])))

    result = EnsembleResult(
        values=values,
        pool_of_circuit=pool_of,
        throughput=len(circuits) / elapsed,
        pool_throughput=pool_rate,
        pool_circuits=pool_circuits,
        overhead_s=overhead,
        max_error=max_error,
        tasks=len(batches),
        timings={},
        run_dir=ctx.run_dir,
        batches=records,
    )
    with timings.stage("report"):
        result.figure = _figure(result, pools, ctx.run_dir / "ensemble.png")
        _write_batches(ctx.run_dir / "ensemble_batches.csv", records)
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def _write_batches(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    import csv

    fields = ["batch", "pool", "pid", "circuits", "start", "end", "compute_s", "overhead_s"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in sorted(records, key=lambda r: r["batch"]):
            writer.writerow({k: r[k] for k in fields})
    return path


def run(
    circuits: Sequence[QuantumCircuit] | None = None,
    params: EnsembleParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/ensemble",
    **overrides: Any,
) -> EnsembleResult:
    """Run a circuit ensemble with the loaded Parsl config.

    Parameters
    ----------
    circuits : sequence of QuantumCircuit, optional
        Qiskit circuits without measurements; None: the random circuits (or QASM files) that
        ``params`` describe.
    params : EnsembleParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        Default: every pool of the config among ``cpu``, ``gpu`` and ``qpu``.
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figures go.
    **overrides : Any
        Fields of :class:`EnsembleParams` that replace those of ``params``, e.g.
        ``count=64, observables=("mean-z", "ZZII")``.

    Returns
    -------
    EnsembleResult
        The run's result.
    """
    params = dataclasses.replace(params or EnsembleParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("cpu", "gpu", "qpu"))
    ctx = _common.make_context(run_dir, chosen)
    if circuits is None:
        circuits = load_circuits(params)
    return execute(ctx, circuits, params, pools=chosen)


def load_circuits(params: EnsembleParams, base_dir: Path | None = None) -> list[QuantumCircuit]:
    """The circuits ``params`` describe: the QASM files when given (a relative path that is
    not found from the working directory is taken relative to ``base_dir``), else
    :func:`random_circuits`."""
    if params.qasm is not None:
        return _common.read_qasm_files(list(params.qasm), base_dir)
    return random_circuits(params.count, params.qubits, params.depth, params.circuit_seed)


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> list[QuantumCircuit]:
    """Build and check the circuits and observables before any pool starts (bad input fails
    here, with a one-line error, not in a task)."""
    params = EnsembleParams.from_template(template)
    circuits = load_circuits(params, base_dir)
    width = max(c.num_qubits for c in circuits)
    observables_for(list(params.observables), width)
    _common.check_width(pools, template.get("pools") or list(pools), width)
    return circuits


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: ensemble`` template inside a loaded DataFlowKernel.

    Parameters
    ----------
    template : Mapping of str to Any
        The validated template.
    ctx : RunContext
        The run's pools, directory and task recorder.

    Returns
    -------
    dict of str to Any
        The JSON-serialisable result document.
    """
    pools = _common.template_pools(template, ctx, ("cpu", "gpu", "qpu"))
    circuits = ctx.prepared if isinstance(ctx.prepared, list) else prepare(template, ctx.pools)
    result = execute(ctx, circuits, EnsembleParams.from_template(template), pools=pools)
    return result.to_dict()
