"""Benchmark the motif mini-apps at a small and a medium size on the local pools.

One Parsl session (``parsl_quantum.configs.local``: ``cpu`` = 2 Aer workers, ``qpu`` = 1 worker
on the default fake device) serves every run; both pools are warmed up once first, so the
figures describe the steady state. For each (mini-app, size) the table gives the wall time of
its ``run()`` call, the wall time of its task phase (the run minus its own warm-up tasks and
report), the number of tasks, the task throughput over the task phase, and the science
figure the mini-app is checked on. Memoization and checkpoints are off, and Parsl's monitoring
database must show at least the counted tasks executed (warm-up tasks come on top) and none
served from a cache.

Usage::

    PATH=.venv/bin:$PATH .venv/bin/python benchmarks/miniapps.py [--sizes small,medium]
        [--apps ensemble,distributed-simulation,...] [--json results.json] [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# this script shares its name with the ``miniapps`` package: keep its own directory off the
# import path so that ``import miniapps`` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))  # last: for ``uncached`` only

import parsl  # noqa: E402
from uncached import assert_executed, no_cache  # noqa: E402

from miniapps import (  # noqa: E402
    _common,
    circuit_cutting,
    distributed_sim,
    ensemble,
    mitigation,
    qml,
    qml_compression,
    qml_generative,
    variational,
)
from parsl_quantum import configs  # noqa: E402

#: Keyword arguments of each mini-app's ``run()`` per size.
CASES: dict[str, dict[str, dict[str, Any]]] = {
    "ensemble": {
        "small": {"count": 48, "qubits": 4, "depth": 6, "batch_size": 6, "pools": ["cpu", "qpu"]},
        "medium": {
            "count": 600,
            "qubits": 6,
            "depth": 10,
            "batch_size": 20,
            "pools": ["cpu", "qpu"],
        },
    },
    "distributed-simulation": {
        "small": {"rows": 4, "cols": 5, "depth": 12, "task_memory_mb": 0.0625},
        "medium": {
            "rows": 5,
            "cols": 5,
            "depth": 14,
            "task_memory_mb": 1.0,
            "reference": "statevector",
        },
    },
    "variational": {
        "small": {"qubits": 6, "layers": 2},
        "medium": {"qubits": 8, "layers": 4, "max_iterations": 400},
    },
    "qml-training": {
        "small": {"steps": 40, "batch_size": 32},
        "medium": {"train": 1000, "test": 500, "steps": 60, "batch_size": 128, "shards": 4},
    },
    "qml-compression": {
        "small": {"shards": 2},
        "medium": {"train": 16, "max_iterations": 200, "shards": 4},
    },
    "qml-generative": {
        "small": {"target": "gaussian", "qubits": 6, "evaluate_on": ["cpu", "qpu"]},
        "medium": {
            "target": "gaussian",
            "qubits": 7,
            "layers": 3,
            "max_iterations": 200,
            "evaluate_on": ["cpu", "qpu"],
        },
    },
    "circuit-cutting": {
        "small": {"family": "efficient_su2", "qubits": 16, "max_subcircuit_qubits": 8},
        "medium": {"family": "efficient_su2", "qubits": 60, "max_subcircuit_qubits": 15},
    },
    "error-mitigation": {
        "small": {"count": 4, "qubits": 4, "layers": 4},
        "medium": {"count": 12, "qubits": 5, "layers": 4, "scale_factors": (1, 3, 5, 7)},
    },
}

RUNNERS: dict[str, Callable[..., Any]] = {
    "ensemble": ensemble.run,
    "distributed-simulation": distributed_sim.run,
    "variational": variational.run,
    "qml-training": qml.run,
    "qml-compression": qml_compression.run,
    "qml-generative": qml_generative.run,
    "error-mitigation": mitigation.run,
    "circuit-cutting": circuit_cutting.run,
}


def science(app: str, result: Any) -> str:
    """The figure each mini-app's tests check, as one line."""
    if app == "ensemble":
        errs = ", ".join(f"{p} {e:.1e}" for p, e in result.max_error.items())
        rates = ", ".join(f"{p} {r:.0f}/s" for p, r in result.pool_throughput.items())
        return f"{result.throughput:.0f} circuits/s ({rates}); max error vs statevector: {errs}"
    if app == "distributed-simulation":
        err = "n/a" if result.rel_error is None else f"{result.rel_error:.1e}"
        t = result.timings
        times = f"contract {t['contract']:.1f} s, reference {t.get('reference', 0):.1f} s"
        return (
            f"{result.qubits} qubits, {result.nslices} slices of 2^{result.width_sliced:.0f} "
            f"(unsliced 2^{result.width_unsliced:.0f}); rel. error vs statevector {err}; {times}"
        )
    if app == "variational":
        return (
            f"E = {result.energy:.5f} vs exact {result.exact_energy:.5f} "
            f"(error {result.error:.1e}, {result.iterations} iterations)"
        )
    if app == "qml-training":
        return (
            f"test accuracy {result.test_accuracy:.3f} (target {result.target_accuracy}, "
            f"majority {result.majority_baseline:.2f})"
        )
    if app == "qml-compression":
        return (
            f"{result.qubits} -> {result.latent} qubits: held-out reconstruction fidelity "
            f"{result.fidelity:.3f} (target {result.target_fidelity}; at initialization "
            f"{result.initial_fidelity:.3f}), {result.iterations} iterations"
        )
    if app == "qml-generative":
        pools = ", ".join(f"{p} {k:.3f}" for p, k in result.kl_by_pool.items())
        return (
            f"{result.target}, {result.qubits} qubits: KL {result.kl:.3f} exact (target "
            f"{result.target_kl}; at initialization {result.initial_kl:.2f}); sampled: {pools}"
        )
    if app == "circuit-cutting":
        parts = len(result.configuration["partitions"])
        return (
            f"{parts} partitions, {result.configuration['subexperiments']} distinct "
            f"subexperiments; |value - reference| {abs(result.value - result.reference):.1e}"
        )
    if app == "error-mitigation":
        mit = ", ".join(f"{f} {e:.3f}" for f, e in result.mitigated_error.items())
        return f"mean abs error: unmitigated {result.unmitigated_error:.3f}, {mit}"
    return ""


