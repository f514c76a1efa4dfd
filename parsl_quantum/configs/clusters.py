"""Site configurations for batch clusters, built from Parsl's own providers and launchers.

Each pool becomes one QPU-aware HTEX whose blocks are batch jobs (or, for a pool with an
``mpi_launcher``, a Parsl ``MPIExecutor`` whose tasks span ranks). Workers on compute nodes find
``process_worker_pool.py`` through ``worker_init`` (activate the environment that has
parsl-quantum installed there). Every Slurm job is named ``<run directory name>.<pool>``, so a
run's jobs can be found with ``sacct --name``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from parsl.addresses import address_by_hostname
from parsl.config import Config
from parsl.executors import MPIExecutor
from parsl.executors.base import ParslExecutor
from parsl.launchers import MpiExecLauncher, SimpleLauncher, SrunLauncher
from parsl.providers import PBSProProvider, SlurmProvider
from parsl.providers.base import ExecutionProvider

from parsl_quantum.configs.guard import require_main_guard
from parsl_quantum.configs.local import DEFAULT_POOL_BACKENDS
from parsl_quantum.configs.site import site_config
from parsl_quantum.executors import QPUHighThroughputExecutor


@dataclass(frozen=True)
class ClusterPool:
    """Batch resources of one pool: where its blocks run and what its workers simulate.

    ``mpi_launcher`` (``"srun"``, ``"mpiexec"`` or ``"aprun"``) makes the pool a Parsl
    ``MPIExecutor``: one worker pool on each block's first node runs up to ``workers_per_node``
    tasks at once, each launching its ranks over the block's nodes with that launcher.

    Attributes
    ----------
    backends : Sequence of str
        Backends the pool's workers offer.
    nodes_per_block : int
        Nodes of each block (batch job).
    max_blocks : int
        Most blocks at once.
    workers_per_node : int
        Worker slots per node (per block's first node with ``mpi_launcher``).
    walltime : str
        Walltime of each job, ``HH:MM:SS``.
    scheduler_options : str
        Extra scheduler directives of each job.
    available_accelerators : int or Sequence of str
        Accelerators the workers are pinned to, as Parsl's HTEX takes them.
    mpi_launcher : str or None
        ``"srun"``, ``"mpiexec"`` or ``"aprun"`` for an MPI pool, else None.
    """

    backends: Sequence[str] = ("aer",)
    nodes_per_block: int = 1
    max_blocks: int = 1
    workers_per_node: int = 1
    walltime: str = "01:00:00"
    scheduler_options: str = ""
    available_accelerators: int | Sequence[str] = field(default_factory=list)
    mpi_launcher: str | None = None


def job_name(run_dir: str | Path, pool: str) -> str:
    """The batch job name of ``pool``'s blocks in a run: ``<run directory name>.<pool>``.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run's directory.
    pool : str
        Pool name.

    Returns
    -------
    str
        The job name.
    """
    return f"{Path(run_dir).resolve().name}.{pool}"


def _config(
    run_dir: str | Path,
    pools: Mapping[str, ClusterPool],
    make_provider: Callable[..., ExecutionProvider],
    provider_kwargs: Mapping[str, object],
    launcher: object,
    worker_init: str,
    monitoring: bool,
    name_directive: str,
) -> Config:
    run_path = Path(run_dir)
    executors: list[ParslExecutor] = []
    for name, pool in pools.items():
        # after Parsl's own name directive in the script, so this one is the job's name
        directive = name_directive.format(job_name(run_path, name)) if name_directive else ""
        provider = make_provider(
            nodes_per_block=pool.nodes_per_block,
            init_blocks=0,
            min_blocks=0,
            max_blocks=pool.max_blocks,
            walltime=pool.walltime,
            scheduler_options=f"{directive}\n{pool.scheduler_options}".strip("\n"),
            worker_init=worker_init,
            launcher=SimpleLauncher() if pool.mpi_launcher else launcher,
            **provider_kwargs,
        )
        if pool.mpi_launcher:
            executors.append(
                MPIExecutor(
                    label=name,
                    address=address_by_hostname(),
                    max_workers_per_block=pool.workers_per_node,
                    mpi_launcher=pool.mpi_launcher,
                    provider=provider,
                )
            )
            continue
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
    return site_config(executors, run_path, monitoring=monitoring, max_idletime=120.0)


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
    check: bool = True,
) -> Config:
    """Pools whose blocks are Slurm jobs, workers started on every node with ``srun``.

    With ``check`` (the default), each pool's job is first shown to Slurm with
    ``sbatch --test-only``, which submits nothing: a job Slurm would reject is refused here,
    before any task, instead of failing block after block during the run.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run's directory.
    pools : Mapping of str to ClusterPool or None
        The pools by name; a ``cpu`` pool of 8 workers per node when omitted.
    partition : str or None
        Slurm partition.
    account : str or None
        Slurm account.
    qos : str or None
        Slurm quality of service.
    worker_init : str
        Shell commands run before the workers start.
    monitoring : bool
        Write Parsl's monitoring database.
    check : bool
        Ask Slurm with ``sbatch --test-only`` first; ``False`` builds the config without asking
        Slurm (e.g. away from the login node).

    Returns
    -------
    parsl.config.Config
        The configuration.

    Raises
    ------
    ValueError
        With Slurm's message, when Slurm would reject a pool's job (unknown partition, too many
        nodes, an account or QOS that accounting refuses) or does not answer.
    """
    require_main_guard()
    chosen = _default_pools(pools)
    if check:
        for name, pool in chosen.items():
            _sbatch_test_only(name, pool, partition=partition, account=account, qos=qos)
    return _config(
        run_dir,
        chosen,
        SlurmProvider,
        {"partition": partition, "account": account, "qos": qos, "exclusive": False},
        SrunLauncher(),
        worker_init,
        monitoring,
        "#SBATCH --job-name={}",
    )


def _sbatch_test_only(
    name: str, pool: ClusterPool, *, partition: str | None, account: str | None, qos: str | None
) -> None:
    """Ask Slurm whether it would accept ``pool``'s job; raise ``ValueError`` if not."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ValueError(
            "sbatch is not on PATH: a Slurm site needs a Slurm login node "
            "(configs.slurm(..., check=False) builds the config without asking Slurm)"
        )
    options = {"partition": partition, "account": account, "qos": qos}
    script = "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --nodes={pool.nodes_per_block}",
            f"#SBATCH --time={pool.walltime}",
            *(f"#SBATCH --{k}={v}" for k, v in options.items() if v),
            pool.scheduler_options,
            "true",
            "",
        ]
    )
    try:
        done = subprocess.run(
            [sbatch, "--test-only"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"Slurm did not answer sbatch --test-only in {exc.timeout} s") from exc
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"sbatch exited with {done.returncode}"
        raise ValueError(f"Slurm rejects the {name!r} pool's job: {message}")


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
    """Pools whose blocks are PBS Pro jobs, workers started on every node with ``mpiexec``.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run's directory.
    pools : Mapping of str to ClusterPool or None
        The pools by name; a ``cpu`` pool of 8 workers per node when omitted.
    queue : str or None
        PBS queue.
    account : str or None
        PBS account.
    cpus_per_node : int
        CPUs requested per node.
    select_options : str
        Extra options of the ``select`` statement.
    worker_init : str
        Shell commands run before the workers start.
    monitoring : bool
        Write Parsl's monitoring database.

    Returns
    -------
    parsl.config.Config
        The configuration.
    """
    require_main_guard()
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
        "",  # Parsl's job names: PBS refuses names that do not start with a letter
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
    """Check a template's ``site.options`` against what ``site`` takes.

    Parameters
    ----------
    site : str
        The site kind.
    options : Mapping of str to object
        The options given.

    Raises
    ------
    ValueError
        One line, naming the option and the accepted ones, for an option the ``site`` does not
        take or a value of the wrong type.
    """
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
