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
    DISPATCHER,
    RETRY_HANDLER,
    Failover,
    FailoverPolicy,
    PoolDownError,
    PoolDownHandler,
    TaskNeeds,
    pool_is_down,
    run_policy,
)
from parsl_quantum.reliability.policy import Reliability, Safeguards
from parsl_quantum.reliability.retry import RetryHandler, Verdict, classify

__all__ = [
    "DISPATCHER",
    "RETRY_HANDLER",
    "CheckpointMemoizer",
    "Failover",
    "FailoverPolicy",
    "PoolDownError",
    "PoolDownHandler",
    "Reliability",
    "RetryHandler",
    "Safeguards",
    "TaskNeeds",
    "Verdict",
    "classify",
    "pool_is_down",
    "resumable_checkpoints",
    "run_policy",
    "template_digest",
]
