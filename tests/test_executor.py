"""The QPU-aware HTEX on real local pools: spec validation, backend binding, concurrency limits,
priority order, live capacity (and its timeout when the interchange dies), raw payloads, and
retries of injected transient failures.

One DataFlowKernel with two small pools serves the whole module:
``qpu``: 2 workers bound to Aer, the default fake QPU (limit 1), a flaky fake device and a
device only raw payloads use;
``prio``: 1 worker, started by the test after its tasks are queued (priority order).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import parsl
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parsl import python_app
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.executors import HighThroughputExecutor
from parsl.executors.errors import BadStateException, InvalidResourceSpecification
from parsl.providers import LocalProvider
from parsl.serialize import pack_apply_message

from parsl_quantum.backends import DEFAULT_FAKE_QPU, BackendTransientError
from parsl_quantum.executors import QPUHighThroughputExecutor
from parsl_quantum.executors._gate import BackendGate

FLAKY = "fake:fake_manila"
PAYLOAD_ONLY = "fake:fake_lima"  # bound by raw payloads only
FLAKY_SEED = 3  # default_rng(3).random() = 0.09 < 0.3: each worker's first job fails


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until ``predicate`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def transient_only(exc: BaseException, task_record: Any) -> float:
    """Retry handler: transient backend failures cost 1 retry, anything else the budget."""
    return 1.0 if isinstance(exc, BackendTransientError) else 100.0


#: Workers import this module's apps by name, so they need the tests directory on their path.
WORKER_INIT = f"export PYTHONPATH={Path(__file__).parent}${{PYTHONPATH:+:$PYTHONPATH}}"


def make_pool(label: str, workers: int, init_blocks: int = 1, **kwargs: Any) -> Any:
    provider = LocalProvider(
        init_blocks=init_blocks, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT
    )
    return QPUHighThroughputExecutor(
        label=label,
        max_workers_per_node=workers,
        cores_per_worker=1e-6,
        provider=provider,
        heartbeat_period=2,
        heartbeat_threshold=10,
        **kwargs,
    )


@pytest.fixture(scope="module")
def dfk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataFlowKernel]:
    run_dir = tmp_path_factory.mktemp("runinfo")
    qpu = make_pool(
        "qpu",
        2,
        backends=("aer", DEFAULT_FAKE_QPU, FLAKY, PAYLOAD_ONLY),
        backend_options={
            FLAKY: {"failure_rate": 0.3, "failure_seed": FLAKY_SEED, "max_concurrent_jobs": None}
        },
    )
    prio = make_pool("prio", 1, init_blocks=0)
    config = Config(
        executors=[qpu, prio],
        run_dir=str(run_dir),
        strategy="none",
        retries=10,
        retry_handler=transient_only,
    )
    with parsl.load(config) as kernel:
        yield kernel


def pool(dfk: DataFlowKernel, label: str) -> QPUHighThroughputExecutor:
    executor = dfk.executors[label]
    assert isinstance(executor, QPUHighThroughputExecutor)
    return executor


@python_app(executors=["qpu"])
def probe(parsl_resource_specification: dict | None = None) -> dict:
    """Report the task's own spec and the backends bound in its worker process."""
    import os

    from parsl_quantum.backends import bound_backends, worker_backend

    spec = dict(parsl_resource_specification or {})
    backend = worker_backend(spec["backend"])
    return {
        "pid": os.getpid(),
        "spec": spec,
        "bound": sorted(bound_backends()),
        "instance": id(backend),
        "spec_name": backend.spec.name,
    }


@python_app(executors=["qpu"])
def interval(
    label: Any = None, release: str | None = None, parsl_resource_specification: dict | None = None
) -> tuple[Any, float, float, str]:
    """Record when the task ran (waiting for ``release`` to exist first, if given)."""
    import os
    import time

    start = time.time()
    if release:
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(0.02)
    spec = parsl_resource_specification or {}
    return label, start, time.time(), spec["backend"]


@python_app(executors=["prio"])
def started_at(label: Any, parsl_resource_specification: dict | None = None) -> tuple[Any, float]:
    import time

    return label, time.time()


@python_app(executors=["qpu"])
def bell_counts(seed: int, parsl_resource_specification: dict | None = None) -> dict[str, int]:
    """Sample a Bell pair on the task's backend (which may fail transiently)."""
    from qiskit import QuantumCircuit

    from parsl_quantum.backends import worker_backend

    backend = worker_backend((parsl_resource_specification or {})["backend"])
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    (isa,) = backend.transpile([qc], seed=seed)
    result = backend.sampler(seed=seed).run([isa], shots=64).result()
    return dict(result[0].data.meas.get_counts())


