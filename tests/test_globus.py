"""Globus Compute offline: real tasks through a locally started ``GlobusComputeEngine``.

No Globus service is reachable here, so the service's part is played by a small real adapter,
:class:`LoopbackExecutor`: a ``globus_compute_sdk.Executor`` whose ``submit`` packs the call the
way the service hands it to an endpoint (function, args and kwargs serialized with Globus
Compute's own ``ComputeSerializer`` inside a messagepack ``Task``), gives it to the engine, and
completes its future from the messagepack ``Result`` the way the SDK's result watcher does.
Everything else is the real thing: the engine (rendered from our endpoint template) with its
HTEX workers, Parsl's ``GlobusComputeExecutor``, the DataFlowKernel, the task functions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import parsl
import pytest
from globus_compute_common import messagepack
from globus_compute_common.messagepack.message_types import Result, Task
from globus_compute_endpoint.endpoint.config.utils import get_config, load_config_yaml
from globus_compute_endpoint.engines import GlobusComputeEngine
from globus_compute_endpoint.engines.base import GCFuture
from globus_compute_sdk import Executor
from globus_compute_sdk.errors import TaskExecutionFailed
from globus_compute_sdk.sdk.asynchronous.compute_future import ComputeFuture
from globus_compute_sdk.serialize import ComputeSerializer
from parsl.app.app import python_app
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp, Statevector

from miniapps import ensemble
from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.configs.globus import GlobusComputePool, globus
from parsl_quantum.cutting import CutProblem, cut_by_labels, expectation_value
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.executors import QPUHighThroughputExecutor
from parsl_quantum.executors.subexperiments import BatchResult, evaluate_subexperiments
from parsl_quantum.remote import RemoteInvocationError, submit

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "workflows" / "globus-endpoint"
SCHEMA = json.loads((TEMPLATE_DIR / "user_config_schema.json").read_text())
VENV_BIN = str(Path(sys.executable).parent)


# --- the loopback "service" ---------------------------------------------------------------


def pack_task(
    serializer: ComputeSerializer,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[uuid.UUID, bytes]:
    """A task message as the service delivers it: three serialized buffers in a ``Task``."""
    task_id = uuid.uuid4()
    buffer = serializer.pack_buffers(
        [serializer.serialize(fn), serializer.serialize(args), serializer.serialize(kwargs)]
    )
    return task_id, messagepack.pack(Task(task_id=task_id, task_buffer=buffer))


class LoopbackClient:
    """The part of ``globus_compute_sdk.Client`` an executor uses offline: its serializer and
    the endpoint's registered metadata (the fields a real endpoint registers)."""

    def __init__(self, python_version: str) -> None:
        self.fx_serializer = ComputeSerializer()
        self.metadata = {"python_version": python_version, "endpoint_version": "loopback"}
        self.metadata_requests = 0

    def get_endpoint_metadata(self, endpoint_id: str) -> dict[str, Any]:
        self.metadata_requests += 1
        return dict(self.metadata)


