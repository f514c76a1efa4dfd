"""Planner scale: how long it takes to build and schedule a task DAG of 10,000 tasks over three
pools, and to plan a 100-qubit circuit end to end (every candidate cut, 4 to 20 partitions).

No Parsl and no pools: pools are described (cpu 64 workers, gpu 8, qpu 4 workers of a 127-qubit
device) and the cost model uses its documented defaults, so the numbers are the planner's own.

    PATH=.venv/bin:$PATH .venv/bin/python benchmarks/planner_scale.py --json scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.cutting.problem import cut_by_labels
from parsl_quantum.executors import PoolInfo
from parsl_quantum.planner.cost import CostModel
from parsl_quantum.planner.partitioning import balanced_widths, block_labels
from parsl_quantum.planner.plan import build_graph, heft, plan_workload

POOLS = {
    "cpu": PoolInfo("cpu", ("aer",), 64, "cpu-sim", 30, True),
    "gpu": PoolInfo("gpu", ("aer-gpu",), 8, "gpu-sim", 32, True),
    "qpu": PoolInfo("qpu", ("ibm:ibm_torino",), 4, "qpu", 127, False),
}
MODEL = CostModel(kinds={name: info.kind for name, info in POOLS.items()})


def dag_of(tasks: int, repeats: int) -> dict[str, float]:
    """Cut a 72-qubit circuit into 18 partitions of 4 (10,050 subexperiments), then build and
    schedule its DAG with ``tasks`` tasks or slightly more; best of ``repeats``."""
    circuit = efficient_su2_circuit(72, 2, "linear", seed=1)
    observable = parse_observable("mean-z", 72)
    labels, _ = block_labels(circuit, balanced_widths(72, 18))
    problem = cut_by_labels(circuit, observable, labels)
    rows = problem.num_subexperiments
    task_rows = max(1, math.floor(rows / tasks))
    best = {"build": math.inf, "heft": math.inf}
    count = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        graph = build_graph(problem, POOLS, MODEL, "auto", 100_000, task_rows=task_rows)
        t1 = time.perf_counter()
        makespan, assignment, _ = heft(graph, POOLS)
        t2 = time.perf_counter()
        best["build"] = min(best["build"], t1 - t0)
        best["heft"] = min(best["heft"], t2 - t1)
        count = sum(1 for _, d in graph.nodes(data=True) if d["kind"] == "evaluate")
    used = sorted(set(assignment.values()))
    return {
        "subexperiments": rows,
        "tasks": count,
        "build_seconds": best["build"],
        "heft_seconds": best["heft"],
        "total_seconds": best["build"] + best["heft"],
        "predicted_makespan": makespan,
        "pools_used": used,
    }


def plan_100_qubits() -> dict[str, object]:
    """Plan a 100-qubit circuit with pieces of at most 25 qubits over the three pools."""
    circuit = efficient_su2_circuit(100, 2, "linear", seed=1)
    observable = parse_observable("mean-z", 100)
    t0 = time.perf_counter()
    plan = plan_workload(circuit, observable, POOLS, max_subcircuit_qubits=25, model=MODEL)
    return {
        "seconds": time.perf_counter() - t0,
        "candidates": [c.widths for c in plan.candidates],
        "chosen": plan.chosen.widths,
        "tasks": plan.chosen.tasks,
        "reason": plan.reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    dag = dag_of(args.tasks, args.repeats)
    print(
        f"DAG of {dag['tasks']} tasks ({dag['subexperiments']} subexperiments) over 3 pools: "
        f"build {dag['build_seconds']:.3f} s + HEFT {dag['heft_seconds']:.3f} s = "
        f"{dag['total_seconds']:.3f} s (target < 1 s); pools used {dag['pools_used']}"
    )
    big = plan_100_qubits()
    counts = sorted({len(w) for w in big["candidates"]})  # type: ignore[union-attr]
    print(
        f"100-qubit plan: {len(big['candidates'])} candidates "  # type: ignore[arg-type]
        f"({counts[0]}..{counts[-1]} partitions) in {big['seconds']:.2f} s; chosen widths "
        f"{big['chosen']}, {big['tasks']} tasks"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"dag": dag, "plan_100": big}, indent=2, default=float)
        )
    assert np.isfinite(dag["predicted_makespan"])


if __name__ == "__main__":
    main()
