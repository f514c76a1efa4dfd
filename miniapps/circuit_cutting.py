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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from miniapps import _common
from parsl_quantum.circuits import circuit_from_spec, parse_observable
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.workflow.cut_and_run import (
    CuttingParams,
    CuttingResult,
    cut_and_run,
    plan_cutting,
    prepare,
    run_template,
)

#: The task function this motif fans out (module level, so Globus Compute ships it by name).
TASK_FUNCTION = evaluate_subexperiments

__all__ = ["TASK_FUNCTION", "CuttingParams", "prepare", "run", "run_template"]


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
        Fields of :class:`CuttingParams` that replace those of ``params`` (``partitions`` may
        be one count); any other keyword is a circuit option added to ``circuit_options``
        (e.g. ``entanglement="circular"``).

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
    if isinstance(given.get("partitions"), int):  # one forced count
        given["partitions"] = (given["partitions"],)
    if options:
        given["circuit_options"] = {**given.get("circuit_options", base.circuit_options), **options}
    params = dataclasses.replace(base, **given)
    chosen = _common.resolve_pools(pools, ("cpu",))
    ctx = _common.make_context(run_dir, chosen)
    circuit = circuit_from_spec(params.circuit_spec())
    obs = parse_observable(params.observable, circuit.num_qubits)
    plan = plan_cutting(
        circuit,
        obs,
        ctx.pools,
        max_subcircuit_qubits=params.max_subcircuit_qubits,
        mode=params.mode,
        shots=params.shots,
        profile=params.profile,
        partitions=list(params.partitions) if params.partitions else None,
        memory_limit_gb=params.memory_limit_gb,
        wire_cuts=params.wire_cuts,
    )
    result = cut_and_run(
        circuit,
        obs,
        pools=chosen,
        mode=params.mode,
        shots=params.shots,
        seed=params.seed,
        reference=params.reference,
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