def bound_here() -> tuple[str, ...]:
    """The backends bound in this worker process (a raw payload's function)."""
    from parsl_quantum.backends import bound_backends

    return tuple(sorted(bound_backends()))


# --- resource specification, no pool needed -------------------------------------------------


@pytest.fixture(scope="module")
def unstarted() -> QPUHighThroughputExecutor:
    return QPUHighThroughputExecutor(label="unstarted", backends=("aer", DEFAULT_FAKE_QPU))


def test_defaults_to_local_aer() -> None:
    executor = QPUHighThroughputExecutor(label="plain", max_workers_per_node=1)
    assert executor.backends == ("aer",)
    assert executor.interchange_launch_cmd[0] == sys.executable
    executor.validate_resource_spec({"qubits": 10, "shots": 100, "priority": 1})


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"backend": "aer"},
        {"backend": "fake:perth", "shots": 1000},
        {"qpu": True, "qubits": 7},
        {"qpu": False, "qubits": 25, "priority": 3},
        {"priority": 0.5},
    ],
)
def test_accepted_specs(unstarted: QPUHighThroughputExecutor, spec: dict) -> None:
    unstarted.validate_resource_spec(spec)


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ({"qubits": 4, "gpus": 1, "walltime": 3}, {"gpus", "walltime"}, "accepted keys: backend"),
        ({"qubits": 64}, {"qubits"}, "wider than every"),
        ({"qpu": True, "qubits": 8}, {"qubits"}, "fake:fake_perth (qpu, 7 qubits)"),
        ({"backend": "fake:fake_torino"}, {"backend"}, "not served by pool 'unstarted'"),
        ({"backend": "fake:fake_torin"}, {"backend"}, "did you mean fake:fake_torino"),
        ({"qubits": 0}, {"qubits"}, "positive int"),
        ({"shots": 2.5}, {"shots"}, "positive int"),
        ({"qpu": "yes"}, {"qpu"}, "must be a bool"),
    ],
)
def test_rejected_specs_name_the_key(
    unstarted: QPUHighThroughputExecutor, spec: dict, key: set, words: str
) -> None:
    with pytest.raises(InvalidResourceSpecification) as info:
        unstarted.validate_resource_spec(spec)
    assert info.value.invalid_keys == key
    assert words in str(info.value)


def test_constructor_checks_backends() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        QPUHighThroughputExecutor(backends=("aer", "fake:nope"))
    with pytest.raises(ValueError, match="does not serve"):
        QPUHighThroughputExecutor(backends=("aer",), backend_options={"fake:manila": {}})
    with pytest.raises(TypeError):
        QPUHighThroughputExecutor(backends="aer")


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 3),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=40),
)
def test_gate_never_exceeds_limit_and_releases_by_priority(
    limit: int, ops: list[tuple[bool, int]]
) -> None:
    gate = BackendGate(limit)
    running: list[int] = []
    held: dict[int, int] = {}
    for task_id, (submit, priority) in enumerate(ops):
        if submit or not running:
            if gate.admit(task_id, priority, None):
                running.append(task_id)
            else:
                held[task_id] = priority
        else:
            released = gate.finish(running.pop(0))
            expected = sorted(held, key=lambda t: (held[t], t))[: len(released)]
            assert [t for t, _ in released] == expected
            for t in expected:
                del held[t]
                running.append(t)
        assert gate.in_flight == len(running) <= limit
        assert gate.held == len(held)


# --- on the pools ---------------------------------------------------------------------------


def test_submit_rejects_a_spec_the_pool_cannot_serve(dfk: DataFlowKernel) -> None:
    with pytest.raises(InvalidResourceSpecification, match="wider than every"):
        probe(parsl_resource_specification={"qubits": 40}).result(timeout=60)
    with pytest.raises(InvalidResourceSpecification, match="gpus"):
        probe(parsl_resource_specification={"gpus": 1}).result(timeout=60)


