"""Circuit cutting (fan-out/fan-in): the main job as a mini-app.

A circuit family and size are cut into partitions (chosen by the planner, or forced), the
distinct subexperiments fan out as batched Parsl tasks over the pools, and the results fan back
in to one reconstruction. Its template kind is ``circuit-cutting``
(``workflows/circuit-cutting.yaml``), run by :mod:`parsl_quantum.workflow.cutting`; this module
is the plain Python API for Parsl scripts, plus a picture of the fan-out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from miniapps import _common
from parsl_quantum.circuits import circuit_from_spec, parse_observable
from parsl_quantum.executors.apps import evaluate_subexperiments
from parsl_quantum.planner.plan import Mode
from parsl_quantum.workflow.cutting import (
    CuttingResult,
    cut_and_run,
    plan_cutting,
    prepare,
    run_template,
)

#: The task function this motif fans out (module level, so Globus Compute ships it by name).
TASK_FUNCTION = evaluate_subexperiments

__all__ = ["TASK_FUNCTION", "prepare", "run", "run_template"]


def run(
    family: str = "efficient_su2",
    qubits: int = 16,
    *,
    partitions: int | None = None,
    max_subcircuit_qubits: int | None = None,
    observable: str = "mean-z",
    mode: Mode = "auto",
    shots: int = 100_000,
    seed: int = 1234,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runs/circuit-cutting",
    **circuit_options: Any,
) -> CuttingResult:
    """Cut a circuit of ``family`` (``efficient_su2``, ``qaoa``, ``random_2local``,
    ``clustered``) on the loaded Parsl config's pools and reconstruct ``observable``.

    ``partitions`` forces the number of partitions; otherwise the planner chooses. Writes
    ``tasks.csv``, ``plan.json`` and ``tasks.png`` (predicted and measured seconds of every
    task, by pool) into ``run_dir``.
    """
    chosen = _common.resolve_pools(pools, ("cpu",))
    ctx = _common.make_context(run_dir, chosen)
    circuit = circuit_from_spec(
        {"generator": family, "qubits": qubits, "seed": seed, **circuit_options}
    )
    obs = parse_observable(observable, circuit.num_qubits)
    width = max_subcircuit_qubits or max(info.max_qubits for info in ctx.pools.values())
    plan = plan_cutting(
        circuit,
        obs,
        ctx.pools,
        max_subcircuit_qubits=width,
        mode=mode,
        shots=shots,
        partitions=[partitions] if partitions else None,
    )
    result = cut_and_run(
        circuit,
        obs,
        pools=chosen,
        mode=mode,
        shots=shots,
        seed=seed,
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
