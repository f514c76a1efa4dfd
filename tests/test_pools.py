"""The pool model: PoolInfo, pool_infos, the resource-spec builder and the QPU-aware Protocol.

Nothing is started: pools are described from their Config, as the planner does before
``parsl.load``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from globus_compute_sdk import Client
from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.executors.errors import InvalidResourceSpecification

from parsl_quantum import configs
from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.configs.globus import GlobusComputePool, default_executor_factory
from parsl_quantum.executors import (
    PoolInfo,
    QPUAwarePool,
    QPUHighThroughputExecutor,
    pool_infos,
    resource_spec,
    worker_slots,
)


@pytest.fixture
def globus_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GlobusComputePool]:
    """A Globus Compute pool over an offline SDK client (nothing is submitted)."""
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "globus"))
    make = default_executor_factory(Client(do_version_check=False))
    sdk = make("qpu", str(uuid.uuid4()), None)
    yield GlobusComputePool(sdk, "qpu", backends=[DEFAULT_FAKE_QPU, "aer"], workers=3)
    sdk.shutdown(wait=False, cancel_futures=True)


def test_no_pools_and_unknown_names() -> None:
    assert pool_infos([]) == {}
    # a Config without executors gets Parsl's default thread pool, described as a cpu pool
    (default,) = pool_infos(Config(executors=[])).values()
    assert default.backends == ("aer",) and default.kind == "cpu-sim" and not default.accepts_spec
    with pytest.raises(ValueError, match="pool\\(s\\) gpu not in the Parsl config"):
        pool_infos([QPUHighThroughputExecutor(label="cpu")], ["gpu"])


def test_pool_infos_of_a_local_config_with_cpu_and_qpu_pools(tmp_path: Path) -> None:
    config = configs.local(tmp_path, ("cpu", "qpu"), workers={"cpu": 3}, monitoring=False)
    infos = pool_infos(config)
    assert list(infos) == ["cpu", "qpu"]
    assert infos["cpu"] == PoolInfo("cpu", ("aer",), 3, "cpu-sim", infos["cpu"].max_qubits, True)
    assert infos["cpu"].max_qubits >= 20
    qpu = infos["qpu"]
    assert (qpu.backends, qpu.workers, qpu.kind, qpu.exact) == (
        (DEFAULT_FAKE_QPU,),
        1,
        "qpu",
        False,
    )
    assert qpu.accepts_spec and qpu.max_qubits == 7
    # the same pools, given as executors and named in another order
    assert list(pool_infos(config.executors, ["qpu", "cpu"])) == ["qpu", "cpu"]


def test_a_plain_executor_follows_the_local_convention() -> None:
    plain = HighThroughputExecutor(label="qpu")  # max_workers_per_node: unlimited
    threads = ThreadPoolExecutor(label="cpu", max_threads=4)
    infos = pool_infos([plain, threads])
    assert infos["qpu"].backends == (DEFAULT_FAKE_QPU,) and infos["qpu"].kind == "qpu"
    assert infos["qpu"].workers == 1 and not infos["qpu"].accepts_spec
    assert infos["cpu"].backends == ("aer",) and infos["cpu"].workers == 4
    assert worker_slots(plain) == 1 and worker_slots(threads) == 4
    # no specification beyond what a plain HTEX takes
    assert infos["qpu"].resource_spec(qubits=5, shots=100) == {}


def test_the_protocol_tells_qpu_aware_pools_from_plain_ones(
    globus_pool: GlobusComputePool,
) -> None:
    assert isinstance(QPUHighThroughputExecutor(label="qpu"), QPUAwarePool)
    assert isinstance(globus_pool, QPUAwarePool)
    assert not isinstance(HighThroughputExecutor(label="cpu"), QPUAwarePool)
    assert not isinstance(ThreadPoolExecutor(label="cpu"), QPUAwarePool)
    assert globus_pool.capacity() is None  # no live view of an endpoint's workers
    info = pool_infos([globus_pool])["qpu"]
    assert info.backends == (DEFAULT_FAKE_QPU, "aer") and info.workers == 3
    assert info.kind == "qpu" and not info.exact and info.accepts_spec


def test_built_specs_are_accepted_and_bad_ones_refused(globus_pool: GlobusComputePool) -> None:
    executor = QPUHighThroughputExecutor(label="qpu", backends=(DEFAULT_FAKE_QPU, "aer"))
    assert resource_spec("aer") == {"backend": "aer"}
    built = resource_spec(DEFAULT_FAKE_QPU, qubits=5, shots=100)
    assert built == {"backend": DEFAULT_FAKE_QPU, "qubits": 5, "shots": 100}
    executor.validate_resource_spec(built)
    globus_pool.validate_resource_spec(built)
    info = pool_infos([executor])["qpu"]
    executor.validate_resource_spec(info.resource_spec(qubits=7))
    executor.validate_resource_spec(info.resource_spec(shots=10, backend="aer"))
    with pytest.raises(InvalidResourceSpecification, match="wider than every eligible"):
        executor.validate_resource_spec(resource_spec(DEFAULT_FAKE_QPU, qubits=8))
    with pytest.raises(InvalidResourceSpecification, match="not served by pool 'qpu'"):
        executor.validate_resource_spec(resource_spec("aer-gpu"))
    with pytest.raises(InvalidResourceSpecification, match="not served by pool 'qpu'"):
        globus_pool.validate_resource_spec(resource_spec("aer-gpu"))
    for qubits in (-1, 1.5, True):
        with pytest.raises(ValueError, match="qubits must be a non-negative int"):
            resource_spec("aer", qubits=qubits)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a backend name"):
        resource_spec("")
