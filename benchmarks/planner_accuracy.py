"""Planner accuracy: does the planner pick the configuration that is really fastest, and how
close are its predicted makespans?

For every problem (circuit family, size, widest piece, pool mix) the planner enumerates its
candidate configurations with the calibrated cost model; each candidate is then forced (its
exact widths) and run for real on the local pools through the late-binding dispatcher, three
times, and the median measured makespan (dispatch start to reconstructed value) is compared
with the prediction. Reported per problem: the chosen and the measured-best configuration,
top-1 (the choice's measured makespan within 5% of the best's), regret (measured choice / best)
and the makespan error |predicted - measured| / measured of every candidate.

Each pool mix is calibrated as it is then used (``--calibrate``: ``parsl-quantum calibrate``
with the mix's pools and workers, right before its problems, one profile per mix). Candidates
are run round-robin (repeat r of every candidate, then repeat r+1) so that load drifts on a
shared machine hit them alike; a candidate predicted at more than 4x the best prediction whose
first run took over 2 s is not repeated (its one run still counts). Workers run
single-threaded BLAS (``OPENBLAS_NUM_THREADS=1``, as each local worker has one core), for
calibration and runs alike. Memoization and checkpoints are off, and after each mix Parsl's
monitoring database must show every evaluate task of its runs executed.

    PATH=.venv/bin:$PATH .venv/bin/python benchmarks/planner_accuracy.py --calibrate \\
        --json accuracy.json
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import parsl  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402
from uncached import assert_executed, no_cache  # noqa: E402

from parsl_quantum.configs import local, pool_infos  # noqa: E402
from parsl_quantum.planner.calibrate import run_calibration, wait_for_workers  # noqa: E402
from parsl_quantum.planner.cost import CostModel, load_model  # noqa: E402
from parsl_quantum.planner.plan import Candidate, Mode, PlanResult, plan_workload  # noqa: E402
from parsl_quantum.workflow.circuits import (  # noqa: E402
    clustered_circuit,
    efficient_su2_circuit,
    parse_observable,
    qaoa_circuit,
    random_2local_circuit,
)
from parsl_quantum.workflow.context import PoolInfo  # noqa: E402
from parsl_quantum.workflow.cutting import execute_plan, reconstruct  # noqa: E402

FAMILIES: dict[str, Callable[[int], QuantumCircuit]] = {
    "su2": lambda n: efficient_su2_circuit(n, 3, "linear", seed=1),
    "su2shallow": lambda n: efficient_su2_circuit(n, 1, "linear", seed=1),
    "qaoa": lambda n: qaoa_circuit(n, 3, "ring", seed=1),
    "random2local": lambda n: random_2local_circuit(n, 10, seed=1),
    "clustered": lambda n: clustered_circuit(n, 4, 3, 3, seed=1),
}


@dataclass(frozen=True)
class Mix:
    """A pool mix: local pools, their workers, and the run's evaluation mode."""

    pools: tuple[str, ...]
    workers: dict[str, int]
    mode: Mode


MIXES = {
    "cpu2": Mix(("cpu",), {"cpu": 2}, "exact"),
    "cpu1": Mix(("cpu",), {"cpu": 1}, "exact"),
    "cpu2+qpu": Mix(("cpu", "qpu"), {"cpu": 2, "qpu": 1}, "auto"),
}


@dataclass(frozen=True)
class Problem:
    """A circuit family and size, the widest piece, the pool mix, and a mode if not the mix's."""

    family: str
    qubits: int
    limit: int
    mix: str
    mode: Mode | None = None

    @property
    def name(self) -> str:
        mode = f" {self.mode}" if self.mode else ""
        return f"{self.family}-{self.qubits}q/{self.limit}{mode}"


