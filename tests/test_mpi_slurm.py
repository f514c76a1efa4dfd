"""The distributed-simulation mini-app's MPI task in a Slurm job of the session's cluster, its
ranks launched with ``srun`` (Slurm's PMIx wires up Debian's Open MPI)."""

from __future__ import annotations

import sys
from pathlib import Path

import parsl
from slurm_cluster import SlurmCluster, ensure_debian_packages
from test_mpi import MPI_PACKAGES, single_process_value

from miniapps import distributed_sim as ds
from parsl_quantum import configs
from parsl_quantum.configs import ClusterPool

WORKER_INIT = f"source {Path(sys.executable).parent / 'activate'}"


def test_the_mpi_task_runs_with_srun_in_a_slurm_job(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    ensure_debian_packages(MPI_PACKAGES, ("mpiexec",))
    pools = {"cpu": ClusterPool(), "mpi": ClusterPool(mpi_launcher="srun")}
    run_dir = tmp_path / "srun"
    config = configs.slurm(
        run_dir, pools, partition="debug", worker_init=WORKER_INIT, monitoring=False
    )
    exact = single_process_value()
    with parsl.load(config):
        result = ds.run(
            ds.grid_circuit(3, 4, 8, seed=2),
            bitstring="011010010110",
            task_memory_mb=2**-10,
            max_repeats=8,
            pools=["cpu"],
            mpi_pool="mpi",
            mpi_ranks=2,
            # Open MPI's ranks get their wire-up from Slurm's PMIx; 2 ranks on the job's 1 CPU
            mpi_launcher_options="--mpi=pmix --overcommit",
            run_dir=run_dir,
        )
    parsl.clear()
    mpi = result.mpi
    assert mpi["ran"] is True and mpi["launcher"] == "srun" and mpi["ranks"] == 2
    assert sum(mpi["slices_per_rank"]) == result.nslices
    assert abs(mpi["value"] - exact) < 1e-12
    assert slurm_cluster.wait_until_empty() == []
