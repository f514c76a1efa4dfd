"""Calibration: short microbenchmarks on each pool, least-squares fits of the cost formulas.

``parsl-quantum calibrate`` runs, for real, on every pool of a loaded Parsl config:

* round trips of small evaluate tasks, one at a time: the driver's ``submit`` seconds (against
  the program's gate count) and the rest of the round trip beyond compute (``overhead``);
* exact evaluations of cut partitions of several circuit families (dense one- and two-qubit
  gates, diagonal gates; 4 to 14 qubits; single subexperiments up to hundreds of branches),
  with all the pool's worker slots busy, timed on the worker (``BatchResult``), fitted to the
  exact formula's features (calls, amplitude passes, split amplitudes, observable amplitudes);
* sampled evaluations (on a QPU pool its device; on a simulator pool its sampler) of rows
  with and without mid-circuit measurements at several shot counts, fitted to queue,
  per-circuit, per-shot and per-mid-circuit-shot seconds;
* the reconstruction on the driver: contractions of growing partition tensors and bootstrap
  redraws of sampled rows.

Every fit is a non-negative least-squares fit of relative errors (each measurement counts
alike whatever its size). The coefficients and each fit's median relative error go into the
versioned profile (:meth:`~parsl_quantum.planner.cost.CostModel.save`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import parsl
from parsl.dataflow.memoization import BasicMemoizer
from qiskit import QuantumCircuit
from scipy.optimize import nnls

from parsl_quantum.cutting.problem import cut_by_labels
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.executors import PoolInfo
from parsl_quantum.executors.apps import BatchResult, evaluate_subexperiments
from parsl_quantum.planner.cost import (
    CostModel,
    DriverCoefficients,
    PoolCoefficients,
    RowCosting,
    contraction_work,
    default_profile_path,
)
from parsl_quantum.planner.partitioning import balanced_widths, block_labels, interaction_graph
from parsl_quantum.planner.plan import (
    Mode,
    aligned_bounds,
    estimated_subexperiments,
    payload_program,
    plan_workload,
)

#: Widest exact probe (2**14 amplitudes per state keeps a probe under a second).
MAX_PROBE_QUBITS = 14
#: Exact probes with more amplitude passes than this (or ten times the bookkeeping) are left
#: out, which keeps each under about a second.
MAX_PROBE_AMPS = 2.5e8
#: At most this many exact probes (a third with ``--quick``).
MAX_EXACT_PROBES = 180
#: Cuts whose partitions would have more subexperiments than this are not probed.
MAX_PROBE_ROWS = 400_000
#: Widest sampled probe (noisy simulation of mid-circuit measurements is shot by shot).
MAX_SAMPLED_QUBITS = 5


@dataclass(frozen=True)
class Probe:
    """One calibration task: a range of a partition's subexperiments and how to run it."""

    name: str
    program: PartitionProgram
    lo: int
    hi: int
    mode: str = "exact"
    shots: tuple[int, ...] | None = None

    @property
    def rows(self) -> np.ndarray:
        dims = [len(s.options) for s in self.program.sites]
        if not dims:
            return np.zeros((1, 0), dtype=np.int64)
        return np.indices(dims).reshape(len(dims), -1).T[self.lo : self.hi].astype(np.int64)

    def features(self) -> np.ndarray:
        """The cost model's work features of this task (exact or sampled)."""
        costing = RowCosting(self.program)
        lo, hi = np.array([self.lo]), np.array([self.hi])
        if self.mode == "exact":
            return costing.exact(lo, hi)[0]
        shots = np.zeros(costing.rows)
        shots[self.lo : self.hi] = self.shots or ()
        return costing.sampled(lo, hi, shots)[0]


@dataclass
class Fit:
    """A least-squares fit: coefficients (intercept first) and its median relative error."""

    coefficients: np.ndarray
    median_error: float
    samples: int


@dataclass
class Calibration:
    """The fitted model and what the fits looked like, per pool."""

    model: CostModel
    fits: dict[str, dict[str, Fit]] = field(default_factory=dict)
    seconds: float = 0.0

    def diagnostics(self) -> dict[str, Any]:
        """Plain data for the profile file: per pool and formula, samples and median error."""
        return {
            pool: {
                kind: {"samples": f.samples, "median_relative_error": round(f.median_error, 4)}
                for kind, f in fits.items()
            }
            for pool, fits in self.fits.items()
        }


