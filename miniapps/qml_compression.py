"""QML compression: a quantum autoencoder trained to squeeze n-qubit states into k latent qubits.

The compression motif of quantum machine learning. An encoder circuit ``U(theta)`` acts on the
``n`` data qubits; the last ``n - k`` of them are the *trash* qubits. Training drives the trash
qubits to ``|0...0>`` for every training state (the cost is the mean trash infidelity
``1 - <P_0>``, with ``P_0`` the projector of the trash qubits onto zero), so the state's
information is left in the ``k`` latent qubits. Decompression resets the trash qubits to zero
and applies ``U(theta)^dagger``; the reconstruction fidelity of a state ``psi`` is
``<psi| U^dagger (Tr_trash[U psi U^dagger] x |0><0|) U |psi>``.

The data are made here, exactly: ground states of the transverse-field Ising ring
``H(h) = -J sum_i Z_i Z_(i+1) - h sum_i X_i`` across field values ``h`` (dense
diagonalisation on the driver). Across the transition at ``h = J`` they change from a GHZ-like
cat state to the product state ``|+...+>``, but they stay in a low-dimensional subspace
(translation- and spin-flip-symmetric), which is what a good encoder finds. Training uses fields
spread over ``[field_min, field_max]``; the held-out states are the midpoints between them.

Each training step evaluates every training state's trash fidelity at ``theta`` and at each
``theta_i +- pi/2`` (exact parameter-shift gradients: every angle enters one ``RY``) in one
estimator call per shard of states, one Parsl task per shard. The reconstruction fidelity is
measured on the backend as well, by a unitary circuit on ``n + (n - k)`` qubits: prepare
``psi``, encode, swap the trash qubits with fresh ancillas (which discards them and puts zeros
in their place), decode, undo the preparation, and estimate the probability of all-zero data
qubits.

Python API: :func:`run` with a :class:`CompressionParams`; template kind
``qml-compression``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import StatePreparation
from qiskit.quantum_info import SparsePauliOp

from miniapps import _common
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext

Optimizer = Literal["lbfgs", "adam"]

#: One line for the list of template kinds.
DESCRIPTION = "Train a quantum autoencoder compressing Ising ground states into latent qubits."

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "qubits": {"type": "integer", "minimum": 2, "maximum": 10},
                "train": {"type": "integer", "minimum": 1},
                "field_min": {"type": "number", "minimum": 0},
                "field_max": {"type": "number", "exclusiveMinimum": 0},
                "coupling": {"type": "number"},
            },
            "additionalProperties": False,
        },
        "model": {
            "type": "object",
            "properties": {
                "latent": {"type": "integer", "minimum": 1},
                "layers": {"type": "integer", "minimum": 1},
            },
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
        "target_fidelity": {"type": "number", "minimum": 0, "maximum": 1},
        "shards": {"type": "integer", "minimum": 1},
        "precision": {"type": "number", "exclusiveMinimum": 0},
    },
}


@dataclass(frozen=True)
class CompressionParams:
    """The data, the model and the training of a quantum autoencoder run.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments, a template takes them from its envelope.

    Attributes
    ----------
    qubits : int
        Width of the Ising ground states compressed.
    latent : int
        Qubits they are compressed into.
    layers : int
        RY + CX-ladder blocks of the encoder.
    train : int
        Ground states at fields evenly spaced in ``[field_min, field_max]`` (in units of
        ``coupling``) form the training set; their midpoints the held-out set.
    field_min, field_max : float
        The range of transverse fields.
    coupling : float
        The Ising coupling ``J``.
    method : {"lbfgs", "adam"}
        L-BFGS-B (exact estimators) or Adam (shot noise, with ``learning_rate``).
    max_iterations : int
        Optimizer iterations at most.
    learning_rate : float
        Adam's step size.
    init_scale : float
        Initial angles are drawn from ``N(0, init_scale^2)``.
    seed : int
        Seed of the initial angles and of the estimators' shots.
    target_fidelity : float
        ``reached`` when the held-out mean reconstruction fidelity is at least this.
    shards : int or None
        Tasks each iteration's evaluations are split into; None: one per worker slot.
    precision : float or None
        The estimator's target standard error (None: the backend's default, exact on Aer).
    """

    qubits: int = 6
    latent: int = 3
    layers: int = 5
    train: int = 8
    field_min: float = 0.2
    field_max: float = 2.0
    coupling: float = 1.0
    method: Optimizer = "lbfgs"
    max_iterations: int = 100
    learning_rate: float = 0.05
    init_scale: float = 3.0
    seed: int = 0
    target_fidelity: float = 0.95
    shards: int | None = None
    precision: float | None = None

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> CompressionParams:
        """The parameters of a validated ``kind: qml-compression`` template body; what the
        body leaves out keeps its default."""
        data = body.get("data", {})
        model = body.get("model", {})
        opt = body.get("optimizer", {})
        given: dict[str, Any] = {
            k: data[k]
            for k in ("qubits", "train", "field_min", "field_max", "coupling")
            if k in data
        }
        given |= {k: model[k] for k in ("latent", "layers") if k in model}
        given |= {
            k: opt[k]
            for k in ("method", "max_iterations", "learning_rate", "init_scale", "seed")
            if k in opt
        }
        given |= {k: body[k] for k in ("target_fidelity", "shards", "precision") if k in body}
        return cls(**given)


# ------------------------------------------------------------------------------------------
# Data


def ising_hamiltonian(qubits: int, field: float, coupling: float = 1.0) -> SparsePauliOp:
    """``-J sum_i Z_i Z_(i+1) - h sum_i X_i`` on a ring of ``qubits`` (a chain for 2)."""
    bonds = [(i, (i + 1) % qubits) for i in range(qubits if qubits > 2 else 1)]
    terms = [("ZZ", [i, j], -coupling) for i, j in bonds]
    terms += [("X", [i], -field) for i in range(qubits)]
    return SparsePauliOp.from_sparse_list(terms, qubits).simplify()


def ground_state(hamiltonian: SparsePauliOp) -> np.ndarray:
    """The ground state as a real vector, its largest component positive (a fixed phase)."""
    _, vectors = np.linalg.eigh(hamiltonian.to_matrix())
    state = np.real(vectors[:, 0])
    return state * np.sign(state[np.argmax(np.abs(state))])


def field_values(train: int, field_min: float, field_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(training fields: ``train`` evenly spaced over the range, held-out fields: their
    midpoints; a single training field has the range's end as its held-out field)."""
    fields = np.linspace(field_min, field_max, train) if train > 1 else np.array([field_min])
    held_out = (fields[:-1] + fields[1:]) / 2 if train > 1 else np.array([field_max])
    return fields, held_out


