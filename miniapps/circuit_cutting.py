"""Circuit cutting (fan-out/fan-in): the main job as a mini-app.

A circuit family and size are cut into partitions (chosen by the planner, or forced), the
distinct subexperiments fan out as batched Parsl tasks over the pools, and the results fan back
in to one reconstruction. Its template kind is ``circuit-cutting``
(``workflows/circuit-cutting.yaml``), run by :mod:`parsl_quantum.workflow.cut_and_run`; this module
is the plain Python API for Parsl scripts, plus a picture of the fan-out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniapps import _common
from parsl_quantum.circuits import circuit_from_spec, parse_observable
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.planner.plan import Mode
from parsl_quantum.workflow.cut_and_run import (
    CuttingResult,
    cut_and_run,
    plan_cutting,
    prepare,
    run_template,
)

#: The task function this motif fans out (module level, so Globus Compute ships it by name).
TASK_FUNCTION = evaluate_subexperiments

__all__ = ["TASK_FUNCTION", "CuttingParams", "prepare", "run", "run_template"]


@dataclass(frozen=True)
class CuttingParams:
    """The circuit, the observable, the partitioning and the execution of a cutting run.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments.

    Attributes
    ----------
    family : str
        The circuit generator: ``efficient_su2``, ``qaoa``, ``random_2local``, ``bus`` or
        ``clustered``.
    qubits : int
        The circuit's width.
    circuit_options : mapping
        The generator's other options (``reps``, ``entanglement``, ``graph``, ``depth``,
        ``clusters``, ``links``), or ``qasm``: a QASM file instead of a generated circuit;
        ``seed`` here seeds the circuit apart from the execution.
    partitions : int, sequence of int, or None
        Force the number of partitions (or the numbers the planner may choose among); None:
        the planner chooses.
    max_subcircuit_qubits : int or None
        The widest subcircuit; None: the planner chooses freely among running the whole
        circuit uncut on one simulator pool and every cut into pieces the pools can hold.
    observable : str
        ``mean-z`` or comma-separated Pauli labels.
    mode : {"auto", "exact", "sampled"}
        Evaluate subexperiments exactly, by sampling, or as the planner finds cheaper.
    shots : int
        Shots of a sampled evaluation.
    seed : int
        Seed of the circuit (unless ``circuit_options`` has one) and of the sampling.
    """

    family: str = "efficient_su2"
    qubits: int = 16
    circuit_options: Mapping[str, Any] = field(default_factory=dict)
    partitions: int | Sequence[int] | None = None
    max_subcircuit_qubits: int | None = None
    observable: str = "mean-z"
    mode: Mode = "auto"
    shots: int = 100_000
    seed: int = 1234

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> CuttingParams:
        """The parameters of a validated ``kind: circuit-cutting`` template body; what the
        body leaves out keeps its default. The planner's ``profile``, ``memory_limit_gb`` and
        ``wire_cuts`` and the execution's ``reference`` and ``failover`` belong to the
        template runner (:mod:`parsl_quantum.workflow.cut_and_run`) and are not read here."""
        circuit = dict(body["circuit"])
        planner = body.get("planner", {})
        execution = body.get("execution", {})
        given: dict[str, Any] = {}
        if "generator" in circuit:
            given["family"] = circuit.pop("generator")
        if "qubits" in circuit:
            given["qubits"] = circuit.pop("qubits")
        given["circuit_options"] = circuit
        if "partitions" in planner:
            given["partitions"] = tuple(planner["partitions"])
        if "max_subcircuit_qubits" in planner:
            given["max_subcircuit_qubits"] = planner["max_subcircuit_qubits"]
        if "observable" in body:
            given["observable"] = body["observable"]
        given |= {k: execution[k] for k in ("mode", "shots", "seed") if k in execution}
        return cls(**given)


def run(
    family: str | None = None,
    qubits: int | None = None,
    *,
    params: CuttingParams | None = None,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runs/circuit-cutting",
    **overrides: Any,
) -> CuttingResult:
    """Cut a circuit on the loaded Parsl config's pools and reconstruct its observable.

    Writes ``tasks.csv``, ``plan.json`` and ``tasks.png`` (predicted and measured seconds of
    every task, by pool) into ``run_dir``.

    Parameters
    ----------
    family : str, optional
        Shorthand for the field of that name of :class:`CuttingParams`.
    qubits : int, optional
        Shorthand for the field of that name of :class:`CuttingParams`.
    params : CuttingParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        Default ``cpu``.
    run_dir : str or Path
        Where the outputs go.
    **overrides : Any
        Fields of :class:`CuttingParams` that replace those of ``params``; any other keyword
        is a circuit option added to ``circuit_options`` (e.g. ``entanglement="circular"``).

    Returns
    -------
    CuttingResult
        The run's result.
    """
    base = params or CuttingParams()
    names = {f.name for f in dataclasses.fields(CuttingParams)}
    given = {k: v for k, v in overrides.items() if k in names}
    options = {k: v for k, v in overrides.items() if k not in names}
    if family is not None:
        given["family"] = family
    if qubits is not None:
        given["qubits"] = qubits
    if options:
        given["circuit_options"] = {**given.get("circuit_options", base.circuit_options), **options}
    params = dataclasses.replace(base, **given)
    chosen = _common.resolve_pools(pools, ("cpu",))
    ctx = _common.make_context(run_dir, chosen)
    circuit = circuit_from_spec(
        {
            "generator": params.family,
            "qubits": params.qubits,
            "seed": params.seed,
            **params.circuit_options,
        }
    )
    obs = parse_observable(params.observable, circuit.num_qubits)
    forced = params.partitions
    plan = plan_cutting(
        circuit,
        obs,
        ctx.pools,
        max_subcircuit_qubits=params.max_subcircuit_qubits,
        mode=params.mode,
        shots=params.shots,
        partitions=[forced] if isinstance(forced, int) else list(forced) if forced else None,
    )
    result = cut_and_run(
        circuit,
        obs,
        pools=chosen,
        mode=params.mode,
        shots=params.shots,
        seed=params.seed,
        run_dir=ctx.run_dir,
        recorder=ctx.recorder,
        plan=plan,
    )
    ctx.recorder.write()
    _figure(ctx.run_dir / "plan.json", ctx.run_dir / "tasks.png")
    return result


def _figure(plan_json: Path, path: Path) -> Path:
    """Predicted against measured seconds of every evaluate task, one colour per pool."""
    tasks = [t for t in json.loads(plan_json.read_text())["tasks"] if t["kind"] == "evaluate"]
    fig = _common.new_figure()
    ax = fig.add_subplot()
    for pool in sorted({t["pool"] for t in tasks}):
        mine = [t for t in tasks if t["pool"] == pool and t.get("measured_seconds") is not None]
        ax.scatter(
            [t["predicted_seconds"] for t in mine],
            [t["measured_seconds"] for t in mine],
            label=f"pool {pool} ({len(mine)} tasks)",
        )
    top = max(
        [1e-3] + [max(t["predicted_seconds"] or 0, t.get("measured_seconds") or 0) for t in tasks]
    )
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="prediction = measurement")
    ax.set_xlabel("predicted seconds")
    ax.set_ylabel("measured seconds (on the worker)")
    ax.set_title("circuit cutting: subexperiment batches")
    ax.legend()
    return _common.save_figure(fig, path)
