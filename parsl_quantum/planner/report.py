"""Showing plans to people: a candidates table with the chosen cuts, the chosen DAG as GraphML
or a picture, the input circuit drawn with its cuts marked, and a run's plan as plain data
(the ``configuration`` of a result and the run directory's ``plan.json``)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import networkx as nx
from qiskit.circuit import QuantumCircuit
from rich.console import Console
from rich.table import Table

from parsl_quantum.backends import get_backend
from parsl_quantum.cutting.problem import Cut
from parsl_quantum.executors.subexperiments import BatchResult
from parsl_quantum.planner.plan import PlanResult


def print_plan(plan: PlanResult, console: Console | None = None) -> None:
    """Print every candidate with the chosen one marked, and why it was chosen.

    Each candidate shows its partitions, cuts, distinct subexperiments, pools, predicted
    makespan and peak memory.

    Parameters
    ----------
    plan : PlanResult
        The plan to print.
    console : rich.console.Console or None
        Where to print; a new console on standard output when omitted.
    """
    console = console or Console(file=sys.stdout, highlight=False)
    table = Table(title="candidate cut configurations")
    for col in (
        "",
        "method",
        "partitions",
        "widths",
        "cuts",
        "subexperiments",
        "tasks",
        "pools",
        "makespan (s)",
        "peak memory (MiB)",
    ):
        table.add_column(col)
    for cand in plan.candidates:
        s = cand.summary()
        mark = "*" if cand is plan.chosen else ("x" if not cand.fits else "")
        table.add_row(
            mark,
            s["method"],
            str(s["partitions"]),
            ",".join(map(str, s["widths"])),
            str(s["cuts"]),
            str(s["subexperiments"]),
            str(s["tasks"]),
            ",".join(s["pools"]),
            f"{s['makespan']:.4g}",
            f"{s['peak_memory'] / 2**20:.1f}",
        )
    console.print(table)
    console.print(f"chosen: {plan.chosen.parts} partition(s): {plan.reason}")
    norm = plan.normalized
    if norm is not None and norm.num_input_qubits > len(norm.wires):
        console.print(
            f"idle qubits removed: {norm.num_input_qubits - len(norm.wires)} of "
            f"{norm.num_input_qubits} (no gate acts on them)"
        )
    cuts = Table(title="cuts of the chosen configuration (input circuit indices)")
    for col in ("cut", "kind", "instruction", "gate", "qubits", "wire", "partitions"):
        cuts.add_column(col)
    for c in plan.chosen.problem.cuts:
        cuts.add_row(
            str(c.index),
            c.kind,
            str(c.position),
            c.gate,
            ",".join(map(str, c.qubits)),
            "" if c.wire is None else str(c.wire),
            f"{c.a}-{c.b}",
        )
    if plan.chosen.problem.cuts:
        console.print(cuts)
    else:
        console.print("cuts of the chosen configuration: none")
    console.print(f"cost model: {plan.model_source}; planning took {plan.planning_time:.3f} s")


def _plain(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy whose attributes GraphML can store (scalars only)."""
    out = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        attrs = {}
        for key, val in data.items():
            if isinstance(val, (str, int, float, bool)):
                attrs[key] = val
            elif key == "pool_costs":
                for pool, cost in val.items():
                    attrs[f"cost_{pool}"] = float(cost)
            elif key == "rows":
                attrs["rows_start"], attrs["rows_stop"] = int(val[0]), int(val[1])
        out.add_node(node, **attrs)
    out.add_edges_from(graph.edges)
    return out


def write_graph(
    graph: nx.DiGraph, *, graphml: str | None = None, picture: str | None = None
) -> None:
    """Write the DAG as GraphML and/or draw it, evaluate nodes coloured by pool.

    Parameters
    ----------
    graph : networkx.DiGraph
        The task DAG.
    graphml : str or None
        GraphML file to write, if any.
    picture : str or None
        Picture file to draw, if any.
    """
    if graphml:
        nx.write_graphml(_plain(graph), graphml)
    if picture:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        layers = {n: (0 if n == "cut" else 2 if n == "reconstruct" else 1) for n in graph.nodes}
        nx.set_node_attributes(graph, layers, "layer")
        pos = nx.multipartite_layout(graph, subset_key="layer")
        pools = sorted({d.get("pool", "driver") for _, d in graph.nodes(data=True)})
        cmap = plt.get_cmap("tab10")
        colors = [
            cmap(pools.index(d.get("pool", "driver")) % 10) for _, d in graph.nodes(data=True)
        ]
        fig, ax = plt.subplots(figsize=(8, max(3, 0.3 * graph.number_of_nodes())))
        nx.draw_networkx(graph, pos, ax=ax, node_color=colors, font_size=7, node_size=400)
        for i, pool in enumerate(pools):
            ax.scatter([], [], color=cmap(i % 10), label=pool)
        ax.legend(title="pool")
        ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(Path(picture))
        plt.close(fig)