def ising_states(qubits: int, fields: Sequence[float], coupling: float = 1.0) -> np.ndarray:
    """Ground states of :func:`ising_hamiltonian` at each field, one row per field."""
    return np.array([ground_state(ising_hamiltonian(qubits, h, coupling)) for h in fields])


# ------------------------------------------------------------------------------------------
# Model


def encoder(qubits: int, layers: int) -> QuantumCircuit:
    """``layers`` x (``RY`` on every qubit, CX ladder ``0 -> 1 -> ... -> n-1``), then a final
    ``RY`` layer: ``qubits * (layers + 1)`` angles, each in one gate (real amplitudes, which is
    all the Ising ground states need)."""
    theta = ParameterVector("theta", qubits * (layers + 1))
    qc = QuantumCircuit(qubits, name=f"encoder-{qubits}q-{layers}l")
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


def zero_projector(qubits: Sequence[int], width: int) -> SparsePauliOp:
    """The projector of ``qubits`` onto ``|0...0>``, ``prod (I + Z_q) / 2``, on ``width``
    qubits (``2^len(qubits)`` Z-string terms)."""
    terms = []
    count = len(qubits)
    for mask in range(1 << count):
        chosen = [q for b, q in enumerate(qubits) if mask >> b & 1]
        terms.append(("Z" * len(chosen), chosen, 1.0 / (1 << count)))
    return SparsePauliOp.from_sparse_list(terms, width)


def preparation(state: np.ndarray) -> QuantumCircuit:
    """A circuit of CX and U gates preparing ``state`` from ``|0...0>``.

    Compiled here rather than left as a ``StatePreparation`` instruction, so that every backend
    (and the inverse, which the reconstruction needs) sees plain gates.
    """
    from qiskit import transpile

    n = int(round(math.log2(len(state))))
    qc = QuantumCircuit(n, name="prepare")
    qc.append(StatePreparation(state), range(n))
    out: QuantumCircuit = transpile(qc, basis_gates=["cx", "u"], optimization_level=1)
    return out


