"""The one Parsl ``Config`` builder every site uses: pools, run directory and monitoring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from parsl.config import Config
from parsl.executors.base import ParslExecutor
from parsl.monitoring import MonitoringHub


def site_config(
    executors: Sequence[ParslExecutor],
    run_dir: Path,
    *,
    monitoring: bool,
    try_reports: bool = True,
    parsl_dir: Path | None = None,
    max_idletime: float = 3600.0,
    strategy_period: float = 5.0,
) -> Config:
    """A Config of ``executors`` (one per pool) whose files live under ``run_dir``.

    Parameters
    ----------
    executors : sequence of ParslExecutor
        The pools, one executor label each.
    run_dir : Path
        The run's directory: the monitoring database is ``run_dir/monitoring.db``.
    monitoring : bool
        Write Parsl's monitoring database (the per-pool timeline of ``parsl-quantum report``).
    try_reports : bool
        Have each try report when it starts running on its worker (queue wait and busy time),
        with resource monitoring at interval 0 so that no resource-sampling process starts per
        task. Off where workers cannot reach the submitting machine's monitoring hub (Globus
        Compute endpoints).
    parsl_dir : Path, optional
        Parsl's run directory; ``run_dir/parsl`` when omitted.
    max_idletime : float
        Seconds a pool may sit idle before the scaling strategy releases its blocks: long for
        local pools and endpoints (restarting workers costs more than idling), Parsl's 120 s
        for batch jobs, whose allocation is worth releasing.
    strategy_period : float
        Seconds between runs of the scaling strategy, which also submits each pool's first
        block: Parsl's 5 s, or less where workers should start as soon as the run does.

    Returns
    -------
    parsl.config.Config
        The configuration.
    """
    hub = None
    if monitoring:
        db = (run_dir / "monitoring.db").resolve()
        hub = MonitoringHub(
            resource_monitoring_enabled=try_reports,
            resource_monitoring_interval=0 if try_reports else 30,
            logging_endpoint=f"sqlite:///{db}",
        )
    return Config(
        executors=list(executors),
        run_dir=str(parsl_dir if parsl_dir is not None else run_dir / "parsl"),
        monitoring=hub,
        strategy="simple",
        strategy_period=strategy_period,
        max_idletime=max_idletime,
        initialize_logging=True,
    )


def with_executors(config: Config, executors: Sequence[ParslExecutor]) -> Config:
    """A Config like one :func:`site_config` built, holding only ``executors``.

    ``Config.executors`` cannot be reassigned, so a run that starts some pools before others
    (:mod:`parsl_quantum.workflow.startup`) loads this Config first and adds the other
    executors to the loaded DataFlowKernel.

    Parameters
    ----------
    config : parsl.config.Config
        A Config from :func:`site_config`, before reliability settings are applied.
    executors : sequence of ParslExecutor
        The pools to hold.

    Returns
    -------
    parsl.config.Config
        The same run directory, monitoring, scaling strategy and logging, with ``executors``.
    """
    return Config(
        executors=list(executors),
        run_dir=config.run_dir,
        monitoring=config.monitoring,
        strategy=config.strategy,
        strategy_period=config.strategy_period,
        max_idletime=config.max_idletime,
        initialize_logging=config.initialize_logging,
    )