def fit_nonnegative(features: np.ndarray, seconds: np.ndarray, intercept: bool = True) -> Fit:
    """Non-negative least squares of ``seconds ~ [1] + features @ c`` on relative errors.

    Columns are scaled to unit maximum before solving so features of very different sizes
    (calls, amplitudes) are fitted alike.
    """
    x: np.ndarray = np.asarray(features, dtype=float).reshape(len(seconds), -1)
    y = np.asarray(seconds, dtype=float)
    if intercept:
        x = np.hstack([np.ones((len(y), 1)), x])
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
    weight = 1.0 / np.maximum(y, 1e-6)
    coef, _ = nnls((x / scale) * weight[:, None], y * weight)
    coef = coef / scale
    if not intercept:
        coef = np.concatenate([[0.0], coef])
        x = np.hstack([np.ones((len(y), 1)), x])
    rel = np.abs(x @ coef - y) / np.maximum(y, 1e-9)
    return Fit(coef, float(np.median(rel)), len(y))


# -- probes ---------------------------------------------------------------------------------


def _circuit(family: str, qubits: int) -> QuantumCircuit:
    from parsl_quantum.workflow.circuits import (
        clustered_circuit,
        efficient_su2_circuit,
        qaoa_circuit,
        random_2local_circuit,
    )

    return {
        "su2": lambda: efficient_su2_circuit(qubits, 2, "linear", seed=5),
        "su2deep": lambda: efficient_su2_circuit(qubits, 3, "linear", seed=5),
        "qaoa": lambda: qaoa_circuit(qubits, 2, "ring", seed=5),
        "random2local": lambda: random_2local_circuit(qubits, 8, seed=5),
        "clustered": lambda: clustered_circuit(qubits, 4, 3, 2, seed=5),
    }[family]()


def _programs(total: int, parts: int, family: str) -> list[PartitionProgram]:
    """The partitions of a balanced cut of a library circuit, as the planner would cut it."""
    from parsl_quantum.workflow.circuits import parse_observable

    circuit = _circuit(family, total)
    graph = interaction_graph(circuit)
    labels, _ = block_labels(circuit, balanced_widths(total, parts), graph)
    if estimated_subexperiments(graph, labels, parts) > MAX_PROBE_ROWS:
        return []
    return cut_by_labels(circuit, parse_observable("mean-z", total), labels).partitions


def _probe_work(probe: Probe) -> float:
    work = probe.features()
    return float(work[1] + 5 * work[3] + 10 * work[5])


