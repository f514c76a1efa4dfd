"""The task layer: a QPU-aware HighThroughputExecutor and its live capacity view.

The Parsl apps of the cutting workflow live in :mod:`parsl_quantum.executors.apps`.
"""

from parsl_quantum.executors._resource_spec import ACCEPTED_KEYS, select_backends
from parsl_quantum.executors.qpu_htex import (
    BackendCapacity,
    PoolCapacity,
    QPUHighThroughputExecutor,
)

__all__ = [
    "ACCEPTED_KEYS",
    "BackendCapacity",
    "PoolCapacity",
    "QPUHighThroughputExecutor",
    "select_backends",
]
