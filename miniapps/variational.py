"""Variational loop: VQE for the Heisenberg model, or QAOA for MaxCut, with parameter-shift
gradients as Parsl tasks.

The iterative hybrid motif: a classical optimizer on the driver proposes parameters, and each
step fans out to the pools the ``1 + 2P`` circuit evaluations it needs, the energy at the
current point and, for each of the ``P`` gate angles, the energy at ``theta +- pi/2`` (the
parameter-shift rule: for a gate ``exp(-i theta G/2)`` with ``G^2 = 1``,
``dE/dtheta = (E(theta + pi/2) - E(theta - pi/2)) / 2``, exact, no finite-difference step).
The points are split into chunks, one estimator call per chunk and one Parsl task per chunk, so a
step costs a few tasks rather than ``1 + 2P``.

- ``model: heisenberg``: the antiferromagnetic Heisenberg model ``H = J sum_<ij> (XX + YY +
  ZZ)`` on a ring or chain of ``n`` qubits, whose ground energy is known exactly (sparse
  diagonalisation on the driver), and the Hamiltonian variational ansatz: singlets on the even
  bonds (the ground state of the even-bond terms), then ``layers`` rounds of ``RXX, RYY, RZZ``
  rotations on the odd and then the even bonds, each with its own angle. Two layers reach the
  6-site ring's ground energy to better than 1e-5.
- ``model: maxcut``: MaxCut on a ring or a seeded random 3-regular graph as the ground state of
  ``H = sum_(ij in E) (Z_i Z_j - 1) / 2`` (ground energy ``-maxcut``, found by enumerating the
  cuts on the driver), and the QAOA ansatz of ``layers`` rounds ``(gamma_l, beta_l)``. A QAOA
  angle drives several gates, so each gate gets its own circuit angle, tied to the optimizer's
  ``2 * layers`` parameters by a matrix ``T`` (``angles = T x``); the chain rule gives
  ``dE/dx = T^T dE/dangles`` from the per-gate shifts. On a ring of ``n`` qubits, ``n / 2``
  layers reach the maximum cut exactly.

Python API: :func:`run` with a :class:`VariationalParams`; template kind ``variational``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from miniapps import _common
from parsl_quantum.workflow.context import RunContext

Optimizer = Literal["lbfgs", "adam"]
Model = Literal["heisenberg", "maxcut"]

#: Shift of the parameter-shift rule for gates ``exp(-i theta P / 2)`` with a Pauli ``P``.
SHIFT = math.pi / 2

#: One line for the list of template kinds.
DESCRIPTION = "VQE/QAOA loop whose energy and gradient evaluations fan out as tasks."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "hamiltonian": {
            "type": "object",
            "properties": {
                "model": {"enum": ["heisenberg", "maxcut"]},
                "qubits": {"type": "integer", "minimum": 2, "maximum": 16, "multipleOf": 2},
                "periodic": {"type": "boolean"},
                "coupling": {"type": "number"},
                "graph": {"enum": ["ring", "3-regular"]},
                "seed": {"type": "integer"},
            },
            "additionalProperties": False,
        },
        "ansatz": {
            "type": "object",
            "properties": {"layers": {"type": "integer", "minimum": 1}},
            "additionalProperties": False,
        },
        "optimizer": {
            "type": "object",
            "properties": {
                "method": {"enum": ["lbfgs", "adam"]},
                "max_iterations": {"type": "integer", "minimum": 1},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                "init_scale": {"type": "number", "minimum": 0},
                "seed": {"type": "integer"},
            },
            "additionalProperties": False,
        },
        "tolerance": {"type": "number", "exclusiveMinimum": 0},
        "tasks_per_step": {"type": "integer", "minimum": 1},
        "precision": {"type": "number", "exclusiveMinimum": 0},
    },
}


@dataclass(frozen=True)
class VariationalParams:
    """The problem, the ansatz and the optimizer of a variational run.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments, a template takes them from its envelope.

    Attributes
    ----------
    model : {"heisenberg", "maxcut"}
        VQE for the Heisenberg ground energy, or QAOA for the maximum cut of a graph.
    qubits : int
        Spins of the Heisenberg chain, or vertices of the graph.
    periodic : bool
        Heisenberg: close the chain into a ring.
    coupling : float
        Heisenberg: the exchange coupling ``J``.
    graph : {"ring", "3-regular"}
        Max-cut: the graph.
    graph_seed : int
        Max-cut: seed of a random 3-regular graph.
    layers : int
        Layers of the ansatz.
    method : {"lbfgs", "adam"}
        scipy's L-BFGS-B (for exact estimators) or Adam (for shot noise).
    max_iterations : int
        Optimizer iterations at most.
    learning_rate : float
        Adam's step size.
    init_scale : float
        Standard deviation of the random initial parameters.
    seed : int
        Seed of the initial parameters and of the estimators' shots.
    tolerance : float
        ``converged`` when the final energy is within this of the exact one.
    tasks_per_step : int or None
        Tasks each iteration's ``1 + 2P`` energies are split into; None: one per worker slot.
    precision : float or None
        The estimator's target standard error (None: the backend's default, exact on Aer).
    """

    model: Model = "heisenberg"
    qubits: int = 6
    periodic: bool = True
    coupling: float = 1.0
    graph: str = "ring"
    graph_seed: int = 1234
    layers: int = 2
    method: Optimizer = "lbfgs"
    max_iterations: int = 200
    learning_rate: float = 0.1
    init_scale: float = 0.1
    seed: int = 7
    tolerance: float = 1e-3
    tasks_per_step: int | None = None
    precision: float | None = None

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> VariationalParams:
        """The parameters of a validated ``kind: variational`` template body; what the body
        leaves out keeps its default."""
        ham = body.get("hamiltonian", {})
        opt = body.get("optimizer", {})
        given: dict[str, Any] = {
            k: ham[k] for k in ("model", "qubits", "periodic", "coupling", "graph") if k in ham
        }
        if "seed" in ham:
            given["graph_seed"] = ham["seed"]
        if "layers" in body.get("ansatz", {}):
            given["layers"] = body["ansatz"]["layers"]
        given |= {
            k: opt[k]
            for k in ("method", "max_iterations", "learning_rate", "init_scale", "seed")
            if k in opt
        }
        given |= {k: body[k] for k in ("tolerance", "tasks_per_step", "precision") if k in body}
        return cls(**given)


# ------------------------------------------------------------------------------------------
# Problem and ansatz


def heisenberg_bonds(qubits: int, periodic: bool = True) -> tuple[list[tuple[int, int]], ...]:
    """(even bonds, odd bonds) of a chain, or a ring when ``periodic`` (and ``qubits > 2``)."""
    even = [(i, i + 1) for i in range(0, qubits - 1, 2)]
    odd = [(i, i + 1) for i in range(1, qubits - 1, 2)]
    if periodic and qubits > 2:
        odd.append((qubits - 1, 0))
    return even, odd


def heisenberg_hamiltonian(
    qubits: int, periodic: bool = True, coupling: float = 1.0
) -> SparsePauliOp:
    """``J sum_<ij> (X_i X_j + Y_i Y_j + Z_i Z_j)`` over the bonds of a chain or ring."""
    even, odd = heisenberg_bonds(qubits, periodic)
    terms = [(p + p, [i, j], coupling) for i, j in even + odd for p in "XYZ"]
    return SparsePauliOp.from_sparse_list(terms, qubits).simplify()


def ground_energy(hamiltonian: SparsePauliOp) -> float:
    """The exact smallest eigenvalue (dense up to 10 qubits, sparse Lanczos above)."""
    if hamiltonian.num_qubits <= 10:
        return float(np.linalg.eigvalsh(hamiltonian.to_matrix())[0])
    from scipy.sparse.linalg import eigsh

    matrix = hamiltonian.to_matrix(sparse=True)
    return float(eigsh(matrix, k=1, which="SA", return_eigenvectors=False)[0])


def hva_ansatz(qubits: int, layers: int = 2, periodic: bool = True) -> QuantumCircuit:
    """The Hamiltonian variational ansatz for the Heisenberg model.

    Starts from singlets ``(|01> - |10>)/sqrt(2)`` on the even bonds, then ``layers`` rounds of
    ``RXX, RYY, RZZ`` on the odd bonds and then on the even bonds, one angle per gate
    (``9 n / 2`` angles per layer on a ring). Each angle enters one ``exp(-i theta P P / 2)``
    gate, which is what the two-term parameter-shift rule needs.
    """
    if qubits % 2:
        raise ValueError("the singlet-dimer ansatz needs an even number of qubits")
    even, odd = heisenberg_bonds(qubits, periodic)
    theta = ParameterVector("theta", 3 * layers * (len(even) + len(odd)))
    qc = QuantumCircuit(qubits, name=f"hva-{qubits}-l{layers}")
    for i, j in even:  # singlet: X on j, H on i, CX i->j, Z on i
        qc.x(j)
        qc.h(i)
        qc.cx(i, j)
        qc.z(i)
    k = 0
    for _ in range(layers):
        for bonds in (odd, even):
            for i, j in bonds:
                qc.rxx(theta[k], i, j)
                qc.ryy(theta[k + 1], i, j)
                qc.rzz(theta[k + 2], i, j)
                k += 3
    return qc


def maxcut_graph(qubits: int, graph: str = "ring", seed: int = 1234) -> nx.Graph:
    """A ring, or a seeded random 3-regular graph, on ``qubits`` nodes."""
    if graph == "ring":
        return nx.cycle_graph(qubits)
    if graph == "3-regular":
        return nx.random_regular_graph(3, qubits, seed=seed)
    raise ValueError(f"unknown graph {graph!r} (ring or 3-regular)")


def maxcut_hamiltonian(graph: nx.Graph) -> SparsePauliOp:
    """``sum_(ij in E) (Z_i Z_j - 1) / 2``: minus the number of edges a bit string cuts."""
    n = graph.number_of_nodes()
    terms = [("ZZ", [int(i), int(j)], 0.5) for i, j in sorted(graph.edges)]
    terms.append(("", [], -0.5 * graph.number_of_edges()))
    return SparsePauliOp.from_sparse_list(terms, n).simplify()


def max_cut(graph: nx.Graph) -> int:
    """The maximum cut, by enumerating every bit string (fine up to about 20 nodes)."""
    n = graph.number_of_nodes()
    strings = np.arange(1 << n, dtype=np.int64)
    cut = np.zeros(1 << n, dtype=np.int64)
    for i, j in graph.edges:
        cut += ((strings >> i) ^ (strings >> j)) & 1
    return int(cut.max())


def qaoa_ansatz(graph: nx.Graph, layers: int) -> tuple[QuantumCircuit, np.ndarray]:
    """QAOA for :func:`maxcut_hamiltonian`: ``|+>^n``, then per layer ``RZZ(gamma_l)`` on every
    edge (``exp(-i gamma_l H)`` up to a phase) and ``RX(beta_l)`` on every qubit.

    Returns the circuit, with one angle per gate, and the tie matrix ``T`` (gates x
    ``2 * layers``) with ``angles = T @ [gamma_0, beta_0, gamma_1, ...]``.
    """
    n = graph.number_of_nodes()
    edges = sorted(graph.edges)
    per_layer = len(edges) + n
    theta = ParameterVector("theta", layers * per_layer)
    tie = np.zeros((layers * per_layer, 2 * layers))
    qc = QuantumCircuit(n, name=f"qaoa-{n}-p{layers}")
    qc.h(range(n))
    k = 0
    for layer in range(layers):
        for i, j in edges:
            qc.rzz(theta[k], int(i), int(j))
            tie[k, 2 * layer] = 1.0
            k += 1
        for q in range(n):
            qc.rx(theta[k], q)
            tie[k, 2 * layer + 1] = 1.0
            k += 1
    return qc, tie


def ramp_start(layers: int, step: float = 0.75) -> np.ndarray:
    """QAOA angles of a linear annealing ramp from the mixer's ground state (``|+>^n``) to the
    cost's: ``gamma_l = step * s_l``, ``beta_l = -2 * step * (1 - s_l)``,
    ``s_l = (l + 1/2) / layers``; a start from which local optimizers find the good optimum."""
    s = (np.arange(layers) + 0.5) / layers
    return np.column_stack([step * s, -2.0 * step * (1.0 - s)]).ravel()


def shifted_points(x: np.ndarray) -> np.ndarray:
    """``[x, x + s e_0, x - s e_0, x + s e_1, ...]``: the ``1 + 2P`` points of one step."""
    p = len(x)
    eye = np.eye(p) * SHIFT
    plus, minus = x + eye, x - eye
    out = np.empty((1 + 2 * p, p))
    out[0] = x
    out[1::2] = plus
    out[2::2] = minus
    return out


def energy_and_gradient(values: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy and parameter-shift gradient from the values at :func:`shifted_points`."""
    return float(values[0]), 0.5 * (values[1::2] - values[2::2])


