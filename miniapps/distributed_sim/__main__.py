"""An MPI rank of :func:`miniapps.distributed_sim.mpi_contract_slices`:
``python -m miniapps.distributed_sim JOB OUT``."""

import sys

from miniapps.distributed_sim.mpi import mpi_rank

if __name__ == "__main__":
    mpi_rank(sys.argv[1], sys.argv[2])