def draw_cut_circuit(circuit: QuantumCircuit, plan: PlanResult, picture: str) -> None:
    """Draw the input circuit (Qiskit's matplotlib drawer) with the chosen cuts marked.

    A cut gate is relabelled ``cut <gate> #i``, and a wire cut is a barrier labelled
    ``wire cut #i`` on the cut wire just before the gate it precedes.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
        The input circuit.
    plan : PlanResult
        The plan whose chosen cuts are marked.
    picture : str
        Picture file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gate_cuts = {c.position: c for c in plan.chosen.problem.cuts if c.kind == "gate"}
    wire_cuts: dict[int, list[Cut]] = {}
    for c in plan.chosen.problem.cuts:
        if c.kind == "wire":
            wire_cuts.setdefault(c.position, []).append(c)
    marked = circuit.copy_empty_like()
    for pos, inst in enumerate(circuit.data):
        for c in wire_cuts.get(pos, []):
            assert c.wire is not None
            marked.barrier(c.wire, label=f"wire cut #{c.index}")
        op = inst.operation
        if pos in gate_cuts:
            op = op.to_mutable()
            op.label = f"cut {op.name} #{gate_cuts[pos].index}"
        marked.append(op, inst.qubits, inst.clbits)
    fig = marked.draw("mpl", fold=40, idle_wires=False)
    fig.savefig(Path(picture), bbox_inches="tight")
    plt.close(fig)


def describe_configuration(plan: PlanResult, results: Mapping[str, BatchResult]) -> dict[str, Any]:
    """The run's plan as plain data.

    Parameters
    ----------
    plan : PlanResult
        The plan that ran.
    results : Mapping of str to BatchResult
        Results per evaluate task.

    Returns
    -------
    dict of str to Any
        Partitions (input qubits, the pools and backends that ran them), cuts (kind, input
        instruction index, gate, input qubits), the noisy backends used and any partition whose
        results mix physical models (only after a failover across them).
    """
    chosen = plan.chosen
    graph = chosen.graph
    problem = chosen.problem
    partitions = []
    noisy: set[str] = set()
    mixed: list[int] = []
    for p, part in enumerate(problem.partitions):
        nodes = [n for n in graph.nodes if graph.nodes[n].get("partition") == p]
        pools = [graph.nodes[n]["pool"] for n in nodes]
        backends = sorted({results[n].backend for n in nodes if n in results})
        models = {"ideal" if not _noisy(b) else b for b in backends}
        if len(models) > 1:
            mixed.append(p)
        main = max(set(pools), key=pools.count) if pools else "driver"
        sampled = {
            results[n].backend for n in nodes if n in results and results[n].method == "sampled"
        }
        noisy.update(b for b in sampled if _noisy(b))
        partitions.append(
            {
                "qubits": part.num_qubits,
                "pool": main,
                "pools": sorted(set(pools)),
                "backends": backends,
                "subexperiments": part.num_subexperiments,
                "original_qubits": list(problem.qubits[p]),
            }
        )
    methods = sorted({r.method for r in results.values()})
    norm = plan.normalized
    input_qubits = norm.num_input_qubits if norm is not None else problem.num_qubits
    active = len(norm.wires) if norm is not None else problem.num_qubits
    return {
        "partitions": partitions,
        "cuts": [c.location() for c in problem.cuts],
        "input_qubits": input_qubits,
        "idle_qubits_removed": input_qubits - active,
        "subexperiments": problem.num_subexperiments,
        "subexperiments_addon": problem.num_generated_addon,
        "methods": methods,
        "noisy_backends": sorted(noisy),
        "mixed_model_partitions": mixed,
        "candidate": chosen.label,
        "reason": plan.reason,
        "cost_model": plan.model_source,
        "predicted_makespan": chosen.makespan,
        # the dispatcher's moves, as plan.json records them
        "failovers": [asdict(f) for f in plan.execution.failovers] if plan.execution else [],
    }


@functools.cache  # a backend's description is built anew on each lookup
def _noisy(backend: str) -> bool:
    """Whether a backend's results carry device noise (a fake device's noise model, a QPU);
    a backend whose description cannot be read here (a remote QPU) counts as noisy."""
    try:
        return bool(get_backend(backend).spec.noisy)
    except Exception:  # remote backends may need a service to describe themselves
        return True


def save_plan(run_dir: Path, plan: PlanResult, results: Mapping[str, BatchResult]) -> None:
    """Write ``plan.json``.

    It holds the candidates, the chosen DAG's tasks with the pool the plan chose and the pool
    that ran each one, predicted and measured seconds, and the dispatcher's failovers and pool
    events.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run's directory.
    plan : PlanResult
        The plan that ran.
    results : Mapping of str to BatchResult
        Results per evaluate task.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    graph = plan.chosen.graph
    records = plan.execution.tasks if plan.execution is not None else {}
    tasks = []
    for node, data in graph.nodes(data=True):
        pool = data.get("pool")
        entry: dict[str, Any] = {
            "task": node,
            "kind": data["kind"],
            "pool": pool,
            "planned_pool": data.get("planned_pool", pool),
            "predicted_start": data.get("start"),
            "predicted_finish": data.get("finish"),
            "predicted_seconds": data.get("pool_costs", {}).get(pool),
        }
        if node in results:
            r = results[node]
            entry.update(
                measured_seconds=r.finished - r.started, method=r.method, host=r.host, pid=r.pid
            )
        if node in records:
            entry["attempts"] = [asdict(a) for a in records[node].attempts]
        tasks.append(entry)
    doc: dict[str, Any] = {
        "chosen": plan.chosen.summary(),
        "reason": plan.reason,
        "cost_model": plan.model_source,
        "candidates": [c.summary() for c in plan.candidates],
        "tasks": tasks,
    }
    if plan.execution is not None:
        report = plan.execution.to_dict()
        doc["dispatch"] = {k: v for k, v in report.items() if k != "tasks"}
    (run_dir / "plan.json").write_text(json.dumps(doc, indent=2, default=float))
