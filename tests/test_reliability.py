"""Reliability building blocks without running pools: which failures are retried, backoff,
content hashes for the memoizer, failover targets and pool-down detection,
and what ``Reliability.apply`` installs on a Config."""

from __future__ import annotations

import pickle
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from parsl.dataflow.memoization import id_for_memo, make_hash
from parsl.executors.errors import BadStateException, InvalidResourceSpecification
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost
from parsl.jobs.errors import TooManyJobFailuresError
from parsl.jobs.states import JobState, JobStatus
from qiskit.providers.exceptions import JobTimeoutError
from qiskit_ibm_runtime.api.exceptions import RequestsApiError
from qiskit_ibm_runtime.exceptions import IBMNotAuthorizedError, RuntimeJobFailureError

from parsl_quantum.backends import DEFAULT_FAKE_QPU, BackendTransientError, BackendUnavailableError
from parsl_quantum.circuits import CircuitError, efficient_su2_circuit, parse_observable
from parsl_quantum.configs import local
from parsl_quantum.cutting.errors import CuttingError
from parsl_quantum.cutting.problem import cut_by_labels
from parsl_quantum.executors import PoolInfo, QPUHighThroughputExecutor
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.planner.dispatch import DispatchReport
from parsl_quantum.reliability import (
    DISPATCHER,
    RETRY_HANDLER,
    CheckpointMemoizer,
    Failover,
    FailoverPolicy,
    PoolDownError,
    PoolDownHandler,
    Reliability,
    RetryHandler,
    TaskNeeds,
    Verdict,
    classify,
    memo_ids,  # noqa: F401 - registers the hashes tested here
)

UNSTARTED = QPUHighThroughputExecutor(label="qpu", backends=(DEFAULT_FAKE_QPU,))


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (BackendTransientError("queue hiccup"), Verdict.TRANSIENT),
        (TimeoutError("took too long"), Verdict.TRANSIENT),
        (ConnectionResetError("reset by peer"), Verdict.TRANSIENT),
        (WorkerLost(3, "host"), Verdict.TRANSIENT),
        (ManagerLost(b"m1", "host"), Verdict.TRANSIENT),
        (JobTimeoutError("job timed out"), Verdict.TRANSIENT),
        (RuntimeJobFailureError("job failed in the queue"), Verdict.TRANSIENT),
        (RequestsApiError("service unavailable", status_code=503), Verdict.TRANSIENT),
        (RequestsApiError("unauthorized", status_code=401), Verdict.PERMANENT),
        (IBMNotAuthorizedError("bad token"), Verdict.PERMANENT),
        (CircuitError("unsupported gate"), Verdict.PERMANENT),
        (CuttingError("circuit has unbound parameters"), Verdict.PERMANENT),
        (ValueError("bad input"), Verdict.PERMANENT),
        (InvalidResourceSpecification({"qubits"}, "too wide"), Verdict.PERMANENT),
        (BackendUnavailableError("aer-gpu is unavailable"), Verdict.PERMANENT),
        (ZeroDivisionError("a bug"), Verdict.PERMANENT),
        (BadStateException(UNSTARTED, RuntimeError("gone")), Verdict.POOL_DOWN),
        (TooManyJobFailuresError("all blocks failed"), Verdict.POOL_DOWN),
        (PoolDownError("pool 'qpu' is down"), Verdict.POOL_DOWN),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classify(exc: BaseException, verdict: Verdict) -> None:
    assert classify(exc) is verdict


def test_backoff_doubles_up_to_its_cap() -> None:
    handler = RetryHandler(5, backoff=0.5, max_backoff=3.0, seed=1)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        for _ in range(20):
            assert 0.5 * base <= handler.delay(attempt) <= base


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        RetryHandler(-1)


def _programs(seed: int) -> list:
    circuit = efficient_su2_circuit(6, 1, "linear", seed=seed)
    problem = cut_by_labels(circuit, parse_observable("mean-z", 6), [0, 0, 0, 1, 1, 1])
    return list(problem.partitions)


