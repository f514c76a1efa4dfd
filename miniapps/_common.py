"""What every mini-app shares: pools of the loaded Parsl config, task submission with metrics,
stage timings, JSON output and figures.

The mini-apps are Parsl programs. Their task functions are plain module-level functions (so
Parsl, and Globus Compute, can ship them by reference) that are wrapped with
:func:`parsl.python_app` at call time and bound to one pool (``executors=[pool]``). Each task
gets its backend name as an explicit argument. On a QPU-aware pool
(:class:`~parsl_quantum.executors.QPUHighThroughputExecutor`) the task also carries a resource
specification naming that backend, so the executor validates the request and enforces the
backend's concurrency limit; on any other executor (a user's plain HTEX, a thread pool) no
specification is sent and the task still runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import parsl
from parsl.dataflow.dflow import DataFlowKernel

from parsl_quantum.executors import (
    PoolInfo,
    QPUAwarePool,
    default_backend,
    loaded_executors,
    pool_infos,
    resource_spec,
)
from parsl_quantum.reliability import memo_ids as _memo  # noqa: F401 - memo ids for cache=True
from parsl_quantum.workflow.context import RunContext, TaskRecorder


def loaded_dfk() -> DataFlowKernel:
    """The loaded DataFlowKernel, or a one-line error saying how to load one."""
    try:
        return parsl.dfk()
    except Exception:  # parsl raises NoDataFlowKernelError (a ConfigurationError)
        raise RuntimeError(
            "no Parsl configuration is loaded: call parsl.load(config) first, e.g. with "
            "parsl_quantum.configs.local(run_dir)"
        ) from None


def pool_labels() -> list[str]:
    """Labels of the loaded DataFlowKernel's pools, which the mini-apps treat as pools (the
    executor Parsl adds for itself is not one)."""
    return [executor.label for executor in loaded_executors(loaded_dfk())]


def resolve_pools(pools: Sequence[str] | None, default: Sequence[str] = ("cpu",)) -> list[str]:
    """The pools a mini-app should use.

    ``pools`` given: each must be an executor label of the loaded config. ``None``: the labels
    in ``default`` that the config has, or else its first executor, so a user's config with one
    unlabelled-by-convention executor still works.
    """
    labels = pool_labels()
    if pools is None:
        chosen = [p for p in default if p in labels] or labels[:1]
    else:
        chosen = list(dict.fromkeys(pools))
        unknown = [p for p in chosen if p not in labels]
        if unknown:
            raise ValueError(
                f"pool(s) {', '.join(unknown)} not in the loaded Parsl config "
                f"(executor labels: {', '.join(labels)})"
            )
    if not chosen:
        raise ValueError("no pools to run on: the loaded Parsl config has no executors")
    return chosen


def pool_backend(pool: str) -> str:
    """The backend name tasks on ``pool`` use: the pool's first backend on a QPU-aware
    executor, otherwise :func:`~parsl_quantum.executors.default_backend`."""
    executor = loaded_dfk().executors[pool]
    return executor.backends[0] if isinstance(executor, QPUAwarePool) else default_backend(pool)


def make_context(run_dir: str | Path, pools: Sequence[str]) -> RunContext:
    """A RunContext for the plain Python API (``run(...)``) of a mini-app: it writes
    ``tasks.csv`` into ``run_dir`` like a ``parsl-quantum run`` would."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return RunContext(
        run_dir=path,
        pools=pool_infos(loaded_executors(loaded_dfk()), pools),
        recorder=TaskRecorder(path / "tasks.csv"),
    )


def template_pools(
    template: Mapping[str, Any], ctx: RunContext, default: Sequence[str]
) -> list[str]:
    """The pools a template names (envelope ``pools``), else ``default`` pools the run has."""
    named = template.get("pools")
    if named:
        return resolve_pools(list(named))
    return resolve_pools([p for p in default if p in ctx.pools] or None, default)


def submit(
    ctx: RunContext,
    fn: Callable[..., Any],
    pool: str,
    *args: Any,
    task: str,
    kind: str,
    backend: str = "",
    qubits: int = 0,
    shots: int = 0,
    cache: bool = True,
    **kwargs: Any,
) -> Future[Any]:
    """Run ``fn(*args, **kwargs)`` as a Parsl app on ``pool`` and record its metrics row.

    ``fn`` must be a module-level function; when ``backend`` is given on a QPU-aware pool, it
    must accept a ``parsl_resource_specification`` keyword (the executor writes the bound
    backend there). With ``cache`` (the default) the task is memoized by a content hash of
    ``fn`` and its arguments (the resource specification left out), so a run with
    checkpointing on records its result and ``parsl-quantum run --resume`` reuses it; turn it
    off for tasks whose point is to run (warm-ups) or whose arguments Parsl cannot hash.
    """
    aware = isinstance(loaded_dfk().executors[pool], QPUAwarePool)
    spec = resource_spec(backend, qubits, shots) if backend and aware else {}
    if spec:
        kwargs["parsl_resource_specification"] = spec
    # Parsl's hash deletes each ignored keyword, so name only one that is present
    ignored = ["parsl_resource_specification"] if spec else []
    app = parsl.python_app(fn, executors=[pool], cache=cache, ignore_for_cache=ignored)
    future = app(*args, **kwargs)
    ctx.recorder.track(
        future, task=task, kind=kind, pool=pool, backend=backend, qubits=qubits, shots=shots
    )
    return future