def test_tasks_reach_workers_bound_to_their_backend(dfk: DataFlowKernel) -> None:
    qpus = {DEFAULT_FAKE_QPU, FLAKY}
    requests: list[tuple[dict, set[str]]] = [
        ({"backend": "aer"}, {"aer"}),
        ({"backend": "fake:perth"}, {DEFAULT_FAKE_QPU}),
        ({}, {"aer"}),
        ({"qpu": True}, qpus),  # either device; a busy one is passed over
        ({"qubits": 20}, {"aer"}),
        ({"qpu": True, "qubits": 6}, {DEFAULT_FAKE_QPU}),  # manila has 5 qubits
    ] * 3
    futures = [probe(parsl_resource_specification=dict(spec)) for spec, _ in requests]
    results = [f.result(timeout=120) for f in futures]
    instances: dict[tuple[int, str], set[int]] = {}
    for (spec, allowed), got in zip(requests, results, strict=True):
        chosen = got["spec"]["backend"]
        assert chosen in allowed
        assert got["spec"] == {**spec, "backend": chosen}  # the task's own argument
        assert chosen in got["bound"]  # bound by the worker hook before the task ran
        assert got["spec_name"] == chosen
        instances.setdefault((got["pid"], chosen), set()).add(got["instance"])
    assert all(len(ids) == 1 for ids in instances.values()), "one instance per worker process"


def test_backend_limit_is_never_exceeded(dfk: DataFlowKernel) -> None:
    futures = [
        interval(i, parsl_resource_specification={"backend": DEFAULT_FAKE_QPU}) for i in range(20)
    ]
    spans = sorted((start, end) for _, start, end, _ in (f.result(timeout=120) for f in futures))
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start, "two tasks of a limit-1 backend overlapped"


def test_held_tasks_are_released_in_priority_order(dfk: DataFlowKernel, tmp_path: Path) -> None:
    executor = pool(dfk, "qpu")
    release = str(tmp_path / "release")
    qpu = {"backend": DEFAULT_FAKE_QPU}
    blocker = interval("blocker", release, parsl_resource_specification=dict(qpu))
    wait_until(lambda: executor.capacity().backend(DEFAULT_FAKE_QPU).in_flight == 1, "blocker")
    priorities = [5, None, 1, 3, 1, 0, None, 2]
    futures = [
        interval(i, parsl_resource_specification={**qpu, **({} if p is None else {"priority": p})})
        for i, p in enumerate(priorities)
    ]
    wait_until(lambda: executor.capacity().held == len(priorities), "all tasks held")
    Path(release).touch()
    blocker.result(timeout=120)
    order = [
        label for label, *_ in sorted((f.result(timeout=120) for f in futures), key=lambda r: r[1])
    ]
    expected = sorted(
        range(len(priorities)),
        key=lambda i: (np.inf if priorities[i] is None else priorities[i], i),
    )
    assert order == expected


def test_interchange_honours_priority(dfk: DataFlowKernel) -> None:
    executor = pool(dfk, "prio")
    priorities = [4, 2, None, 0, 3, 2, 1]
    futures = [
        started_at(i, parsl_resource_specification={} if p is None else {"priority": p})
        for i, p in enumerate(priorities)
    ]
    wait_until(lambda: executor.outstanding() == len(priorities), "tasks queued")
    executor.scale_out_facade(1)  # the single worker connects after every task is queued
    results = sorted((f.result(timeout=120) for f in futures), key=lambda r: r[1])
    expected = sorted(
        range(len(priorities)),
        key=lambda i: (np.inf if priorities[i] is None else priorities[i], i),
    )
    assert [label for label, _ in results] == expected


def test_capacity_matches_what_is_running(dfk: DataFlowKernel, tmp_path: Path) -> None:
    executor = pool(dfk, "qpu")
    idle = executor.capacity()
    assert (idle.blocks, idle.connected_workers, idle.busy_slots, idle.idle_slots) == (1, 2, 0, 2)
    assert idle.backend(DEFAULT_FAKE_QPU).max_concurrent_jobs == 1
    assert idle.backend("aer").max_concurrent_jobs is None
    release = str(tmp_path / "go")
    futures = [
        interval("aer", release, parsl_resource_specification={"backend": "aer"}),
        interval("qpu-1", release, parsl_resource_specification={"backend": DEFAULT_FAKE_QPU}),
        interval("qpu-2", release, parsl_resource_specification={"backend": DEFAULT_FAKE_QPU}),
    ]
    wait_until(lambda: executor.capacity().busy_slots == 2, "two tasks running")
    cap = executor.capacity()
    assert (cap.connected_workers, cap.busy_slots, cap.idle_slots) == (2, 2, 0)
    assert (cap.outstanding, cap.held, cap.queued) == (3, 1, 0)
    assert (cap.backend("aer").in_flight, cap.backend("aer").held) == (1, 0)
    qpu = cap.backend(DEFAULT_FAKE_QPU)
    assert (qpu.in_flight, qpu.held, qpu.free_jobs) == (1, 1, 0)
    assert executor.held_tasks() == 1
    assert executor.outstanding() == 2  # held tasks do not ask the strategy for more blocks
    Path(release).touch()
    assert sorted(f.result(timeout=120)[0] for f in futures) == ["aer", "qpu-1", "qpu-2"]
    wait_until(lambda: executor.capacity().busy_slots == 0, "workers idle again")
    done = executor.capacity()
    assert (done.outstanding, done.held, done.idle_slots) == (0, 0, 2)
    assert all(b.in_flight == 0 for b in done.backends)