def training_circuit(state: np.ndarray, model: QuantumCircuit) -> QuantumCircuit:
    """Prepare ``state`` and encode it: the trash fidelity is ``<P_0>`` of the trash qubits.

    The state is loaded by an ``initialize`` instruction, which simulators set directly (the
    training evaluates these circuits thousands of times) and device compilation turns into
    gates.
    """
    n = model.num_qubits
    qc = QuantumCircuit(n, name="compress")
    qc.initialize(state, range(n))
    qc.compose(model, inplace=True)
    return qc


def reconstruction_circuit(state: np.ndarray, model: QuantumCircuit, latent: int) -> QuantumCircuit:
    """Prepare, encode, swap the trash qubits out to fresh ancillas, decode, unprepare: the
    probability of all-zero data qubits is the reconstruction fidelity."""
    n = model.num_qubits
    trash = n - latent
    qc = QuantumCircuit(n + trash, name="reconstruct")
    prep = preparation(state)
    qc.compose(prep, range(n), inplace=True)
    qc.compose(model, range(n), inplace=True)
    for j in range(trash):
        qc.swap(latent + j, n + j)
    qc.compose(model.inverse(), range(n), inplace=True)
    qc.compose(prep.inverse(), range(n), inplace=True)
    return qc


def exact_reconstruction(states: np.ndarray, model: QuantumCircuit, latent: int) -> np.ndarray:
    """Reconstruction fidelities from the encoded statevectors (reference for tests).

    ``model`` must have its parameters bound.
    """
    from qiskit.quantum_info import Operator

    u = Operator(model).data
    n = model.num_qubits
    out = []
    for psi in states:
        phi = (u @ psi).reshape(1 << (n - latent), 1 << latent)  # [trash, latent]
        rho = phi.T @ phi.conj()  # latent density matrix
        a = phi[0]
        out.append(float(np.real(a.conj() @ rho @ a)))
    return np.array(out)


def shifted_points(theta: np.ndarray) -> np.ndarray:
    """``[theta, theta + pi/2 e_0, theta - pi/2 e_0, ...]``: one step's ``1 + 2P`` rows."""
    p = len(theta)
    out = np.empty((1 + 2 * p, p))
    out[0] = theta
    out[1::2] = theta + np.eye(p) * math.pi / 2
    out[2::2] = theta - np.eye(p) * math.pi / 2
    return out