def bench(app: str, size: str, run_dir: Path) -> dict[str, Any]:
    """Run one case and summarise it."""
    started = time.perf_counter()
    result = RUNNERS[app](**CASES[app][size], run_dir=run_dir / f"{app}-{size}")
    wall = time.perf_counter() - started
    t = result.timings
    phase = wall - t.get("warmup", 0.0) - t.get("report", 0.0)
    return {
        "app": app,
        "size": size,
        "wall_s": round(wall, 2),
        "task_phase_s": round(phase, 2),
        "tasks": result.tasks,
        "tasks_per_s": round(result.tasks / phase, 1) if phase > 0 else None,
        "timings": t,
        "science": science(app, result),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--apps", default=",".join(CASES))
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON here")
    parser.add_argument("--run-dir", metavar="DIR", help="run directories (default: a temp dir)")
    args = parser.parse_args(argv)
    apps = [a for a in args.apps.split(",") if a]
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = sorted(set(apps) - set(CASES)) + sorted(set(sizes) - {"small", "medium"})
    if unknown:
        parser.error(f"unknown app or size: {', '.join(unknown)}")
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="miniapps-bench-"))
    rows = []
    db = run_dir / "monitoring.db"
    config = no_cache(configs.local(run_dir, pools=("cpu", "qpu"), monitoring=False), db)
    with parsl.load(config):
        ctx = _common.make_context(run_dir / "warmup", ["cpu", "qpu"])
        _common.warm_pools(ctx, ["cpu", "qpu"])
        for app in apps:
            for size in sizes:
                row = bench(app, size, run_dir)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "timings"}), flush=True)
    assert_executed(db, sum(r["tasks"] for r in rows), at_least=True)
    print()
    print("| mini-app | size | wall s | task phase s | tasks | tasks/s | science |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['app']} | {r['size']} | {r['wall_s']} | {r['task_phase_s']} | {r['tasks']} "
            f"| {r['tasks_per_s']} | {r['science']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
