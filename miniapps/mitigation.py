"""Error mitigation ensemble: zero-noise extrapolation (ZNE) with mitiq on the noisy QPU pool.

ZNE measures an expectation value at several amplified noise levels and extrapolates back to
zero noise. Noise is amplified by *unitary folding* (mitiq): ``G -> G G^dag G`` leaves the ideal
circuit unchanged but triples the noise of ``G``; folding the whole circuit
(``fold_global``) or randomly chosen gates (``fold_gates_at_random``) reaches scale factors
1, 3, 5, .... The extrapolation uses mitiq's Richardson (a polynomial through all points) and
linear factories, both fitted to the same measurements.

Every (circuit, scale factor) pair is one Parsl task: it folds the logical circuit, compiles it
for the device *without optimisation* (optimisation would cancel the folds) onto a fixed chain
of physical qubits (so every scale factor of a circuit sees the same qubits and the same noise),
and estimates the observable with shots. The ideal values come from a statevector on the driver,
so the run reports how far the unmitigated and the mitigated values are from the truth.

The default circuits are mirror circuits (a random layered circuit ``U`` followed by ``U^dag``):
deep enough for gate noise to matter, with the known ideal ``<Z>`` = 1 on every qubit.

Python API: :func:`run` with a :class:`MitigationParams`; template kind
``error-mitigation``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from miniapps import _common
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext

Fold = Literal["global", "gates_at_random"]
Family = Literal["mirror", "random"]

#: mitiq factories by template name.
FACTORIES = ("richardson", "linear")

#: Control-flow names some devices list as operations; they are not gates to translate to.
_CONTROL_FLOW = frozenset({"for_loop", "if_else", "switch_case", "while_loop", "box"})

#: One line for the list of template kinds.
DESCRIPTION = "Zero-noise extrapolation ensembles on the noisy QPU pool."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "circuits": {
            "type": "object",
            "properties": {
                "family": {"enum": ["mirror", "random"]},
                "count": {"type": "integer", "minimum": 1},
                "qubits": {"type": "integer", "minimum": 1},
                "layers": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer"},
                "qasm": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "additionalProperties": False,
        },
        "observable": {"type": "string"},
        "scale_factors": {
            "type": "array",
            "items": {"type": "number", "minimum": 1},
            "minItems": 2,
            "uniqueItems": True,
        },
        "fold": {"enum": ["global", "gates_at_random"]},
        "factories": {
            "type": "array",
            "items": {"enum": list(FACTORIES)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "precision": {"type": "number", "exclusiveMinimum": 0},
        "seed": {"type": "integer"},
    },
}


@dataclass(frozen=True)
class MitigationParams:
    """The circuits, the observable and the extrapolation of a zero-noise extrapolation run.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments, a template takes them from its envelope.

    Attributes
    ----------
    family : {"mirror", "random"}
        The circuits mitigated when none (and no ``qasm``) are given: mirror circuits (ideal
        value known) or random layered circuits.
    count, qubits, layers : int
        How many circuits, their width and their layers.
    circuit_seed : int
        Seed of the circuits (circuit ``i`` uses ``circuit_seed + i``).
    qasm : sequence of str, or None
        QASM files to mitigate instead (a relative path is also looked up from the template's
        folder).
    observable : str
        ``mean-z`` or comma-separated Pauli labels.
    scale_factors : sequence of float
        The noise scale factors (odd integers for global folding), at least two.
    fold_method : {"global", "gates_at_random"}
        How a circuit is folded to scale its noise.
    factories : sequence of str
        Extrapolations to report, among :data:`FACTORIES`.
    precision : float or None
        The estimator's target standard error per point (0.01 is 10,000 shots).
    seed : int
        Seed of the estimators' shots and of random folding.
    """

    family: Family = "mirror"
    count: int = 4
    qubits: int = 4
    layers: int = 4
    circuit_seed: int = 1234
    qasm: Sequence[str] | None = None
    observable: str = "mean-z"
    scale_factors: Sequence[float] = (1.0, 3.0, 5.0)
    fold_method: Fold = "global"
    factories: Sequence[str] = FACTORIES
    precision: float | None = 0.01
    seed: int = 11

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> MitigationParams:
        """The parameters of a validated ``kind: error-mitigation`` template body; what the
        body leaves out keeps its default."""
        circuits = body.get("circuits", {})
        given: dict[str, Any] = {
            k: circuits[k] for k in ("family", "count", "qubits", "layers") if k in circuits
        }
        if "seed" in circuits:
            given["circuit_seed"] = circuits["seed"]
        if "qasm" in circuits:
            given["qasm"] = tuple(circuits["qasm"])
        given |= {k: body[k] for k in ("observable", "precision", "seed") if k in body}
        given |= {k: tuple(body[k]) for k in ("scale_factors", "factories") if k in body}
        if "fold" in body:
            given["fold_method"] = body["fold"]
        return cls(**given)


# ------------------------------------------------------------------------------------------
# Circuits


def layered_circuit(qubits: int, layers: int, seed: int) -> QuantumCircuit:
    """Seeded random layers of ``RY, RZ`` on every qubit and CX on alternating neighbour pairs
    (nearest-neighbour only, so it maps onto a chain of device qubits without swaps)."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(qubits, name=f"layered-{qubits}q-{layers}l-s{seed}")
    for layer in range(layers):
        for q in range(qubits):
            qc.ry(float(rng.uniform(0, math.pi)), q)
            qc.rz(float(rng.uniform(0, 2 * math.pi)), q)
        for q in range(layer % 2, qubits - 1, 2):
            qc.cx(q, q + 1)
    return qc


