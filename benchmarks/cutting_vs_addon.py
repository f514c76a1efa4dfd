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
  evaluation of only the distinct subexperiments by our statevector engine, the
  reconstruction (no planning, no Parsl);
- aer floor: the floor as issue 15 states it: the same, with the distinct subexperiments
  evaluated exactly in one Aer batch (each QPD measurement deferred onto an ancilla, one
  ``AerSimulator.run`` of every circuit with ``save_expectation_value``);

- ours: ``cut_and_run`` on warm local pools (``cpu``, 2 workers; pool start-up reported apart),
  exact, planned among the block cuts of the forced partition count (no ``find_cuts`` search);
  each case's timed runs (and the floor's) follow one unrecorded run of it;
- addon-exact: ``partition_problem`` -> ``generate_cutting_experiments`` -> the addon's
  ``ExactSampler`` -> ``reconstruct_expectation_values``;
- addon-aer: the same with Aer's ``SamplerV2`` at 4096 shots per subexperiment.

- cli: with ``--cli 20x2``, the same case run by ``parsl-quantum run
  workflows/circuit-cutting.yaml`` in a new process (the template's circuit is this reference
  problem), pools ``cpu``; its time beyond start-up is its median wall time minus that of the
  4-qubit run of the same template (same pools, same partition count), the two alternated,
  ``--repeats`` each after one unrecorded round, and is compared with the floor of that case.
  Each run's monitoring database must show the evaluate tasks it reports.

    python benchmarks/cutting_vs_addon.py [--cases 16x2,20x2,24x2,12x3,16x3] [--skip-addon-exact]
        [--skip-addon-aer] [--repeats 3] [--cli 20x2]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import parsl
import psutil
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_addon_cutting import (
    generate_cutting_experiments,
    partition_problem,
    reconstruct_expectation_values,
)
from qiskit_addon_cutting.utils.simulation import ExactSampler
from qiskit_aer import AerSimulator
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


def deferred_circuit(program, row) -> tuple[QuantumCircuit, int]:
    """One distinct subexperiment as a circuit Aer evaluates exactly: each signed Z
    measurement of a QPD term is deferred (a CX onto an ancilla of its own, whose Z then
    carries the outcome's sign into every observable). Returns the circuit and its ancillas."""
    n = program.num_qubits
    ops = [op for site, opt in zip(program.sites, row, strict=True) for op in site.options[opt]]
    ancillas = sum(op.kind == "measure" for op in ops)
    circuit = QuantumCircuit(n + ancillas)
    sites = iter(zip(program.sites, row, strict=True))
    anc = n
    for segment in program.segments:
        for gate in segment:
            circuit.unitary(gate.matrix, list(gate.qubits))
        site_row = next(sites, None)
        if site_row is None:
            break
        site, opt = site_row
        for op in site.options[opt]:
            if op.kind == "measure":
                circuit.cx(site.qubit, anc)
                anc += 1
            elif op.kind == "unitary":
                circuit.unitary(op.matrix, [site.qubit])
            else:
                raise ValueError(f"{op.kind} is not deferred here (gate cuts only)")
    return circuit, ancillas