def test_program_ids_follow_content_not_identity() -> None:
    first, again, other = _programs(1), _programs(1), _programs(2)
    assert first[0] is not again[0]
    assert id_for_memo(first[0]) == id_for_memo(again[0])
    assert id_for_memo(first[0]) != id_for_memo(first[1])
    assert id_for_memo(first[0]) != id_for_memo(other[0])


def test_array_ids_follow_dtype_shape_and_values() -> None:
    rows = np.arange(12, dtype=np.int64).reshape(6, 2)
    assert id_for_memo(rows) == id_for_memo(rows.copy())
    assert id_for_memo(rows) != id_for_memo(rows.reshape(2, 6))
    assert id_for_memo(rows) != id_for_memo(rows.astype(np.int32))
    assert id_for_memo(rows[::2]) == id_for_memo(np.ascontiguousarray(rows[::2]))
    with pytest.raises(ValueError, match="unknown type for memoization"):
        id_for_memo(np.array([object()]))


def test_task_hash_is_stable_for_equal_arguments() -> None:
    """Parsl's task hash over the cutting app's real arguments: equal content, equal hash."""

    def record(programs: list, seed: int) -> dict:
        return {
            "func": evaluate_subexperiments,
            "args": (programs[0], np.zeros((3, 1), dtype=np.int64)),
            "kwargs": {"backend": "aer", "seed": seed, "parsl_resource_specification": {}},
            "ignore_for_cache": [],
        }

    assert make_hash(record(_programs(1), 7)) == make_hash(record(_programs(1), 7))
    assert make_hash(record(_programs(1), 7)) != make_hash(record(_programs(1), 8))


def _info(label: str, kind: str, width: int, workers: int = 1) -> PoolInfo:
    backend = {"qpu": DEFAULT_FAKE_QPU, "gpu-sim": "aer-gpu", "cpu-sim": "aer"}[kind]
    return PoolInfo(label, (backend,), workers, kind, width, kind != "qpu")


def down_pool_target(
    policy: FailoverPolicy, source: str, qubits: int, executors: dict, **kwargs: object
) -> str | None:
    """Where the retry handler sends a task of ``qubits`` qubits from the down pool
    ``source``: the policy's decision from the task's own arguments and the live executors."""
    needs = policy.needs_on(source, {"qubits": qubits}, kwargs)
    return policy.target(needs, source, policy.live(executors))


def test_failover_targets() -> None:
    pools = {
        "qpu": _info("qpu", "qpu", 7),
        "qpu2": _info("qpu2", "qpu", 127),
        "gpu": _info("gpu", "gpu-sim", 30),
        "cpu": _info("cpu", "cpu-sim", 30, workers=2),
        "small": _info("small", "cpu-sim", 4, workers=8),
    }
    executors = {n: QPUHighThroughputExecutor(label=n, backends=("aer",)) for n in pools}
    policy = FailoverPolicy(pools)
    assert down_pool_target(policy, "qpu", 5, executors) == "qpu2"  # the same device model first
    executors["qpu2"].set_bad_state_and_fail_all(PoolDownError("qpu2 is down"))
    assert down_pool_target(policy, "qpu", 5, executors) == "gpu"  # then a simulator, GPU first
    no_gpu = {k: v for k, v in executors.items() if k != "gpu"}
    assert down_pool_target(policy, "qpu", 5, no_gpu) == "cpu"
    assert down_pool_target(policy, "qpu", 40, executors) is None  # nothing wide enough
    assert down_pool_target(policy, "cpu", 3, executors) == "small"  # same kind first
    assert down_pool_target(policy, "cpu", 20, executors) == "gpu"  # a simulator never to a QPU
    assert down_pool_target(policy, "gpu", 20, {"qpu": executors["qpu"]}) is None
    # without failover, QPU work stays on its device model; simulator work still moves
    strict = FailoverPolicy(pools, cross_model=False)
    assert down_pool_target(strict, "qpu", 5, no_gpu) is None
    assert down_pool_target(strict, "gpu", 20, executors) == "cpu"


