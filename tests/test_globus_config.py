"""Building Globus Compute configs and checking remote calls: no engine, no network.

Pools here wrap real ``globus_compute_sdk.Executor``s made by the default factory with an offline
``Client`` (no version check, login state in a temporary directory); nothing is submitted.
"""

from __future__ import annotations

import functools
import math
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from globus_compute_sdk import Client, Executor
from parsl.executors import GlobusComputeExecutor
from parsl.executors.errors import InvalidResourceSpecification

from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.configs.globus import (
    GlobusComputePool,
    SDKExecutorFactory,
    default_executor_factory,
    endpoint_pools_from_env,
    globus,
    globus_from_site_options,
)
from parsl_quantum.executors import pool_infos
from parsl_quantum.executors.subexperiments import evaluate_subexperiments
from parsl_quantum.remote import (
    RemoteInvocationError,
    check_python_version,
    check_remote_function,
    endpoint_python_version,
    pool_endpoint_env,
    resolve_endpoint_id,
)
from parsl_quantum.workflow.template import ENVELOPE_PROPERTIES

EP_CPU, EP_GPU, EP_QPU = (str(uuid.uuid4()) for _ in range(3))


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SDKExecutorFactory]:
    """The default factory over an offline client; every executor it made is shut down after."""
    monkeypatch.setenv("GLOBUS_COMPUTE_USER_DIR", str(tmp_path / "globus"))
    made: list[Executor] = []
    make = default_executor_factory(Client(do_version_check=False))

    def record(pool: str, endpoint_id: str, uec: dict[str, Any] | None) -> Executor:
        made.append(make(pool, endpoint_id, uec))
        return made[-1]

    yield record
    for executor in made:
        executor.shutdown(wait=False, cancel_futures=True)


def pools_of(config: Any) -> dict[str, Any]:
    return {ex.label: ex for ex in config.executors}


def test_pools_from_the_endpoints_argument(factory: SDKExecutorFactory, tmp_path: Path) -> None:
    config = globus(
        {"cpu": EP_CPU, "qpu": EP_QPU},
        run_dir=tmp_path,
        executor_factory=factory,
        monitoring=False,
        environ={},
    )
    pools = pools_of(config)
    assert list(pools) == ["cpu", "qpu"]
    for pool in pools.values():
        assert isinstance(pool, GlobusComputeExecutor)
        assert isinstance(pool.executor, Executor)
    assert pools["cpu"].endpoint_id == EP_CPU and pools["qpu"].endpoint_id == EP_QPU
    assert pools["cpu"].backends == ("aer",)
    assert pools["qpu"].backends == (DEFAULT_FAKE_QPU,)
    assert config.run_dir == str(tmp_path / "parsl")
    infos = pool_infos(config)  # what the planner reads, as for local pools
    assert infos["qpu"].kind == "qpu" and infos["cpu"].kind == "cpu-sim"
    assert infos["cpu"].workers == 1


def test_pools_from_the_environment(factory: SDKExecutorFactory, tmp_path: Path) -> None:
    env = {pool_endpoint_env("cpu"): EP_CPU, pool_endpoint_env("qpu"): EP_QPU, "PATH": "/bin"}
    assert endpoint_pools_from_env(env) == {"cpu": EP_CPU, "qpu": EP_QPU}
    config = globus(run_dir=tmp_path, executor_factory=factory, monitoring=False, environ=env)
    assert {p: ex.endpoint_id for p, ex in pools_of(config).items()} == {
        "cpu": EP_CPU,
        "qpu": EP_QPU,
    }
    # GLOBUS_COMPUTE_ENDPOINT alone makes a cpu pool; a pool variable wins over it
    only = globus(
        run_dir=tmp_path,
        executor_factory=factory,
        monitoring=False,
        environ={"GLOBUS_COMPUTE_ENDPOINT": EP_GPU},
    )
    assert {p: ex.endpoint_id for p, ex in pools_of(only).items()} == {"cpu": EP_GPU}
    both = {"GLOBUS_COMPUTE_ENDPOINT": EP_GPU, "PARSL_QUANTUM_ENDPOINT_QPU": EP_QPU}
    chosen = globus(
        {"cpu": None, "qpu": None},
        run_dir=tmp_path,
        executor_factory=factory,
        monitoring=False,
        environ=both,
    )
    assert {p: ex.endpoint_id for p, ex in pools_of(chosen).items()} == {
        "cpu": EP_GPU,
        "qpu": EP_QPU,
    }


