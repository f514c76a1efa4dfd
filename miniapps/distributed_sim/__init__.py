"""Distributed simulation: a circuit too large for one worker's memory, simulated in pieces.

The tightly coupled motif. Two paths:

* **Sliced tensor-network contraction** (always available). The circuit's amplitude
  ``<b|C|0>`` or a local expectation value ``<0|C^dag P C|0>`` is a tensor network (built and
  simplified by quimb). cotengra finds a contraction tree whose largest intermediate tensor fits
  a per-task memory budget by *slicing*: fixing the values of a few indices splits the
  contraction into ``2^k`` independent contractions of the same small shape, whose sum is the
  answer. Each group of slices is a Parsl task; the driver adds the partial sums. The state
  vector (``16 * 2^n`` bytes) never exists anywhere, and no task needs more than the budget.
  The result is checked against an exact reference computed as another task: Aer's statevector
  for up to :data:`STATEVECTOR_MAX_QUBITS` qubits, Aer's (untruncated) matrix product state
  beyond that.
* **MPI** through Parsl's :class:`~parsl.executors.MPIExecutor`: one Parsl task spans N ranks
  (``num_ranks`` in its resource specification); the ranks split the same sliced contraction
  among themselves with mpi4py and rank 0 reduces the partial sums. The launcher is the pool's
  (``mpiexec`` on one machine, ``srun`` in a Slurm job). It needs a pool that is an
  MPIExecutor, an MPI launcher and mpi4py; :func:`mpi_unavailable_reason` says what is missing
  and the run reports the path as skipped with that reason. Aer's own MPI mode is not used:
  Aer's wheels on PyPI are built without MPI.

Python API: :func:`run` with a :class:`DistributedSimParams`; template kind
``distributed-simulation``. Modules: :mod:`~miniapps.distributed_sim.params` (the parameters
and the template schema), :mod:`~miniapps.distributed_sim.network` (circuits, tensor networks,
slicing, the slice task, the reference), :mod:`~miniapps.distributed_sim.mpi` (the MPI path),
:mod:`~miniapps.distributed_sim.runner` (the driver).
"""

from miniapps.distributed_sim.mpi import (
    MPIOutcome,
    mpi_contract_slices,
    mpi_launch_command,
    mpi_rank,
    mpi_unavailable_reason,
)
from miniapps.distributed_sim.network import (
    ITEMSIZE,
    STATEVECTOR_MAX_QUBITS,
    Quantity,
    ReferenceChoice,
    SlicedContraction,
    SliceOutcome,
    build_network,
    contract_slices,
    grid_circuit,
    is_chain,
    local_operator,
    plan_slices,
    reference_method,
    to_quimb,
    warm_up_contraction,
)
from miniapps.distributed_sim.params import (
    TEMPLATE_SCHEMA,
    DistributedSimParams,
    default_bitstring,
)
from miniapps.distributed_sim.runner import (
    DistributedSimResult,
    PreparedSimulation,
    execute,
    load_circuit,
    prepare,
    run,
    run_template,
)

#: One line for the list of template kinds.
DESCRIPTION = "Simulate a circuit too large for one worker as sliced tensor-network contractions."

__all__ = [
    "DESCRIPTION",
    "DistributedSimParams",
    "DistributedSimResult",
    "ITEMSIZE",
    "MPIOutcome",
    "PreparedSimulation",
    "Quantity",
    "ReferenceChoice",
    "STATEVECTOR_MAX_QUBITS",
    "SliceOutcome",
    "SlicedContraction",
    "TEMPLATE_SCHEMA",
    "build_network",
    "contract_slices",
    "default_bitstring",
    "execute",
    "grid_circuit",
    "is_chain",
    "load_circuit",
    "local_operator",
    "mpi_contract_slices",
    "mpi_launch_command",
    "mpi_rank",
    "mpi_unavailable_reason",
    "plan_slices",
    "prepare",
    "reference_method",
    "run",
    "run_template",
    "to_quimb",
    "warm_up_contraction",
]