def precision_shots(precision: float | None) -> int:
    """Shots an estimator precision corresponds to (``1/precision**2``; 0 when exact)."""
    if not precision:
        return 0
    return int(round(1.0 / float(precision) ** 2))


class Timings:
    """Wall-clock seconds per named stage of a run, for the result's ``timings``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block; repeated stages of one name add up."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        """Stage times plus ``total`` since construction, rounded to milliseconds."""
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["total"] = round(time.perf_counter() - self._start, 3)
        return out


def jsonable(value: Any) -> Any:
    """Plain JSON data from results that hold numpy scalars, arrays, complex numbers or paths."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, complex | np.complexfloating):
        return {"real": float(value.real), "imag": float(value.imag)}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write a result dict as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    return path


def new_figure(width: float = 6.4, height: float = 4.2) -> Any:
    """A matplotlib Figure not attached to pyplot (no global backend state, thread-safe)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Any, path: Path) -> Path:
    """Save a figure as PNG (the Agg canvas is used implicitly by Figure.savefig)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def task_rows(ctx: RunContext, kind: str | None = None) -> list[dict[str, Any]]:
    """Completed metrics rows of this run (optionally of one task kind)."""
    return [
        r
        for r in ctx.recorder.rows
        if r.get("end_time") is not None and (kind is None or r.get("kind") == kind)
    ]


def warm_up(backend: str, parsl_resource_specification: Mapping[str, Any] | None = None) -> int:
    """Import Qiskit, build ``backend`` and run one tiny estimate in this worker (a task).

    Run before timed phases so that throughput and overhead figures describe the steady
    state, not a worker's first import of Qiskit or a device's noise model.
    """
    import os

    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

    from parsl_quantum.backends import worker_backend

    qb = worker_backend(backend)
    qc = QuantumCircuit(1)
    qc.h(0)
    (isa,) = qb.transpile([qc])
    obs = SparsePauliOp("Z").apply_layout(isa.layout) if isa.layout else SparsePauliOp("Z")
    qb.estimator().run([(isa, obs)]).result()
    return os.getpid()


def warm_pools(ctx: RunContext, pools: Sequence[str]) -> None:
    """Run :func:`warm_up` once per worker slot of each pool and wait for all of them."""
    futures = []
    for pool in pools:
        backend = pool_backend(pool)
        slots = ctx.pools[pool].workers if pool in ctx.pools else 1
        for i in range(max(1, slots)):
            futures.append(
                submit(
                    ctx,
                    warm_up,
                    pool,
                    backend,
                    task=f"warmup-{pool}-{i}",
                    kind="warmup",
                    backend=backend,
                    cache=False,
                )
            )
    for fut in futures:
        fut.result()


def read_qasm_files(paths: Sequence[str], base_dir: Path | None = None) -> list[Any]:
    """QASM files as unitary Qiskit circuits (final measurements dropped); a relative path that
    does not exist from the working directory is taken relative to ``base_dir`` (the
    template's directory)."""
    from parsl_quantum.circuits import read_qasm

    circuits = []
    for raw in paths:
        path = Path(raw)
        if base_dir is not None and not path.is_absolute() and not path.exists():
            path = base_dir / path
        circuits.append(read_qasm(path).remove_final_measurements(inplace=False))
    return circuits


def check_width(pools: Mapping[str, PoolInfo], names: Sequence[str], width: int) -> None:
    """Refuse, before any task runs, pools whose backends are narrower than ``width``."""
    for name in names:
        info = pools.get(name)
        if info is not None and info.max_qubits < width:
            raise ValueError(
                f"pool {name!r} ({info.max_qubits} qubits) is narrower than the {width}-qubit "
                "circuits"
            )


def optimize(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    method: str,
    max_iterations: int,
    learning_rate: float,
    gtol: float,
    ftol: float,
    on_step: Callable[[int, float], None],
) -> np.ndarray:
    """Minimise ``fun`` (cost and gradient) from ``x0``: ``lbfgs`` is scipy's L-BFGS-B, for exact
    estimators; ``adam`` takes fixed steps that tolerate shot noise. ``on_step(k, cost)`` follows
    iteration k (from 1). Returns the last point."""
    if method == "lbfgs":
        from scipy.optimize import minimize

        steps = 0

        def callback(intermediate_result: Any) -> None:
            nonlocal steps
            steps += 1
            on_step(steps, float(intermediate_result.fun))

        return np.asarray(
            minimize(
                fun,
                x0,
                jac=True,
                method="L-BFGS-B",
                callback=callback,
                options={"maxiter": max_iterations, "gtol": gtol, "ftol": ftol},
            ).x
        )
    if method == "adam":
        x = x0.copy()
        m = np.zeros_like(x)
        v = np.zeros_like(x)
        for k in range(1, max_iterations + 1):
            cost, grad = fun(x)
            on_step(k, cost)
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad * grad
            x = x - learning_rate * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
        return x
    raise ValueError(f"unknown optimizer {method!r} (lbfgs or adam)")
