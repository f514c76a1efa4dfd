"""Reliability of runs: retries of transient failures, failover of a down pool's work,
checkpointed results for resuming a killed run.

``Reliability(...).apply(config)`` installs all three on any Parsl Config before
``parsl.load``; ``parsl-quantum run`` does it for every run (see ``docs/reliability.md``).
"""

from parsl_quantum.reliability.checkpoint import (
    CheckpointMemoizer,
    resumable_checkpoints,
    template_digest,
)
from parsl_quantum.reliability.failover import (
    Failover,
    FailoverPolicy,
    PoolDownError,
    PoolDownHandler,
    pool_is_down,
)
from parsl_quantum.reliability.policy import Reliability, Safeguards
from parsl_quantum.reliability.retry import RetryHandler, Verdict, classify

__all__ = [
    "CheckpointMemoizer",
    "Failover",
    "FailoverPolicy",
    "PoolDownError",
    "PoolDownHandler",
    "Reliability",
    "RetryHandler",
    "Safeguards",
    "Verdict",
    "classify",
    "pool_is_down",
    "resumable_checkpoints",
    "template_digest",
]
