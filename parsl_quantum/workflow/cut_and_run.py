"""The main job: cut a circuit, evaluate subexperiments as Parsl apps on pools, reconstruct.

Usable three ways: ``parsl-quantum run workflows/circuit-cutting.yaml`` (through
:func:`run_template`), or :func:`cut_and_run` inside any Parsl script whose loaded Config has
pools labelled ``cpu``/``gpu``/``qpu`` (or any labels whose executors name their backends).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import parsl
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.circuits import (
    CIRCUIT_SCHEMA,
    ReferenceMethod,
    circuit_from_spec,
    exact_values,
    parse_observable,
)
from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.normalize import Normalized, normalize
from parsl_quantum.cutting.problem import CutProblem, recut
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.reconstruct import reconstruct_all
from parsl_quantum.executors import PoolInfo
from parsl_quantum.executors.subexperiments import BatchResult, evaluate_subexperiments
from parsl_quantum.executors.whole import evaluate_whole
from parsl_quantum.planner.cost import CostModel, load_model
from parsl_quantum.planner.dispatch import Dispatcher
from parsl_quantum.planner.partitioning import interaction_graph, qubit_order
from parsl_quantum.planner.plan import (
    DISPATCH_PREFETCH,
    Mode,
    PlanResult,
    all_rows,
    payload_program,
    plan_workload,
    runs_exact,
    shot_allocation,
)
from parsl_quantum.planner.report import describe_configuration, save_plan
from parsl_quantum.reliability import memo_ids as _memo  # noqa: F401 - memo ids for cache=True
from parsl_quantum.reliability.failover import run_policy
from parsl_quantum.workflow.context import RunContext, TaskRecorder

#: The largest planning problem taken: qubits x ceil(qubits / max_subcircuit_qubits), which the
#: planner's time grows with (about 20 s at the limit, 200 qubits in pieces of 10, on 2 cores).
MAX_PLAN_SIZE = 4000
#: The most shots a cutting job takes (spread over all its subexperiments).
MAX_SHOTS = 10**9
#: Seeds are non-negative and fit in 32 bits (each task's seed is derived from it).
MAX_SEED = 2**32 - 1

#: One line for the list of template kinds.
DESCRIPTION = "Cut a wide circuit, run subexperiments on pools, reconstruct an expectation value."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "properties": {
        "circuit": CIRCUIT_SCHEMA,
        "observable": {"type": "string", "minLength": 1},
        "planner": {
            "type": "object",
            "properties": {
                # unset or null: the planner may also run the circuit uncut
                "max_subcircuit_qubits": {"type": ["integer", "null"], "minimum": 1},
                "partitions": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                "profile": {"type": "string"},
                "memory_limit_gb": {"type": "number", "exclusiveMinimum": 0},
                "wire_cuts": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "execution": {
            "type": "object",
            "properties": {
                "mode": {"enum": ["auto", "exact", "sampled"]},
                "shots": {"type": "integer", "minimum": 1, "maximum": MAX_SHOTS},
                "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                "reference": {"enum": ["auto", "always", "never"]},
                "failover": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    },
    "required": ["circuit"],
}


@dataclass(frozen=True)
class CuttingParams:
    """The parameters of a cutting job: one ``kind: circuit-cutting`` template body, and the
    parameters of the circuit-cutting mini-app's ``run``.

    Where the job runs (the pools, the run directory) is not a parameter.

    Attributes
    ----------
    family : str
        The circuit generator: ``efficient_su2``, ``qaoa``, ``random_2local``, ``bus`` or
        ``clustered`` (ignored when ``circuit_options`` names a ``qasm`` file).
    qubits : int
        The generated circuit's width.
    circuit_options : Mapping[str, Any]
        The generator's other options (``reps``, ``entanglement``, ``graph``, ``depth``,
        ``clusters``, ``links``, ``seed``: the circuit's own seed, 1234 when absent), or
        ``qasm``: a QASM file read instead of generating a circuit.
    observable : str
        ``mean-z`` or comma-separated Pauli labels.
    max_subcircuit_qubits : int or None
        The widest piece; None lets the planner also run the circuit uncut on one simulator
        pool when that is predicted faster.
    partitions : tuple of int or None
        The partition counts the planner may choose among; None: any.
    profile : str or None
        A cost-model profile written by ``parsl-quantum calibrate``; None: the default one.
    memory_limit_gb : float
        The most memory the tasks running at once may need.
    wire_cuts : bool
        Whether the planner also weighs cutting wires.
    mode : Mode
        Evaluate subexperiments ``exact``, ``sampled``, or as the planner finds cheaper
        (``auto``).
    shots : int
        Shot budget of a sampled evaluation.
    seed : int or None
        Seed of the sampling and the bootstrap.
    reference : str
        ``auto`` (an exact reference by direct simulation when cheap), ``always`` or ``never``.
    failover : bool
        Whether work may move to a pool of another physical model when its own is lost.
    """

    family: str = "efficient_su2"
    qubits: int = 16
    circuit_options: Mapping[str, Any] = field(default_factory=dict)
    observable: str = "mean-z"
    max_subcircuit_qubits: int | None = None
    partitions: tuple[int, ...] | None = None
    profile: str | None = None
    memory_limit_gb: float = 8.0
    wire_cuts: bool = True
    mode: Mode = "auto"
    shots: int = 100_000
    seed: int | None = None
    reference: str = "auto"
    failover: bool = False

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> CuttingParams:
        """The parameters of a validated ``kind: circuit-cutting`` template body.

        Parameters
        ----------
        body : Mapping[str, Any]
            The template's data (``circuit``, ``observable``, ``planner``, ``execution``);
            what it leaves out keeps its default.

        Returns
        -------
        CuttingParams
            The parameters.
        """
        circuit = dict(body.get("circuit", {}))
        planner = body.get("planner") or {}
        execution = body.get("execution") or {}
        given: dict[str, Any] = {}
        if "generator" in circuit:
            given["family"] = circuit.pop("generator")
        if "qubits" in circuit:
            given["qubits"] = circuit.pop("qubits")
        given["circuit_options"] = circuit
        if "observable" in body:
            given["observable"] = body["observable"]
        if planner.get("partitions") is not None:
            given["partitions"] = tuple(planner["partitions"])
        given |= {
            k: planner[k]
            for k in ("max_subcircuit_qubits", "profile", "memory_limit_gb", "wire_cuts")
            if k in planner
        }
        given |= {
            k: execution[k]
            for k in ("mode", "shots", "seed", "reference", "failover")
            if k in execution
        }
        return cls(**given)

    def circuit_spec(self) -> dict[str, Any]:
        """The circuit as a template's ``circuit`` section names it.

        Returns
        -------
        dict[str, Any]
            ``{"qasm": ...}`` plus options for a QASM file, else the generator, its width and
            its options (:func:`parsl_quantum.circuits.circuit_from_spec` reads either).
        """
        if "qasm" in self.circuit_options:
            return dict(self.circuit_options)
        return {"generator": self.family, "qubits": self.qubits, **self.circuit_options}


#: Exact references are computed with Aer's statevector up to this width, MPS beyond.
STATEVECTOR_REFERENCE_QUBITS = 24
#: ... and MPS only when the interaction graph is this narrow along its best linear order.
MPS_REFERENCE_BANDWIDTH = 4


@dataclass
class CuttingResult:
    """The answer and how it was obtained. ``to_dict()`` is the ``--json`` document.

    Attributes
    ----------
    value : float
        The reconstructed expectation value.
    std_error : float
        The statistical (shot-noise) error of ``value``, by bootstrap through the
        reconstruction; 0 when every subexperiment was evaluated exactly. It does not include
        the bias of a noisy device: ``configuration["noisy_backends"]`` names any that ran a
        partition.
    reference : float or None
        The exact value by direct simulation where that is cheap, else None.
    configuration : dict[str, Any]
        The plan and the run.
    timings : dict[str, float]
        Seconds per phase.
    tasks : int
        Evaluate tasks run.
    run_dir : str or None
        The run directory, if any.
    plan : PlanResult or None
        The plan that was run.
    """

    value: float
    std_error: float
    reference: float | None
    configuration: dict[str, Any]
    timings: dict[str, float]
    tasks: int
    run_dir: str | None
    plan: PlanResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document.

        Returns
        -------
        dict[str, Any]
            Every field but ``plan``, as plain data.
        """
        keys = ("value", "std_error", "reference", "configuration", "timings", "tasks", "run_dir")
        data = asdict(self)
        return {k: data[k] for k in keys}


