"""QML generative training: a quantum circuit Born machine (QCBM) fitted to a target
distribution with a maximum mean discrepancy (MMD) loss.

The generative motif of quantum machine learning. A parameterized circuit ``U(theta)`` on
``n`` qubits defines the model distribution ``p_theta(x) = |<x|U(theta)|0>|^2`` over bit
strings, which a device samples natively. Training minimizes the squared MMD to the target
``pi``, ``L = (p - pi)^T K (p - pi)``, with a Gaussian kernel mixture
``K(x, y) = mean_s exp(-|f(x) - f(y)|^2 / (2 s^2))`` over bandwidths ``s`` (``f``: the pixels
of a bit string for bars-and-stripes, its integer value for the Gaussian). Every angle enters
one ``RY`` gate, so the parameter-shift rule holds for each probability:
``dp/dtheta_i = (p(theta + pi/2 e_i) - p(theta - pi/2 e_i)) / 2``, and
``dL/dtheta_i = (p - pi)^T K (p_i^+ - p_i^-)``. Each step evaluates the distribution at the
``1 + 2P`` points, split into one Parsl task per worker slot.

Targets (generated here): ``bars-and-stripes`` on a ``rows x cols`` grid (the patterns whose
rows are all equal or whose columns are all equal, uniformly: 6 on 2x2, 14 on 3x3) and
``gaussian``, a normal distribution discretized on the ``2^n`` integers (mean ``(2^n - 1)/2``,
standard deviation ``2^n / 8`` by default).

Distributions come from the backend in one of two ways: ``shots=None`` gives exact
probabilities on an exact backend, from the estimator (the ``2^n`` Z-string expectation values
are the Walsh-Hadamard transform of the distribution); ``shots=N`` samples ``N`` bit strings per
point with the sampler, which is what a device does. The science figure is the KL divergence
``KL(pi || p) = sum_x pi(x) log(pi(x) / p(x))`` of the trained model, on the training pool and,
sampling the same trained circuit, on each evaluation pool (for example the noisy fake device).

Python API: :func:`run` with a :class:`GenerativeParams`; template kind
``qml-generative``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from miniapps import _common
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext

Target = Literal["bars-and-stripes", "gaussian"]
Optimizer = Literal["lbfgs", "adam"]

#: Probabilities below this are raised to it in the KL divergence (a sampled model may miss a
#: bit string of the target's support).
KL_FLOOR = 1e-12

#: One line for the list of template kinds.
DESCRIPTION = "Train a quantum circuit Born machine to a target distribution with an MMD loss."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "target": {
            "type": "object",
            "properties": {
                "name": {"enum": ["bars-and-stripes", "gaussian"]},
                "rows": {"type": "integer", "minimum": 1},
                "cols": {"type": "integer", "minimum": 1},
                "qubits": {"type": "integer", "minimum": 1, "maximum": 12},
                "mean": {"type": "number"},
                "sigma": {"type": "number", "exclusiveMinimum": 0},
            },
            "additionalProperties": False,
        },
        "model": {
            "type": "object",
            "properties": {"layers": {"type": "integer", "minimum": 1}},
            "additionalProperties": False,
        },
        "bandwidths": {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0},
            "minItems": 1,
        },
        "optimizer": {
            "type": "object",
            "properties": {
                "method": {"enum": ["lbfgs", "adam"]},
                "max_iterations": {"type": "integer", "minimum": 1},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                "seed": {"type": "integer"},
            },
            "additionalProperties": False,
        },
        "shots": {"type": "integer", "minimum": 1},
        "evaluate_on": {
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
        },
        "eval_shots": {"type": "integer", "minimum": 1},
        "target_kl": {"type": "number", "exclusiveMinimum": 0},
        "tasks_per_step": {"type": "integer", "minimum": 1},
    },
}


@dataclass(frozen=True)
class GenerativeParams:
    """The target, the model and the training of a Born machine run.

    Where it runs (the training pools, the pools that sample the trained circuit, the run
    directory) is not a parameter: :func:`run` takes those as arguments, a template takes them
    from its envelope and ``evaluate_on``.

    Attributes
    ----------
    target : {"gaussian", "bars-and-stripes"}
        The distribution learnt: a discretised Gaussian on ``qubits`` qubits, or the
        bars-and-stripes patterns of a ``rows x cols`` grid.
    rows, cols : int
        Bars and stripes: the grid.
    qubits : int
        Gaussian: the width.
    mean, sigma : float or None
        Gaussian: its mean and standard deviation on ``0 .. 2^qubits - 1`` (None: the
        middle, and ``2^qubits / 8``).
    layers : int
        Layers of the Born machine.
    bandwidths : sequence of float
        Bandwidths of the MMD loss's Gaussian kernel.
    method : {"lbfgs", "adam"}
        L-BFGS-B (exact probabilities) or Adam (shot noise, with ``learning_rate``).
    max_iterations : int
        Optimizer iterations at most.
    learning_rate : float
        Adam's step size.
    seed : int
        Seed of the initial parameters and of the samplers' shots.
    shots : int or None
        Samples per point while training; None: exact probabilities (exact pools only).
    eval_shots : int
        Samples of the trained circuit on each evaluation pool.
    target_kl : float
        ``reached`` when the trained model's KL divergence on the training pool is at most
        this.
    tasks_per_step : int or None
        Tasks each iteration's ``1 + 2P`` distributions are split into; None: one per worker
        slot.
    """

    target: Target = "gaussian"
    rows: int = 2
    cols: int = 2
    qubits: int = 6
    mean: float | None = None
    sigma: float | None = None
    layers: int = 3
    bandwidths: Sequence[float] = (0.25, 4.0)
    method: Optimizer = "lbfgs"
    max_iterations: int = 150
    learning_rate: float = 0.1
    seed: int = 0
    shots: int | None = None
    eval_shots: int = 20000
    target_kl: float = 0.05
    tasks_per_step: int | None = None

    @property
    def width(self) -> int:
        """The qubits of the Born machine."""
        return self.rows * self.cols if self.target == "bars-and-stripes" else self.qubits

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> GenerativeParams:
        """The parameters of a validated ``kind: qml-generative`` template body; what the body
        leaves out keeps its default."""
        tgt = body.get("target", {})
        opt = body.get("optimizer", {})
        given: dict[str, Any] = {
            k: tgt[k] for k in ("rows", "cols", "qubits", "mean", "sigma") if k in tgt
        }
        if "name" in tgt:
            given["target"] = tgt["name"]
        if "layers" in body.get("model", {}):
            given["layers"] = body["model"]["layers"]
        if "bandwidths" in body:
            given["bandwidths"] = tuple(float(b) for b in body["bandwidths"])
        given |= {
            k: opt[k] for k in ("method", "max_iterations", "learning_rate", "seed") if k in opt
        }
        given |= {
            k: body[k] for k in ("shots", "eval_shots", "target_kl", "tasks_per_step") if k in body
        }
        return cls(**given)


# ------------------------------------------------------------------------------------------
# Targets and kernel


def bars_and_stripes(rows: int, cols: int) -> np.ndarray:
    """The uniform distribution over bars-and-stripes patterns of a ``rows x cols`` grid, as
    probabilities of the ``2^(rows cols)`` bit strings (pixel ``r * cols + c`` is bit
    ``r * cols + c``); ``2^rows + 2^cols - 2`` patterns."""
    patterns = set()
    for mask in range(1 << cols):  # every row equal: vertical stripes
        patterns.add(
            sum(((mask >> c) & 1) << (r * cols + c) for r in range(rows) for c in range(cols))
        )
    for mask in range(1 << rows):  # every column equal: horizontal bars
        patterns.add(
            sum(((mask >> r) & 1) << (r * cols + c) for r in range(rows) for c in range(cols))
        )
    p = np.zeros(1 << (rows * cols))
    p[sorted(patterns)] = 1.0
    return p / p.sum()


def discretized_gaussian(
    qubits: int, mean: float | None = None, sigma: float | None = None
) -> np.ndarray:
    """A normal density on the integers ``0 .. 2^qubits - 1``, normalized (mean
    ``(2^n - 1)/2`` and standard deviation ``2^n / 8`` unless given)."""
    size = 1 << qubits
    mu = (size - 1) / 2 if mean is None else float(mean)
    s = size / 8 if sigma is None else float(sigma)
    x = np.arange(size)
    p = np.exp(-((x - mu) ** 2) / (2 * s * s))
    return p / p.sum()


def features(target: Target, qubits: int) -> np.ndarray:
    """What the kernel compares: pixels (bits) for bars-and-stripes, the integer value for the
    Gaussian; one row per bit string."""
    x = np.arange(1 << qubits)
    if target == "bars-and-stripes":
        return ((x[:, None] >> np.arange(qubits)[None, :]) & 1).astype(float)
    return x[:, None].astype(float)


def gaussian_kernel(feats: np.ndarray, bandwidths: Sequence[float]) -> np.ndarray:
    """``mean_s exp(-|f(x) - f(y)|^2 / (2 s^2))``: a characteristic kernel, so MMD = 0 only
    when the distributions are equal."""
    d2 = np.sum((feats[:, None, :] - feats[None, :, :]) ** 2, axis=-1)
    return np.mean([np.exp(-d2 / (2.0 * s * s)) for s in bandwidths], axis=0)


def mmd_loss_and_gradient(
    distributions: np.ndarray, target: np.ndarray, kernel: np.ndarray
) -> tuple[float, np.ndarray]:
    """Squared MMD at the first row and its parameter-shift gradient from the rows at
    ``[theta, theta + s e_0, theta - s e_0, ...]``."""
    d = distributions[0] - target
    kd = kernel @ d
    loss = float(d @ kd)
    grad = (distributions[1::2] - distributions[2::2]) @ kd
    return loss, grad


def kl_divergence(target: np.ndarray, model: np.ndarray) -> float:
    """``KL(target || model)`` over the target's support, the model floored at
    :data:`KL_FLOOR`."""
    support = target > 0
    q = np.maximum(np.asarray(model, dtype=float)[support], KL_FLOOR)
    return float(np.sum(target[support] * np.log(target[support] / q)))


# ------------------------------------------------------------------------------------------
# Model


def born_machine(qubits: int, layers: int) -> QuantumCircuit:
    """``layers`` x (``RY`` on every qubit, CX ladder), then a final ``RY`` layer:
    ``qubits * (layers + 1)`` angles, each in one gate."""
    theta = ParameterVector("theta", qubits * (layers + 1))
    qc = QuantumCircuit(qubits, name=f"qcbm-{qubits}q-{layers}l")
    k = 0
    for _ in range(layers):
        for q in range(qubits):
            qc.ry(theta[k], q)
            k += 1
        for q in range(qubits - 1):
            qc.cx(q, q + 1)
    for q in range(qubits):
        qc.ry(theta[k], q)
        k += 1
    return qc


def shifted_points(theta: np.ndarray) -> np.ndarray:
    """``[theta, theta + pi/2 e_0, theta - pi/2 e_0, ...]``: one step's ``1 + 2P`` rows."""
    p = len(theta)
    out = np.empty((1 + 2 * p, p))
    out[0] = theta
    out[1::2] = theta + np.eye(p) * math.pi / 2
    out[2::2] = theta - np.eye(p) * math.pi / 2
    return out


