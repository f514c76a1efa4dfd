"""The local default configuration: HTEX pools on ``LocalProvider``."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parsl.config import Config
from parsl.executors.base import ParslExecutor
from parsl.providers import LocalProvider

from parsl_quantum.backends import (
    DEFAULT_FAKE_QPU,
    canonical_name,
)
from parsl_quantum.backends.ibm import ibm_credentials_available
from parsl_quantum.configs.guard import require_main_guard
from parsl_quantum.configs.site import site_config
from parsl_quantum.executors import QPUHighThroughputExecutor
from parsl_quantum.executors._worker import WORKER_POOL, WORKER_RECORD

if TYPE_CHECKING:
    from parsl_quantum.reliability import Reliability

#: Credentials a driver may hold in its environment, and the backend name prefixes whose
#: workers need each: other workers, and every interchange, start without them.
SECRET_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "QISKIT_IBM_TOKEN": ("ibm:",),
    "GLOBUS_COMPUTE_CLIENT_SECRET": (),
}

#: Start the interchange with this interpreter, so pools work without the environment's
#: ``bin/`` on ``PATH``, under :mod:`parsl_quantum.parent_watch`, so that it stops when its
#: driver is gone (even killed with SIGKILL) and its worker pools then stop on their own, and
#: with Parsl imported lean (:mod:`parsl_quantum.lean_start`).
INTERCHANGE_CMD = [
    sys.executable,
    "-m",
    "parsl_quantum.parent_watch",
    *(arg for name in SECRET_VARIABLES for arg in ("--unset", name)),
    "--lean",
    "parsl.executors.high_throughput.interchange",
]


def _worker_init(threads: str, backends: Sequence[str]) -> str:
    """A pool's ``worker_init``: its thread variables, and the credentials it must not hold."""
    withheld = secrets_withheld(backends)
    lines = [threads, shlex.join(["unset", *withheld]) if withheld else ""]
    return "\n".join(line for line in lines if line)


def secrets_withheld(backends: Sequence[str]) -> list[str]:
    """The :data:`SECRET_VARIABLES` that no backend in ``backends`` needs.

    Parameters
    ----------
    backends : Sequence[str]
        The backends of one pool.

    Returns
    -------
    list[str]
        The names of the variables to withhold from that pool.
    """
    return [
        name
        for name, prefixes in SECRET_VARIABLES.items()
        if not any(b.startswith(prefix) for b in backends for prefix in prefixes)
    ]


#: The options of Parsl's worker pool, each with the placeholder HTEX fills in (documented with
#: ``HighThroughputExecutor(launch_cmd=...)``); ``{{block_id}}`` is filled in per block.
WORKER_OPTIONS = (
    "{debug}",
    "{max_workers_per_node}",
    "-a {addresses}",
    "-p {prefetch_capacity}",
    "-c {cores_per_worker}",
    "-m {mem_per_worker}",
    "--poll {poll_period}",
    "--port={worker_port}",
    "--cert_dir {cert_dir}",
    "--logdir={logdir}",
    "--logconf={logconf}",
    "--block_id={{block_id}}",
    "--hb_period={heartbeat_period}",
    "{address_probe_timeout_string}",
    "--hb_threshold={heartbeat_threshold}",
    "--drain_period={drain_period}",
    "--cpu-affinity {cpu_affinity}",
    "{enable_mpi_mode}",
    "--mpi-launcher={mpi_launcher}",
    "--available-accelerators {accelerators}",
)


def worker_launch_cmd(python: str = sys.executable) -> str:
    """The shell command that starts a local worker pool: ``python`` (quoted for the shell)
    running Parsl's ``process_worker_pool`` through :mod:`parsl_quantum.lean_start` (which
    imports Parsl without the packages only a driver uses) with :data:`WORKER_OPTIONS`.

    HTEX formats the command twice (options, then the block id), so braces in the quoted
    interpreter path are escaped for both. The paths HTEX fills in (its log directory, and the
    certificate and logging-configuration files inside it) lie in Parsl's run directory, which
    :func:`local` keeps at a path the shell needs no quoting for (:func:`shell_safe_dir`).

    Parameters
    ----------
    python : str
        The Python interpreter of the workers.

    Returns
    -------
    str
        The ``launch_cmd`` for ``HighThroughputExecutor``.
    """
    program = shlex.join([python, "-m", "parsl_quantum.lean_start"])
    program = program.replace("{", "{{{{").replace("}", "}}}}")
    return " ".join((program, *WORKER_OPTIONS))


WORKER_CMD = worker_launch_cmd()

#: The file in the run directory where each local worker process records when it started
#: (:func:`parsl_quantum.executors._worker.record_start`).
WORKER_STARTS = "workers.csv"

#: Heartbeats between the interchange and the worker pools (seconds): a worker pool whose
#: interchange is gone exits after ``HEARTBEAT_THRESHOLD`` seconds without contact, so pools of
#: a killed driver are gone within about ``HEARTBEAT_THRESHOLD + HEARTBEAT_PERIOD`` seconds.
HEARTBEAT_PERIOD = 5
HEARTBEAT_THRESHOLD = 20