@dataclass
class CuttingBatchResult:
    """Values of several observables over several parameter sets, from one plan and one cut.

    ``configuration``, ``timings`` and ``tasks`` describe the plan and the whole run, as in
    :class:`CuttingResult`.

    Attributes
    ----------
    values : numpy.ndarray
        ``values[s, k]`` is observable k's expectation value with parameter set s bound.
    std_errors : numpy.ndarray
        ``std_errors[s, k]`` is its statistical error (see :class:`CuttingResult`).
    references : numpy.ndarray or None
        The exact values by direct simulation where that is cheap (else None).
    configuration : dict[str, Any]
        The plan and the run.
    timings : dict[str, float]
        Seconds per phase, summed over the parameter sets.
    tasks : int
        Evaluate tasks run, over all parameter sets.
    run_dir : str or None
        The run directory, if any.
    plan : PlanResult or None
        The plan that was run.
    """

    values: np.ndarray
    std_errors: np.ndarray
    references: np.ndarray | None
    configuration: dict[str, Any]
    timings: dict[str, float]
    tasks: int
    run_dir: str | None
    plan: PlanResult | None = field(default=None, repr=False)


def loaded_pools(pools: Sequence[str] | None = None) -> dict[str, PoolInfo]:
    """Pools of the currently loaded Parsl DataFlowKernel (optionally only some of them).

    Parameters
    ----------
    pools : Sequence[str] or None
        The pools wanted; None for all.

    Returns
    -------
    dict[str, PoolInfo]
        The pools by name.

    Raises
    ------
    ValueError
        When a pool named is not configured.
    """
    from parsl_quantum.executors import loaded_executors, pool_infos

    infos = pool_infos(loaded_executors(parsl.dfk()))
    if pools is None:
        return infos
    missing = [p for p in pools if p not in infos]
    if missing:
        raise ValueError(f"unknown pool {missing[0]!r} (configured: {', '.join(infos)})")
    return {p: infos[p] for p in pools}


