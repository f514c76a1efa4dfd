"""Calibration's runner: the probes of :mod:`parsl_quantum.planner.calibrate` run, for real,
on every pool of a loaded Parsl config, and the fitted profile written.

``parsl-quantum calibrate`` (:func:`run_calibration`) starts the local pools and measures:

* round trips of small evaluate tasks, one at a time: the driver's ``submit`` seconds (against
  the program's gate count) and the rest of the round trip beyond compute, the latency to a
  free worker and back (``latency_in``, ``latency_out``); then the same tasks queued beyond
  the workers: the gap a slot spends between one task and the next (with the probes' fixed
  cost, ``overhead``);
* the exact and sampled probes with all the pool's worker slots busy, timed on the worker
  (``BatchResult``);
* the driver's reconstruction; its seconds per run and per task result (a plan of almost no
  compute run end to end as 2 to 50 tasks: :func:`calibrate_collection`); and each exact
  pool's ``in_run`` factor (whole plans run end to end).

It lives in the workflow layer because it loads a Parsl config and runs whole plans.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import parsl
from parsl.dataflow.memoization import BasicMemoizer
from qiskit import QuantumCircuit

from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.reconstruct import reconstruct
from parsl_quantum.executors import PoolInfo, QPUAwarePool, pool_infos
from parsl_quantum.executors.subexperiments import BatchResult, evaluate_subexperiments
from parsl_quantum.planner.calibrate import (
    Calibration,
    Fit,
    Probe,
    calibrate_driver,
    exact_probes,
    fit_nonnegative,
    probe_circuit,
    sampled_probes,
)
from parsl_quantum.planner.cost import (
    CostModel,
    DriverCoefficients,
    PoolCoefficients,
    default_profile_path,
)
from parsl_quantum.planner.plan import Mode, build_graph, heft, payload_program, plan_workload
from parsl_quantum.workflow.cut_and_run import execute_plan


@dataclass
class _Timing:
    probe: Probe
    submit: float
    round_trip: float
    result: BatchResult
    #: wall-clock seconds (``time.time``, the clock of ``result.started``) when the submission
    #: returned and when the result was in hand
    sent: float
    received: float

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
    flight: list[tuple[Probe, float, float, float, Future]] = []
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
            flight.append((probe, t0, time.perf_counter() - t0, time.time(), fut))
        if during is not None:
            during()
            during = None
        if not flight:
            return out
        probe, t0, submit, sent, fut = flight.pop(0)
        result = fut.result()
        trip = time.perf_counter() - t0
        out.append(_Timing(probe, submit, trip, result, sent, time.time()))


def serialization_seconds(probe: Probe, pool: PoolInfo, repeats: int = 3) -> float:
    """Seconds the driver spends serialising one task of ``probe`` (fastest of ``repeats``).

    Parameters
    ----------
    probe : Probe
        The probe whose task is serialised.
    pool : PoolInfo
        The pool the task would go to.
    repeats : int
        Timings taken; the fastest counts.

    Returns
    -------
    float
        Seconds.
    """
    from parsl.serialize import pack_apply_message

    kwargs = {"backend": pool.backends[0], "mode": probe.mode, "shots": None, "seed": 1}
    args = (payload_program(probe.program, probe.mode == "exact"), probe.rows)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pack_apply_message(evaluate_subexperiments, args, kwargs, buffer_threshold=1 << 20)
        best = min(best, time.perf_counter() - t0)
    return best


def split_latency(trips: Sequence[_Timing], idle: Mapping[str, float]) -> tuple[float, float]:
    """Seconds a task takes to reach a free worker, and its result to come back.

    Their sum is the median round trip of tasks sent one at a time, less their compute and
    (idle) serialisation; it is split in the proportion of the medians of submission-to-start
    and end-to-result, read on the wall clock of the driver and of the worker (on another host
    a clock offset moves only the split).

    Parameters
    ----------
    trips : Sequence of _Timing
        Tasks run one at a time.
    idle : Mapping of str to float
        Serialisation seconds per probe name.

    Returns
    -------
    tuple of (float, float)
        ``(latency_in, latency_out)``.
    """
    total = max(
        0.0, float(np.median([t.round_trip - t.compute - idle[t.probe.name] for t in trips]))
    )
    there = max(0.0, float(np.median([t.result.started - t.sent for t in trips])))
    back = max(0.0, float(np.median([t.received - t.result.finished for t in trips])))
    share = there / (there + back) if there + back > 0 else 0.5
    return total * share, total * (1 - share)


def queued_gap(timings: Sequence[_Timing]) -> float:
    """Median seconds between the end of a task on a worker and the start of the next one on
    it, over pairs whose second task was sent before the first ended (it was queued).

    Parameters
    ----------
    timings : Sequence of _Timing
        Tasks run more at a time than the pool has workers.

    Returns
    -------
    float
        Seconds (0 when no pair was queued).
    """
    by_worker: dict[tuple[str, int], list[_Timing]] = {}
    for t in timings:
        by_worker.setdefault((t.result.host, t.result.pid), []).append(t)
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda t: t.result.started)
        for prev, nxt in zip(runs, runs[1:], strict=False):
            if nxt.sent < prev.result.finished:
                gaps.append(nxt.result.started - prev.result.finished)
    return max(0.0, float(np.median(gaps))) if gaps else 0.0


def _median_by_probe(timings: Sequence[_Timing]) -> tuple[list[Probe], np.ndarray]:
    groups: dict[str, list[_Timing]] = {}
    for t in timings:
        groups.setdefault(t.probe.name, []).append(t)
    probes = [g[0].probe for g in groups.values()]
    return probes, np.array([np.median([t.compute for t in g]) for g in groups.values()])


def calibrate_pool(
    pool: PoolInfo, *, repeats: int = 3, quick: bool = False, log: Callable[[str], None] = print
) -> tuple[PoolCoefficients, dict[str, Fit], list[BatchResult]]:
    """Measure and fit one pool of the loaded DataFlowKernel.

    Probes are up to ``pool.max_qubits`` wide. The driver's serialisation is timed while the
    pool's workers are busy with probes, as it is during a run (on a local pool they share the
    driver's cores).

    Parameters
    ----------
    pool : PoolInfo
        The pool.
    repeats : int
        Timings of the driver's serialisation per probe.
    quick : bool
        Fewer probes.
    log : Callable of (str) to None
        Receives progress lines.

    Returns
    -------
    tuple of (PoolCoefficients, dict of str to Fit, list of BatchResult)
        Its coefficients, the fits, and the results of the sampled probes (for the driver's
        bootstrap timing).
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
            per_uncached_amp=c[3],
            per_split=c[4],
            per_obs=c[5],
            per_index_entry=c[6],
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
    # a time, beyond compute and (idle) serialisation is the latency there and back
    gates = np.array([[p.program.num_gates] for p in sizes], dtype=float)
    fits["submit"] = fit_nonnegative(gates, np.array(loaded))
    trip_probes = [p for p in sizes if p.hi - p.lo == 1] if pool.exact else warm
    idle = {p.name: serialization_seconds(p, pool) for p in trip_probes}
    trips = _run(app, pool, list(trip_probes) * (2 if quick else 4), 1)
    latency_in, latency_out = split_latency(trips, idle)
    # tasks queued beyond the workers: what a slot spends between one task and the next
    queued = _run(app, pool, list(trip_probes) * (4 if quick else 8), 2 * pool.workers + 1)
    coef = replace(
        coef,
        submit=fits["submit"].coefficients[0],
        submit_per_gate=fits["submit"].coefficients[1],
        latency_in=latency_in,
        latency_out=latency_out,
        overhead=coef.overhead + queued_gap(queued),
    )
    log(
        f"  {pool.label}: submit {coef.submit * 1e3:.1f} ms + {coef.submit_per_gate * 1e6:.0f} us"
        f"/gate, latency {latency_in * 1e3:.1f} + {latency_out * 1e3:.1f} ms, "
        f"overhead {coef.overhead * 1e3:.1f} ms"
    )
    return coef, fits, sampled_results