def cost_and_gradient(fidelities: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean trash infidelity and its parameter-shift gradient from the fidelities of each
    state (rows) at :func:`shifted_points` (columns)."""
    mean = np.mean(np.asarray(fidelities, dtype=float), axis=0)
    return 1.0 - float(mean[0]), -0.5 * (mean[1::2] - mean[2::2])


# ------------------------------------------------------------------------------------------
# Task


def estimate_projector(
    circuits: Sequence[QuantumCircuit],
    observable: SparsePauliOp,
    points: np.ndarray,
    backend: str,
    precision: float | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """``<observable>`` of each ISA circuit at each row of ``points`` (a task): one estimator
    call, one pub per circuit; returns an array (circuits x rows)."""
    from parsl_quantum.backends import worker_backend

    estimator = worker_backend(backend).estimator(seed=seed)
    pubs = []
    for qc in circuits:
        obs = observable.apply_layout(qc.layout) if qc.layout is not None else observable
        pubs.append((qc, obs, np.asarray(points)))
    result = estimator.run(pubs, precision=precision).result()
    return np.array([np.asarray(r.data.evs, dtype=float).reshape(-1) for r in result])


# ------------------------------------------------------------------------------------------
# Driver


@dataclass
class CompressionResult:
    """The trained autoencoder's held-out reconstruction fidelity, and at initialization."""

    fidelity: float  # mean reconstruction fidelity on the held-out states, trained
    initial_fidelity: float  # the same at the initial parameters
    target_fidelity: float
    reached: bool
    fidelities: list[float]  # per held-out state, trained
    initial_fidelities: list[float]
    train_fidelity: float  # mean reconstruction fidelity on the training states, trained
    trash_fidelity: float  # mean trash fidelity on the held-out states, trained
    qubits: int
    latent: int
    layers: int
    parameters: int
    train_fields: list[float]
    test_fields: list[float]
    history: list[float]  # mean trash infidelity of the training states per iteration
    iterations: int
    tasks: int
    timings: dict[str, float]
    run_dir: Path
    optimal_parameters: list[float]
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["value"] = self.fidelity
        return _common.jsonable(out)


class _Runner:
    """Compiles the circuits once per pool and fans their evaluations out as tasks."""

    def __init__(
        self, ctx: RunContext, pools: Sequence[str], precision: float | None, seed: int
    ) -> None:
        self.ctx, self.pools, self.precision, self.seed = ctx, list(pools), precision, seed
        self.backends = {p: _common.pool_backend(p) for p in pools}
        self.tasks = 0

    def compile(self, circuits: Sequence[QuantumCircuit]) -> dict[str, list[QuantumCircuit]]:
        from parsl_quantum.backends import get_backend

        out = {}
        for pool, name in self.backends.items():
            isa = get_backend(name).transpile(list(circuits), seed=self.seed)
            for qc, orig in zip(isa, circuits, strict=True):
                if set(qc.parameters) != set(orig.parameters):
                    raise RuntimeError(f"compiling for {name} changed the encoder's parameters")
            out[pool] = isa
        return out

    def evaluate(
        self,
        compiled: Mapping[str, Sequence[QuantumCircuit]],
        observable: SparsePauliOp,
        points: np.ndarray,
        shards: int,
        label: str,
    ) -> np.ndarray:
        count = len(next(iter(compiled.values())))
        parts = [p for p in np.array_split(np.arange(count), shards) if len(p)]
        futures = []
        for k, idx in enumerate(parts):
            pool = self.pools[k % len(self.pools)]
            circuits = [compiled[pool][i] for i in idx]
            self.tasks += 1
            futures.append(
                _common.submit(
                    self.ctx,
                    estimate_projector,
                    pool,
                    circuits,
                    observable,
                    points,
                    self.backends[pool],
                    self.precision,
                    self.seed + self.tasks,
                    task=f"{label}-{k}",
                    kind="qae-fidelity",
                    backend=self.backends[pool],
                    qubits=circuits[0].num_qubits,
                    shots=_common.precision_shots(self.precision),
                )
            )
        return np.concatenate([f.result() for f in futures])


def _figure(res: CompressionResult, path: Path) -> Path:
    fig = _common.new_figure(11, 4)
    left, right = fig.subplots(1, 2)
    its = np.arange(1, len(res.history) + 1)
    left.semilogy(its, np.maximum(res.history, 1e-12), "o-", ms=3)
    left.set_xlabel("optimizer iteration")
    left.set_ylabel("mean trash infidelity (training states)")
    left.set_title(f"{res.qubits} -> {res.latent} qubits, {res.parameters} angles")
    right.plot(res.test_fields, res.fidelities, "o-", label=f"trained (mean {res.fidelity:.3f})")
    right.plot(
        res.test_fields,
        res.initial_fidelities,
        "s--",
        label=f"at initialization (mean {res.initial_fidelity:.3f})",
    )
    for h in res.train_fields:
        right.axvline(h, color="C7", lw=0.5, alpha=0.5)
    right.axhline(res.target_fidelity, color="C3", ls=":", label=f"target {res.target_fidelity}")
    right.set_ylim(0, 1.02)
    right.set_xlabel("transverse field h / J (grey: training fields)")
    right.set_ylabel("reconstruction fidelity")
    right.legend(loc="lower right")
    right.set_title("held-out ground states")
    return _common.save_figure(fig, path)


def check_inputs(
    pool_info: Mapping[str, PoolInfo],
    pools: Sequence[str],
    qubits: int,
    latent: int,
    field_min: float,
    field_max: float,
) -> None:
    """Refuse, before any task, a latent register that is not smaller than the data, an empty
    field range, and pools narrower than the reconstruction circuit (``2 qubits - latent``)."""
    if not 1 <= latent < qubits:
        raise ValueError(f"latent must be between 1 and qubits - 1 ({qubits - 1}), got {latent}")
    if field_max <= field_min:
        raise ValueError(f"field_max ({field_max}) must exceed field_min ({field_min})")
    _common.check_width(pool_info, pools, 2 * qubits - latent)


def execute(
    ctx: RunContext,
    params: CompressionParams | None = None,
    *,
    pools: Sequence[str],
) -> CompressionResult:
    """Train the autoencoder on ``pools`` inside ``ctx``.

    The engine of :func:`run` and :func:`run_template`.

    Parameters
    ----------
    ctx : RunContext
        The run's pools, directory and task recorder.
    params : CompressionParams, optional
        The parameters; the defaults when None.
    pools : Sequence of str
        The pools to run on.

    Returns
    -------
    CompressionResult
        The run's result.
    """
    params = params or CompressionParams()
    check_inputs(ctx.pools, pools, params.qubits, params.latent, params.field_min, params.field_max)
    timings = _common.Timings()
    with timings.stage("setup"):
        train_fields, test_fields = field_values(params.train, params.field_min, params.field_max)
        train_states = ising_states(params.qubits, train_fields, params.coupling)
        test_states = ising_states(params.qubits, test_fields, params.coupling)
        model = encoder(params.qubits, params.layers)
        trash = zero_projector(range(params.latent, params.qubits), params.qubits)
        data = zero_projector(range(params.qubits), 2 * params.qubits - params.latent)
        runner = _Runner(ctx, pools, params.precision, params.seed)
        train_isa = runner.compile([training_circuit(s, model) for s in train_states])
        recon_isa = runner.compile(
            [reconstruction_circuit(s, model, params.latent) for s in (*test_states, *train_states)]
        )
        slots = sum(ctx.pools[p].workers if p in ctx.pools else 1 for p in pools)
        shards = params.shards or max(1, slots)
    with timings.stage("warmup"):
        _common.warm_pools(ctx, pools)
    rng = np.random.default_rng(params.seed)
    x0 = rng.normal(0.0, params.init_scale, model.num_parameters)
    history: list[float] = []
    steps = 0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal steps
        points = shifted_points(x)
        values = runner.evaluate(train_isa, trash, points, shards, f"step-{steps}")
        steps += 1
        return cost_and_gradient(values)

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
            gtol=1e-8,
            ftol=1e-12,
            on_step=on_step,
        )
    with timings.stage("evaluate"):
        rows = np.array([x0, x])
        recon = runner.evaluate(recon_isa, data, rows, shards, "reconstruct")
        trash_test = runner.evaluate(
            runner.compile([training_circuit(s, model) for s in test_states]),
            trash,
            rows[1:],
            shards,
            "trash-test",
        )
    n_test = len(test_states)
    result = CompressionResult(
        fidelity=float(np.mean(recon[:n_test, 1])),
        initial_fidelity=float(np.mean(recon[:n_test, 0])),
        target_fidelity=params.target_fidelity,
        reached=float(np.mean(recon[:n_test, 1])) >= params.target_fidelity,
        fidelities=[float(f) for f in recon[:n_test, 1]],
        initial_fidelities=[float(f) for f in recon[:n_test, 0]],
        train_fidelity=float(np.mean(recon[n_test:, 1])),
        trash_fidelity=float(np.mean(trash_test[:, 0])),
        qubits=params.qubits,
        latent=params.latent,
        layers=params.layers,
        parameters=model.num_parameters,
        train_fields=[float(h) for h in train_fields],
        test_fields=[float(h) for h in test_fields],
        history=history,
        iterations=len(history),
        tasks=runner.tasks,
        timings={},
        run_dir=ctx.run_dir,
        optimal_parameters=[float(v) for v in x],
    )
    with timings.stage("report"):
        result.figure = _figure(result, ctx.run_dir / "compression.png")
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def run(
    params: CompressionParams | None = None,
    *,
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/qml-compression",
    **overrides: Any,
) -> CompressionResult:
    """Train an autoencoder compressing Ising ground states into fewer qubits with the loaded
    Parsl config, and report its held-out reconstruction fidelity.

    Parameters
    ----------
    params : CompressionParams, optional
        The parameters; the defaults when None.
    pools : sequence of str, optional
        Default ``cpu``.
    run_dir : str or Path
        Where ``tasks.csv``, ``result.json`` and the figure go.
    **overrides : Any
        Fields of :class:`CompressionParams` that replace those of ``params``, e.g.
        ``qubits=6, latent=3``.

    Returns
    -------
    CompressionResult
        The run's result.
    """
    params = dataclasses.replace(params or CompressionParams(), **overrides)
    chosen = _common.resolve_pools(pools, default=("cpu",))
    ctx = _common.make_context(run_dir, chosen)
    return execute(ctx, params, pools=chosen)


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> None:
    """Check the template's sizes against each other and the pools before any pool starts."""
    params = CompressionParams.from_template(template)
    check_inputs(
        pools,
        template.get("pools") or ["cpu"],
        params.qubits,
        params.latent,
        params.field_min,
        params.field_max,
    )


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: qml-compression`` template inside a loaded DataFlowKernel.

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
    return execute(ctx, CompressionParams.from_template(template), pools=pools).to_dict()
