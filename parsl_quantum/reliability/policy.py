"""One switch for a run's reliability settings, applicable to any Parsl Config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parsl.config import Config
from parsl.executors.status_handling import BlockProviderExecutor

from parsl_quantum.executors.pools import pool_infos
from parsl_quantum.reliability.checkpoint import CheckpointMemoizer, resumable_checkpoints
from parsl_quantum.reliability.failover import FailoverPolicy, PoolDownHandler
from parsl_quantum.reliability.retry import RetryHandler


@dataclass(frozen=True)
class Reliability:
    """Retries, failover and checkpointing of a run.

    ``retries``: extra tries for each task failing transiently, the n-th after about
    ``backoff * 2**(n-1)`` seconds (at most ``max_backoff``). ``failover``: let the work of a
    down pool move to a compatible pool of the same Config. ``checkpoint``: record each finished
    task in the Parsl run directory; ``resume``: reuse what earlier runs in the same Parsl run
    directory recorded. ``run_key``: the run's template digest
    (:func:`~parsl_quantum.reliability.checkpoint.template_digest`), written into every
    checkpoint record; a resumed run reuses only records carrying the same key.
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    failover: bool = False
    checkpoint: bool = True
    resume: bool = False
    run_key: str = ""

    def apply(self, config: Config) -> Safeguards:
        """Install the settings on ``config`` (before ``parsl.load``) and return the live
        objects that count what happened."""
        policy = FailoverPolicy(pool_infos(config)) if self.failover else None
        handler = RetryHandler(
            self.retries, backoff=self.backoff, max_backoff=self.max_backoff, failover=policy
        )
        config.retries = self.retries
        config.retry_handler = handler
        if policy is not None:
            for executor in config.executors:
                if isinstance(executor, BlockProviderExecutor) and executor.provider is not None:
                    executor.block_error_handler = PoolDownHandler(executor.block_error_handler)
        memoizer = None
        if self.checkpoint:
            previous = resumable_checkpoints(config.run_dir) if self.resume else []
            memoizer = CheckpointMemoizer(previous, run_key=self.run_key)
            config.memoizer = memoizer
        return Safeguards(handler, memoizer, self.resume)


@dataclass
class Safeguards:
    """What :meth:`Reliability.apply` installed, for reporting after the run."""

    handler: RetryHandler
    memoizer: CheckpointMemoizer | None
    resumed: bool

    def record(self, configuration: dict[str, Any]) -> None:
        """Add to a result's ``configuration``: ``retries`` (retried tries per pool),
        ``failovers`` (the moves the runner recorded itself - the dispatcher's, as
        ``plan.json`` has them - or, when it recorded none, the retry handler's: both see the
        same lost tasks, so listing both would count each move twice) and, when resuming,
        ``reused_from_checkpoint`` (tasks whose results came from checkpoints) and
        ``dropped_from_checkpoint`` (records that did not verify, so their tasks ran again)."""
        configuration["retries"] = dict(sorted(self.handler.retried.items()))
        moves = self.handler.failover.records() if self.handler.failover else []
        configuration["failovers"] = list(configuration.get("failovers") or moves)
        if self.resumed and self.memoizer is not None:
            configuration["reused_from_checkpoint"] = self.memoizer.reused
            configuration["dropped_from_checkpoint"] = self.memoizer.dropped