def mirror_circuit(qubits: int, layers: int, seed: int) -> QuantumCircuit:
    """``U U^dag`` for a :func:`layered_circuit` ``U``: ideally the identity, so ``<Z_q>`` = 1."""
    u = layered_circuit(qubits, layers, seed)
    qc = u.compose(u.inverse())
    qc.name = f"mirror-{qubits}q-{layers}l-s{seed}"
    return qc


def device_chain(coupling_map: Sequence[tuple[int, int]] | None, length: int) -> list[int] | None:
    """A path of ``length`` physical qubits in the coupling graph (None: no coupling map, any
    layout works). Raises when the device has no such path."""
    if coupling_map is None:
        return None
    import networkx as nx

    graph = nx.Graph([tuple(e) for e in coupling_map])
    if length == 1:
        return [min(graph.nodes)]
    for source in sorted(graph.nodes):
        stack = [[source]]
        while stack:
            path = stack.pop()
            if len(path) == length:
                return path
            stack.extend(path + [n] for n in sorted(graph[path[-1]], reverse=True) if n not in path)
    raise ValueError(f"the device has no chain of {length} connected qubits")


def ideal_value(circuit: QuantumCircuit, observable: SparsePauliOp) -> float:
    """The noiseless expectation value (statevector)."""
    return float(Statevector(circuit).expectation_value(observable).real)


# ------------------------------------------------------------------------------------------
# Task


@dataclass
class ZNEPoint:
    """One noisy measurement at one scale factor."""

    value: float
    scale_factor: float
    two_qubit_gates: int
    depth: int


def fold(
    circuit: QuantumCircuit, scale_factor: float, method: Fold, seed: int | None
) -> QuantumCircuit:
    """Fold ``circuit`` to ``scale_factor`` with mitiq (scale 1 returns it unchanged)."""
    if scale_factor == 1:
        return circuit
    from mitiq.zne.scaling import fold_gates_at_random, fold_global

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mitiq's qiskit conversion warns about qasm details
        if method == "global":
            return fold_global(circuit, scale_factor)
        return fold_gates_at_random(circuit, scale_factor, seed=seed)


