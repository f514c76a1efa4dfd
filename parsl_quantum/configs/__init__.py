"""Parsl site configurations with named pools (one executor label per pool).

``local()`` is the embedded default: everything on this machine, no account, no cluster.
``slurm()`` and ``pbs()`` build the same pools on clusters with Parsl's own providers and
launchers. ``globus()`` builds pools of Parsl ``GlobusComputeExecutor`` instances.
"""

from parsl_quantum.configs.clusters import ClusterPool, pbs, slurm
from parsl_quantum.configs.globus import GlobusComputePool, globus
from parsl_quantum.configs.local import gpu_available, local

__all__ = [
    "ClusterPool",
    "GlobusComputePool",
    "globus",
    "gpu_available",
    "local",
    "pbs",
    "slurm",
]
