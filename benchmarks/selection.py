"""Backend selection: first-fit against least-error on a pool of three fake devices.

The ensemble mini-app's workload (seeded random circuits, mean Z of each, estimated by its
``evaluate_batch`` task) runs once per policy on a QPU-aware pool serving three noisy fake
devices, one circuit per task, each task bound to whichever device the pool's policy picks.
Reported per policy: the mean absolute error of the estimates against the exact (statevector)
values, how many circuits each device took, and the wall time. Memoization and checkpointing
are off, so both runs compute everything, and Parsl's monitoring database must show every
submitted task executed.

Usage: ``python benchmarks/selection.py [--count 24] [--qubits 4] [--depth 4] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# benchmarks/miniapps.py shares its name with the ``miniapps`` package: keep this directory off
# the import path so that ``import miniapps`` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))  # last: for ``uncached`` only

import numpy as np  # noqa: E402
import parsl  # noqa: E402
from parsl.config import Config  # noqa: E402
from parsl.providers import LocalProvider  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from uncached import assert_executed, no_cache  # noqa: E402

from miniapps.ensemble import exact_values, observables_for, random_circuits  # noqa: E402
from parsl_quantum.executors import QPUHighThroughputExecutor  # noqa: E402

#: The pool's devices, in pool order (alphabetical): first-fit prefers the first one with room.
DEVICES = ("fake:fake_lagos", "fake:fake_nairobi", "fake:fake_quito")
POLICIES = ("first-fit", "least-error")


def evaluate_on_bound_backend(
    circuits: Sequence[QuantumCircuit],
    observables: Sequence[SparsePauliOp],
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> Any:
    """The ensemble mini-app's task, on the backend the pool bound this task to."""
    from miniapps.ensemble import evaluate_batch

    backend = (parsl_resource_specification or {})["backend"]
    return evaluate_batch(circuits, observables, backend, None, seed)


def run_policy(
    policy: str, circuits: Sequence[QuantumCircuit], observable: SparsePauliOp, run_dir: Path
) -> tuple[list[float], list[str], float]:
    """Values, chosen devices and wall seconds of one policy's run."""
    pool = QPUHighThroughputExecutor(
        label="qpus",
        backends=DEVICES,
        selection=policy,  # type: ignore[arg-type]
        max_workers_per_node=len(DEVICES),
        cores_per_worker=1e-6,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    config = Config(
        executors=[pool],
        run_dir=str(run_dir),
        strategy="none",
    )
    app = parsl.python_app(evaluate_on_bound_backend, executors=["qpus"], cache=False)
    db = Path(run_dir) / "monitoring.db"
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with parsl.load(no_cache(config, db)):
        app([circuits[0]], [observable], seed=0).result()  # workers up before the clock starts
        start = time.perf_counter()
        futures = [
            app([c], [observable], seed=i, parsl_resource_specification={"qpu": True})
            for i, c in enumerate(circuits)
        ]
        outcomes = [f.result() for f in futures]
        wall = time.perf_counter() - start
    parsl.clear()
    assert_executed(db, 1 + len(circuits))
    return [o.values[0][0] for o in outcomes], [o.backend for o in outcomes], wall


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="circuits (default 24)")
    parser.add_argument("--qubits", type=int, default=4, help="circuit width (default 4)")
    parser.add_argument("--depth", type=int, default=4, help="random circuit depth (default 4)")
    parser.add_argument("--seed", type=int, default=1234, help="first circuit seed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if min(args.count, args.qubits, args.depth) < 1:
        parser.error("--count, --qubits and --depth must be positive")

    circuits = random_circuits(args.count, args.qubits, args.depth, args.seed)
    (observable,) = observables_for(["mean-z"], args.qubits)
    exact = exact_values(circuits, [observable])[:, 0]
    results: dict[str, Any] = {"devices": list(DEVICES), "count": args.count, "policies": {}}
    with tempfile.TemporaryDirectory(prefix="selection-") as scratch:
        for policy in POLICIES:
            values, chosen, wall = run_policy(policy, circuits, observable, Path(scratch) / policy)
            errors = np.abs(np.asarray(values) - exact)
            results["policies"][policy] = {
                "mae": float(errors.mean()),
                "max_error": float(errors.max()),
                "circuits_per_device": dict(Counter(chosen)),
                "wall_s": round(wall, 2),
            }
    print(f"{'policy':<12} {'MAE':>8} {'max err':>8} {'wall s':>7}  circuits per device")
    for policy, row in results["policies"].items():
        print(
            f"{policy:<12} {row['mae']:8.4f} {row['max_error']:8.4f} {row['wall_s']:7.1f}  "
            f"{row['circuits_per_device']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
