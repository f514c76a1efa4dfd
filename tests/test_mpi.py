"""The distributed-simulation mini-app's MPI path: one Parsl task on an ``MPIExecutor`` spans
several ranks (Debian's Open MPI, mpi4py), which split the cotengra slices and reduce on rank 0.
On this machine with ``mpiexec`` (in a Slurm job with ``srun``: ``test_mpi_slurm.py``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import parsl
import pytest
from conftest import RunTemplate
from parsl.config import Config
from parsl.executors import MPIExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider
from slurm_cluster import ensure_debian_packages

from miniapps import distributed_sim as ds
from parsl_quantum import configs

#: Debian's Open MPI: the launcher, and the library mpi4py's wheel loads.
MPI_PACKAGES = ("openmpi-bin", "libopenmpi-dev")
#: Open MPI refuses to start as root unless told; these say so to every launch in a worker.
ROOT_OK = "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"


def single_process_value() -> complex:
    """The amplitude the MPI tests compute (``011010010110`` of a 12-qubit grid circuit),
    contracted whole in this process."""
    circuit = ds.grid_circuit(3, 4, 8, seed=2)
    tn = ds.build_network(circuit, "amplitude", bitstring="011010010110")
    return complex(tn.contract(all, output_inds=()))


@pytest.fixture(scope="module")
def local_mpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local cpu pool and an ``mpi`` pool: an MPIExecutor whose block is this machine (a
    node file naming this host, as a PBS job would have) launching ranks with ``mpiexec``."""
    ensure_debian_packages(MPI_PACKAGES, ("mpiexec",))
    run_dir = tmp_path_factory.mktemp("mpi")
    nodefile = run_dir / "nodes"
    nodefile.write_text(socket.gethostname() + "\n")
    worker_init = f"export PBS_NODEFILE={nodefile}"
    if os.geteuid() == 0:
        worker_init += f"; {ROOT_OK}"
    provider = LocalProvider(
        init_blocks=0, max_blocks=1, launcher=SimpleLauncher(), worker_init=worker_init
    )
    mpi = MPIExecutor(label="mpi", provider=provider, mpi_launcher="mpiexec")
    local = configs.local(run_dir, ("cpu",), monitoring=False)
    config = Config(executors=[*local.executors, mpi], run_dir=local.run_dir)
    with parsl.load(config):
        yield run_dir
    parsl.clear()


def test_open_mpi_gets_hosts_and_slots_instead_of_mpich_options() -> None:
    ensure_debian_packages(MPI_PACKAGES, ("mpiexec",))
    prefix = "mpiexec -n 4 -ppn 2 -hosts a,b --oversubscribe"
    assert ds.mpi_launch_command(prefix) == [
        "mpiexec",
        "--host",
        "a:2,b:2",
        "-n",
        "4",
        "--oversubscribe",
    ]
    srun = "srun --ntasks 2 --ntasks-per-node 2 --nodelist vm --nodes 1 --mpi=pmix"
    assert ds.mpi_launch_command(srun) == srun.split()


def test_the_mpi_path_needs_an_mpi_executor(local_mpi: Path) -> None:
    assert ds.mpi_unavailable_reason("mpi") is None
    assert "not a Parsl MPIExecutor" in (ds.mpi_unavailable_reason("cpu") or "")
    assert "not in the loaded config" in (ds.mpi_unavailable_reason("gpu") or "")


@pytest.mark.parametrize("ranks", [2, 4])
def test_ranks_split_the_slices_and_match_one_process(local_mpi: Path, ranks: int) -> None:
    exact = single_process_value()
    result = ds.run(
        ds.grid_circuit(3, 4, 8, seed=2),
        bitstring="011010010110",
        task_memory_mb=2**-10,
        max_repeats=8,
        pools=["cpu"],
        mpi_pool="mpi",
        mpi_ranks=ranks,
        mpi_launcher_options="--oversubscribe",
        run_dir=local_mpi / f"ranks-{ranks}",
    )
    mpi = result.mpi
    assert mpi["ran"] is True and mpi["ranks"] == ranks and mpi["launcher"] == "mpiexec"
    # every rank contracted its share of the slices, and the shares add up to all of them
    assert result.nslices >= ranks  # 1 KiB per slice
    assert len(mpi["slices_per_rank"]) == ranks and min(mpi["slices_per_rank"]) >= 1
    assert sum(mpi["slices_per_rank"]) == result.nslices
    assert abs(mpi["value"] - exact) < 1e-12
    assert abs(result.value - exact) < 1e-12


def test_the_template_runs_the_mpi_path(local_mpi: Path, run_template: RunTemplate) -> None:
    out = run_template(
        "distributed-simulation.yaml",
        [
            "circuit.rows=3",
            "circuit.cols=4",
            "circuit.depth=8",
            "task_memory_mb=0.0009765625",  # 1 KiB per slice
            "mpi.enabled=true",
            "mpi.pool=mpi",
            "mpi.ranks=2",
            "mpi.launcher_options=--oversubscribe",
        ],
        local_mpi / "template",
    )
    mpi = out["mpi"]
    assert (
        mpi["ran"] is True and mpi["ranks"] == 2 and sum(mpi["slices_per_rank"]) == out["nslices"]
    )
    value = complex(out["complex_value"]["real"], out["complex_value"]["imag"])
    mpi_value = complex(mpi["value"]["real"], mpi["value"]["imag"])
    assert abs(mpi_value - value) < 1e-12 and out["abs_error"] < 1e-12
