"""Distributed simulation (package): see :mod:`miniapps.distributed_sim.runner`."""

from miniapps.distributed_sim.runner import *  # noqa: F403
from miniapps.distributed_sim.runner import _default_bitstring, _mpi_rank  # noqa: F401