def test_transient_failures_are_retried(dfk: DataFlowKernel) -> None:
    futures = [bell_counts(s, parsl_resource_specification={"backend": FLAKY}) for s in range(6)]
    counts = [f.result(timeout=120) for f in futures]
    assert all(sum(c.values()) == 64 for c in counts)
    retries = sum(f.task_record["fail_count"] for f in futures)
    assert retries >= 1, "the flaky device's first job in each worker fails"


def test_raw_payloads_are_validated_and_bound_on_the_worker(dfk: DataFlowKernel) -> None:
    executor = pool(dfk, "qpu")
    buffer = pack_apply_message(bound_here, (), {}, buffer_threshold=1 << 20)
    with pytest.raises(InvalidResourceSpecification, match="gpus"):
        executor.submit_payload({"resource_spec": {"gpus": 1}}, buffer)
    bound = executor.submit_payload({"resource_spec": {"backend": PAYLOAD_ONLY}}, buffer)
    assert PAYLOAD_ONLY in bound.result(timeout=120), "the worker hook bound the backend"
    assert executor.capacity().backend(PAYLOAD_ONLY).in_flight == 0


def test_capacity_times_out_when_the_interchange_is_killed(tmp_path: Path) -> None:
    executor = QPUHighThroughputExecutor(
        label="doomed",
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0),
        capacity_timeout=1,
    )
    executor.run_dir = str(tmp_path)
    assert executor.capacity().connected_workers == 0, "not started: no managers to ask"
    before = {p.pid for p in psutil.Process().children()}
    executor.start()
    try:
        (interchange,) = [p for p in psutil.Process().children() if p.pid not in before]
        assert executor.capacity().connected_workers == 0
        interchange.send_signal(signal.SIGKILL)
        interchange.wait(60)
        outcomes: list[BaseException | None] = []

        def ask_twice() -> None:
            for _ in range(2):
                try:
                    executor.capacity()
                    outcomes.append(None)
                except BaseException as exc:
                    outcomes.append(exc)

        asker = threading.Thread(target=ask_twice, daemon=True)
        asker.start()
        asker.join(120)  # a hang guard only
        assert len(outcomes) == 2, "capacity() blocked on a dead interchange"
        assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
        assert "did not answer" in str(outcomes[0])
    finally:
        executor.shutdown()


def test_a_pool_going_down_fails_its_held_tasks_too(tmp_path: Path) -> None:
    executor = QPUHighThroughputExecutor(
        label="going-down",
        backends=(DEFAULT_FAKE_QPU,),  # one job at a time
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0),  # no workers
    )
    executor.run_dir = str(tmp_path)
    executor.start()
    try:
        buffer = pack_apply_message(bound_here, (), {}, buffer_threshold=1 << 20)
        sent, held = (executor.submit_payload({}, buffer) for _ in range(2))
        assert (executor.outstanding(), executor.held_tasks()) == (1, 1)
        down = RuntimeError("pool is down")
        executor.set_bad_state_and_fail_all(down)
        for future in (sent, held):  # as HTEX fails its own tasks
            failure = future.exception(timeout=60)
            assert isinstance(failure, BadStateException) and "pool is down" in str(failure)
        assert executor.held_tasks() == 0
        with pytest.raises(RuntimeError, match="pool is down"):
            executor.submit_payload({}, buffer)
    finally:
        executor.shutdown()


def test_plain_htex_tasks_do_not_see_qpu_keys() -> None:
    # The keys are the QPU pool's; stock HTEX still refuses them, which is why pools that serve
    # quantum tasks use the QPU-aware executor.
    with pytest.raises(InvalidResourceSpecification):
        HighThroughputExecutor().validate_resource_spec({"backend": "aer"})