def test_template_pools_select_local_and_remote(
    factory: SDKExecutorFactory, tmp_path: Path
) -> None:
    config = globus(
        {"cpu": EP_CPU, "gpu": EP_GPU, "qpu": EP_QPU},
        pools=["cpu", "qpu"],
        local_pools=("cpu",),
        run_dir=tmp_path,
        executor_factory=factory,
        monitoring=False,
        environ={},
    )
    pools = pools_of(config)
    assert list(pools) == ["cpu", "qpu"]
    assert not isinstance(pools["cpu"], GlobusComputeExecutor)  # the local HTEX pool
    assert isinstance(pools["qpu"], GlobusComputePool)


def test_pool_description_from_user_endpoint_config(
    factory: SDKExecutorFactory, tmp_path: Path
) -> None:
    uec: dict[str, dict[str, Any]] = {
        "cpu": {"pool": "cpu", "workers_per_node": 8, "nodes_per_block": 2},
        "gpu": {"pool": "gpu", "accelerators": ["0", "1", "2"], "backends": ["aer-gpu"]},
        "qpu": {"pool": "qpu", "backends": ["fake:torino"]},
    }
    config = globus(
        {"cpu": EP_CPU, "gpu": EP_GPU, "qpu": EP_QPU},
        user_endpoint_config=uec,
        workers={"qpu": 3},
        run_dir=tmp_path,
        executor_factory=factory,
        monitoring=False,
        environ={},
    )
    pools = pools_of(config)
    assert pools["cpu"].workers == pools["cpu"].max_workers_per_node == 16
    assert pools["gpu"].workers == 3 and pools["gpu"].backends == ("aer-gpu",)
    assert pools["qpu"].workers == 3 and pools["qpu"].backends == ("fake:fake_torino",)
    for name, pool in pools.items():
        assert pool.executor.user_endpoint_config == uec[name]
        assert pool.user_endpoint_config == uec[name]  # Parsl's executor sends it per task


def test_config_errors_name_what_to_do(factory: SDKExecutorFactory, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"run_dir": tmp_path, "executor_factory": factory, "monitoring": False}
    with pytest.raises(ValueError, match="PARSL_QUANTUM_ENDPOINT_<POOL>"):
        globus(environ={}, **kw)
    with pytest.raises(RemoteInvocationError, match=r"pool 'qpu'.*\$PARSL_QUANTUM_ENDPOINT_QPU"):
        globus({"qpu": None}, environ={}, **kw)
    with pytest.raises(RemoteInvocationError, match=r"from \$PARSL_QUANTUM_ENDPOINT_QPU is not"):
        globus({"qpu": None}, environ={"PARSL_QUANTUM_ENDPOINT_QPU": "my-endpoint"}, **kw)
    with pytest.raises(ValueError, match="both in local_pools and in endpoints"):
        globus({"cpu": EP_CPU}, local_pools=("cpu",), environ={}, **kw)
    with pytest.raises(ValueError, match=r"pool 'tpu' has no default backends"):
        globus({"tpu": EP_CPU}, environ={}, **kw)
    with pytest.raises(Exception, match="unknown backend"):
        globus({"qpu": EP_QPU}, backends={"qpu": ["fake:nonexistent"]}, environ={}, **kw)


def test_site_options_of_a_template(factory: SDKExecutorFactory, tmp_path: Path) -> None:
    template = {
        "apiVersion": "parsl-quantum/v1",
        "kind": "circuit-cutting",
        "pools": ["cpu", "qpu"],
        "site": {
            "name": "globus",
            "options": {
                "endpoints": {"qpu": EP_QPU},
                "local_pools": ["cpu"],
                "user_endpoint_config": {"qpu": {"pool": "qpu", "session_mode": "batch"}},
            },
        },
    }
    site = template["site"]
    assert isinstance(site, dict)
    config = globus_from_site_options(
        site["options"],
        pools=["cpu", "qpu"],
        run_dir=tmp_path,
        monitoring=False,
        executor_factory=factory,
        environ={},
    )
    assert list(pools_of(config)) == ["cpu", "qpu"]
    with pytest.raises(ValueError, match=r"site\.options\.endpoint: unknown option"):
        globus_from_site_options({"endpoint": EP_QPU}, run_dir=tmp_path, environ={})
    with pytest.raises(ValueError, match=r"site\.options\.workers\.qpu: 0 is less than"):
        globus_from_site_options({"workers": {"qpu": 0}}, run_dir=tmp_path, environ={})
    jsonschema.validate(site, ENVELOPE_PROPERTIES["site"])  # the template envelope accepts it