def plan_cutting(
    circuit: QuantumCircuit,
    observable: SparsePauliOp | Sequence[SparsePauliOp],
    pools: Mapping[str, PoolInfo],
    *,
    max_subcircuit_qubits: int | None = None,
    mode: Mode = "auto",
    shots: int = 100_000,
    profile: str | Path | None = None,
    partitions: Sequence[int] | None = None,
    memory_limit_gb: float = 8.0,
    wire_cuts: bool = True,
) -> PlanResult:
    """Plan without running: candidate configurations, their predicted makespans, the choice.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit.
    observable : SparsePauliOp or Sequence of SparsePauliOp
        One or several observables.
    pools : Mapping[str, PoolInfo]
        The pools by name.
    max_subcircuit_qubits : int or None
        Widest piece; unset lets the planner choose between the whole circuit uncut on one
        simulator pool and every cut (see :func:`~parsl_quantum.planner.plan.plan_workload`).
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    profile : str or pathlib.Path or None
        A cost-model profile written by ``parsl-quantum calibrate``.
    partitions : Sequence[int] or None
        Keep only candidates with these partition counts.
    memory_limit_gb : float
        Memory a task may use, in GiB.
    wire_cuts : bool
        Let the planner also consider the cut of qiskit-addon-cutting's ``find_cuts`` when it
        uses wire cuts.

    Returns
    -------
    PlanResult
        The candidates, their predicted makespans and the choice.
    """
    model = load_model(profile, {name: info.kind for name, info in pools.items()})
    return plan_workload(
        circuit,
        observable,
        pools,
        max_subcircuit_qubits=max_subcircuit_qubits,
        model=model,
        mode=mode,
        shots=shots,
        parts=partitions,
        memory_limit=int(memory_limit_gb * 1024**3),
        wire_cuts=wire_cuts,
    )