def z_string_labels(qubits: int) -> list[str]:
    """Pauli labels ``Z_m = prod_(q in m) Z_q`` for every subset ``m`` of the qubits (bit ``q``
    of ``m`` is qubit ``q``)."""
    return [
        "".join("Z" if (m >> q) & 1 else "I" for q in reversed(range(qubits)))
        for m in range(1 << qubits)
    ]


def walsh_hadamard(values: np.ndarray) -> np.ndarray:
    """``p(x) = 2^-n sum_m (-1)^|m & x| <Z_m>``, applied along the first axis (fast transform)."""
    out = np.array(values, dtype=float)
    size = out.shape[0]
    h = 1
    while h < size:
        out = out.reshape(size // (2 * h), 2, h, *out.shape[1:])
        a, b = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0], out[:, 1] = a + b, a - b
        out = out.reshape(size, *out.shape[3:])
        h *= 2
    return out / size


# ------------------------------------------------------------------------------------------
# Task


def distributions(
    circuit: QuantumCircuit,
    points: np.ndarray,
    backend: str,
    shots: int | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The output distribution of the ISA ``circuit`` at each row of ``points`` (a task):
    exact from the estimator's Z strings when ``shots`` is None (the circuit carries no
    measurements), else sampled (the circuit ends in ``measure_all``). Returns (rows, 2^n)."""
    from parsl_quantum.backends import worker_backend

    qb = worker_backend(backend)
    pts = np.asarray(points, dtype=float)
    if shots is None:
        layout = circuit.layout
        n = (
            circuit.num_qubits
            if layout is None
            else len(layout.initial_index_layout(filter_ancillas=True))
        )
        labels = z_string_labels(n)
        if circuit.layout is not None:
            labels = [
                SparsePauliOp(lab).apply_layout(circuit.layout).paulis[0].to_label()
                for lab in labels
            ]
        obs = [[lab] for lab in labels]
        evs = qb.estimator(seed=seed).run([(circuit, obs, pts)]).result()[0].data.evs
        return np.clip(walsh_hadamard(np.asarray(evs, dtype=float)).T, 0.0, None)
    result = qb.sampler(seed=seed).run([(circuit, pts)], shots=shots).result()[0]
    bits = result.data.meas
    n = bits.num_bits
    out = np.zeros((len(pts), 1 << n))
    for i in range(len(pts)):
        for value, count in bits[i].get_int_counts().items():
            out[i, value] = count / shots
    return out


# ------------------------------------------------------------------------------------------
# Driver


@dataclass
class GenerativeResult:
    """KL divergence of the trained Born machine to the target, per pool and at the start."""

    kl: float  # trained model, training pool (exact probabilities when shots is None)
    initial_kl: float
    target_kl: float
    reached: bool
    kl_by_pool: dict[str, float]  # the trained circuit sampled with eval_shots on each pool
    mmd: float
    target: str
    qubits: int
    layers: int
    parameters: int
    shots: int | None
    eval_shots: int
    history: list[float]  # squared MMD per iteration
    iterations: int
    tasks: int
    timings: dict[str, float]
    run_dir: Path
    optimal_parameters: list[float]
    target_distribution: list[float] = field(default_factory=list)
    model_distribution: list[float] = field(default_factory=list)
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["value"] = self.kl
        return _common.jsonable(out)


def target_distribution(
    target: Target,
    *,
    rows: int = 2,
    cols: int = 2,
    qubits: int = 6,
    mean: float | None = None,
    sigma: float | None = None,
) -> np.ndarray:
    """The named target's probabilities (``rows x cols`` for bars-and-stripes, ``qubits``,
    ``mean``, ``sigma`` for the Gaussian)."""
    if target == "bars-and-stripes":
        return bars_and_stripes(rows, cols)
    if target == "gaussian":
        return discretized_gaussian(qubits, mean, sigma)
    raise ValueError(f"unknown target {target!r} (bars-and-stripes or gaussian)")


def check_inputs(
    pool_info: Mapping[str, PoolInfo],
    pools: Sequence[str],
    evaluate_on: Sequence[str],
    target: str,
    qubits: int,
    shots: int | None,
) -> None:
    """Refuse, before any task, an unknown target, more than 12 qubits, exact training on a
    pool whose backend is not exact, and pools narrower than the model."""
    if target not in ("bars-and-stripes", "gaussian"):
        raise ValueError(f"unknown target {target!r} (bars-and-stripes or gaussian)")
    if not 1 <= qubits <= 12:
        raise ValueError(f"the Born machine needs 1 to 12 qubits, got {qubits}")
    if shots is None:
        inexact = [p for p in pools if p in pool_info and not pool_info[p].exact]
        if inexact:
            raise ValueError(
                f"pool {inexact[0]!r} has no exact estimator: set shots to train on it"
            )
    _common.check_width(pool_info, [*pools, *evaluate_on], qubits)


class _Evaluator:
    """Compiles the Born machine once per pool and fans distributions out as tasks."""

    def __init__(self, ctx: RunContext, model: QuantumCircuit, seed: int) -> None:
        self.ctx, self.model, self.seed = ctx, model, seed
        self.compiled: dict[tuple[str, bool], QuantumCircuit] = {}
        self.backends: dict[str, str] = {}
        self.tasks = 0

    def _isa(self, pool: str, sampled: bool) -> QuantumCircuit:
        from parsl_quantum.backends import get_backend

        key = (pool, sampled)
        if key not in self.compiled:
            name = self.backends.setdefault(pool, _common.pool_backend(pool))
            qc = self.model.measure_all(inplace=False) if sampled else self.model
            (isa,) = get_backend(name).transpile([qc], seed=self.seed)
            if set(isa.parameters) != set(self.model.parameters):
                raise RuntimeError(f"compiling for {name} changed the model's parameters")
            self.compiled[key] = isa
        return self.compiled[key]

    def __call__(
        self, pools: Sequence[str], points: np.ndarray, shots: int | None, label: str, parts: int
    ) -> np.ndarray:
        chunks = [c for c in np.array_split(np.arange(len(points)), parts) if len(c)]
        futures = []
        for k, idx in enumerate(chunks):
            pool = pools[k % len(pools)]
            isa = self._isa(pool, shots is not None)
            self.tasks += 1
            futures.append(
                _common.submit(
                    self.ctx,
                    distributions,
                    pool,
                    isa,
                    points[idx],
                    self.backends[pool],
                    shots,
                    self.seed + self.tasks,
                    task=f"{label}-{k}",
                    kind="qcbm-distribution",
                    backend=self.backends[pool],
                    qubits=self.model.num_qubits,
                    shots=(shots or 0) * len(idx),
                )
            )
        return np.concatenate([f.result() for f in futures])


def _figure(res: GenerativeResult, model_by_pool: Mapping[str, np.ndarray], path: Path) -> Path:
    fig = _common.new_figure(12, 4)
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    left.semilogy(np.arange(1, len(res.history) + 1), np.maximum(res.history, 1e-16), "o-", ms=3)
    left.set_xlabel("optimizer iteration")
    left.set_ylabel("squared MMD")
    left.set_title(f"{res.parameters} angles, {res.tasks} tasks")
    target = np.asarray(res.target_distribution)
    x = np.arange(len(target))
    right.bar(x, target, width=1.0, color="C7", alpha=0.5, label="target")
    right.plot(x, res.model_distribution, "o-", ms=2, label=f"trained, KL {res.kl:.3f}")
    for k, (pool, dist) in enumerate(model_by_pool.items()):
        right.plot(
            x, dist, ".", ms=3, color=f"C{k + 2}", label=f"{pool}, KL {res.kl_by_pool[pool]:.3f}"
        )
    right.set_xlabel("bit string (integer value)")
    right.set_ylabel("probability")
    right.legend(loc="upper right")
    right.set_title(f"{res.target}, {res.qubits} qubits")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    params: GenerativeParams | None = None,
    *,
    pools: Sequence[str],
    evaluate_on: Sequence[str] = (),
) -> GenerativeResult:
    """Train the Born machine on ``pools`` inside ``ctx``, then sample it on ``evaluate_on``.

    Every pool of ``evaluate_on`` samples the trained circuit. The engine of :func:`run` and
    :func:`run_template`.

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    params : GenerativeParams, optional
        The parameters; the defaults when None.
    pools : Sequence of str
        The training pools.
    evaluate_on : Sequence of str
        The pools that sample the trained circuit.

    Returns
    -------
    GenerativeResult
        The run's result.
    """
    params = params or GenerativeParams()
    width = params.width
    check_inputs(ctx.pools, pools, evaluate_on, params.target, width, params.shots)
    timings = _common.Timings()
    with timings.stage("setup"):
        pi = target_distribution(
            params.target,
            rows=params.rows,
            cols=params.cols,
            qubits=params.qubits,
            mean=params.mean,
            sigma=params.sigma,
        )
        kernel = gaussian_kernel(features(params.target, width), params.bandwidths)
        model = born_machine(width, params.layers)
        evaluate = _Evaluator(ctx, model, params.seed)
        slots = sum(ctx.pools[p].workers if p in ctx.pools else 1 for p in pools)
        parts = params.tasks_per_step or max(1, slots)
    with timings.stage("warmup"):
        _common.warm_pools(ctx, list(dict.fromkeys([*pools, *evaluate_on])))
    x0 = np.random.default_rng(params.seed).uniform(-math.pi, math.pi, model.num_parameters)
    history: list[float] = []
    steps = 0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal steps
        dists = evaluate(pools, shifted_points(x), params.shots, f"step-{steps}", parts)
        steps += 1
        return mmd_loss_and_gradient(dists, pi, kernel)

    def on_step(k: int, cost: float) -> None:
        history.append(cost)
        ctx.progress("+".join(pools), k, params.max_iterations)

    with timings.stage("train"):
        x = _common.optimize(
            fun,
            x0,
            method=params.method,
            max_iterations=params.max_iterations,
            learning_rate=params.learning_rate,
            gtol=1e-10,
            ftol=1e-14,
            on_step=on_step,
        )
    with timings.stage("evaluate"):
        start_end = evaluate(pools[:1], np.array([x0, x]), params.shots, "final", 1)
        sampled = {
            pool: evaluate([pool], x[None, :], params.eval_shots, f"sample-{pool}", 1)[0]
            for pool in evaluate_on
        }
    kl = kl_divergence(pi, start_end[1])
    result = GenerativeResult(
        kl=kl,
        initial_kl=kl_divergence(pi, start_end[0]),
        target_kl=params.target_kl,
        reached=kl <= params.target_kl,
        kl_by_pool={pool: kl_divergence(pi, d) for pool, d in sampled.items()},
        mmd=float((start_end[1] - pi) @ kernel @ (start_end[1] - pi)),
        target=params.target
        if params.target == "gaussian"
        else f"bars-and-stripes {params.rows}x{params.cols}",
        qubits=width,
        layers=params.layers,
        parameters=model.num_parameters,
        shots=params.shots,
        eval_shots=params.eval_shots,
        history=history,
        iterations=len(history),
        tasks=evaluate.tasks,
        timings={},
        run_dir=ctx.run_dir,
        optimal_parameters=[float(v) for v in x],
        target_distribution=[float(v) for v in pi],
        model_distribution=[float(v) for v in start_end[1]],
    )
    with timings.stage("report"):
        result.figure = _figure(result, sampled, ctx.run_dir / "born-machine.png")
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def default_evaluation_pools(pools: Sequence[str]) -> list[str]:
    """The training pools, and the loaded config's ``qpu`` pool when it has one."""
    labels = _common.pool_labels()
    return list(dict.fromkeys([*pools, *(["qpu"] if "qpu" in labels else [])]))