class LoopbackExecutor(Executor):
    """A ``globus_compute_sdk.Executor`` that routes tasks to a locally started engine.

    ``super().__init__`` is deliberately not called: it would build a web-service client and a
    submitter thread. The properties Parsl's ``GlobusComputeExecutor`` reads and sets
    (``resource_specification``, ``user_endpoint_config``, ``endpoint_id``) are the base class's
    own validated ones. ``user_endpoint_config`` is validated with the endpoint template's
    schema, as a multi-user endpoint would before rendering.
    """

    def __init__(
        self,
        engine: GlobusComputeEngine,
        endpoint_id: str | None,
        *,
        user_endpoint_config: dict[str, Any] | None = None,
        python_version: str | None = None,
    ) -> None:
        self.engine = engine
        self.loopback_client = LoopbackClient(python_version or platform.python_version())
        self.client = self.loopback_client  # type: ignore[assignment]
        self.endpoint_id = endpoint_id
        self._task_group_id = None
        self.resource_specification = None
        self.user_endpoint_config = user_endpoint_config
        self.label = "loopback"
        self.batch_size = 1
        self.submissions: list[dict[str, Any]] = []
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def submit(  # type: ignore[override]
        self, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> ComputeFuture:
        if self._stopped:
            raise RuntimeError(f"{self!r} is shutdown; no new functions may be executed")
        if self.endpoint_id is None:
            raise ValueError("No endpoint_id set.")
        if self.user_endpoint_config:
            jsonschema.validate(self.user_endpoint_config, SCHEMA)
        spec = dict(self.resource_specification or {})
        self.submissions.append(
            {"resource_specification": spec, "user_endpoint_config": self.user_endpoint_config}
        )
        task_id, packed = pack_task(self.serializer, fn, args, kwargs)
        future = ComputeFuture(str(task_id))
        engine_future = GCFuture(task_id)
        with self._lock:
            self._pending.add(future)
        engine_future.add_done_callback(functools.partial(self._complete, future))
        self.engine.submit(engine_future, packed, resource_specification=spec)
        return future

    def _complete(self, future: ComputeFuture, engine_future: Future[bytes]) -> None:
        """What the SDK's result watcher does with a result message."""
        with self._lock:
            self._pending.discard(future)
        try:
            result = messagepack.unpack(engine_future.result())
            assert isinstance(result, Result)
            if result.is_error:
                future.set_exception(TaskExecutionFailed(result.data, "0", result.details))
            else:
                future.set_result(self.serializer.deserialize(result.data))
        except Exception as exc:
            future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._stopped = True
        with self._lock:
            pending = list(self._pending)
        if cancel_futures:
            for fut in pending:
                fut.cancel()
        elif wait:
            wait_for(pending)

    def _get_result_watcher(self) -> LoopbackExecutor:  # type: ignore[override]
        return self


@dataclass
class LocalEndpoint:
    """A started engine and the id it was started with."""

    engine: GlobusComputeEngine
    endpoint_id: str
    run_dir: Path

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Result:
        """Submit one packed task straight to the engine; return the unpacked ``Result``."""
        task_id, packed = pack_task(ComputeSerializer(), fn, args, kwargs)
        future = GCFuture(task_id)
        self.engine.submit(future, packed, resource_specification={})
        result = messagepack.unpack(future.result(timeout=300))
        assert isinstance(result, Result)
        return result

    def loopback(self, **kwargs: Any) -> LoopbackExecutor:
        return LoopbackExecutor(self.engine, self.endpoint_id, **kwargs)

    def factory(self, made: dict[str, LoopbackExecutor]) -> Callable[..., LoopbackExecutor]:
        """An ``executor_factory`` for :func:`globus` that records what it made."""

        def make(pool: str, endpoint_id: str, uec: dict[str, Any] | None) -> LoopbackExecutor:
            assert endpoint_id == self.endpoint_id
            made[pool] = LoopbackExecutor(self.engine, endpoint_id, user_endpoint_config=uec)
            return made[pool]

        return make


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    """An engine built from our endpoint template (rendered by the endpoint's own CLI) and
    started here; its workers need ``globus-compute-endpoint`` on PATH."""
    run_dir = tmp_path_factory.mktemp("endpoint")
    options = run_dir / "options.json"
    options.write_text(json.dumps({"pool": "cpu", "workers_per_node": 2, "max_idletime": 600}))
    env = {**os.environ, "GLOBUS_COMPUTE_USER_DIR": str(run_dir / "gc")}
    rendered = subprocess.run(
        [
            str(Path(VENV_BIN) / "globus-compute-endpoint"),
            "render-user-config",
            "-t",
            str(TEMPLATE_DIR / "user_config_template.yaml.j2"),
            "-s",
            str(TEMPLATE_DIR / "user_config_schema.json"),
            "-o",
            str(options),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    engine = load_config_yaml(rendered).engine
    assert isinstance(engine, GlobusComputeEngine)
    endpoint_id = str(uuid.uuid4())
    with venv_on_path():
        engine.start(endpoint_id=uuid.UUID(endpoint_id), run_dir=str(run_dir))
        try:
            yield LocalEndpoint(engine, endpoint_id, run_dir)
        finally:
            engine.shutdown()


@contextlib.contextmanager
def venv_on_path() -> Iterator[None]:
    """Engines launch their interchange and workers with the ``globus-compute-endpoint`` CLI
    found on PATH: put this interpreter's bin directory first while they run."""
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([VENV_BIN, old_path])
    try:
        yield
    finally:
        os.environ["PATH"] = old_path


# --- task inputs ------------------------------------------------------------------------


@dataclass
class Cutting:
    problem: CutProblem
    exact: float

    def rows(self, p: int) -> np.ndarray:
        program = self.problem.partitions[p]
        dims = [len(s.options) for s in program.sites]
        return np.indices(dims).reshape(len(dims), -1).T

    def program(self, p: int) -> PartitionProgram:
        return self.problem.partitions[p]

    def tensor(self, p: int, result: BatchResult) -> np.ndarray:
        return result.values.T.reshape(self.program(p).shape)


@pytest.fixture(scope="module")
def cutting() -> Cutting:
    """A 4-qubit circuit cut once into two 2-qubit partitions (5 subexperiments each)."""
    circuit = efficient_su2(4, entanglement="linear", reps=1)
    circuit = circuit.assign_parameters(np.linspace(0.1, 1.0, circuit.num_parameters))
    observable = SparsePauliOp(["ZZZZ", "XIIX"])
    problem = cut_by_labels(circuit.decompose(), observable, [0, 0, 1, 1])
    return Cutting(problem, float(Statevector(circuit).expectation_value(observable).real))


# --- the engine itself ------------------------------------------------------------------


def test_engine_runs_a_subexperiment_batch(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    program, rows = cutting.program(0), cutting.rows(0)
    result = endpoint.run(evaluate_subexperiments, program, rows)
    assert not result.is_error
    assert result.details and result.details["python_version"] == platform.python_version()
    remote = ComputeSerializer().deserialize(result.data)
    local = evaluate_subexperiments(program, rows)
    assert isinstance(remote, BatchResult)
    np.testing.assert_allclose(remote.values, local.values, rtol=0, atol=1e-12)
    assert remote.pid != os.getpid()  # it ran on an engine worker


def test_engine_runs_a_sampled_qpu_batch(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    """The noisy fake QPU, by shots, seeded: the endpoint and a local run agree exactly."""
    program, rows = cutting.program(1), cutting.rows(1)
    args = dict(backend=DEFAULT_FAKE_QPU, mode="sampled", shots=[256] * len(rows), seed=11)
    result = endpoint.run(evaluate_subexperiments, program, rows, **args)
    assert not result.is_error, result.data
    remote = ComputeSerializer().deserialize(result.data)
    local = evaluate_subexperiments(program, rows, **args)  # type: ignore[arg-type]
    np.testing.assert_array_equal(remote.values, local.values)
    assert remote.backend == DEFAULT_FAKE_QPU


def test_engine_reports_a_task_error(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    result = endpoint.run(
        evaluate_subexperiments, cutting.program(0), cutting.rows(0), mode="sampled"
    )
    assert result.is_error
    assert "sampled evaluation needs one shot count per row" in result.data


# --- remote.submit ----------------------------------------------------------------------


def test_submit_runs_partitions_and_reconstructs(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    executor = endpoint.loopback()
    futures = [
        submit(evaluate_subexperiments, cutting.program(p), cutting.rows(p), executor=executor)
        for p in range(len(cutting.problem.partitions))
    ]
    tensors = [cutting.tensor(p, f.result(timeout=300)) for p, f in enumerate(futures)]
    local = [
        cutting.tensor(p, evaluate_subexperiments(cutting.program(p), cutting.rows(p)))
        for p in range(len(cutting.problem.partitions))
    ]
    for remote_t, local_t in zip(tensors, local, strict=True):
        np.testing.assert_allclose(remote_t, local_t, rtol=0, atol=1e-12)
    assert expectation_value(cutting.problem, tensors) == pytest.approx(cutting.exact, abs=1e-9)
    assert (
        executor.loopback_client.metadata_requests == 1
    )  # the Python check runs once per endpoint


def test_submit_surfaces_remote_errors(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    future = submit(
        evaluate_subexperiments,
        cutting.program(0),
        cutting.rows(0),
        mode="sampled",
        executor=endpoint.loopback(),
    )
    with pytest.raises(TaskExecutionFailed, match="one shot count per row"):
        future.result(timeout=300)


def test_submit_refuses_a_python_minor_mismatch(endpoint: LocalEndpoint, cutting: Cutting) -> None:
    major, minor, _ = platform.python_version_tuple()
    other = f"{major}.{int(minor) + 1}.0"
    executor = endpoint.loopback(python_version=other)
    with pytest.raises(RemoteInvocationError, match=rf"endpoint runs Python {other}"):
        submit(evaluate_subexperiments, cutting.program(0), cutting.rows(0), executor=executor)
    assert executor.submissions == []
    ok = endpoint.loopback(python_version=f"{major}.{minor}.99")  # micro differences pass
    assert submit(evaluate_subexperiments, cutting.program(0), cutting.rows(0), executor=ok)


def test_submit_refuses_unshippable_functions(endpoint: LocalEndpoint) -> None:
    executor = endpoint.loopback()

    def local_function(x: int) -> int:
        return x

    main_function = types.FunctionType(
        compile("def f(x):\n    return x\n", "<script>", "exec").co_consts[0],
        {"__name__": "__main__"},
    )
    cases: list[tuple[Callable[..., Any], str]] = [
        (lambda x: x, "is a lambda"),
        (local_function, r"defined inside test_submit_refuses_unshippable_functions\(\)"),
        (main_function, "defined in __main__"),
    ]
    for fn, message in cases:
        with pytest.raises(RemoteInvocationError, match=message):
            submit(fn, 1, executor=executor)
    assert executor.submissions == []


def test_submit_needs_an_endpoint_id(
    endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLOBUS_COMPUTE_ENDPOINT", raising=False)
    with pytest.raises(RemoteInvocationError, match="no Globus Compute endpoint id"):
        submit(evaluate_subexperiments, executor=LoopbackExecutor(endpoint.engine, None))
    with pytest.raises(RemoteInvocationError, match=r"set \$GLOBUS_COMPUTE_ENDPOINT"):
        submit(evaluate_subexperiments)
    monkeypatch.setenv("GLOBUS_COMPUTE_ENDPOINT", "not-a-uuid")
    with pytest.raises(
        RemoteInvocationError, match=r"from \$GLOBUS_COMPUTE_ENDPOINT is not a UUID"
    ):
        submit(evaluate_subexperiments)
    other = str(uuid.uuid4())
    with pytest.raises(RemoteInvocationError, match="differs from the executor's endpoint"):
        submit(evaluate_subexperiments, endpoint_id=other, executor=endpoint.loopback())


# --- Parsl's GlobusComputeExecutor ------------------------------------------------------


def test_parsl_pools_run_cutting_tasks(
    endpoint: LocalEndpoint, cutting: Cutting, tmp_path: Path
) -> None:
    """Two Globus pools (one multi-user endpoint, two user endpoint configs) under Parsl."""
    made: dict[str, LoopbackExecutor] = {}
    config = globus(
        {"cpu": endpoint.endpoint_id, "qpu": endpoint.endpoint_id},
        run_dir=tmp_path,
        user_endpoint_config={"cpu": {"pool": "cpu"}, "qpu": {"pool": "qpu"}},
        executor_factory=endpoint.factory(made),
        monitoring=False,
    )
    evaluate_cpu = python_app(evaluate_subexperiments, executors=["cpu"])
    evaluate_qpu = python_app(evaluate_subexperiments, executors=["qpu"])
    shots = [200] * len(cutting.rows(1))
    with parsl.load(config):
        exact = [
            evaluate_cpu(
                cutting.program(p),
                cutting.rows(p),
                parsl_resource_specification={"qubits": 2, "qpu": False},
            )
            for p in range(2)
        ]
        sampled = evaluate_qpu(
            cutting.program(1),
            cutting.rows(1),
            mode="sampled",
            shots=shots,
            seed=5,
            parsl_resource_specification={"shots": 200},
        )
        results = [f.result(timeout=300) for f in exact]
        sampled_result = sampled.result(timeout=300)
    tensors = [cutting.tensor(p, r) for p, r in enumerate(results)]
    assert expectation_value(cutting.problem, tensors) == pytest.approx(cutting.exact, abs=1e-9)
    assert {r.backend for r in results} == {"aer"}  # bound by the pool, read by the task
    local = evaluate_subexperiments(
        cutting.program(1),
        cutting.rows(1),
        backend=DEFAULT_FAKE_QPU,
        mode="sampled",
        shots=shots,
        seed=5,
    )
    np.testing.assert_array_equal(sampled_result.values, local.values)
    assert sampled_result.backend == DEFAULT_FAKE_QPU
    # the planner's keys stay on this side; each pool sends its own user endpoint config
    assert [s["resource_specification"] for s in made["cpu"].submissions] == [{}, {}]
    assert made["qpu"].submissions[0]["user_endpoint_config"] == {"pool": "qpu"}


def test_parsl_pool_refuses_bad_requests(
    endpoint: LocalEndpoint, cutting: Cutting, tmp_path: Path
) -> None:
    made: dict[str, LoopbackExecutor] = {}
    config = globus(
        {"cpu": endpoint.endpoint_id},
        run_dir=tmp_path,
        executor_factory=endpoint.factory(made),
        monitoring=False,
    )
    evaluate = python_app(evaluate_subexperiments, executors=["cpu"])
    mistake = python_app(lambda: 1, executors=["cpu"])
    with parsl.load(config):
        wrong_backend = evaluate(
            cutting.program(0),
            cutting.rows(0),
            parsl_resource_specification={"backend": DEFAULT_FAKE_QPU},
        )
        unknown_key = evaluate(
            cutting.program(0), cutting.rows(0), parsl_resource_specification={"gpus": 1}
        )
        with pytest.raises(Exception, match="not served by pool 'cpu'"):
            wrong_backend.result(timeout=60)
        with pytest.raises(Exception, match="gpus"):
            unknown_key.result(timeout=60)
        with pytest.raises(RemoteInvocationError, match="is a lambda"):
            mistake().result(timeout=60)
        remote_error = evaluate(cutting.program(0), cutting.rows(0), mode="sampled")
        with pytest.raises(ValueError, match="one shot count per row"):
            remote_error.result(timeout=300)  # Parsl re-raises the task's own exception
    assert len(made["cpu"].submissions) == 1


def test_mixed_local_and_globus_pools(
    endpoint: LocalEndpoint, cutting: Cutting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local cpu HTEX pool beside a Globus qpu pool whose endpoint comes from the environment;
    credentials in the environment never reach the run directory."""
    secret = f"not-a-real-secret-{uuid.uuid4()}"
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("GLOBUS_COMPUTE_CLIENT_SECRET", secret)
    monkeypatch.setenv("PARSL_QUANTUM_ENDPOINT_QPU", endpoint.endpoint_id)
    made: dict[str, LoopbackExecutor] = {}
    config = globus(
        {"qpu": None},
        run_dir=tmp_path,
        local_pools=("cpu",),
        backends={"qpu": ["aer"]},
        executor_factory=endpoint.factory(made),
        monitoring=False,
    )
    pools = {ex.label: ex for ex in config.executors}
    assert isinstance(pools["cpu"], QPUHighThroughputExecutor)
    assert isinstance(pools["qpu"], GlobusComputePool)
    assert pools["qpu"].backends == ("aer",)
    evaluate_cpu = python_app(evaluate_subexperiments, executors=["cpu"])
    evaluate_qpu = python_app(evaluate_subexperiments, executors=["qpu"])
    with parsl.load(config):
        futures = [
            evaluate_cpu(cutting.program(0), cutting.rows(0)),
            evaluate_qpu(cutting.program(1), cutting.rows(1)),
        ]
        tensors = [cutting.tensor(p, f.result(timeout=300)) for p, f in enumerate(futures)]
    assert expectation_value(cutting.problem, tensors) == pytest.approx(cutting.exact, abs=1e-9)
    assert len(made["qpu"].submissions) == 1
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"
    assert secret not in repr(config)


# --- a mini-app ---------------------------------------------------------------------------


def test_submit_runs_an_ensemble_batch(endpoint: LocalEndpoint) -> None:
    """The ensemble mini-app's task function (Qiskit circuits in, estimates out)."""
    circuits = ensemble.random_circuits(4, qubits=3, depth=3, seed=21)
    observables = ensemble.observables_for(["mean-z", "XXI"], 3)
    future = submit(
        ensemble.evaluate_batch, circuits, observables, "aer", seed=3, executor=endpoint.loopback()
    )
    remote = future.result(timeout=300)
    local = ensemble.evaluate_batch(circuits, observables, "aer", seed=3)
    np.testing.assert_allclose(remote.values, local.values, rtol=0, atol=1e-12)
    exact = ensemble.exact_values(circuits, observables)
    np.testing.assert_allclose(remote.values, exact, atol=1e-9)
    assert remote.pid != os.getpid()


def test_ensemble_motif_runs_on_globus_pools(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    """A whole motif run (late-bound batches, metrics, report) with its pools on Globus."""
    made: dict[str, LoopbackExecutor] = {}
    config = globus(
        {"cpu": endpoint.endpoint_id, "qpu": endpoint.endpoint_id},
        run_dir=tmp_path / "parsl",
        workers={"cpu": 2, "qpu": 1},
        executor_factory=endpoint.factory(made),
        monitoring=False,
    )
    with parsl.load(config):
        result = ensemble.run(
            count=8,
            qubits=3,
            depth=3,
            batch_size=2,
            pools=["cpu", "qpu"],
            warmup=False,
            run_dir=tmp_path / "ensemble",
        )
    assert result.tasks == 4 and all(result.pool_of_circuit)
    assert sum(result.pool_circuits.values()) == 8
    if "cpu" in result.max_error:
        assert result.max_error["cpu"] < 1e-9  # exact Aer on the endpoint
    assert len(made["cpu"].submissions) + len(made["qpu"].submissions) == 4
    assert (tmp_path / "ensemble" / "tasks.csv").exists()


# --- the documented single-user endpoint config -----------------------------------------


def test_documented_session_endpoint_config(tmp_path: Path) -> None:
    """The ``config.py`` of docs/globus.md loads with the endpoint's own loader, and its engine
    runs tasks inside a QPU session block (simulated for the fake device)."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "globus.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    source = next(b for b in blocks if "QPUSessionProvider(" in b)
    endpoint_dir = tmp_path / "qpu-endpoint"
    endpoint_dir.mkdir()
    (endpoint_dir / "config.py").write_text(source)
    config = get_config(endpoint_dir)
    engine = config.engine
    assert isinstance(engine, GlobusComputeEngine)
    with venv_on_path():
        engine.start(endpoint_id=uuid.uuid4(), run_dir=str(tmp_path / "run"))
        try:
            run = LocalEndpoint(engine, str(engine.endpoint_id), tmp_path).run
            mode, backend = (
                run(os.getenv, name) for name in ("PQ_SESSION_MODE", "PQ_SESSION_BACKEND")
            )
        finally:
            engine.shutdown()
    serializer = ComputeSerializer()
    assert serializer.deserialize(mode.data) == "batch"
    assert serializer.deserialize(backend.data) == DEFAULT_FAKE_QPU