# ------------------------------------------------------------------------------------------
# Task


def estimate_energies(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    points: np.ndarray,
    backend: str,
    precision: float | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> list[float]:
    """``<observable>`` of the ISA ``circuit`` at each row of ``points`` (a task).

    One estimator call with a parameter array: the backend binds and runs every point, so a
    task's cost is the simulator's, not Python's.
    """
    from parsl_quantum.backends import worker_backend

    estimator = worker_backend(backend).estimator(seed=seed)
    result = estimator.run([(circuit, observable, np.asarray(points))], precision=precision)
    return np.asarray(result.result()[0].data.evs, dtype=float).reshape(-1).tolist()


# ------------------------------------------------------------------------------------------
# Driver


@dataclass
class VariationalResult:
    """Energies along the optimization and how close the last one is to the exact ground."""

    energy: float
    exact_energy: float
    error: float
    converged: bool
    tolerance: float
    iterations: int
    evaluations: int  # energy-and-gradient evaluations (each one step's fan-out)
    tasks: int
    parameters: int
    history: list[float]  # energy after each optimizer iteration
    timings: dict[str, float]
    run_dir: Path
    optimal_parameters: list[float] = field(default_factory=list)
    figure: Path | None = None
    model: str = "heisenberg"
    #: MaxCut only: expected cut of the final state over the maximum cut (energy / exact).
    approximation_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["value"] = self.energy
        return _common.jsonable(out)


class _Evaluator:
    """Fans one step's shifted points out over the pools and gathers energy and gradient."""

    def __init__(
        self,
        ctx: RunContext,
        pools: Sequence[str],
        circuit: QuantumCircuit,
        observable: SparsePauliOp,
        tasks_per_step: int,
        precision: float | None,
        seed: int | None,
        tie: np.ndarray | None = None,
    ) -> None:
        from parsl_quantum.backends import get_backend

        self.ctx, self.pools, self.precision, self.seed = ctx, list(pools), precision, seed
        self.tie = tie
        self.tasks_per_step = tasks_per_step
        self.backends = {p: _common.pool_backend(p) for p in pools}
        self.compiled: dict[str, tuple[QuantumCircuit, SparsePauliOp]] = {}
        for pool, name in self.backends.items():  # compile once per backend, on the driver
            (isa,) = get_backend(name).transpile([circuit], seed=seed)
            obs = observable.apply_layout(isa.layout) if isa.layout is not None else observable
            self.compiled[pool] = (isa, obs)
        self.width = circuit.num_qubits
        self.evaluations = 0
        self.tasks = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.asarray(x, dtype=float)
        points = shifted_points(x if self.tie is None else self.tie @ x)
        chunks = np.array_split(np.arange(len(points)), min(self.tasks_per_step, len(points)))
        step = self.evaluations
        futures = []
        for k, idx in enumerate(chunks):
            pool = self.pools[k % len(self.pools)]
            isa, obs = self.compiled[pool]
            seed = None if self.seed is None else self.seed + 1000 * step + k
            futures.append(
                _common.submit(
                    self.ctx,
                    estimate_energies,
                    pool,
                    isa,
                    obs,
                    points[idx],
                    self.backends[pool],
                    self.precision,
                    seed,
                    task=f"step-{step}-chunk-{k}",
                    kind="vqe-energies",
                    backend=self.backends[pool],
                    qubits=self.width,
                    shots=_common.precision_shots(self.precision),
                )
            )
        values = np.concatenate([np.asarray(f.result()) for f in futures])
        self.evaluations += 1
        self.tasks += len(futures)
        energy, grad = energy_and_gradient(values)
        return energy, grad if self.tie is None else self.tie.T @ grad


def _adam(
    evaluate: _Evaluator,
    x0: np.ndarray,
    max_iterations: int,
    learning_rate: float,
    history: list[float],
    tolerance_hit: Any,
) -> np.ndarray:
    """Adam (for shot-noisy energies, where line searches mislead)."""
    x = x0.copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    b1, b2 = 0.9, 0.999
    for k in range(1, max_iterations + 1):
        energy, grad = evaluate(x)
        history.append(energy)
        if tolerance_hit(energy):
            break
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        x = x - learning_rate * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + 1e-8)
    return x