#: Tasks each worker pool holds beyond its busy workers (HTEX's ``prefetch_capacity``), as
#: many as the dispatcher sends beyond a pool's slots: the next task is already in the pool
#: when a worker frees up, instead of one interchange round trip later (1-2 ms of a run of
#: three small tasks on two workers). A local pool has one block, so nothing is bound early to
#: a block that turns out slow.
PREFETCH = 1

#: Seconds between runs of Parsl's scaling strategy. Parsl submits each pool's initial block on
#: the strategy's first run after the pool is added, so with its default period (5 s) workers
#: started up to 5 s after ``parsl.load``; a short period starts them at once.
STRATEGY_PERIOD = 0.2


def shell_safe_dir(path: Path) -> Path:
    """``path`` itself when its absolute form needs no shell quoting, else a shell-safe
    symbolic link to it (in a per-user directory under the system's temporary directory).

    Parsl's ``LocalProvider`` and HTEX put paths inside its run directory into shell commands
    unquoted (the submit script, the worker log directory), so a run directory with a space or
    a non-ASCII character would keep every worker from starting; the link gives them a path
    that needs no quoting, while the files stay in ``path``.

    Parameters
    ----------
    path : pathlib.Path
        The run directory.

    Returns
    -------
    pathlib.Path
        ``path``, or the link to it.

    Raises
    ------
    ValueError
        When the temporary directory needs shell quoting too, or the per-user link directory
        belongs to another user.
    """
    resolved = path.resolve()
    if shlex.quote(str(resolved)) == str(resolved):
        return path
    links = Path(tempfile.gettempdir()).resolve() / f"parsl-quantum-{os.getuid()}"
    if shlex.quote(str(links)) != str(links):
        raise ValueError(
            f"run directory {path} needs shell quoting, and so does the temporary directory "
            f"{links.parent}: set TMPDIR to a path without spaces or special characters"
        )
    links.mkdir(mode=0o700, exist_ok=True)
    if links.stat().st_uid != os.getuid():
        raise ValueError(f"{links} belongs to another user: set TMPDIR to a directory of yours")
    resolved.mkdir(parents=True, exist_ok=True)
    link = links / hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if not (link.is_symlink() and link.resolve() == resolved):
        link.unlink(missing_ok=True)
        link.symlink_to(resolved, target_is_directory=True)
    return link


#: Backends of each pool of the local default.
DEFAULT_POOL_BACKENDS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("aer",),
    "gpu": ("aer-gpu",),
    "qpu": (DEFAULT_FAKE_QPU,),
}


def gpu_available() -> bool:
    """Whether qiskit-aer-gpu can see a CUDA device here.

    Returns
    -------
    bool
        True when it can.
    """
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        from qiskit_aer import AerSimulator

        return "GPU" in AerSimulator().available_devices()
    except Exception:
        return False