def zne_point(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    scale_factor: float,
    method: Fold,
    layout: Sequence[int] | None,
    backend: str,
    precision: float | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> ZNEPoint:
    """Fold, compile without optimisation onto ``layout``, and estimate (a task)."""
    from qiskit import transpile

    from parsl_quantum.backends import worker_backend

    qb = worker_backend(backend)
    spec = qb.spec
    folded = fold(circuit, scale_factor, method, seed)
    basis = [g for g in spec.basis_gates if g not in _CONTROL_FLOW] if spec.basis_gates else None
    isa = transpile(
        folded,
        basis_gates=basis,
        coupling_map=[list(e) for e in spec.coupling_map] if spec.coupling_map else None,
        initial_layout=list(layout) if layout is not None else None,
        optimization_level=0,  # anything higher cancels G G^dag pairs: no noise amplification
        seed_transpiler=seed,
    )
    obs = observable.apply_layout(isa.layout) if isa.layout is not None else observable
    result = qb.estimator(seed=seed).run([(isa, obs)], precision=precision).result()
    two_qubit = sum(1 for inst in isa.data if inst.operation.num_qubits == 2)
    return ZNEPoint(float(np.asarray(result[0].data.evs)), scale_factor, two_qubit, isa.depth())


def extrapolate(factory: str, scale_factors: Sequence[float], values: Sequence[float]) -> float:
    """The zero-noise limit with a mitiq factory's static extrapolation."""
    from mitiq.zne.inference import LinearFactory, RichardsonFactory

    cls = {"richardson": RichardsonFactory, "linear": LinearFactory}[factory]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ill-conditioning warnings for close scale factors
        return float(cls.extrapolate(list(scale_factors), list(values)))


# ------------------------------------------------------------------------------------------
# Driver


@dataclass
class MitigationResult:
    """Unmitigated and mitigated values of every circuit against the ideal ones."""

    ideal: list[float]
    noisy: list[list[float]]  # per circuit, per scale factor
    mitigated: dict[str, list[float]]  # per factory, per circuit
    scale_factors: list[float]
    unmitigated_error: float  # mean |noisy(1) - ideal| over circuits
    mitigated_error: dict[str, float]  # per factory, mean |mitigated - ideal|
    improvement: dict[str, float]  # unmitigated_error / mitigated_error per factory
    pool_of_circuit: list[str]
    two_qubit_gates: list[list[int]]
    tasks: int
    timings: dict[str, float]
    run_dir: Path
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; ``value`` is the best factory's mean mitigated error."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["value"] = min(self.mitigated_error.values())
        return _common.jsonable(out)


def _figure(res: MitigationResult, factories: Sequence[str], path: Path) -> Path:
    fig = _common.new_figure(11, 4.2)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    lam = np.linspace(0, max(res.scale_factors), 100)
    shown = min(len(res.ideal), 6)
    for i in range(shown):
        colour = f"C{i}"
        left.plot(res.scale_factors, res.noisy[i], "o", color=colour)
        left.axhline(res.ideal[i], color=colour, ls=":", lw=1)
        for factory, style in zip(factories, ("-", "--"), strict=False):
            degree = len(res.scale_factors) - 1 if factory == "richardson" else 1
            coeffs = np.polyfit(res.scale_factors, res.noisy[i], degree)
            left.plot(lam, np.polyval(coeffs, lam), style, color=colour, lw=1)
            left.plot([0], [res.mitigated[factory][i]], "x" if style == "-" else "+", color=colour)
    left.set_xlabel("noise scale factor")
    left.set_ylabel("expectation value")
    left.set_title(
        "measured (o), ideal (dotted), extrapolated to 0 (x: " + " / ".join(factories) + ")",
        fontsize=9,
    )
    names = ["unmitigated", *factories]
    errors = [res.unmitigated_error, *(res.mitigated_error[f] for f in factories)]
    spread = [np.abs(np.array([n[0] for n in res.noisy]) - res.ideal)]
    spread += [np.abs(np.array(res.mitigated[f]) - res.ideal) for f in factories]
    right.bar(
        names,
        errors,
        yerr=[np.std(s) for s in spread],
        capsize=4,
        color=["C7", "C0", "C1"][: len(names)],
    )
    right.set_ylabel("mean |value - ideal|")
    best = max(res.improvement.values())
    right.set_title(f"{len(res.ideal)} circuits; error reduced up to {best:.1f}x")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    circuits: Sequence[QuantumCircuit],
    params: MitigationParams | None = None,
    *,
    pools: Sequence[str],
) -> MitigationResult:
    """Run the ZNE ensemble of ``circuits`` on ``pools`` inside ``ctx``.

    The engine of :func:`run` and :func:`run_template`.

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    circuits : Sequence of QuantumCircuit
        The circuits.
    params : MitigationParams, optional
        The parameters; the defaults when None.
    pools : Sequence of str
        The pools to run on.

    Returns
    -------
    MitigationResult
        The run's result.
    """
    params = params or MitigationParams()
    from parsl_quantum.backends import get_backend
    from parsl_quantum.circuits import parse_observable

    unknown = sorted(set(params.factories) - set(FACTORIES))
    if unknown:
        raise ValueError(f"unknown factories {unknown} (known: {', '.join(FACTORIES)})")
    if len(params.scale_factors) < 2:
        raise ValueError("zero-noise extrapolation needs at least two scale factors")
    timings = _common.Timings()
    with timings.stage("setup"):
        width = max(c.num_qubits for c in circuits)
        obs = parse_observable(params.observable, width)
        ideal = [ideal_value(c, obs) for c in circuits]
        backends = {p: _common.pool_backend(p) for p in pools}
        layouts = {
            p: device_chain(get_backend(b).spec.coupling_map, width) for p, b in backends.items()
        }
    with timings.stage("warmup"):
        _common.warm_pools(ctx, pools)
    shots = _common.precision_shots(params.precision)
    with timings.stage("execute"):
        futures: dict[tuple[int, int], Any] = {}
        pool_of = []
        for i, circuit in enumerate(circuits):
            pool = pools[i % len(pools)]
            pool_of.append(pool)
            for j, scale in enumerate(params.scale_factors):
                futures[i, j] = _common.submit(
                    ctx,
                    zne_point,
                    pool,
                    circuit,
                    obs,
                    float(scale),
                    params.fold_method,
                    layouts[pool],
                    backends[pool],
                    params.precision,
                    params.seed + 100 * i + j,
                    task=f"circuit-{i}-scale-{scale:g}",
                    kind="zne-point",
                    backend=backends[pool],
                    qubits=width,
                    shots=shots,
                )
        points = {k: f.result() for k, f in futures.items()}
    noisy = [
        [points[i, j].value for j in range(len(params.scale_factors))] for i in range(len(circuits))
    ]
    mitigated = {
        f: [extrapolate(f, params.scale_factors, row) for row in noisy] for f in params.factories
    }
    unmitigated_error = float(
        np.mean([abs(row[0] - v) for row, v in zip(noisy, ideal, strict=True)])
    )
    mitigated_error = {
        f: float(np.mean([abs(m - v) for m, v in zip(vals, ideal, strict=True)]))
        for f, vals in mitigated.items()
    }
    result = MitigationResult(
        ideal=ideal,
        noisy=noisy,
        mitigated=mitigated,
        scale_factors=[float(s) for s in params.scale_factors],
        unmitigated_error=unmitigated_error,
        mitigated_error=mitigated_error,
        improvement={
            f: unmitigated_error / e if e > 0 else math.inf for f, e in mitigated_error.items()
        },
        pool_of_circuit=pool_of,
        two_qubit_gates=[
            [points[i, j].two_qubit_gates for j in range(len(params.scale_factors))]
            for i in range(len(circuits))
        ],
        tasks=len(futures),
        timings={},
        run_dir=ctx.run_dir,
    )
    with timings.stage("report"):
        result.figure = _figure(result, list(params.factories), ctx.run_dir / "zne.png")
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def make_circuits(
    family: Family, count: int, qubits: int, layers: int, seed: int
) -> list[QuantumCircuit]:
    """``count`` seeded circuits of a family (``mirror`` or ``random`` layered)."""
    build = mirror_circuit if family == "mirror" else layered_circuit
    return [build(qubits, layers, seed + i) for i in range(count)]


