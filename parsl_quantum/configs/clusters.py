"""Site configurations for batch clusters, built from Parsl's own providers and launchers.

Each pool becomes one QPU-aware HTEX whose blocks are batch jobs. Workers on compute nodes find
``process_worker_pool.py`` through ``worker_init`` (activate the environment that has
parsl-quantum installed there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from parsl.addresses import address_by_hostname
from parsl.config import Config
from parsl.executors.base import ParslExecutor
from parsl.launchers import MpiExecLauncher, SrunLauncher
from parsl.monitoring import MonitoringHub
from parsl.providers import PBSProProvider, SlurmProvider
from parsl.providers.base import ExecutionProvider

from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS
from parsl_quantum.executors import QPUHighThroughputExecutor


@dataclass(frozen=True)
class ClusterPool:
    """Batch resources of one pool: where its blocks run and what its workers simulate."""

    backends: Sequence[str] = ("aer",)
    nodes_per_block: int = 1
    max_blocks: int = 1
    workers_per_node: int = 1
    walltime: str = "01:00:00"
    scheduler_options: str = ""
    available_accelerators: int | Sequence[str] = field(default_factory=list)


def _config(
    run_dir: str | Path,
    pools: Mapping[str, ClusterPool],
    make_provider: Callable[..., ExecutionProvider],
    provider_kwargs: Mapping[str, object],
    launcher: object,
    worker_init: str,
    monitoring: bool,
) -> Config:
    run_path = Path(run_dir)
    executors: list[ParslExecutor] = []
    for name, pool in pools.items():
        provider = make_provider(
            nodes_per_block=pool.nodes_per_block,
            init_blocks=0,
            min_blocks=0,
            max_blocks=pool.max_blocks,
            walltime=pool.walltime,
            scheduler_options=pool.scheduler_options,
            worker_init=worker_init,
            launcher=launcher,
            **provider_kwargs,
        )
        executors.append(
            QPUHighThroughputExecutor(
                label=name,
                backends=list(pool.backends),
                address=address_by_hostname(),
                max_workers_per_node=pool.workers_per_node,
                available_accelerators=pool.available_accelerators,
                provider=provider,
            )
        )
    hub = None
    if monitoring:
        db = (run_path / "monitoring.db").resolve()
        hub = MonitoringHub(resource_monitoring_enabled=False, logging_endpoint=f"sqlite:///{db}")
    return Config(executors=executors, run_dir=str(run_path / "parsl"), monitoring=hub)


def _default_pools(pools: Mapping[str, ClusterPool] | None) -> Mapping[str, ClusterPool]:
    if pools:
        return pools
    return {"cpu": ClusterPool(backends=DEFAULT_POOL_BACKENDS["cpu"], workers_per_node=8)}


def slurm(
    run_dir: str | Path = "runinfo",
    pools: Mapping[str, ClusterPool] | None = None,
    *,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    worker_init: str = "",
    monitoring: bool = True,
) -> Config:
    """Pools whose blocks are Slurm jobs, workers started on every node with ``srun``."""
    return _config(
        run_dir,
        _default_pools(pools),
        SlurmProvider,
        {"partition": partition, "account": account, "qos": qos, "exclusive": False},
        SrunLauncher(),
        worker_init,
        monitoring,
    )


def pbs(
    run_dir: str | Path = "runinfo",
    pools: Mapping[str, ClusterPool] | None = None,
    *,
    queue: str | None = None,
    account: str | None = None,
    cpus_per_node: int = 1,
    select_options: str = "",
    worker_init: str = "",
    monitoring: bool = True,
) -> Config:
    """Pools whose blocks are PBS Pro jobs, workers started on every node with ``mpiexec``."""
    return _config(
        run_dir,
        _default_pools(pools),
        PBSProProvider,
        {
            "queue": queue,
            "account": account,
            "cpus_per_node": cpus_per_node,
            "select_options": select_options,
        },
        MpiExecLauncher(bind_cmd="--cpu-bind", overrides="--depth=1 --ppn 1"),
        worker_init,
        monitoring,
    )


#: The ``site.options`` each batch site takes (the keyword arguments of :func:`slurm` and
#: :func:`pbs` a template may set), with their types.
SITE_OPTIONS: Mapping[str, Mapping[str, type]] = {
    "slurm": {"partition": str, "account": str, "qos": str, "worker_init": str},
    "pbs": {
        "queue": str,
        "account": str,
        "cpus_per_node": int,
        "select_options": str,
        "worker_init": str,
    },
}


def check_site_options(site: str, options: Mapping[str, object]) -> None:
    """Raise ``ValueError`` (one line, naming the option and the accepted ones) for an option
    the ``site`` does not take or a value of the wrong type."""
    accepted = SITE_OPTIONS[site]
    for key, value in options.items():
        if key not in accepted:
            raise ValueError(
                f"site.options.{key}: unknown option of the {site} site "
                f"(accepted: {', '.join(accepted)})"
            )
        kind = accepted[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"site.options.{key}: expected {kind.__name__}, got {value!r}")