#: Variables that size the thread pools of numpy's BLAS and of Aer (OpenMP) in a worker.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_threads(total_workers: int) -> str:
    """The ``worker_init`` line giving each local worker its share of the cores as threads.

    Every worker would otherwise start one BLAS and one OpenMP thread per core, so local pools
    with as many workers as cores run several times more threads than cores (measured here:
    cut evaluations 1.7x slower on 2 cores with 2 workers). Variables already set in the
    environment are left as they are.

    Parameters
    ----------
    total_workers : int
        The local workers sharing the cores of this machine.

    Returns
    -------
    str
        The ``export`` line, or an empty string when every variable is already set.
    """
    cores = os.cpu_count() or 1
    share = max(1, cores // max(1, total_workers))
    unset = [v for v in THREAD_VARIABLES if v not in os.environ]
    return f"export {' '.join(f'{v}={share}' for v in unset)}" if unset else ""


#: Local workers per core allowed without ``force_workers``.
WORKERS_PER_CORE = 4


def max_workers() -> int:
    """The most workers one local pool may have unless forced.

    Returns
    -------
    int
        :data:`WORKERS_PER_CORE` per core of this machine.
    """
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


def local(
    run_dir: str | Path = "runinfo",
    pools: Sequence[str] = ("cpu", "qpu"),
    *,
    workers: Mapping[str, int] | None = None,
    backends: Mapping[str, Sequence[str]] | None = None,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
    monitoring: bool = False,
    reliability: Reliability | None = None,
    force_workers: bool = False,
    cold: Sequence[str] = (),
) -> Config:
    """The embedded local default: one HTEX pool per name in ``pools``.

    ``cpu`` runs Aer on the CPU, ``qpu`` a noisy fake IBM device (circuits transpiled to its ISA,
    one job at a time, like a real QPU), and ``gpu`` Aer on the GPU, which is only added when a
    GPU and qiskit-aer-gpu are present.

    Parameters
    ----------
    run_dir : str or Path
        Where Parsl's run directory and the monitoring database go.
    pools : sequence of str
        Pool names, each one HTEX executor label: ``cpu``, ``qpu``, ``gpu`` or a name given
        backends in ``backends``.
    workers : mapping of str to int, optional
        Worker slots per pool (default 2 for ``cpu``, 1 otherwise). A pool's workers may not
        exceed :func:`max_workers` (4 per core) unless ``force_workers`` is set: every worker
        is a process of a few hundred MB.
    backends : mapping of str to sequence of str, optional
        Backend names per pool, replacing :data:`DEFAULT_POOL_BACKENDS`.
    backend_options : mapping of str to mapping, optional
        Options per backend name (e.g. a fake device's ``failure_rate`` or ``queue_delay``),
        in every pool that serves it.
    monitoring : bool
        Write Parsl's monitoring database (``run_dir/monitoring.db``). Off by default, as in
        Parsl: it starts a database process and one message router per pool, which add
        seconds to the start and the end of a short local run.
    reliability : Reliability, optional
        Retries, failover and checkpointing, installed by :meth:`Reliability.apply
        <parsl_quantum.reliability.Reliability.apply>` (the Config's ``retry_handler`` keeps
        count).
    force_workers : bool
        Allow more than :func:`max_workers` workers per pool.
    cold : sequence of str
        Pools that start with no block: no worker processes start with the run, so a run
        that sends them nothing does not pay for their start-up on the cores it computes on.
        Parsl's scaling strategy starts a block once a task is sent to one (a failover),
        which then waits for that block's workers.

    Returns
    -------
    parsl.config.Config
        The Config to ``parsl.load``.

    Raises
    ------
    ValueError
        An unknown pool or ``cold`` name, too many workers, backend options for a backend no
        pool serves, or an IBM backend without credentials.
    """
    require_main_guard()
    stray_cold = [name for name in cold if name not in pools]
    if stray_cold:
        raise ValueError(
            f"cold pool {stray_cold[0]!r} is not one of the pools ({', '.join(pools)})"
        )
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    workers = {"cpu": 2, "gpu": 1, "qpu": 1, **(workers or {})}
    cap = max_workers()
    for name in pools:
        if workers.get(name, 1) > cap and not force_workers:
            raise ValueError(
                f"run.workers.{name}: {workers[name]} workers is more than {cap} "
                f"({WORKERS_PER_CORE} per core here); set run.force_workers: true to start "
                "them anyway"
            )
    chosen = {**DEFAULT_POOL_BACKENDS, **{k: tuple(v) for k, v in (backends or {}).items()}}
    options = {canonical_name(k): dict(v) for k, v in (backend_options or {}).items()}
    served = {canonical_name(b) for p in pools if p in chosen for b in chosen[p]}
    stray = sorted(set(options) - served)
    if stray:
        raise ValueError(f"backend_options for {stray[0]!r}, which no pool here serves")
    threads = worker_threads(sum(workers.get(n, 1) for n in pools))
    ibm = sorted({b for p in pools for b in chosen.get(p, ()) if b.startswith("ibm:")})
    if ibm and not ibm_credentials_available():
        raise ValueError(
            f"backend {ibm[0]!r} needs IBM Quantum credentials: set QISKIT_IBM_TOKEN or save an "
            "account with QiskitRuntimeService.save_account()"
        )
    record = (run_path / WORKER_STARTS).resolve()
    executors: list[ParslExecutor] = []
    for name in pools:
        if name == "gpu" and not gpu_available() and "gpu" not in (backends or {}):
            continue
        if name not in chosen:
            raise ValueError(f"unknown pool {name!r} (local pools: {', '.join(chosen)})")
        executors.append(
            QPUHighThroughputExecutor(
                label=name,
                backends=list(chosen[name]),
                backend_options={
                    b: options[canonical_name(b)]
                    for b in chosen[name]
                    if canonical_name(b) in options
                },
                max_workers_per_node=workers.get(name, 1),
                prefetch_capacity=PREFETCH,
                cores_per_worker=1e-6,
                provider=LocalProvider(
                    init_blocks=0 if name in cold else 1,
                    min_blocks=0,
                    max_blocks=1,
                    worker_init="\n".join(
                        line
                        for line in (
                            threads,
                            shlex.join(["unset", *secrets_withheld(chosen[name])]),
                            f"export {WORKER_POOL}={shlex.quote(name)} "
                            f"{WORKER_RECORD}={shlex.quote(str(record))}",
                        )
                        if line and line != "unset"
                    ),
                ),
                interchange_launch_cmd=INTERCHANGE_CMD,
                launch_cmd=WORKER_CMD,
                heartbeat_period=HEARTBEAT_PERIOD,
                heartbeat_threshold=HEARTBEAT_THRESHOLD,
            )
        )
    config = site_config(
        executors,
        run_path,
        monitoring=monitoring,
        parsl_dir=shell_safe_dir(run_path / "parsl"),
        strategy_period=STRATEGY_PERIOD,
    )
    if reliability is not None:
        reliability.apply(config)
    return config
