"""The task layer: a QPU-aware HighThroughputExecutor, its live capacity view, and the pool
model (:mod:`parsl_quantum.executors.pools`) every layer above reads.

The Parsl apps of the cutting workflow live in :mod:`parsl_quantum.executors.subexperiments`.
"""

from parsl_quantum.executors._resource_spec import ACCEPTED_KEYS, select_backends
from parsl_quantum.executors.pools import (
    PoolInfo,
    QPUAwarePool,
    default_backend,
    kind_by_name,
    loaded_executors,
    physical_model,
    pool_infos,
    resource_spec,
    worker_slots,
)
from parsl_quantum.executors.qpu_htex import (
    BackendCapacity,
    PoolCapacity,
    QPUHighThroughputExecutor,
)

__all__ = [
    "ACCEPTED_KEYS",
    "BackendCapacity",
    "PoolCapacity",
    "PoolInfo",
    "QPUAwarePool",
    "QPUHighThroughputExecutor",
    "default_backend",
    "kind_by_name",
    "loaded_executors",
    "physical_model",
    "pool_infos",
    "resource_spec",
    "select_backends",
    "worker_slots",
]