def exact_probes(max_qubits: int, quick: bool = False) -> list[Probe]:
    """Exact probes up to ``max_qubits`` (at most :data:`MAX_PROBE_QUBITS`) wide: the tasks
    the planner would make of 2- to 4-way cuts of five circuit families (dense and diagonal
    gates, shallow and deep), each partition whole and split as the planner batches it; at
    most :data:`MAX_EXACT_PROBES` of them, spread evenly over their predicted work, none
    predicted to take much over a second."""
    top = min(max_qubits, MAX_PROBE_QUBITS)
    widths = [w for w in ((3, 6, 9, 12) if quick else (3, 4, 6, 8, 10, 12, 13, 14)) if w <= top]
    seen: set[tuple[str, int, int]] = set()
    candidates: list[tuple[float, Probe]] = []
    for family in ("su2", "su2deep", "qaoa", "random2local", "clustered"):
        for w in widths:
            for parts in (2, 3, 4):
                for prog in _programs(w * parts, parts, family):
                    key = (family, prog.num_qubits, len(prog.sites))
                    if key in seen:
                        continue
                    seen.add(key)
                    dims = [len(s.options) for s in prog.sites]
                    for batches in (1, 3, 9):
                        bounds = aligned_bounds(dims, batches)
                        for lo, hi in {tuple(bounds[0]), tuple(bounds[len(bounds) // 2])}:
                            name = f"{family}:{prog.num_qubits}q{len(dims)}s[{lo}:{hi}]"
                            probe = Probe(name, prog, int(lo), int(hi))
                            work = _probe_work(probe)
                            if work <= MAX_PROBE_AMPS:
                                candidates.append((work, probe))
    unique = {p.name: (w, p) for w, p in candidates}
    ordered = sorted(unique.values(), key=lambda wp: (wp[0], wp[1].name))
    keep = MAX_EXACT_PROBES // (3 if quick else 1)
    if len(ordered) > keep:
        picks = np.unique(np.linspace(0, len(ordered) - 1, keep).round().astype(int))
        ordered = [ordered[i] for i in picks]
    return [p for _, p in ordered]


def sampled_probes(max_qubits: int, quick: bool = False) -> list[Probe]:
    """Sampled probes up to ``max_qubits`` (at most :data:`MAX_SAMPLED_QUBITS`) wide: single
    rows without and with mid-circuit measurements, and a few rows together, at several shot
    counts."""
    w = min(max_qubits, MAX_SAMPLED_QUBITS)
    probes: list[Probe] = []
    for family in ("su2",) if quick else ("su2", "qaoa"):
        prog = _programs(2 * w, 2, family)[0]
        plain = RowCosting(prog).plain
        first_plain = int(np.argmax(plain > 0))
        first_mid = int(np.argmax(plain == 0))
        for shots in (64, 512) if quick else (64, 512, 2048):
            for lo, hi in ((first_plain, first_plain + 1), (first_mid, first_mid + 1), (0, 5)):
                probes.append(
                    Probe(
                        f"{family}{w}[{lo}:{hi}]x{shots}",
                        prog,
                        lo,
                        hi,
                        "sampled",
                        (shots,) * (hi - lo),
                    )
                )
    return probes


# -- running probes on a pool ----------------------------------------------------------------


@dataclass
class _Timing:
    probe: Probe
    submit: float
    round_trip: float
    result: BatchResult

    @property
    def compute(self) -> float:
        return float(self.result.finished - self.result.started)


def _run(
    app: Callable[..., Future],
    pool: PoolInfo,
    probes: Sequence[Probe],
    concurrency: int,
    during: Callable[[], None] | None = None,
) -> list[_Timing]:
    """Run probes keeping ``concurrency`` in flight; time each submission and round trip.
    ``during`` is called once, when the first ``concurrency`` probes are in flight."""
    out: list[_Timing] = []
    queue: Iterator[Probe] = iter(probes)
    flight: list[tuple[Probe, float, float, Future]] = []
    while True:
        while len(flight) < concurrency:
            probe = next(queue, None)
            if probe is None:
                break
            t0 = time.perf_counter()
            fut = app(
                payload_program(probe.program, probe.mode == "exact"),
                probe.rows,
                backend=pool.backends[0],
                mode=probe.mode,
                shots=list(probe.shots) if probe.shots else None,
                seed=1,
                parsl_resource_specification=pool.resource_spec(),
            )
            flight.append((probe, t0, time.perf_counter() - t0, fut))
        if during is not None:
            during()
            during = None
        if not flight:
            return out
        probe, t0, submit, fut = flight.pop(0)
        result = fut.result()
        out.append(_Timing(probe, submit, time.perf_counter() - t0, result))


def serialization_seconds(probe: Probe, pool: PoolInfo, repeats: int = 3) -> float:
    """Seconds the driver spends serialising one task of ``probe`` (fastest of ``repeats``)."""
    from parsl.serialize import pack_apply_message

    kwargs = {"backend": pool.backends[0], "mode": probe.mode, "shots": None, "seed": 1}
    args = (payload_program(probe.program, probe.mode == "exact"), probe.rows)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pack_apply_message(evaluate_subexperiments, args, kwargs, buffer_threshold=1 << 20)
        best = min(best, time.perf_counter() - t0)
    return best


def _median_by_probe(timings: Sequence[_Timing]) -> tuple[list[Probe], np.ndarray]:
    groups: dict[str, list[_Timing]] = {}
    for t in timings:
        groups.setdefault(t.probe.name, []).append(t)
    probes = [g[0].probe for g in groups.values()]
    return probes, np.array([np.median([t.compute for t in g]) for g in groups.values()])


def calibrate_pool(
    pool: PoolInfo, *, repeats: int = 3, quick: bool = False, log: Callable[[str], None] = print
) -> tuple[PoolCoefficients, dict[str, Fit], list[BatchResult]]:
    """Measure and fit one pool of the loaded DataFlowKernel (probes up to ``pool.max_qubits``
    wide); returns its coefficients, the fits, and the results of the sampled probes (for the
    driver's bootstrap timing).

    The driver's serialisation is timed while the pool's workers are busy with probes, as
    it is during a run (on a local pool they share the driver's cores).
    """
    app = parsl.python_app(evaluate_subexperiments, executors=[pool.label])
    coef = PoolCoefficients()
    fits: dict[str, Fit] = {}
    small = exact_probes(8, quick=True)[:2]
    warm = small if pool.exact else sampled_probes(pool.max_qubits, quick=True)[:1]
    _run(app, pool, list(warm) * (2 * pool.workers), pool.workers)
    sizes = exact_probes(pool.max_qubits, quick=True)[:: 6 if quick else 3]
    loaded: list[float] = []

    def time_serialisation() -> None:
        loaded.extend(serialization_seconds(p, pool) for p in sizes)

    if pool.exact:
        probes = exact_probes(pool.max_qubits, quick)
        timings = _run(app, pool, probes * repeats, pool.workers, time_serialisation)
        uniq, seconds = _median_by_probe(timings)
        fit = fit_nonnegative(np.array([p.features() for p in uniq]), seconds)
        fits["exact"] = fit
        c = fit.coefficients
        coef = replace(
            coef,
            overhead=c[0],
            per_call=c[1],
            per_amp=c[2],
            per_big_amp=c[3],
            per_split=c[4],
            per_obs=c[5],
            per_book=c[6],
        )
        log(f"  {pool.label}: exact fit of {len(uniq)} probes, median error {fit.median_error:.1%}")
    probes = sampled_probes(pool.max_qubits, quick)
    timings = _run(
        app, pool, probes * repeats, pool.workers, None if loaded else time_serialisation
    )
    sampled_results = [t.result for t in timings]
    uniq, seconds = _median_by_probe(timings)
    fit = fit_nonnegative(np.array([p.features() for p in uniq]), seconds)
    fits["sampled"] = fit
    c = fit.coefficients
    coef = replace(coef, queue=c[0], per_circuit=c[1], per_shot=c[2], per_mid_shot=c[3])
    log(f"  {pool.label}: sampled fit of {len(uniq)} probes, median error {fit.median_error:.1%}")
    # serialisation under load against the task's size; the rest of a round trip, one task at
    # a time, beyond compute and (idle) serialisation is the per-task overhead
    gates = np.array([[p.program.num_gates] for p in sizes], dtype=float)
    fits["submit"] = fit_nonnegative(gates, np.array(loaded))
    trip_probes = [p for p in sizes if p.hi - p.lo == 1] if pool.exact else warm
    idle = {p.name: serialization_seconds(p, pool) for p in trip_probes}
    trips = _run(app, pool, list(trip_probes) * (2 if quick else 4), 1)
    rest = np.median([t.round_trip - t.compute - idle[t.probe.name] for t in trips])
    coef = replace(
        coef,
        submit=fits["submit"].coefficients[0],
        submit_per_gate=fits["submit"].coefficients[1],
        overhead=coef.overhead + max(0.0, float(rest)),
    )
    log(
        f"  {pool.label}: submit {coef.submit * 1e3:.1f} ms + {coef.submit_per_gate * 1e6:.0f} us"
        f"/gate, overhead {coef.overhead * 1e3:.1f} ms"
    )
    return coef, fits, sampled_results


def calibrate_run_overhead(model: CostModel, pool: PoolInfo, repeats: int = 5) -> float:
    """The driver's fixed seconds per run (dispatcher start, pool polls, result handling): a
    small two-task plan run end to end on ``pool``, minus its predicted makespan."""
    from parsl_quantum.workflow.circuits import efficient_su2_circuit, parse_observable
    from parsl_quantum.workflow.cutting import execute_plan, reconstruct

    mode: Mode = "exact" if pool.exact else "sampled"
    circuit = efficient_su2_circuit(8, 1, "linear", seed=5)
    plan = plan_workload(
        circuit,
        parse_observable("mean-z", 8),
        {pool.label: pool},
        max_subcircuit_qubits=4,
        model=replace(model, driver=replace(model.driver, per_run=0.0)),
        mode=mode,
        shots=1000,
        widths=[[4, 4]],
    )
    extra = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results = execute_plan(plan, {pool.label: pool}, mode, 1000, 1)
        reconstruct(plan.chosen.problem, plan.chosen.graph, results, 1)
        extra.append(time.perf_counter() - t0 - plan.chosen.makespan)
    return max(0.0, float(np.median(extra)))


#: Whole-plan probes for the in-run factor: (family, qubits, forced widths).
IN_RUN_PROBES = (
    ("su2deep", 22, (5, 5, 4, 4, 4)),
    ("random2local", 20, (7, 7, 6)),
    ("su2deep", 24, (6, 6, 6, 6)),
    ("qaoa", 18, (6, 6, 6)),
    ("clustered", 24, (6, 6, 6, 6)),
)


def calibrate_in_run(
    model: CostModel, name: str, pool: PoolInfo, repeats: int = 3, quick: bool = False
) -> tuple[float, Fit]:
    """The pool's ``in_run`` factor: whole plans of several families run end to end on the
    pool (median of ``repeats``), and the factor on worker-slot seconds that makes their
    predicted makespans best match (median relative error over a grid from 0.8 to 2)."""
    from parsl_quantum.workflow.circuits import parse_observable
    from parsl_quantum.workflow.cutting import execute_plan, reconstruct

    mode: Mode = "exact"
    probes = [p for p in IN_RUN_PROBES if max(p[2]) <= pool.max_qubits][: 2 if quick else None]
    problems = [(_circuit(f, n), parse_observable("mean-z", n), w) for f, n, w in probes]

    def plan(trial: CostModel, circuit: QuantumCircuit, obs: Any, widths: Sequence[int]) -> Any:
        return plan_workload(
            circuit,
            obs,
            {name: pool},
            max_subcircuit_qubits=max(widths),
            model=trial,
            mode=mode,
            widths=[list(widths)],
            wire_cuts=False,
        )

    measured = []
    for circuit, obs, widths in problems:
        forced = plan(model, circuit, obs, widths)
        times = []
        for k in range(repeats + 1):  # the first run warms the workers up, untimed
            t0 = time.perf_counter()
            results = execute_plan(forced, {name: pool}, mode, 1000, 1)
            reconstruct(forced.chosen.problem, forced.chosen.graph, results, 1)
            if k:
                times.append(time.perf_counter() - t0)
        measured.append(float(np.median(times)))
    base = model.coefficients(name)
    best: tuple[float, float] | None = None
    for factor in [0.8 + 0.05 * k for k in range(25)]:
        trial = replace(model, pools={**model.pools, name: replace(base, in_run=factor)})
        predicted = np.array([plan(trial, *problem).chosen.makespan for problem in problems])
        error = float(np.median(np.abs(predicted - measured) / measured))
        if best is None or error < best[1]:
            best = (factor, error)
    assert best is not None
    return best[0], Fit(np.array([best[0]]), best[1], len(measured))


def calibrate_driver(
    samples: Sequence[tuple[PartitionProgram, BatchResult]], quick: bool = False
) -> tuple[DriverCoefficients, dict[str, Fit]]:
    """Time the reconstruction in this process: contractions of problems with 2 to 6
    partitions, light and heavy (partitions sharing up to three cuts), and bootstrap redraws
    of sampled rows."""
    from parsl_quantum.cutting.reconstruct import contract
    from parsl_quantum.cutting.uncertainty import bootstrap_rows
    from parsl_quantum.workflow.circuits import parse_observable

    rng = np.random.default_rng(0)
    feats, secs = [], []
    cases = [("su2", 8, 2), ("su2", 16, 4), ("su2", 24, 6), ("su2deep", 12, 3)]
    cases += [("qaoa", 12, 3), ("su2deep", 18, 6), ("qaoa", 18, 6)]
    for family, total, parts in cases[:4] if quick else cases:
        circuit = _circuit(family, total)
        labels, _ = block_labels(circuit, balanced_widths(total, parts))
        problem = cut_by_labels(circuit, parse_observable("mean-z", total), labels)
        tensors = [rng.normal(size=p.shape) for p in problem.partitions]
        work = contraction_work(problem)
        for _ in range(3 if quick else 5):
            t0 = time.perf_counter()
            contract(problem, tensors)
            feats.append(work)
            secs.append(time.perf_counter() - t0)
    fits = {"reconstruct": fit_nonnegative(np.array(feats), np.array(secs), intercept=False)}
    c = fits["reconstruct"].coefficients
    per_boot_row = DriverCoefficients().per_boot_row
    replicates = 50
    boot = [(prog, r) for prog, r in samples if r.samples]
    if boot:
        t0 = time.perf_counter()
        rows = 0
        for prog, r in boot:
            bootstrap_rows(prog, r.samples or [], replicates, rng)
            rows += len(r.samples or [])
        per_boot_row = (time.perf_counter() - t0) / (rows * replicates)
    return DriverCoefficients(c[1], c[2], c[3], per_boot_row), fits


def calibrate(
    pools: Mapping[str, PoolInfo],
    *,
    repeats: int = 3,
    quick: bool = False,
    max_qubits: int | None = None,
    log: Callable[[str], None] = print,
) -> Calibration:
    """Calibrate every pool of the loaded DataFlowKernel, then the driver; ``max_qubits``
    bounds the width of the probes."""
    started = time.perf_counter()
    model = CostModel(kinds={name: info.kind for name, info in pools.items()}, source="")
    calibration = Calibration(model)
    samples: list[tuple[PartitionProgram, BatchResult]] = []
    for name, info in pools.items():
        log(f"calibrating pool {name} ({info.kind}, {info.workers} workers)")
        if max_qubits is not None:
            info = replace(info, max_qubits=min(info.max_qubits, max_qubits))
        coef, fits, results = calibrate_pool(info, repeats=repeats, quick=quick, log=log)
        model.pools[name] = coef
        calibration.fits[name] = fits
        probes = sampled_probes(info.max_qubits, quick)
        samples.extend(zip([p.program for p in probes * repeats], results, strict=False))
    log("calibrating the driver's reconstruction")
    model.driver, calibration.fits["driver"] = calibrate_driver(samples, quick)
    first = next(iter(pools.values()))
    model.driver = replace(model.driver, per_run=calibrate_run_overhead(model, first))
    log(f"  driver: {model.driver.per_run * 1e3:.1f} ms per run")
    for name, info in pools.items():
        if not info.exact:
            continue
        if max_qubits is not None:
            info = replace(info, max_qubits=min(info.max_qubits, max_qubits))
        factor, fit = calibrate_in_run(model, name, info, repeats=repeats, quick=quick)
        model.pools[name] = replace(model.pools[name], in_run=factor)
        calibration.fits[name]["in_run"] = fit
        log(f"  {name}: whole plans take {factor:.2f}x the probes' slot seconds")
    calibration.seconds = time.perf_counter() - started
    return calibration


def wait_for_workers(pools: Mapping[str, PoolInfo], timeout: float = 300.0) -> None:
    """Block until every pool with a live view has all its planned workers connected."""
    dfk = parsl.dfk()
    deadline = time.monotonic() + timeout
    for name, info in pools.items():
        executor = dfk.executors[name]
        capacity = getattr(executor, "capacity", None)
        while capacity is not None and capacity().connected_workers < info.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pool {name}: workers did not connect in {timeout:g}s")
            time.sleep(0.2)


def run_calibration(
    pools: Sequence[str] = ("cpu", "qpu"),
    *,
    profile: str | Path | None = None,
    workers: Mapping[str, int] | None = None,
    run_dir: str | Path = "runs/calibrate",
    repeats: int = 3,
    quick: bool = False,
    max_qubits: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, Calibration]:
    """Start the local pools, calibrate them, write the profile (default: the user's config
    directory) and return its path and the calibration."""
    from parsl_quantum.configs import local
    from parsl_quantum.executors import pool_infos

    config = local(run_dir, pools, workers=workers, monitoring=False)
    config.memoizer = BasicMemoizer(memoize=False)  # every probe must run
    infos = pool_infos(config)
    with parsl.load(config):
        wait_for_workers(infos)
        calibration = calibrate(infos, repeats=repeats, quick=quick, max_qubits=max_qubits, log=log)
    parsl.clear()
    path = Path(profile) if profile else default_profile_path()
    calibration.model.source = str(path)
    calibration.model.save(
        path,
        {
            "workers": {name: info.workers for name, info in infos.items()},
            "fits": calibration.diagnostics(),
            "seconds": round(calibration.seconds, 1),
        },
    )
    return path, calibration
