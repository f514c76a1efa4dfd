"""The MPI path of the distributed simulation: one Parsl task on an ``MPIExecutor`` pool spans
N ranks, which split the sliced contraction among themselves with mpi4py."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miniapps import _common
from miniapps.distributed_sim.network import contract_slices


def mpi_unavailable_reason(pool: str | None = None) -> str | None:
    """Why the MPI path cannot run here (None when it can).

    It needs an MPI launcher on PATH, mpi4py, and (when ``pool`` is given) that pool to be a
    Parsl ``MPIExecutor`` in the loaded config.
    """
    missing = []
    if not any(shutil.which(x) for x in ("mpiexec", "mpirun", "srun", "aprun")):
        missing.append("no MPI launcher (mpiexec, mpirun, srun or aprun) on PATH")
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py is not installed")
    if pool is not None:
        from parsl.executors import MPIExecutor

        executors = _common.loaded_dfk().executors
        if pool not in executors:
            missing.append(f"pool {pool!r} is not in the loaded config")
        elif not isinstance(executors[pool], MPIExecutor):
            missing.append(f"pool {pool!r} is not a Parsl MPIExecutor")
    return "; ".join(missing) if missing else None


@functools.cache
def _mpiexec_is_open_mpi() -> bool:
    done = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, check=False)
    return "Open MPI" in done.stdout or "OpenRTE" in done.stdout


def mpi_launch_command(prefix: str) -> list[str]:
    """The launcher's argv from the ``PARSL_MPI_PREFIX`` a Parsl MPIExecutor set for a task.

    Parsl writes an ``mpiexec`` prefix with MPICH's options (``-ppn N -hosts a,b``), which Open
    MPI's ``mpiexec`` refuses; for Open MPI they become ``--host a:N,b:N`` (N slots on each
    host). ``srun`` and ``aprun`` prefixes, and MPICH's ``mpiexec``, are used as they are.
    """
    argv = shlex.split(prefix)
    if not argv or argv[0] != "mpiexec" or not _mpiexec_is_open_mpi():
        return argv
    out, ppn, hosts = [], "1", ""
    it = iter(argv)
    for token in it:
        if token == "-ppn":
            ppn = next(it)
        elif token == "-hosts":
            hosts = next(it)
        else:
            out.append(token)
    if hosts:
        out[1:1] = ["--host", ",".join(f"{h}:{ppn}" for h in hosts.split(","))]
    return out


@dataclass
class MPIOutcome:
    """The sum of all slices, contracted by ``ranks`` MPI ranks, and each rank's share."""

    value: complex
    ranks: int
    slices_per_rank: list[int]
    launcher: str


def mpi_contract_slices(
    tree: Any,
    arrays: Sequence[np.ndarray],
    nslices: int,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> MPIOutcome:
    """Contract all ``nslices`` slices across the ranks of one MPI launch (a task for a Parsl
    ``MPIExecutor`` pool; ``num_ranks`` in its resource specification).

    The ranks (:func:`mpi_rank`) split the slices round-robin, each sums its own, and rank 0
    reduces the partial sums with ``MPI.SUM`` and writes the total back. The network goes to
    the ranks as a file in the task's working directory, which ranks on other nodes of the
    block see on a cluster's shared file system.
    """
    prefix = os.environ.get("PARSL_MPI_PREFIX")
    if not prefix:
        raise RuntimeError("PARSL_MPI_PREFIX is not set: run this task on a Parsl MPIExecutor")
    argv = mpi_launch_command(prefix)
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix="pq-mpi-") as tmp:
        job_path, out_path = Path(tmp) / "job.pickle", Path(tmp) / "out.json"
        with job_path.open("wb") as fh:
            pickle.dump({"tree": tree, "arrays": list(arrays), "nslices": nslices}, fh)
        command = [
            *argv,
            sys.executable,
            "-m",
            "miniapps.distributed_sim",
            str(job_path),
            str(out_path),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out_path.exists():
            tail = " ".join(done.stderr.split()[-60:])
            raise RuntimeError(f"{argv[0]} exited with {done.returncode}: {tail}")
        out = json.loads(out_path.read_text())
    return MPIOutcome(
        complex(out["real"], out["imag"]), int(out["ranks"]), out["slices_per_rank"], argv[0]
    )


def mpi_rank(job_path: str, out_path: str) -> None:
    """One MPI rank (``python -m miniapps.distributed_sim JOB OUT``): contract slices
    ``rank, rank + size, ...``; rank 0 reduces and writes the total and every rank's count."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    mine = range(rank, int(job["nslices"]), size)
    partial = contract_slices(job["tree"], job["arrays"], mine).value
    total = comm.reduce(partial, op=MPI.SUM, root=0)
    counts = comm.gather(len(mine), root=0)
    if rank == 0:
        assert total is not None  # reduced at the root
        out = {"real": total.real, "imag": total.imag, "ranks": size, "slices_per_rank": counts}
        Path(out_path).write_text(json.dumps(out))