PROBLEMS = [
    Problem("su2", 22, 11, "cpu2"),
    Problem("su2", 24, 12, "cpu2"),
    Problem("su2", 26, 13, "cpu2"),
    Problem("qaoa", 18, 9, "cpu2"),
    Problem("qaoa", 20, 10, "cpu2"),
    Problem("random2local", 20, 10, "cpu2"),
    Problem("random2local", 24, 12, "cpu2"),
    Problem("clustered", 24, 12, "cpu2"),
    Problem("clustered", 28, 14, "cpu2"),
    Problem("su2", 22, 11, "cpu1"),
    Problem("su2", 26, 13, "cpu1"),
    Problem("qaoa", 18, 9, "cpu1"),
    Problem("random2local", 24, 12, "cpu1"),
    Problem("clustered", 24, 12, "cpu1"),
    Problem("clustered", 28, 14, "cpu1"),
    Problem("su2", 16, 8, "cpu2+qpu"),
    Problem("su2", 20, 10, "cpu2+qpu"),
    Problem("qaoa", 16, 8, "cpu2+qpu"),
    Problem("random2local", 14, 7, "cpu2+qpu"),
    Problem("clustered", 20, 10, "cpu2+qpu"),
    Problem("su2shallow", 14, 7, "cpu2+qpu", "sampled"),
    Problem("su2shallow", 18, 7, "cpu2+qpu", "sampled"),
]
SHOTS = 4000
TOP1_TOLERANCE = 1.05
#: Candidates predicted this many times slower than the best prediction, whose first run took
#: over 2 s, run once.
SKIP_FACTOR = 4.0


def run_candidate(
    cand: Candidate, pools: dict[str, PoolInfo], mode: Mode, model: CostModel
) -> tuple[float, float]:
    """Run one forced candidate; returns its measured makespan and value."""
    forced = PlanResult([cand], cand, "forced", model.source, 0.0)
    t0 = time.perf_counter()
    results = execute_plan(forced, pools, mode, SHOTS, 1)
    value, _ = reconstruct(cand.problem, cand.graph, results, 1)
    return time.perf_counter() - t0, value