def run(
    circuits: Sequence[QuantumCircuit] | None = None,
    params: MitigationParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/error-mitigation",
    **overrides: Any,
) -> MitigationResult:
    """Zero-noise extrapolation of circuits on the noisy pool with the loaded Parsl config.

    Each circuit's scale factors run on one pool, so they share its noise.

    Parameters
    ----------
    circuits : sequence of QuantumCircuit, optional
        The circuits; None: those ``params`` describe (default: four mirror circuits).
    params : MitigationParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        Default ``qpu``.
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figure go.
    **overrides : Any
        Fields of :class:`MitigationParams` that replace those of ``params``, e.g.
        ``scale_factors=(1, 3, 5, 7)``.

    Returns
    -------
    MitigationResult
        The run's result.
    """
    params = dataclasses.replace(params or MitigationParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("qpu",))
    ctx = _common.make_context(run_dir, chosen)
    if circuits is None:
        circuits = load_circuits(params)
    return execute(ctx, circuits, params, pools=chosen)


def load_circuits(params: MitigationParams, base_dir: Path | None = None) -> list[QuantumCircuit]:
    """The circuits ``params`` describe: the QASM files when given (a relative path that is
    not found from the working directory is taken relative to ``base_dir``), else
    :func:`make_circuits`."""
    if params.qasm is not None:
        return _common.read_qasm_files(list(params.qasm), base_dir)
    return make_circuits(
        params.family, params.count, params.qubits, params.layers, params.circuit_seed
    )


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> list[QuantumCircuit]:
    """Build and check the circuits and the observable before any pool starts."""
    from parsl_quantum.circuits import parse_observable

    params = MitigationParams.from_template(template)
    circuits = load_circuits(params, base_dir)
    width = max(c.num_qubits for c in circuits)
    parse_observable(params.observable, width)
    _common.check_width(pools, template.get("pools") or list(pools), width)
    return circuits


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: error-mitigation`` template inside a loaded DataFlowKernel.

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
    circuits = ctx.prepared if isinstance(ctx.prepared, list) else prepare(template, ctx.pools)
    pools = _common.template_pools(template, ctx, ("qpu",))
    result = execute(ctx, circuits, MitigationParams.from_template(template), pools=pools)
    return result.to_dict()