def test_pool_checks_resource_specifications(factory: SDKExecutorFactory) -> None:
    pool = GlobusComputePool(
        factory("qpu", EP_QPU, None), "qpu", backends=[DEFAULT_FAKE_QPU, "aer"], workers=2
    )
    assert pool.select_backend({}) == DEFAULT_FAKE_QPU
    assert pool.select_backend({"qpu": False}) == "aer"
    assert pool.select_backend({"backend": "aer", "user_endpoint_config": {"pool": "qpu"}}) == "aer"
    with pytest.raises(InvalidResourceSpecification, match="gpus"):
        pool.validate_resource_spec({"gpus": 1})
    with pytest.raises(InvalidResourceSpecification, match="not served by pool 'qpu'"):
        pool.validate_resource_spec({"backend": "aer:mps"})
    with pytest.raises(InvalidResourceSpecification, match="wider than every"):
        pool.validate_resource_spec({"qubits": 500})


def test_pool_checks_backends_it_cannot_describe_by_name(factory: SDKExecutorFactory) -> None:
    """``ibm:`` devices need the IBM service to be described: checked by name only."""
    pool = GlobusComputePool(factory("qpu", EP_QPU, None), "qpu", backends=["ibm:ibm_torino"])
    assert pool.backend_specs == {}
    assert pool.select_backend({"qubits": 100, "shots": 10}) == "ibm:ibm_torino"
    assert pool.select_backend({"backend": "ibm:ibm_torino"}) == "ibm:ibm_torino"
    with pytest.raises(InvalidResourceSpecification, match="not served by pool 'qpu'"):
        pool.select_backend({"backend": "aer"})
    with pytest.raises(InvalidResourceSpecification, match="unknown resource specification"):
        pool.select_backend({"cores": 2})


def test_pool_constructor_checks(factory: SDKExecutorFactory) -> None:
    sdk = factory("cpu", EP_CPU, None)
    with pytest.raises(ValueError, match="non-empty list"):
        GlobusComputePool(sdk, "cpu", backends="aer")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        GlobusComputePool(sdk, "cpu", backends=["aer"], workers=0)
    pool = GlobusComputePool(sdk, "cpu", backends=["aer"])
    assert "GlobusComputePool" in repr(pool)


# --- remote-call checks ------------------------------------------------------------------


class Evaluator:
    """A module-level class: its instances and bound methods ship by reference."""

    def __call__(self, x: int) -> int:
        return x

    def method(self, x: int) -> int:
        return x


def test_shippable_callables_pass() -> None:
    for fn in (
        evaluate_subexperiments,
        math.factorial,
        functools.partial(evaluate_subexperiments, mode="exact"),
        Evaluator,
        Evaluator(),
        Evaluator().method,
    ):
        check_remote_function(fn)


def test_unshippable_callables_are_refused_in_one_line() -> None:
    def inner() -> None:
        pass

    replaced = types.FunctionType(evaluate_subexperiments.__code__, {})
    replaced.__module__ = evaluate_subexperiments.__module__
    replaced.__qualname__ = "evaluate_subexperiments"
    orphan = types.FunctionType(inner.__code__, {})
    orphan.__module__, orphan.__qualname__ = "no_such_module_here", "f"
    cases: list[tuple[Any, str]] = [
        (lambda: None, "is a lambda"),
        (inner, r"defined inside test_unshippable_callables_are_refused_in_one_line\(\)"),
        (functools.partial(inner), "defined inside"),
        (replaced, "names a different object"),
        (orphan, "cannot be imported by that name"),
        (42, "is not callable"),
    ]
    for fn, message in cases:
        with pytest.raises(RemoteInvocationError, match=message) as info:
            check_remote_function(fn)
        assert "\n" not in str(info.value)


def test_endpoint_ids_resolve_in_order() -> None:
    env = {"PARSL_QUANTUM_ENDPOINT_GPU": EP_GPU, "GLOBUS_COMPUTE_ENDPOINT": EP_CPU}
    assert resolve_endpoint_id(EP_QPU, pool="gpu", environ=env) == EP_QPU
    assert resolve_endpoint_id(uuid.UUID(EP_QPU), environ=env) == EP_QPU
    assert resolve_endpoint_id(None, pool="gpu", environ=env) == EP_GPU
    assert resolve_endpoint_id(None, pool="qpu", environ=env) == EP_CPU
    assert resolve_endpoint_id(environ=env) == EP_CPU
    assert pool_endpoint_env("qpu-ibm") == "PARSL_QUANTUM_ENDPOINT_QPU_IBM"
    with pytest.raises(RemoteInvocationError, match="the endpoint_id argument is not a UUID"):
        resolve_endpoint_id("cpu", environ=env)


def test_python_version_check() -> None:
    assert endpoint_python_version({"metadata": {"python_version": "3.11.2"}}) == "3.11.2"
    assert endpoint_python_version({"hostname": "x"}) is None
    check_python_version({"python_version": "3.11.2"}, local="3.11.9")
    check_python_version({}, local="3.11.9")
    with pytest.raises(RemoteInvocationError, match="endpoint runs Python 3.12.1 but this client"):
        check_python_version({"python_version": "3.12.1"}, local="3.11.9")