def measure_problem(
    problem: Problem, pools: dict[str, PoolInfo], model: CostModel, repeats: int
) -> dict[str, Any]:
    """Plan the problem, run every candidate ``repeats`` times, compare with the predictions."""
    mode = problem.mode or MIXES[problem.mix].mode
    circuit = FAMILIES[problem.family](problem.qubits)
    observable = parse_observable("mean-z", problem.qubits)
    plan = plan_workload(
        circuit,
        observable,
        pools,
        max_subcircuit_qubits=problem.limit,
        model=model,
        mode=mode,
        shots=SHOTS,
    )
    times: list[list[float]] = [[] for _ in plan.candidates]
    load_before = os.getloadavg()[0]
    best_predicted = min(c.makespan for c in plan.candidates)
    for r in range(repeats):
        for i, cand in enumerate(plan.candidates):
            slow = cand.makespan > SKIP_FACTOR * best_predicted
            if r > 0 and slow and times[i][0] > 2.0:
                continue
            seconds, _ = run_candidate(cand, pools, mode, model)
            times[i].append(seconds)
    rows = []
    for cand, ts in zip(plan.candidates, times, strict=True):
        measured = statistics.median(ts)
        rows.append(
            {
                "widths": cand.widths,
                "tasks": cand.tasks,
                "pools": cand.pools_used,
                "predicted": cand.makespan,
                "measured": measured,
                "runs": ts,
                "error": abs(cand.makespan - measured) / measured,
                "chosen": cand is plan.chosen,
            }
        )
    best = min(rows, key=lambda row: row["measured"])
    chosen = next(row for row in rows if row["chosen"])
    regret = chosen["measured"] / best["measured"]
    return {
        "problem": problem.name,
        "mix": problem.mix,
        "candidates": rows,
        "chosen": chosen["widths"],
        "best": best["widths"],
        "regret": regret,
        "top1": regret <= TOP1_TOLERANCE,
        "planning_seconds": plan.planning_time,
        "load_average": (load_before + os.getloadavg()[0]) / 2,
    }


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [c["error"] for r in results for c in r["candidates"]]
    chosen_errors = [c["error"] for r in results for c in r["candidates"] if c["chosen"]]
    regrets = [r["regret"] for r in results]
    return {
        "problems": len(results),
        "candidates_run": len(errors),
        "top1_accuracy": sum(r["top1"] for r in results) / len(results),
        "median_regret": statistics.median(regrets),
        "worst_regret": max(regrets),
        "median_makespan_error": statistics.median(errors),
        "median_makespan_error_chosen": statistics.median(chosen_errors),
        "mean_load_average": statistics.mean(r["load_average"] for r in results),
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'problem':30s} {'mix':9s} {'cands':>5s} {'chosen':>22s} {'pred':>6s} {'meas':>6s} "
        f"{'best':>22s} {'meas':>6s} {'regret':>6s} {'top1':>4s} {'med err':>7s}"
    )
    for r in results:
        chosen = next(c for c in r["candidates"] if c["chosen"])
        best = min(r["candidates"], key=lambda c: c["measured"])
        err = statistics.median(c["error"] for c in r["candidates"])
        print(
            f"{r['problem']:30s} {r['mix']:9s} {len(r['candidates']):5d} "
            f"{str(chosen['widths']):>22s} {chosen['predicted']:6.2f} {chosen['measured']:6.2f} "
            f"{str(best['widths']):>22s} {best['measured']:6.2f} {r['regret']:6.3f} "
            f"{'yes' if r['top1'] else 'no':>4s} {err:7.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profiles", default="runs/planner-accuracy", help="directory of MIX.json profiles"
    )
    parser.add_argument("--calibrate", action="store_true", help="calibrate each mix first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated problem indices to run")
    parser.add_argument("--run-dir", default="runs/planner-accuracy")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    problems = list(enumerate(PROBLEMS))
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        problems = [p for p in problems if p[0] in keep]
    results: list[dict[str, Any]] = []
    for mix_name, mix in MIXES.items():
        todo = [p for _, p in problems if p.mix == mix_name]
        if not todo:
            continue
        profile = Path(args.profiles) / f"{mix_name}.json"
        if args.calibrate:
            _, calibration = run_calibration(
                mix.pools, profile=profile, workers=mix.workers, run_dir=run_dir / "calibrate"
            )
            print(f"calibrated {mix_name} in {calibration.seconds:.0f} s -> {profile}")
        db = (run_dir / mix_name / "monitoring.db").resolve()
        db.unlink(missing_ok=True)
        config = local(run_dir / mix_name, mix.pools, workers=mix.workers, monitoring=False)
        no_cache(config, db)
        first = len(results)
        pools = pool_infos(config)
        model = load_model(profile, {n: i.kind for n, i in pools.items()})
        with parsl.load(config):
            wait_for_workers(pools)
            warm = plan_workload(
                FAMILIES["su2"](12),
                parse_observable("mean-z", 12),
                pools,
                max_subcircuit_qubits=6,
                model=model,
                mode=mix.mode,
                shots=SHOTS,
            )
            for cand in warm.candidates[:2]:
                run_candidate(cand, pools, mix.mode, model)
            for problem in todo:
                result = measure_problem(problem, pools, model, args.repeats)
                results.append(result)
                print_table([result])
        parsl.clear()
        ran = sum(c["tasks"] * len(c["runs"]) for r in results[first:] for c in r["candidates"])
        warm_tasks = sum(c.tasks for c in warm.candidates[:2])
        assert_executed(db, warm_tasks + ran, "evaluate_subexperiments")
    summary = summarize(results)
    summary["seconds"] = time.perf_counter() - started
    print()
    print_table(results)
    print()
    print(
        f"{summary['problems']} problems, {summary['candidates_run']} candidates run: "
        f"top-1 {summary['top1_accuracy']:.0%} (target >= 90%), median regret "
        f"{summary['median_regret']:.3f} (target <= 1.05), worst regret "
        f"{summary['worst_regret']:.3f}, median makespan error "
        f"{summary['median_makespan_error']:.1%} (target <= 25%; chosen only "
        f"{summary['median_makespan_error_chosen']:.1%}); {summary['seconds'] / 60:.1f} min, "
        f"mean load average {summary['mean_load_average']:.1f} on {os.cpu_count()} cores"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "problems": results}, indent=2, default=float)
        )


if __name__ == "__main__":
    main()
