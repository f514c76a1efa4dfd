"""One switch for a run's reliability settings, applicable to any Parsl Config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parsl.config import Config
from parsl.executors.base import ParslExecutor
from parsl.executors.status_handling import BlockProviderExecutor

from parsl_quantum.executors.pools import PoolInfo, pool_infos
from parsl_quantum.reliability.checkpoint import CheckpointMemoizer, resumable_checkpoints
from parsl_quantum.reliability.failover import FailoverPolicy, PoolDownHandler
from parsl_quantum.reliability.retry import RetryHandler


@dataclass(frozen=True)
class Reliability:
    """Retries, failover and checkpointing of a run.

    Attributes
    ----------
    retries : int
        Extra tries for each task failing transiently.
    backoff, max_backoff : float
        The n-th retry waits about ``backoff * 2**(n-1)`` seconds, at most ``max_backoff``.
    failover : bool
        Let a task change physical model when no pool of its own is up (QPU work finishing on
        a simulator), and count a pool whose blocks were cancelled, killed or lost as down.
        Off, tasks still move between pools of their own model.
    checkpoint : bool
        Record each finished task in the Parsl run directory.
    resume : bool
        Reuse what earlier runs in the same Parsl run directory recorded.
    run_key : str
        The run's template digest
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
        """Install the settings on a Config before ``parsl.load``.

        Parameters
        ----------
        config : Config
            Any Parsl Config; its ``retries``, ``retry_handler``, ``memoizer`` and (with
            failover) its executors' ``block_error_handler`` are set.

        Returns
        -------
        Safeguards
            The live objects that count what happened. The retry handler carries the run's
            :class:`~parsl_quantum.reliability.failover.FailoverPolicy`, which the late-binding
            dispatcher of the same run uses too.
        """
        policy = FailoverPolicy(pool_infos(config), cross_model=self.failover)
        handler = RetryHandler(
            self.retries, backoff=self.backoff, max_backoff=self.max_backoff, failover=policy
        )
        config.retries = self.retries
        config.retry_handler = handler
        self.guard(config.executors)
        memoizer = None
        if self.checkpoint:
            previous = resumable_checkpoints(config.run_dir) if self.resume else []
            memoizer = CheckpointMemoizer(previous, run_key=self.run_key)
            config.memoizer = memoizer
        return Safeguards(handler, memoizer, self.resume)

    def guard(self, executors: Sequence[ParslExecutor]) -> None:
        """Install the per-pool part of the settings on executors before they start: with
        failover, a handler that marks a pool down once its blocks are lost.

        Parameters
        ----------
        executors : sequence of ParslExecutor
            Pools of the run: those of the Config :meth:`apply` gets, and any added to the
            loaded DataFlowKernel later (:meth:`Safeguards.add_pools`).
        """
        if not self.failover:
            return
        for executor in executors:
            if isinstance(executor, BlockProviderExecutor) and executor.provider is not None:
                executor.block_error_handler = PoolDownHandler(executor.block_error_handler)


@dataclass
class Safeguards:
    """What :meth:`Reliability.apply` installed, for reporting after the run.

    Attributes
    ----------
    handler : RetryHandler
        The Config's retry handler, with the run's failover policy.
    memoizer : CheckpointMemoizer or None
        The checkpointing memoizer, if checkpoints are on.
    resumed : bool
        Whether the run resumes an earlier one.
    """

    handler: RetryHandler
    memoizer: CheckpointMemoizer | None
    resumed: bool

    def add_pools(self, pools: Mapping[str, PoolInfo]) -> None:
        """Make pools added to the loaded DataFlowKernel (``add_executors``) failover targets.

        Parameters
        ----------
        pools : mapping of str to PoolInfo
            The added pools, described (:func:`~parsl_quantum.executors.pool_infos`).
        """
        if self.handler.failover is not None:
            self.handler.failover.pools.update(pools)

    def record(self, configuration: dict[str, Any]) -> None:
        """Add what happened to a result's ``configuration``.

        Parameters
        ----------
        configuration : dict
            Gets ``retries`` (retried tries per pool); ``failovers``, every move of the run
            from the failover policy's record - the retry handler's and the dispatcher's, each
            once, with its ``trigger`` (it replaces the dispatcher's own list, whose moves it
            holds); and, when resuming, ``reused_from_checkpoint`` (tasks whose results came
            from checkpoints) and ``dropped_from_checkpoint`` (records that did not verify, so
            their tasks ran again).
        """
        configuration["retries"] = dict(sorted(self.handler.retried.items()))
        policy = self.handler.failover
        configuration["failovers"] = policy.records() if policy is not None else []
        if self.resumed and self.memoizer is not None:
            configuration["reused_from_checkpoint"] = self.memoizer.reused
            configuration["dropped_from_checkpoint"] = self.memoizer.dropped
