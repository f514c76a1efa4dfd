"""Throughput of QPUHighThroughputExecutor vs a plain HighThroughputExecutor.

Both pools run in one Parsl session with the same workers (same ``max_workers_per_node``, same
LocalProvider, same interchange command). Two workloads, submitted as one burst each and timed
from the first submit to the last result:

* ``noop``: an empty task, which exposes per-task overhead (validation, backend binding, the
  backend gate, the worker hook);
* ``circuit8``: an 8-qubit, 2-layer EfficientSU2 circuit whose exact <Z...Z> is computed with
  the worker's cached Aer backend.

Runs alternate between the pools and the median of ``--repeats`` runs is reported with the ratio
QPU-HTEX / HTEX (target: >= 0.9). Memoization and checkpoints are off, and Parsl's monitoring
database must show every submitted task executed::

    PATH=.venv/bin:$PATH .venv/bin/python benchmarks/executor_overhead.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import parsl
from parsl import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider
from uncached import assert_executed, no_cache

from parsl_quantum.executors import QPUHighThroughputExecutor

INTERCHANGE = [sys.executable, "-m", "parsl.executors.high_throughput.interchange"]


def noop(parsl_resource_specification: dict | None = None) -> None:
    return None


def circuit8(seed: int, parsl_resource_specification: dict | None = None) -> float:
    """Exact <Z^8> of a seeded 8-qubit EfficientSU2 circuit on this worker's Aer backend."""
    import numpy as np
    from qiskit.circuit.library import efficient_su2
    from qiskit.quantum_info import SparsePauliOp

    from parsl_quantum.backends import worker_backend

    backend = worker_backend((parsl_resource_specification or {}).get("backend", "aer"))
    circuit = efficient_su2(8, reps=2)
    params = np.random.default_rng(seed).uniform(0, np.pi, circuit.num_parameters)
    (isa,) = backend.transpile([circuit.assign_parameters(params)])
    result = backend.estimator().run([(isa, SparsePauliOp("Z" * 8))]).result()
    return float(result[0].data.evs)


def burst(app: Callable[..., Any], count: int, with_seed: bool) -> float:
    """Tasks per second for ``count`` tasks submitted at once."""
    start = time.perf_counter()
    futures = [app(i) if with_seed else app() for i in range(count)]
    for future in futures:
        future.result()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop-tasks", type=int, default=2000)
    parser.add_argument("--circuit-tasks", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    common: dict[str, Any] = dict(
        max_workers_per_node=args.workers, cores_per_worker=1e-6, interchange_launch_cmd=INTERCHANGE
    )
    pools = {
        "htex": HighThroughputExecutor(label="htex", provider=LocalProvider(), **common),
        "qpu-htex": QPUHighThroughputExecutor(label="qpu-htex", provider=LocalProvider(), **common),
    }
    apps = {
        (label, name): python_app(fn, executors=[label])
        for label in pools
        for name, fn in (("noop", noop), ("circuit8", circuit8))
    }
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in apps}
    run_dir = tempfile.mkdtemp(prefix="executor-overhead-")
    db = Path(run_dir) / "monitoring.db"
    config = Config(executors=list(pools.values()), run_dir=run_dir, strategy="none")
    with parsl.load(no_cache(config, db)):
        for label in pools:  # warm up: workers connected, qiskit imported, backends bound
            burst(apps[(label, "noop")], 4 * args.workers, False)
            burst(apps[(label, "circuit8")], 4 * args.workers, True)
        for _ in range(args.repeats):
            for label in pools:
                rates[(label, "noop")].append(burst(apps[(label, "noop")], args.noop_tasks, False))
                rates[(label, "circuit8")].append(
                    burst(apps[(label, "circuit8")], args.circuit_tasks, True)
                )

    per_pool = 8 * args.workers + args.repeats * (args.noop_tasks + args.circuit_tasks)
    assert_executed(db, 2 * per_pool)
    report: dict[str, Any] = {"workers": args.workers, "repeats": args.repeats, "workloads": {}}
    print(f"workers={args.workers} repeats={args.repeats} (median tasks/s)")
    print(f"{'workload':<10} {'htex':>10} {'qpu-htex':>10} {'ratio':>7}")
    for name, count in (("noop", args.noop_tasks), ("circuit8", args.circuit_tasks)):
        htex = statistics.median(rates[("htex", name)])
        qpu = statistics.median(rates[("qpu-htex", name)])
        report["workloads"][name] = {
            "tasks": count,
            "htex_tasks_per_s": htex,
            "qpu_htex_tasks_per_s": qpu,
            "ratio": qpu / htex,
            "htex_runs": rates[("htex", name)],
            "qpu_htex_runs": rates[("qpu-htex", name)],
        }
        print(f"{name:<10} {htex:>10.1f} {qpu:>10.1f} {qpu / htex:>7.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