def parameter_sets(circuit: QuantumCircuit, parameter_values: np.ndarray | None) -> np.ndarray:
    """``parameter_values`` as an array of parameter sets, checked against ``circuit``.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit whose parameters the values bind.
    parameter_values : numpy.ndarray or None
        One set (1-D) or several (2-D); None for a circuit without parameters.

    Returns
    -------
    numpy.ndarray
        Shape (sets, circuit.num_parameters), columns in the order of ``circuit.parameters``;
        one empty set for a circuit without parameters.

    Raises
    ------
    CuttingError
        When the shape does not fit the circuit's parameters.
    """
    k = circuit.num_parameters
    values = np.zeros((1, 0)) if parameter_values is None else np.asarray(parameter_values, float)
    if k == 0 and values.size == 0:
        return np.zeros((1, 0))
    if values.ndim == 1 and k:
        values = values.reshape(1, -1)
    if values.ndim != 2 or values.shape[1] != k or values.shape[0] == 0:
        names = ", ".join(p.name for p in list(circuit.parameters)[:5])
        raise CuttingError(
            f"parameter_values has shape {values.shape} but the circuit has {k} parameter(s)"
            + (f" ({names}); give an array of shape (sets, {k})" if k else "")
        )
    return values


def cut_and_run_batch(
    circuit: QuantumCircuit,
    observables: Sequence[SparsePauliOp],
    parameter_values: np.ndarray | None = None,
    *,
    pools: Sequence[str] | None = None,
    max_subcircuit_qubits: int | None = None,
    mode: Mode = "auto",
    shots: int = 100_000,
    seed: int | None = None,
    reference: str = "auto",
    profile: str | Path | None = None,
    run_dir: str | Path | None = None,
    recorder: TaskRecorder | None = None,
    plan: PlanResult | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CuttingBatchResult:
    """Cut ``circuit`` once and evaluate every observable for every parameter set.

    Planning and cutting happen once, on the circuit bound to the first parameter set; each
    further set re-binds the same cuts (:func:`~parsl_quantum.cutting.problem.recut`: the
    subexperiments' gate matrices and the QPD coefficients of cut parametric gates follow the
    new values) and runs on the loaded Config's pools. ``parameter_values`` has shape
    (sets, circuit.num_parameters), columns in the order of ``circuit.parameters``; None for a
    circuit without parameters. Observables act on the circuit's qubits, or on its logical
    qubits when it has a layout (see :mod:`parsl_quantum.cutting.normalize`).

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit, with or without parameters.
    observables : Sequence[SparsePauliOp]
        At least one observable.
    parameter_values : numpy.ndarray or None
        The parameter sets (see :func:`parameter_sets`).
    pools : Sequence[str] or None
        The loaded Config's pools to use; None for all.
    max_subcircuit_qubits : int or None
        Widest piece; unset lets the planner also run the circuit uncut on one simulator pool
        when that is predicted faster.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    seed : int or None
        Seed of sampling and of the bootstrap.
    reference : str
        ``auto`` (direct simulation when cheap), ``always`` or ``never``.
    profile : str or pathlib.Path or None
        A cost-model profile written by ``parsl-quantum calibrate``.
    run_dir : str or pathlib.Path or None
        Where the plan is saved, if anywhere.
    recorder : TaskRecorder or None
        Records each evaluate task.
    plan : PlanResult or None
        A plan made beforehand; None plans here.
    progress : callable or None
        ``progress(pool, done, bound)`` reports progress.

    Returns
    -------
    CuttingBatchResult
        The values, their errors and references, and how they were obtained.

    Raises
    ------
    CuttingError
        When no observable is given, the parameter values do not fit, or a parameter set
        changes the subexperiments of a cut gate.
    """
    observables = list(observables)
    if not observables:
        raise CuttingError("give at least one observable")
    values_in = parameter_sets(circuit, parameter_values)
    timings: dict[str, float] = {}
    infos = loaded_pools(pools)
    bound = [circuit.assign_parameters(row) if len(row) else circuit for row in values_in]
    if plan is None:
        t0 = time.perf_counter()
        plan = plan_cutting(
            bound[0],
            observables,
            infos,
            max_subcircuit_qubits=max_subcircuit_qubits,
            mode=mode,
            shots=shots,
            profile=profile,
        )
        timings["plan"] = time.perf_counter() - t0
    else:
        timings["plan"] = plan.planning_time
    assert plan.normalized is not None
    timings.update(bind=0.0, evaluate=0.0, reconstruct=0.0)
    n_sets, n_obs = len(bound), len(observables)
    values = np.zeros((n_sets, n_obs))
    errors = np.zeros((n_sets, n_obs))
    refs: np.ndarray | None = np.full((n_sets, n_obs), np.nan) if reference != "never" else None
    results: dict[str, BatchResult] = {}
    for s, qc in enumerate(bound):
        t0 = time.perf_counter()
        if s == 0:
            norm, problem = plan.normalized, plan.chosen.problem
        else:
            norm, problem = rebind(plan, qc, observables)
        coeffs = norm.coefficient_matrix(problem.term_labels)
        timings["bind"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        set_seed = None if seed is None else seed + 104_729 * s
        results = execute_plan(
            plan, infos, mode, shots, set_seed, recorder, progress, problem=problem
        )
        timings["evaluate"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        values[s], errors[s] = reconstruct_all(
            problem, plan.chosen.graph, results, set_seed, coeffs
        )
        timings["reconstruct"] += time.perf_counter() - t0
        if refs is not None:
            t0 = time.perf_counter()
            method = reference_method(norm.circuit, force=reference == "always")
            if method is None:
                refs = None
            else:
                evs = exact_values(norm.circuit, norm.term_labels, method=method).real
                refs[s] = norm.coefficients @ evs
            timings["reference"] = timings.get("reference", 0.0) + time.perf_counter() - t0
    if n_sets == 1:
        del timings["bind"]
    configuration = describe_configuration(plan, results)
    if run_dir is not None:
        save_plan(Path(run_dir), plan, results)
    evaluate_nodes = sum(
        1 for _, d in plan.chosen.graph.nodes(data=True) if d["kind"] == "evaluate"
    )
    return CuttingBatchResult(
        values,
        errors,
        refs,
        configuration,
        timings,
        evaluate_nodes * n_sets,
        str(run_dir) if run_dir is not None else None,
        plan,
    )


def rebind(
    plan: PlanResult, circuit: QuantumCircuit, observables: Sequence[SparsePauliOp]
) -> tuple[Normalized, CutProblem]:
    """The plan's cuts applied to ``circuit`` bound to another parameter set.

    Parameters
    ----------
    plan : PlanResult
        The plan, made for the first parameter set.
    circuit : QuantumCircuit
        The circuit bound to another parameter set.
    observables : Sequence[SparsePauliOp]
        The observables.

    Returns
    -------
    tuple[Normalized, CutProblem]
        The circuit's normalized form and its cut problem, with partitions of the shapes the
        plan's tasks were made for.

    Raises
    ------
    CuttingError
        When the values change the subexperiments of a cut gate (a special angle).
    """
    norm = normalize(circuit, observables)
    problem = norm.locate(recut(plan.chosen.problem, norm.circuit, norm.observable))
    planned = plan.chosen.problem
    if [p.shape[1:] for p in problem.partitions] != [p.shape[1:] for p in planned.partitions]:
        raise CuttingError(
            "these parameter values change the subexperiments of a cut gate (a special angle); "
            "run them as a separate batch"
        )
    return norm, problem


def cut_and_run(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    *,
    pools: Sequence[str] | None = None,
    max_subcircuit_qubits: int | None = None,
    mode: Mode = "auto",
    shots: int = 100_000,
    seed: int | None = None,
    reference: str = "auto",
    profile: str | Path | None = None,
    run_dir: str | Path | None = None,
    recorder: TaskRecorder | None = None,
    plan: PlanResult | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CuttingResult:
    """Cut ``circuit``, evaluate its subexperiments on the loaded Config's pools, reconstruct
    the expectation value of ``observable`` (:func:`cut_and_run_batch` with one observable and
    no parameters).

    ``max_subcircuit_qubits`` unset lets the planner also run the circuit uncut on one
    simulator pool when that is predicted faster; set, it bounds every piece. Call it inside ``with
    parsl.load(config):`` with your own Config; pools are executors labelled by name.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit, with every parameter bound.
    observable : SparsePauliOp
        The observable.
    pools : Sequence[str] or None
        The loaded Config's pools to use; None for all.
    max_subcircuit_qubits : int or None
        Widest piece; unset lets the planner also run the circuit uncut on one simulator pool
        when that is predicted faster.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    seed : int or None
        Seed of sampling and of the bootstrap.
    reference : str
        ``auto`` (direct simulation when cheap), ``always`` or ``never``.
    profile : str or pathlib.Path or None
        A cost-model profile written by ``parsl-quantum calibrate``.
    run_dir : str or pathlib.Path or None
        Where the plan is saved, if anywhere.
    recorder : TaskRecorder or None
        Records each evaluate task.
    plan : PlanResult or None
        A plan made beforehand; None plans here.
    progress : callable or None
        ``progress(pool, done, bound)`` reports progress.

    Returns
    -------
    CuttingResult
        The value, its error and reference, and how it was obtained.

    Raises
    ------
    CuttingError
        When the circuit has unbound parameters.
    """
    if circuit.num_parameters:
        names = ", ".join(p.name for p in list(circuit.parameters)[:5])
        raise CuttingError(
            f"circuit has unbound parameters: {names}; bind them, or give their values to "
            "cut_and_run_batch"
        )
    batch = cut_and_run_batch(
        circuit,
        [observable],
        None,
        pools=pools,
        max_subcircuit_qubits=max_subcircuit_qubits,
        mode=mode,
        shots=shots,
        seed=seed,
        reference=reference,
        profile=profile,
        run_dir=run_dir,
        recorder=recorder,
        plan=plan,
        progress=progress,
    )
    ref = None if batch.references is None else float(batch.references[0, 0])
    return CuttingResult(
        float(batch.values[0, 0]),
        float(batch.std_errors[0, 0]),
        ref,
        batch.configuration,
        batch.timings,
        batch.tasks,
        batch.run_dir,
        batch.plan,
    )


def execute_plan(
    plan: PlanResult,
    pools: Mapping[str, PoolInfo],
    mode: Mode,
    shots: int,
    seed: int | None,
    recorder: TaskRecorder | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    prefetch: int = DISPATCH_PREFETCH,
    lost_after: float = 60.0,
    max_failures: int = 3,
    poll_period: float = 0.2,
    problem: CutProblem | None = None,
) -> dict[str, BatchResult]:
    """Run the evaluate tasks of the chosen DAG and wait for all results.

    Tasks are bound to pools late, at submission, by the
    :class:`~parsl_quantum.planner.dispatch.Dispatcher`: in the plan's rank order, each to the
    allowed pool where it is predicted to finish first given live capacity, at most
    ``prefetch`` tasks beyond a pool's connected worker slots. A pool with no connected workers
    for ``lost_after`` seconds, or ``max_failures`` failures in a row, loses its work to the
    others. What happened (pool per task, predicted and measured seconds, failovers) is kept in
    ``plan.execution`` and each evaluate node's ``pool`` becomes the pool that ran it (the
    plan's choice stays in ``planned_pool``). ``problem`` replaces the plan's cut problem by
    one of the same shapes (the plan's cuts bound to other parameters).

    Parameters
    ----------
    plan : PlanResult
        The plan; its ``execution`` and its graph's ``pool`` entries are updated.
    pools : Mapping[str, PoolInfo]
        The pools by name.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    seed : int or None
        Seed of sampling.
    recorder : TaskRecorder or None
        Records each evaluate task.
    progress : callable or None
        ``progress(pool, done, bound)`` reports progress.
    prefetch : int
        Tasks a pool may hold beyond its connected worker slots.
    lost_after : float
        Seconds without connected workers after which a pool loses its work.
    max_failures : int
        Failures in a row after which a pool loses its work.
    poll_period : float
        Seconds between the dispatcher's looks at the pools.
    problem : CutProblem or None
        Replaces the plan's cut problem.

    Returns
    -------
    dict[str, BatchResult]
        Each evaluate node's results.
    """
    graph = plan.chosen.graph
    problem = problem if problem is not None else plan.chosen.problem
    allocation = shot_allocation(problem, shots) if mode != "exact" else None
    rows_of = [all_rows(problem, p) for p in range(len(problem.partitions))]
    payloads = {
        (p, exact): payload_program(part, exact)
        for p, part in enumerate(problem.partitions)
        for exact in (True, False)
    }
    apps = {name: pool_app(evaluate_subexperiments, name) for name in pools}
    whole_apps = {name: pool_app(evaluate_whole, name) for name in pools}

    def submit(node: str, pool_name: str) -> Future:
        data = graph.nodes[node]
        pool = pools[pool_name]
        p = data["partition"]
        if "whole" in data:
            return submit_whole(node, pool_name, problem.partitions[p], data)
        lo, hi = data["rows"]
        exact = runs_exact(pool, mode)
        node_shots = None if exact or allocation is None else allocation[p][lo:hi].tolist()
        total_shots = int(sum(node_shots or []))
        fut = apps[pool_name](
            payloads[p, exact],
            rows_of[p][lo:hi],
            backend=pool.backends[0],
            mode="exact" if exact else "sampled",
            shots=node_shots,
            seed=None if seed is None else seed + lo + 7919 * p,
            parsl_resource_specification=pool.resource_spec(data["qubits"], total_shots),
        )
        if recorder is not None:
            recorder.track(
                fut,
                task=node,
                kind="evaluate",
                pool=pool_name,
                backend=pool.backends[0],
                qubits=data["qubits"],
                shots=total_shots,
            )
        return fut

    def submit_whole(
        node: str, pool_name: str, program: PartitionProgram, data: Mapping[str, Any]
    ) -> Future:
        pool = pools[pool_name]
        fut = whole_apps[pool_name](
            program.circuit,
            list(program.observables),
            backend=pool.backends[0],
            **data["whole"],
            device="GPU" if pool.kind == "gpu-sim" else "CPU",
            parsl_resource_specification=pool.resource_spec(data["qubits"]),
        )
        if recorder is not None:
            recorder.track(
                fut,
                task=node,
                kind="evaluate",
                pool=pool_name,
                backend=pool.backends[0],
                qubits=data["qubits"],
                shots=0,
            )
        return fut

    # the run's failover policy, carried by its retry handler: both move tasks by one rule set
    # and record every move in one list
    dispatcher = Dispatcher(
        graph,
        pools,
        submit,
        failover=run_policy(parsl.dfk().config.retry_handler, pools),
        executors=parsl.dfk().executors,
        measured=lambda r: float(r.finished - r.started),
        prefetch=prefetch,
        poll_period=poll_period,
        lost_after=lost_after,
        max_failures=max_failures,
        on_done=progress,
    )
    results = dispatcher.run()
    plan.execution = dispatcher.report
    for node, record in dispatcher.report.tasks.items():
        graph.nodes[node].setdefault("planned_pool", graph.nodes[node].get("pool"))
        graph.nodes[node]["pool"] = record.pool
    return results


@functools.cache
def pool_app(function: Callable[..., Any], pool: str) -> Any:
    """The Parsl app of a task function on one pool, made once per process.

    Each ``python_app`` wraps its function anew, and Parsl serialises that wrapper by value
    (about a millisecond) for the first task of each app, so a fresh app per run paid it every
    run. An app names its pool by label and uses the DataFlowKernel loaded when it is called.

    Parameters
    ----------
    function : callable
        The task function.
    pool : str
        The pool's executor label.

    Returns
    -------
    parsl.app.python.PythonApp
        The app, submitting with ``cache=True`` (the loaded Config's memoizer decides).
    """
    return parsl.python_app(function, executors=[pool], cache=True)


def reference_method(circuit: QuantumCircuit, *, force: bool = False) -> ReferenceMethod | None:
    """The Aer method of a cheap exact reference for ``circuit`` (None: no cheap method).

    Narrow circuits (interaction-graph bandwidth along the best qubit order at most
    :data:`MPS_REFERENCE_BANDWIDTH`) use the MPS method, untruncated, at any width; others the
    statevector method up to :data:`STATEVECTOR_REFERENCE_QUBITS` qubits; ``force`` takes MPS
    for wider ones regardless. The reference itself is
    :func:`parsl_quantum.circuits.exact_values`.

    Parameters
    ----------
    circuit : QuantumCircuit
        The circuit.
    force : bool
        Take MPS for circuits too wide for the statevector method regardless.

    Returns
    -------
    ReferenceMethod or None
        ``matrix_product_state``, ``statevector``, or None.
    """
    if _bandwidth(circuit) <= MPS_REFERENCE_BANDWIDTH or (
        force and circuit.num_qubits > STATEVECTOR_REFERENCE_QUBITS
    ):
        return "matrix_product_state"
    if circuit.num_qubits <= STATEVECTOR_REFERENCE_QUBITS:
        return "statevector"
    return None


def _bandwidth(circuit: QuantumCircuit) -> int:
    graph = interaction_graph(circuit)
    pos = {q: i for i, q in enumerate(qubit_order(graph))}
    return max((abs(pos[a] - pos[b]) for a, b in graph.edges), default=0)


# -- template kind --------------------------------------------------------------------------


@dataclass
class Prepared:
    """A validated, planned cutting job, ready to run once the pools are up.

    Attributes
    ----------
    circuit : QuantumCircuit
        The circuit.
    observable : SparsePauliOp
        The observable.
    plan : PlanResult
        The chosen plan.
    mode : Mode
        ``auto``, ``exact`` or ``sampled``.
    shots : int
        Shot budget of sampled evaluation.
    seed : int or None
        Seed of sampling.
    reference : str
        ``auto``, ``always`` or ``never``.
    """

    circuit: QuantumCircuit
    observable: SparsePauliOp
    plan: PlanResult
    mode: Mode
    shots: int
    seed: int | None
    reference: str

    @property
    def pools_used(self) -> list[str]:
        """Pools the chosen plan assigns tasks to: the others may start cold."""
        return self.plan.chosen.pools_used

    def pools_reachable(self, pools: Mapping[str, PoolInfo]) -> list[str]:
        """Pools any task of the run may go to: the plan's, and those its tasks may fail over
        to. When every task of the plan is exact, that is the exact pools only (exact work
        never moves to a sampling pool), so a run need not start its QPU pools at all.

        Parameters
        ----------
        pools : mapping of str to PoolInfo
            Every pool of the run, described.

        Returns
        -------
        list of str
            Labels, in the order of ``pools``.
        """
        used = set(self.pools_used)
        if all(runs_exact(pools[p], self.mode) for p in used if p in pools):
            return [p for p, info in pools.items() if p in used or info.exact]
        return list(pools)


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> Prepared:
    """Validate and plan a circuit-cutting template: everything that can fail on bad input,
    done before any pool starts or any task is submitted.

    Parameters
    ----------
    template : mapping
        The template's data (``circuit``, ``observable``, ``planner``, ``execution``).
    pools : mapping of str to PoolInfo
        The pools the plan may use.
    base_dir : Path, optional
        Where relative paths in the template (a QASM file) are resolved.

    Returns
    -------
    Prepared
        The circuit, observable, chosen plan and execution settings; its ``pools_used`` lets
        the caller start the other pools cold.

    Raises
    ------
    ValueError
        Bad input: the circuit, the observable, or a planning problem too large or with no
        feasible cut.
    """
    params = CuttingParams.from_template(template)
    circuit = circuit_from_spec(params.circuit_spec(), base_dir)
    observable = parse_observable(params.observable, circuit.num_qubits)
    width = params.max_subcircuit_qubits or max(i.max_qubits for i in pools.values())
    size = circuit.num_qubits * -(-circuit.num_qubits // width)
    if size > MAX_PLAN_SIZE:
        raise ValueError(
            f"planner: a {circuit.num_qubits}-qubit circuit in pieces of {width} qubits is too "
            f"large to plan (qubits x pieces = {size} > {MAX_PLAN_SIZE}): raise "
            "max_subcircuit_qubits"
        )
    plan = plan_cutting(
        circuit,
        observable,
        pools,
        max_subcircuit_qubits=params.max_subcircuit_qubits,
        mode=params.mode,
        shots=params.shots,
        profile=params.profile,
        partitions=list(params.partitions) if params.partitions else None,
        memory_limit_gb=params.memory_limit_gb,
        wire_cuts=params.wire_cuts,
    )
    return Prepared(
        circuit, observable, plan, params.mode, params.shots, params.seed, params.reference
    )


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a circuit-cutting template inside a loaded DataFlowKernel.

    Parameters
    ----------
    template : Mapping[str, Any]
        The template's data; planned here unless ``ctx.prepared`` holds its plan.
    ctx : RunContext
        The run's pools, directory, task recorder and progress.

    Returns
    -------
    dict[str, Any]
        The result's ``--json`` document (:meth:`CuttingResult.to_dict`).
    """
    prepared = ctx.prepared if isinstance(ctx.prepared, Prepared) else prepare(template, ctx.pools)
    result = cut_and_run(
        prepared.circuit,
        prepared.observable,
        pools=list(ctx.pools),
        mode=prepared.mode,
        shots=prepared.shots,
        seed=prepared.seed,
        reference=prepared.reference,
        run_dir=ctx.run_dir,
        recorder=ctx.recorder,
        plan=prepared.plan,
        progress=ctx.progress,
    )
    ctx.recorder.write()
    return result.to_dict()


__all__ = [
    "CostModel",
    "CuttingBatchResult",
    "CuttingParams",
    "CuttingResult",
    "cut_and_run",
    "cut_and_run_batch",
    "plan_cutting",
    "reference_method",
    "run_template",
]