#: Rows per task of the collection plans: an 8-qubit EfficientSU2 cut in two (50 rows) run as
#: 2, 8, 14 and 50 tasks of almost no compute each.
COLLECTION_TASK_ROWS = (25, 8, 4, 1)


def calibrate_collection(
    model: CostModel, name: str, pool: PoolInfo, repeats: int = 5
) -> tuple[DriverCoefficients, Fit]:
    """The driver's seconds per task result and per run.

    A plan of almost no compute is run end to end on ``pool`` as 2 to 50 tasks
    (:data:`COLLECTION_TASK_ROWS`): past a few tasks its makespan grows by the driver's
    submission and collection of each task, serial on the driver. The driver's work per task
    is measured as its process's CPU seconds (all its threads: they take turns under the
    interpreter lock), the slope of a least-squares line through the plans' median CPU seconds
    against their task counts; ``per_result`` is that slope less the submission the model
    already charges per task. Fitting it to the makespans instead does not separate it from
    the slots' ``overhead``, which a handful of tasks on two workers hides in the same time.
    The per-run seconds are then the median of measured minus predicted makespans. The pools'
    ``overhead`` stays as the round trips measured it: it is what a task costs the cores its
    slot shares, where the collection is what it costs the driver's one thread.

    Parameters
    ----------
    model : parsl_quantum.planner.cost.CostModel
        The model with every pool's fitted coefficients.
    name : str
        The pool's name.
    pool : PoolInfo
        The pool the plans run on.
    repeats : int
        Runs of each plan (after one untimed run of each).

    Returns
    -------
    tuple of (parsl_quantum.planner.cost.DriverCoefficients, Fit)
        The driver's coefficients with ``per_result`` and ``per_run`` set, and the fit
        (coefficients ``[per_run, per_result]``, its median relative error over the plans).
    """
    mode: Mode = "exact" if pool.exact else "sampled"
    circuit = efficient_su2_circuit(8, 1, "linear", seed=5)
    observable = parse_observable("mean-z", 8)
    pools = {name: pool}
    plans = [
        plan_workload(
            circuit,
            observable,
            pools,
            max_subcircuit_qubits=4,
            model=model,
            mode=mode,
            shots=1000,
            widths=[[4, 4]],
            task_rows=rows,
            wire_cuts=False,
        )
        for rows in COLLECTION_TASK_ROWS
    ]
    times: list[list[float]] = [[] for _ in plans]
    cpu: list[list[float]] = [[] for _ in plans]
    for k in range(repeats + 1):  # the first round warms the workers up, untimed
        for plan, runs, cpu_runs in zip(plans, times, cpu, strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            results = execute_plan(plan, pools, mode, 1000, 1)
            reconstruct(plan.chosen.problem, plan.chosen.graph, results, 1)
            if k:
                runs.append(time.perf_counter() - t0)
                cpu_runs.append(time.process_time() - c0)
    measured = np.array([np.median(runs) for runs in times])
    tasks = np.array([plan.chosen.tasks for plan in plans], dtype=float)
    per_task = float(np.polyfit(tasks, [np.median(runs) for runs in cpu], 1)[0])
    submitted = np.mean(
        [
            data["submit"]
            for plan in plans
            for _, data in plan.chosen.graph.nodes(data=True)
            if data.get("kind") == "evaluate"
        ]
    )
    per_result = max(0.0, per_task - float(submitted))

    def predict(trial: CostModel) -> np.ndarray:
        return np.array(
            [
                heft(
                    build_graph(plan.chosen.problem, pools, trial, mode, 1000, task_rows=rows),
                    pools,
                )[0]
                for plan, rows in zip(plans, COLLECTION_TASK_ROWS, strict=True)
            ]
        )

    driver = replace(model.driver, per_result=per_result, per_run=0.0)
    predicted = predict(replace(model, driver=driver))
    driver = replace(driver, per_run=max(0.0, float(np.median(measured - predicted))))
    predicted = predicted + driver.per_run
    rel = np.abs(predicted - measured) / measured
    coefficients = np.array([driver.per_run, driver.per_result])
    return driver, Fit(coefficients, float(np.median(rel)), len(measured))


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
    """The pool's ``in_run`` factor.

    Whole plans of several families run end to end on the pool (median of ``repeats``), and the
    factor on worker-slot seconds that makes their predicted makespans best match (median
    relative error over a grid from 0.8 to 2) is chosen.

    Parameters
    ----------
    model : parsl_quantum.planner.cost.CostModel
        The model with the pool's fitted coefficients.
    name : str
        Pool name.
    pool : PoolInfo
        The pool.
    repeats : int
        Runs of each plan.
    quick : bool
        Fewer plans.

    Returns
    -------
    tuple of (float, Fit)
        The factor and its fit.
    """
    mode: Mode = "exact"
    probes = [p for p in IN_RUN_PROBES if max(p[2]) <= pool.max_qubits][: 2 if quick else None]
    problems = [(probe_circuit(f, n), parse_observable("mean-z", n), w) for f, n, w in probes]

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


def calibrate(
    pools: Mapping[str, PoolInfo],
    *,
    repeats: int = 3,
    quick: bool = False,
    max_qubits: int | None = None,
    log: Callable[[str], None] = print,
) -> Calibration:
    """Calibrate every pool of the loaded DataFlowKernel, then the driver.

    Parameters
    ----------
    pools : Mapping of str to PoolInfo
        The pools by name.
    repeats : int
        Repeats of each timing.
    quick : bool
        Fewer probes.
    max_qubits : int or None
        Bounds the width of the probes.
    log : Callable of (str) to None
        Receives progress lines.

    Returns
    -------
    Calibration
        The fitted model and its fits.
    """
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
    name, info = next(((n, i) for n, i in pools.items() if i.exact), next(iter(pools.items())))
    if max_qubits is not None:
        info = replace(info, max_qubits=min(info.max_qubits, max_qubits))
    model.driver, calibration.fits["driver"]["collect"] = calibrate_collection(
        model, name, info, repeats=3 if quick else 5
    )
    log(
        f"  driver: {model.driver.per_run * 1e3:.1f} ms per run, "
        f"{model.driver.per_result * 1e3:.2f} ms per result"
    )
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
    """Block until every pool with a live view has all its planned workers connected.

    Parameters
    ----------
    pools : Mapping of str to PoolInfo
        The pools by name.
    timeout : float
        Seconds to wait at most.
    """
    dfk = parsl.dfk()
    deadline = time.monotonic() + timeout
    for name, info in pools.items():
        executor = dfk.executors[name]
        if not isinstance(executor, QPUAwarePool):
            continue
        while (live := executor.capacity()) is not None and live.connected_workers < info.workers:
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
    """Start the local pools, calibrate them and write the profile.

    Parameters
    ----------
    pools : Sequence of str
        Names of the local pools to calibrate.
    profile : str or pathlib.Path or None
        Profile file to write; the user's config directory when omitted.
    workers : Mapping of str to int or None
        Workers per pool.
    run_dir : str or pathlib.Path
        The calibration run's directory.
    repeats : int
        Repeats of each timing.
    quick : bool
        Fewer probes.
    max_qubits : int or None
        Bounds the width of the probes.
    log : Callable of (str) to None
        Receives progress lines.

    Returns
    -------
    tuple of (pathlib.Path, Calibration)
        The profile's path and the calibration.
    """
    from parsl_quantum.configs import local

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