def test_one_rule_set_for_both_triggers() -> None:
    """The decision the dispatcher asks for (a planned task, live pools) and the one the retry
    handler asks for (a down pool's task) follow the same rules."""
    pools = {
        "qpu": _info("qpu", "qpu", 7),
        "other": PoolInfo("other", ("fake:fake_nairobi",), 1, "qpu", 7, False),
        "cpu": _info("cpu", "cpu-sim", 30),
        "noisy": PoolInfo("noisy", ("aer",), 4, "cpu-sim", 30, False),
    }
    policy = FailoverPolicy(pools)
    device = TaskNeeds(qubits=5, model=DEFAULT_FAKE_QPU, kind="qpu")
    assert policy.candidates(device, pools) == ["qpu"]  # its own model while it is up
    assert policy.candidates(device, pools, avoid={"qpu"}) == ["qpu"]  # failed there: still
    up = {n: p for n, p in pools.items() if n != "qpu"}
    assert policy.candidates(device, up) == ["other"]  # another device before a simulator
    sims = {n: p for n, p in up.items() if n != "other"}
    assert policy.candidates(device, sims) == ["noisy", "cpu"]  # most slots first
    exact = TaskNeeds(qubits=5, exact=True, model="ideal", kind="cpu-sim")
    assert policy.candidates(exact, sims) == ["cpu"]  # exact work only to an exact pool
    assert policy.candidates(TaskNeeds(qubits=40, model=DEFAULT_FAKE_QPU), pools) == []  # width
    # simulator work moves to a QPU only when its plan lists that QPU, and failover is on
    ideal = TaskNeeds(qubits=5, model="ideal", kind="cpu-sim")
    qpus = {n: pools[n] for n in ("qpu", "other")}
    assert policy.candidates(ideal, qpus) == []
    planned = TaskNeeds(qubits=5, model="ideal", kind="cpu-sim", planned=frozenset({"qpu"}))
    assert policy.candidates(planned, qpus) == ["qpu"]
    assert FailoverPolicy(pools, cross_model=False).candidates(planned, qpus) == []
    assert FailoverPolicy(pools, cross_model=False).candidates(device, up) == []


def test_one_failover_record_for_the_retry_handler_and_the_dispatcher() -> None:
    policy = FailoverPolicy({})
    assert policy.records() == []
    policy.record(Failover("t#1", "qpu", "cpu", "pool down", RETRY_HANDLER))
    # the dispatcher's moves go into the same record, with the time of the move
    moved = Failover("evaluate:0:1", "gpu", "cpu", "abandoned: pool lost", DISPATCHER, 1.5)
    policy.record(moved)
    report = DispatchReport(failovers=[moved])
    assert policy.records() == [
        {
            "task": "t#1",
            "from_pool": "qpu",
            "to_pool": "cpu",
            "reason": "pool down",
            "trigger": "retry-handler",
            "time": None,
        },
        report.to_dict()["failovers"][0],
    ]
    assert report.to_dict()["failovers"][0]["trigger"] == "dispatcher"


def test_pool_down_handler_marks_a_pool_whose_blocks_were_lost() -> None:
    handler = PoolDownHandler()
    pool = QPUHighThroughputExecutor(label="qpu", backends=("aer",))
    handler(pool, {"0": JobStatus(JobState.CANCELLED)})
    assert not pool.bad_state_is_set, "no work outstanding: nothing to fail over"
    outstanding: Future[None] = Future()
    pool.tasks[1] = outstanding
    for benign in (
        {"0": JobStatus(JobState.SCALED_IN)},
        {"0": JobStatus(JobState.COMPLETED)},
        {"0": JobStatus(JobState.CANCELLED), "1": JobStatus(JobState.PENDING)},
        {"0": JobStatus(JobState.CANCELLED), "1": JobStatus(JobState.COMPLETED)},
    ):
        handler(pool, benign)
        assert not pool.bad_state_is_set, benign
    handler(pool, {"9": JobStatus(JobState.SCALED_IN), "10": JobStatus(JobState.CANCELLED)})
    assert pool.bad_state_is_set
    assert isinstance(pool.executor_exception, PoolDownError)
    assert "block 10 ended (CANCELLED)" in str(pool.executor_exception)
    assert isinstance(outstanding.exception(), BadStateException)