def _figure(res: VariationalResult, path: Path) -> Path:
    fig = _common.new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    steps = np.arange(1, len(res.history) + 1)
    name = "QAOA" if res.model == "maxcut" else "VQE"
    left.plot(steps, res.history, "o-", ms=3, label=f"{name} energy")
    left.axhline(res.exact_energy, color="C3", ls="--", label=f"exact {res.exact_energy:.4f}")
    left.set_xlabel("optimizer iteration")
    left.set_ylabel("energy")
    left.legend()
    left.set_title(f"{res.parameters} parameters, {res.tasks} tasks")
    gap = np.maximum(np.asarray(res.history) - res.exact_energy, 1e-16)
    right.semilogy(steps, gap, "o-", ms=3)
    right.axhline(res.tolerance, color="C2", ls=":", label=f"tolerance {res.tolerance:g}")
    right.set_xlabel("optimizer iteration")
    right.set_ylabel("E - E_exact")
    right.legend()
    right.set_title("converged" if res.converged else "not converged")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    params: VariationalParams | None = None,
    *,
    pools: Sequence[str],
) -> VariationalResult:
    """Run VQE or QAOA on ``pools`` inside ``ctx``.

    The engine of :func:`run` and :func:`run_template`.

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    params : VariationalParams, optional
        The parameters; the defaults when None.
    pools : Sequence of str
        The pools to run on.

    Returns
    -------
    VariationalResult
        The run's result.
    """
    params = params or VariationalParams()
    from scipy.optimize import minimize

    timings = _common.Timings()
    rng = np.random.default_rng(params.seed)
    with timings.stage("setup"):
        tie = None
        if params.model == "heisenberg":
            hamiltonian = heisenberg_hamiltonian(params.qubits, params.periodic, params.coupling)
            exact = ground_energy(hamiltonian)
            ansatz = hva_ansatz(params.qubits, params.layers, params.periodic)
            x0 = rng.normal(0.0, params.init_scale, ansatz.num_parameters)
        elif params.model == "maxcut":
            g = maxcut_graph(params.qubits, params.graph, params.graph_seed)
            hamiltonian = maxcut_hamiltonian(g)
            exact = -float(max_cut(g))
            ansatz, tie = qaoa_ansatz(g, params.layers)
            x0 = ramp_start(params.layers) + rng.normal(0.0, params.init_scale, 2 * params.layers)
        else:
            raise ValueError(f"unknown model {params.model!r} (heisenberg or maxcut)")
        slots = sum(ctx.pools[p].workers if p in ctx.pools else 1 for p in pools)
        evaluate = _Evaluator(
            ctx,
            pools,
            ansatz,
            hamiltonian,
            params.tasks_per_step or max(1, slots),
            params.precision,
            params.seed,
            tie,
        )
    with timings.stage("warmup"):
        _common.warm_pools(ctx, pools)
    history: list[float] = []

    with timings.stage("optimize"):
        if params.method == "lbfgs":
            last: dict[str, float] = {}

            def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
                energy, grad = evaluate(x)
                last["energy"] = energy
                return energy, grad

            def callback(intermediate_result: Any) -> None:
                history.append(float(intermediate_result.fun))
                ctx.progress("+".join(pools), len(history), params.max_iterations)
                if float(intermediate_result.fun) - exact <= params.tolerance / 10:
                    raise StopIteration  # well inside the tolerance: stop spending tasks

            opt = minimize(
                fun,
                x0,
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={"maxiter": params.max_iterations, "gtol": 1e-7, "ftol": 1e-12},
            )
            x_best, energy = opt.x, float(opt.fun)
            if not history or history[-1] != energy:
                history.append(energy)
        elif params.method == "adam":
            x_best = _adam(
                evaluate,
                x0,
                params.max_iterations,
                params.learning_rate,
                history,
                lambda e: e - exact <= params.tolerance / 10,
            )
            energy = history[-1]
        else:
            raise ValueError(f"unknown optimizer {params.method!r} (lbfgs or adam)")

    error = energy - exact
    result = VariationalResult(
        energy=energy,
        exact_energy=exact,
        error=error,
        converged=abs(error) <= params.tolerance,
        tolerance=params.tolerance,
        iterations=len(history),
        evaluations=evaluate.evaluations,
        tasks=evaluate.tasks,
        parameters=len(x0),
        history=history,
        timings={},
        run_dir=ctx.run_dir,
        optimal_parameters=[float(v) for v in x_best],
        model=params.model,
        approximation_ratio=energy / exact if params.model == "maxcut" else None,
    )
    with timings.stage("report"):
        result.figure = _figure(result, ctx.run_dir / "convergence.png")
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def run(
    params: VariationalParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/variational",
    **overrides: Any,
) -> VariationalResult:
    """Find the Heisenberg ground energy by VQE or the maximum cut of a graph by QAOA with the
    loaded Parsl config.

    Each iteration's ``1 + 2P`` energies run as ``tasks_per_step`` tasks spread over
    ``pools``. Evaluating one gradient on pools with different noise mixes their biases: use
    one kind of pool per run.

    Parameters
    ----------
    params : VariationalParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        Default ``cpu``.
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figure go.
    **overrides : Any
        Fields of :class:`VariationalParams` that replace those of ``params``, e.g.
        ``model="maxcut", qubits=8, layers=4``.

    Returns
    -------
    VariationalResult
        The run's result.
    """
    params = dataclasses.replace(params or VariationalParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("cpu",))
    ctx = _common.make_context(run_dir, chosen)
    return execute(ctx, params, pools=chosen)


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: variational`` template inside a loaded DataFlowKernel.

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
    pools = _common.template_pools(template, ctx, ("cpu",))
    result = execute(ctx, VariationalParams.from_template(template), pools=pools)
    return result.to_dict()