def run(
    params: GenerativeParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    evaluate_on: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/qml-generative",
    **overrides: Any,
) -> GenerativeResult:
    """Train a Born machine to a target distribution with the loaded Parsl config.

    ``shots=None`` trains on exact probabilities (``pools`` must be exact simulators);
    ``shots=N`` on ``N`` samples per point (use ``method="adam"``).

    Parameters
    ----------
    params : GenerativeParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        The training pools; default ``cpu``.
    evaluate_on : sequence of str, optional
        The pools that sample the trained circuit with ``eval_shots``; None: the training
        pools and ``qpu`` when the config has it.
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figure go.
    **overrides : Any
        Fields of :class:`GenerativeParams` that replace those of ``params``, e.g.
        ``target="bars-and-stripes", rows=2, cols=3``.

    Returns
    -------
    GenerativeResult
        The run's result.
    """
    params = dataclasses.replace(params or GenerativeParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("cpu",))
    if evaluate_on is None:
        evals = default_evaluation_pools(chosen)
    else:
        evals = _common.resolve_pools(list(evaluate_on)) if evaluate_on else []
    ctx = _common.make_context(run_dir, list(dict.fromkeys([*chosen, *evals])))
    return execute(ctx, params, pools=chosen, evaluate_on=evals)


def _template_pools(
    template: Mapping[str, Any], pool_names: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The training pool (the first named pool that is not ``qpu``) and the evaluation pools
    (``evaluate_on``, default all named pools) of a template."""
    named = list(template.get("pools") or pool_names)
    train = [p for p in named if p != "qpu"][:1] or named[:1]
    return train, list(template.get("evaluate_on") or named)


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> None:
    """Check the target, the training mode and the pool widths before any pool starts."""
    params = GenerativeParams.from_template(template)
    train, evaluate_on = _template_pools(template, list(pools))
    check_inputs(pools, train, evaluate_on, params.target, params.width, params.shots)
    unknown = [p for p in evaluate_on if p not in pools]
    if unknown:
        raise ValueError(f"evaluate_on: pool {unknown[0]!r} is not one of the run's pools")


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: qml-generative`` template inside a loaded DataFlowKernel.

    The first pool of the template that is not ``qpu`` trains; every pool of ``evaluate_on``
    (default: all the template's pools) samples the trained circuit.

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
    named = _common.template_pools(template, ctx, ("cpu", "qpu"))
    train, evaluate_on = _template_pools(template, named)
    params = GenerativeParams.from_template(template)
    return execute(ctx, params, pools=train, evaluate_on=evaluate_on).to_dict()