def test_pool_down_handler_applies_the_previous_handler_first() -> None:
    failed = {"0": JobStatus(JobState.FAILED)}
    default = QPUHighThroughputExecutor(label="a", backends=("aer",))
    PoolDownHandler()(default, failed)
    assert default.bad_state_is_set, "Parsl's own rule: every block failed"
    seen: list[dict[str, JobStatus]] = []
    lenient = QPUHighThroughputExecutor(label="b", backends=("aer",))
    PoolDownHandler(lambda executor, status: seen.append(status))(lenient, failed)
    assert seen == [failed] and not lenient.bad_state_is_set


def test_apply_installs_retries_failover_and_checkpoints(tmp_path: Path) -> None:
    config = local(tmp_path, ("cpu", "qpu"), monitoring=False)
    guards = Reliability(retries=4, failover=True).apply(config)
    assert config.retries == 4 and config.retry_handler is guards.handler
    assert guards.handler.failover is not None and guards.handler.failover.cross_model
    assert set(guards.handler.failover.pools) == {"cpu", "qpu"}
    assert all(isinstance(ex.block_error_handler, PoolDownHandler) for ex in config.executors)
    assert isinstance(config.memoizer, CheckpointMemoizer)
    assert config.memoizer.checkpoint_mode == "task_exit"
    assert config.memoizer.checkpoint_files == []  # a fresh run never loads others' results
    # the policy's record is the run's one list of moves: it replaces the dispatcher's own
    guards.handler.failover.record(Failover("t", "qpu", "cpu", "lost", DISPATCHER, 0.5))
    configuration: dict = {"failovers": [{"task": "t", "from_pool": "qpu", "to_pool": "cpu"}]}
    guards.record(configuration)
    assert configuration["retries"] == {}
    assert [m["trigger"] for m in configuration["failovers"]] == ["dispatcher"]
    assert "reused_from_checkpoint" not in configuration


def test_apply_without_failover_keeps_parsl_block_handling(tmp_path: Path) -> None:
    config = local(tmp_path, ("cpu",), monitoring=False, reliability=Reliability(retries=1))
    assert isinstance(config.retry_handler, RetryHandler)
    # the run still has its policy (the dispatcher's too), which keeps tasks on their model
    assert config.retry_handler.failover is not None
    assert not config.retry_handler.failover.cross_model
    assert not any(isinstance(ex.block_error_handler, PoolDownHandler) for ex in config.executors)


def test_resume_loads_the_run_directorys_checkpoints(tmp_path: Path) -> None:
    checkpoint = tmp_path / "parsl" / "000" / "checkpoint"
    checkpoint.mkdir(parents=True)
    with (checkpoint / "tasks.pkl").open("wb") as fh:
        pickle.dump({"hash": "h", "exception": None, "result": 1}, fh)
    config = local(tmp_path, ("cpu",), monitoring=False)
    guards = Reliability(resume=True).apply(config)
    assert guards.memoizer is not None
    assert guards.memoizer.checkpoint_files == [str(checkpoint.resolve())]
    configuration: dict = {}
    guards.record(configuration)
    assert configuration["reused_from_checkpoint"] == 0


def refuse() -> None:
    """A task whose every try fails transiently (nothing listens on port 1)."""
    import socket

    socket.create_connection(("127.0.0.1", 1))


def test_retries_on_other_executors_go_at_once(tmp_path: Path) -> None:
    import parsl
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    handler = RetryHandler(2, backoff=30.0, seed=1)  # a wait would stall the test for minutes
    config = Config(
        executors=[ThreadPoolExecutor(label="threads", max_threads=1)],
        retries=2,
        retry_handler=handler,
        run_dir=str(tmp_path),
    )
    with parsl.load(config):
        future = parsl.python_app(refuse, executors=["threads"])()
        assert isinstance(future.exception(), ConnectionRefusedError)
    parsl.clear()
    assert future.task_record["fail_count"] == 3
    assert handler.retried == {"threads": 2}
    assert handler.waited == {}, "a thread pool's callbacks run where waiting would stall it"
