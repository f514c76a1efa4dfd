"""parsl-quantum's cutting engine against qiskit-addon-cutting, in the same process.

Reference problem: ``efficient_su2(n, entanglement="linear", reps=2)`` decomposed, angles from
``numpy.random.default_rng(1234).uniform(-pi, pi)``, observable the mean of Z_i, partitions of
at most ``ceil(n / parts)`` qubits. For each case it reports distinct subexperiments (ours) and
generated subexperiments (the addon's), the time to the value, the error against Aer's MPS
estimator, and the peak memory of each engine's evaluation in this process (resident-set growth
sampled every 5 ms by a thread, so timing runs are not slowed by tracing).

Nothing is served from a cache: the Parsl session runs with memoization and checkpoints off,
and after it ends Parsl's monitoring database must show every evaluate task executed.

- floor: the least any engine must do, in this process: cut at the same labels, one exact
  evaluation of only the distinct subexperiments, the reconstruction (no planning, no Parsl);

- ours: ``cut_and_run`` on warm local pools (``cpu``, 2 workers; pool start-up reported apart),
  exact;
- addon-exact: ``partition_problem`` -> ``generate_cutting_experiments`` -> the addon's
  ``ExactSampler`` -> ``reconstruct_expectation_values``;
- addon-aer: the same with Aer's ``SamplerV2`` at 4096 shots per subexperiment.

    python benchmarks/cutting_vs_addon.py [--cases 16x2,20x2,24x2,12x3,16x3] [--skip-addon-exact]
        [--skip-addon-aer] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import parsl
import psutil
from qiskit_addon_cutting import (
    generate_cutting_experiments,
    partition_problem,
    reconstruct_expectation_values,
)
from qiskit_addon_cutting.utils.simulation import ExactSampler
from qiskit_aer.primitives import SamplerV2
from uncached import assert_executed, no_cache

from parsl_quantum import configs
from parsl_quantum.circuits import efficient_su2_circuit, exact_values, parse_observable
from parsl_quantum.cutting import cut_by_labels, evaluate_exact, expectation_value
from parsl_quantum.planner.partitioning import balanced_widths, block_labels
from parsl_quantum.workflow.cut_and_run import cut_and_run


def traced(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run fn; return its value, seconds and peak resident-set growth in MiB."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        value = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return value, seconds, (peak - base) / 2**20


def addon_value(circuit, observable, labels, sampler, shots: int | None) -> tuple[float, int]:
    part = partition_problem(circuit, partition_labels=labels, observables=observable.paulis)
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=part.subcircuits, observables=part.subobservables, num_samples=np.inf
    )
    results = {}
    for label, circuits in subexperiments.items():
        job = sampler.run(circuits) if shots is None else sampler.run(circuits, shots=shots)
        results[label] = job.result()
    values = reconstruct_expectation_values(results, coefficients, part.subobservables)
    generated = sum(len(c) for c in subexperiments.values())
    return float(np.dot(values, observable.coeffs).real), generated


def ours_memory(circuit, observable, labels) -> float:
    """Peak MiB of our exact evaluation of all partitions, in this process."""

    def run() -> None:
        problem = cut_by_labels(circuit, observable, labels)
        for part in problem.partitions:
            evaluate_exact(part)

    return traced(run)[2]


def floor_value(circuit, observable, labels) -> float:
    """The floor: cut at the labels, evaluate only the distinct subexperiments, reconstruct."""
    problem = cut_by_labels(circuit, observable, labels)
    tensors = []
    for part in problem.partitions:
        dims = [len(site.options) for site in part.sites]
        values = evaluate_exact(part)
        tensors.append(np.moveaxis(values.reshape(*dims, len(part.observables)), -1, 0))
    return expectation_value(problem, tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="16x2,20x2,24x2,12x3,16x3")
    parser.add_argument("--skip-addon-exact", action="store_true")
    parser.add_argument("--skip-addon-aer", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours, floor (median)")
    args = parser.parse_args()
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "monitoring.db"
        submitted = 0
        start = time.perf_counter()
        dfk = parsl.load(no_cache(configs.local(Path(tmp), ("cpu",), monitoring=False), db))
        warm = efficient_su2_circuit(6, 1)
        warmed = cut_and_run(
            warm, parse_observable("mean-z", 6), max_subcircuit_qubits=3, reference="never"
        )
        submitted += warmed.tasks
        startup = time.perf_counter() - start
        print(f"pool start-up (cpu, 2 workers, first task included): {startup:.2f} s", flush=True)
        header = (
            f"{'case':>6s} {'distinct':>8s} {'addon gen':>9s} {'ours s':>8s} {'floor s':>8s} "
            f"{'/floor':>6s} {'addon-exact s':>13s} "
            f"{'addon-aer s':>11s} {'x exact':>8s} {'x aer':>7s} {'ours err':>9s} "
            f"{'aer err':>8s} {'ours MiB':>8s} {'addon MiB':>9s}"
        )
        print(header, flush=True)
        try:
            for n, parts in cases:
                circuit = efficient_su2_circuit(n, 2, "linear", seed=1234)
                obs = parse_observable("mean-z", n)
                width = math.ceil(n / parts)
                labels, _ = block_labels(circuit, balanced_widths(n, parts))
                # a linear circuit: the untruncated MPS is exact at any width
                ref = float(exact_values(circuit, [obs], method="matrix_product_state")[0].real)
                times, floors = [], []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    result = _ours_fixed(circuit, obs, width, parts)
                    times.append(time.perf_counter() - t0)
                    submitted += result.tasks
                    floor, floor_s, _ = traced(
                        lambda c=circuit, o=obs, lab=labels: floor_value(c, o, lab)
                    )
                    floors.append(floor_s)
                    assert abs(floor - ref) < 1e-6 and abs(result.value - ref) < 1e-6
                ours_s = float(np.median(times))
                floor_s = float(np.median(floors))
                distinct = result.configuration["subexperiments"]
                mem_ours = ours_memory(circuit, obs, labels)
                if args.skip_addon_exact:
                    exact_s, mem_addon, gen = float("nan"), float("nan"), 0
                else:
                    (val_exact, gen), exact_s, mem_addon = traced(
                        lambda c=circuit, o=obs, lab=labels: addon_value(
                            c, o, lab, ExactSampler(), None
                        )
                    )
                    assert abs(val_exact - ref) < 1e-6
                    print(
                        f"  {n}x{parts}: ours {ours_s:.3f} s, addon-exact {exact_s:.1f} s",
                        flush=True,
                    )
                if args.skip_addon_aer:
                    aer_s, aer_err = float("nan"), float("nan")
                else:
                    (val_aer, gen_aer), aer_s, _ = traced(
                        lambda c=circuit, o=obs, lab=labels: addon_value(
                            c, o, lab, SamplerV2(default_shots=4096, seed=7), 4096
                        )
                    )
                    gen = gen or gen_aer
                    aer_err = abs(val_aer - ref)
                print(
                    f"{n:>3d}x{parts:<2d} {distinct:8d} {gen:9d} {ours_s:8.3f} {floor_s:8.3f} "
                    f"{ours_s / floor_s:6.1f} {exact_s:13.2f} "
                    f"{aer_s:11.2f} {exact_s / ours_s:8.0f} {aer_s / ours_s:7.1f} "
                    f"{abs(result.value - ref):9.1e} {aer_err:8.1e} "
                    f"{mem_ours:8.1f} {mem_addon:9.1f}",
                    flush=True,
                )
        finally:
            dfk.cleanup()
            parsl.clear()
        assert_executed(db, submitted, "evaluate_subexperiments")
        print(f"load average at end: {Path('/proc/loadavg').read_text().strip()}", flush=True)


def _ours_fixed(circuit, obs, width: int, parts: int):
    """Our engine with the benchmark's partition count forced (the planner may prefer others)."""
    from parsl_quantum.workflow.cut_and_run import loaded_pools, plan_cutting

    plan = plan_cutting(
        circuit, obs, loaded_pools(["cpu"]), max_subcircuit_qubits=width, partitions=[parts]
    )
    return cut_and_run(circuit, obs, pools=["cpu"], reference="never", plan=plan)


if __name__ == "__main__":
    main()
