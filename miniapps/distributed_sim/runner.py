"""The driver of the distributed simulation: :func:`run` (Python API), :func:`run_template`
(template kind ``distributed-simulation``) and the :func:`execute` both share."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from miniapps import _common
from miniapps.distributed_sim.mpi import MPIOutcome, mpi_contract_slices, mpi_unavailable_reason
from miniapps.distributed_sim.network import (
    ITEMSIZE,
    SlicedContraction,
    build_network,
    contract_slices,
    grid_circuit,
    plan_slices,
    reference_method,
    warm_up_contraction,
)
from miniapps.distributed_sim.params import DistributedSimParams
from parsl_quantum.circuits import exact_values
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext


@dataclass
class DistributedSimResult:
    """The value, its reference, and what slicing did."""

    value: complex
    reference: complex | None
    reference_method: str | None
    abs_error: float | None
    rel_error: float | None
    quantity: str
    qubits: int
    nslices: int
    tasks: int
    width_unsliced: float
    width_sliced: float
    flops_overhead: float
    task_memory_bytes: int
    max_intermediate_bytes: int
    peak_task_bytes: int
    input_bytes: int
    statevector_bytes: int
    mpi: dict[str, Any]
    timings: dict[str, float]
    run_dir: Path
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary. ``value`` and ``reference`` are real headline numbers: the
        probability ``|amplitude|^2`` for an amplitude, the (real) expectation value otherwise;
        the complex results are under ``complex_value`` and ``complex_reference`` as
        ``{"real", "imag"}``, and ``abs_error`` compares the complex results."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["complex_value"] = out.pop("value")
        out["complex_reference"] = out.pop("reference")
        out["value"] = self.headline(self.value)
        out["reference"] = None if self.reference is None else self.headline(self.reference)
        return _common.jsonable(out)

    def headline(self, z: complex) -> float:
        """The real number a complex result is summarised by (see :meth:`to_dict`)."""
        return float(abs(z) ** 2) if self.quantity == "amplitude" else float(z.real)


def _figure(partials: Sequence[complex], res: DistributedSimResult, path: Path) -> Path:
    fig = _common.new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    running = np.concatenate([[0j], np.cumsum(np.asarray(partials, dtype=complex))])
    left.plot(running.real, running.imag, "o-", ms=3, color="C0", label="running sum of tasks")
    if res.reference is not None:
        left.plot(
            [res.reference.real],
            [res.reference.imag],
            "*",
            ms=14,
            color="C3",
            label=f"{res.reference_method} reference",
        )
    left.set_xlabel("real part")
    left.set_ylabel("imaginary part")
    left.set_title(f"{res.quantity}: {res.nslices} slices summed in {res.tasks} tasks")
    left.legend(fontsize=8)
    left.ticklabel_format(style="sci", scilimits=(-2, 2))
    labels = ["state vector", "budget / task", "peak / task", "largest\nintermediate"]
    sizes = [
        res.statevector_bytes,
        res.task_memory_bytes,
        res.peak_task_bytes,
        res.max_intermediate_bytes,
    ]
    right.bar(labels, sizes, color=["C3", "C7", "C0", "C2"])
    right.set_yscale("log")
    right.set_ylabel("bytes")
    err = f"{res.abs_error:.1e}" if res.abs_error is not None else "n/a"
    right.set_title(f"{res.qubits} qubits, {res.quantity}; error vs reference {err}")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    circuit: QuantumCircuit,
    params: DistributedSimParams | None = None,
    *,
    pools: Sequence[str],
    plan: SlicedContraction | None = None,
) -> DistributedSimResult:
    """Simulate ``circuit`` in slices inside ``ctx`` (the engine of :func:`run` and
    :func:`run_template`).

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    circuit : QuantumCircuit
        The unitary circuit to simulate.
    params : DistributedSimParams, optional
        The quantity and the slicing; the defaults when None.
    pools : sequence of str
        The pools that contract slices (and the reference, on the first).
    plan : SlicedContraction, optional
        A contraction plan :func:`prepare` already made, so the search is not repeated.

    Returns
    -------
    DistributedSimResult
        The run's result.
    """
    params = params or DistributedSimParams()
    bitstring, pauli, qubits = params.inputs_for(circuit.num_qubits)
    if not pools:
        raise ValueError("no pools to contract slices on")
    timings = _common.Timings()
    n = circuit.num_qubits
    with timings.stage("plan"):
        if plan is None:
            tn = build_network(circuit, params.quantity, bitstring, pauli, qubits)
            plan = plan_slices(
                tn, params.task_memory_mb, max_repeats=params.max_repeats, max_time=params.max_time
            )
    if timings.seconds["plan"] < plan.search_s:  # searched in prepare(), before the pools
        timings.seconds["plan"] = plan.search_s
    slots = sum(max(1, ctx.pools[p].workers) if p in ctx.pools else 1 for p in pools)
    per_task = params.slices_per_task or max(1, math.ceil(plan.nslices / (4 * slots)))
    groups = [
        list(range(i, min(i + per_task, plan.nslices))) for i in range(0, plan.nslices, per_task)
    ]

    ref_method = reference_method(circuit, params.reference)
    with timings.stage("warmup"):
        warm = [
            _common.submit(
                ctx, warm_up_contraction, p, task=f"warmup-{p}-{i}", kind="warmup", cache=False
            )
            for p in pools
            for i in range(max(1, ctx.pools[p].workers) if p in ctx.pools else 1)
        ]
        for fut in warm:
            fut.result()
    with timings.stage("contract"):
        futures = []
        for k, group in enumerate(groups):
            pool = pools[k % len(pools)]
            futures.append(
                _common.submit(
                    ctx,
                    contract_slices,
                    pool,
                    plan.tree,
                    plan.arrays,
                    group,
                    task=f"slices-{group[0]}-{group[-1]}",
                    kind="tn-slices",
                    qubits=n,
                    cache=False,  # the contraction tree is a cotengra object, new each run
                )
            )
        partials = []
        for k, fut in enumerate(futures):
            partials.append(fut.result().value)
            ctx.progress("+".join(pools), k + 1, len(futures))
        scale = 10.0**plan.exponent
        value = complex(sum(partials)) * scale
    ref = None
    if ref_method is not None:  # after the slices, so the two timings do not share workers
        with timings.stage("reference"):
            if params.quantity == "amplitude":
                assert bitstring is not None
                wanted: dict[str, Any] = {
                    "amplitudes": [sum(int(bit) << i for i, bit in enumerate(bitstring))]
                }
            else:
                assert pauli is not None and qubits is not None
                wanted = {
                    "observables": [SparsePauliOp.from_sparse_list([(pauli, list(qubits), 1.0)], n)]
                }
            ref_future = _common.submit(
                ctx,
                exact_values,
                pools[0],
                circuit,
                task="reference",
                kind="reference",
                qubits=n,
                method=ref_method,
                **wanted,
            )
            ref = complex(ref_future.result()[0])

    mpi: dict[str, Any] = {"ran": False}
    reason = mpi_unavailable_reason(params.mpi_pool) if params.mpi_pool else "no MPI pool requested"
    if reason is None and params.mpi_pool is not None:
        with timings.stage("mpi"):
            spec = {
                "num_nodes": 1,
                "num_ranks": params.mpi_ranks,
                "ranks_per_node": params.mpi_ranks,
                "launcher_options": params.mpi_launcher_options,
            }
            app = __import__("parsl").python_app(mpi_contract_slices, executors=[params.mpi_pool])
            fut = app(plan.tree, plan.arrays, plan.nslices, parsl_resource_specification=spec)
            ctx.recorder.track(fut, task="mpi-slices", kind="mpi", pool=params.mpi_pool, qubits=n)
            outcome: MPIOutcome = fut.result()
        mpi_value = outcome.value * scale
        mpi = {
            "ran": True,
            "value": mpi_value,
            "ranks": outcome.ranks,
            "slices_per_rank": outcome.slices_per_rank,
            "launcher": outcome.launcher,
            "abs_error": abs(mpi_value - value),
        }
    else:
        mpi["skipped"] = reason

    abs_err = abs(value - ref) if ref is not None else None
    rel_err = abs_err / abs(ref) if ref is not None and abs_err is not None and ref != 0 else None
    result = DistributedSimResult(
        value=value,
        reference=ref,
        reference_method=ref_method,
        abs_error=abs_err,
        rel_error=rel_err,
        quantity=params.quantity,
        qubits=n,
        nslices=plan.nslices,
        tasks=len(groups),
        width_unsliced=plan.width_unsliced,
        width_sliced=plan.width_sliced,
        flops_overhead=plan.flops_sliced / plan.flops_unsliced if plan.flops_unsliced else 1.0,
        task_memory_bytes=int(params.task_memory_mb * 2**20),
        max_intermediate_bytes=int(2**plan.width_sliced) * ITEMSIZE,
        peak_task_bytes=plan.peak_bytes,
        input_bytes=plan.input_bytes,
        statevector_bytes=ITEMSIZE * 2**n,
        mpi=mpi,
        timings={},
        run_dir=ctx.run_dir,
    )
    with timings.stage("report"):
        result.figure = _figure(
            [p * scale for p in partials], result, ctx.run_dir / "distributed_sim.png"
        )
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def run(
    circuit: QuantumCircuit | None = None,
    params: DistributedSimParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/distributed-simulation",
    **overrides: Any,
) -> DistributedSimResult:
    """Simulate a circuit as a sliced tensor network with the loaded Parsl config.

    Parameters
    ----------
    circuit : QuantumCircuit, optional
        The circuit (unitary, no measurements); None: the grid circuit (or QASM file) that
        ``params`` describe.
    params : DistributedSimParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        The pools that contract slices; default ``cpu`` (and ``gpu`` when configured).
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figure go.
    **overrides : Any
        Fields of :class:`DistributedSimParams` that replace those of ``params``, e.g.
        ``quantity="expectation", pauli="ZX", qubits=(3, 4)``.

    Returns
    -------
    DistributedSimResult
        The run's result.
    """
    params = dataclasses.replace(params or DistributedSimParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("cpu", "gpu"))
    ctx = _common.make_context(run_dir, chosen)
    if circuit is None:
        circuit = load_circuit(params)
    return execute(ctx, circuit, params, pools=chosen)


def load_circuit(params: DistributedSimParams, base_dir: Path | None = None) -> QuantumCircuit:
    """The circuit ``params`` describe: the QASM file when given (a relative path is also
    looked up from ``base_dir``), else a :func:`grid_circuit`."""
    if params.qasm is not None:
        (circuit,) = _common.read_qasm_files([params.qasm], base_dir)
        return circuit
    return grid_circuit(params.rows, params.cols, params.depth, params.seed)


@dataclass
class PreparedSimulation:
    """A template's circuit and contraction plan, made before any pool starts."""

    circuit: QuantumCircuit
    plan: SlicedContraction


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> PreparedSimulation:
    """Load the circuit, check the quantity's inputs and find the sliced contraction tree, on
    the driver, before any pool starts: bad input and impossible budgets fail here."""
    params = DistributedSimParams.from_template(template)
    circuit = load_circuit(params, base_dir)
    bitstring, pauli, qubits = params.inputs_for(circuit.num_qubits)
    tn = build_network(circuit, params.quantity, bitstring, pauli, qubits)
    plan = plan_slices(
        tn, params.task_memory_mb, max_repeats=params.max_repeats, max_time=params.max_time
    )
    return PreparedSimulation(circuit, plan)


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: distributed-simulation`` template in a loaded DataFlowKernel.

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
    prep = ctx.prepared
    if not isinstance(prep, PreparedSimulation):
        prep = prepare(template, ctx.pools)
    params = DistributedSimParams.from_template(template)
    pools = _common.template_pools(template, ctx, ("cpu", "gpu"))
    result = execute(
        ctx,
        prep.circuit,
        params,
        pools=[p for p in pools if p != params.mpi_pool] or pools,
        plan=prep.plan,
    )
    return result.to_dict()