def aer_floor_value(circuit, observable, labels) -> float:
    """The floor as the issue states it: cut at the labels, the distinct subexperiments only,
    evaluated exactly in one Aer batch (one ``AerSimulator.run`` of every circuit, with
    ``save_expectation_value`` per observable), the reconstruction."""
    problem = cut_by_labels(circuit, observable, labels)
    batch, shapes = [], []
    for part in problem.partitions:
        dims = [len(site.options) for site in part.sites]
        rows = np.indices(dims).reshape(len(dims), -1).T if dims else np.zeros((1, 0), int)
        for row in rows:
            qc, ancillas = deferred_circuit(part, row)
            for i, label in enumerate(part.observables):
                op = SparsePauliOp("Z" * ancillas + label)
                qc.save_expectation_value(op, range(qc.num_qubits), label=f"e{i}")
            batch.append(qc)
        shapes.append((dims, len(rows), len(part.observables)))
    result = AerSimulator(method="statevector").run(batch).result()
    tensors, at = [], 0
    for dims, count, labels_p in shapes:
        values = np.array(
            [[result.data(at + r)[f"e{i}"] for i in range(labels_p)] for r in range(count)]
        )
        at += count
        tensors.append(np.moveaxis(values.reshape(*dims, labels_p), -1, 0))
    return expectation_value(problem, tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="16x2,20x2,24x2,12x3,16x3")
    parser.add_argument("--skip-addon-exact", action="store_true")
    parser.add_argument("--skip-addon-aer", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours, floor (median)")
    parser.add_argument("--cli", help="a case (e.g. 20x2) also run from the command line")
    args = parser.parse_args()
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    floors_by_case: dict[tuple[int, int], float] = {}

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
            f"{'/floor':>6s} {'aer floor s':>11s} {'/aer':>5s} {'addon-exact s':>13s} "
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
                times, floors, aer_floors = [], [], []
                # one unrecorded run of each first: a worker's first evaluation of a new
                # partition size pays one-time costs a steady-state run does not
                submitted += _ours_fixed(circuit, obs, width, parts).tasks
                floor_value(circuit, obs, labels)
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    result = _ours_fixed(circuit, obs, width, parts)
                    times.append(time.perf_counter() - t0)
                    submitted += result.tasks
                    t0 = time.perf_counter()  # timed as ours is, without a memory sampler
                    floor = floor_value(circuit, obs, labels)
                    floors.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    aer_floor = aer_floor_value(circuit, obs, labels)
                    aer_floors.append(time.perf_counter() - t0)
                    assert abs(floor - ref) < 1e-6 and abs(result.value - ref) < 1e-6
                    assert abs(aer_floor - ref) < 1e-6
                ours_s = float(np.median(times))
                floor_s = float(np.median(floors))
                aer_floor_s = float(np.median(aer_floors))
                floors_by_case[(n, parts)] = floor_s
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
                    f"{ours_s / floor_s:6.1f} {aer_floor_s:11.3f} {ours_s / aer_floor_s:5.2f} "
                    f"{exact_s:13.2f} "
                    f"{aer_s:11.2f} {exact_s / ours_s:8.0f} {aer_s / ours_s:7.1f} "
                    f"{abs(result.value - ref):9.1e} {aer_err:8.1e} "
                    f"{mem_ours:8.1f} {mem_addon:9.1f}",
                    flush=True,
                )
        finally:
            dfk.cleanup()
            parsl.clear()
        assert_executed(db, submitted, "evaluate_subexperiments")
        if args.cli:
            n, parts = (int(x) for x in args.cli.split("x"))
            if (n, parts) not in floors_by_case:
                raise SystemExit(f"--cli {args.cli}: not one of --cases")
            walls: dict[int, list[float]] = {n: [], 4: []}
            for r in range(1 + args.repeats):  # alternate, so load drifts hit both alike
                for qubits in (n, 4):
                    wall = cli_wall(qubits, parts, Path(tmp) / f"cli{qubits}-{r}")
                    if r:  # the first round is unrecorded (warm disk cache)
                        walls[qubits].append(wall)
            beyond = float(np.median(walls[n]) - np.median(walls[4]))
            floor_s = floors_by_case[(n, parts)]
            print(
                f"cli {n}x{parts}: wall {np.median(walls[n]):.2f} s, 4x{parts} wall "
                f"{np.median(walls[4]):.2f} s, beyond start-up {beyond:.3f} s, floor "
                f"{floor_s:.3f} s, ratio {beyond / floor_s:.1f}",
                flush=True,
            )
        print(f"load average at end: {Path('/proc/loadavg').read_text().strip()}", flush=True)


def cli_wall(n: int, parts: int, run_dir: Path) -> float:
    """Wall seconds of one ``parsl-quantum run`` of the case in a new process, after checking
    its monitoring database for the evaluate tasks it reports."""
    out = run_dir.parent / f"{run_dir.name}.json"
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "run",
        str(Path(__file__).resolve().parent.parent / "workflows" / "circuit-cutting.yaml"),
        "--set",
        f"circuit.qubits={n}",
        "--set",
        f"planner.max_subcircuit_qubits={math.ceil(n / parts)}",
        "--set",
        f"planner.partitions=[{parts}]",
        "--set",
        "pools=cpu",
        "--monitoring",
        "--run-dir",
        str(run_dir),
        "--json",
        str(out),
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    data = json.loads(out.read_text())
    assert_executed(run_dir / "monitoring.db", int(data["tasks"]), "evaluate_subexperiments")
    return wall


def _ours_fixed(circuit, obs, width: int, parts: int):
    """Our engine with the benchmark's partition count forced (the planner may prefer others).

    The planner chooses among the block cuts of that count; the ``find_cuts`` wire-cut search is
    off, as the addon and the floor are given their cut labels too (on these linear circuits
    it finds no wire cut, and its search was most of our planning time).
    """
    from parsl_quantum.workflow.cut_and_run import loaded_pools, plan_cutting

    plan = plan_cutting(
        circuit,
        obs,
        loaded_pools(["cpu"]),
        max_subcircuit_qubits=width,
        partitions=[parts],
        wire_cuts=False,
    )
    return cut_and_run(circuit, obs, pools=["cpu"], reference="never", plan=plan)


if __name__ == "__main__":
    main()
