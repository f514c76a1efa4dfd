"""What every benchmark here shares: no result served from a cache, and proof of that.

A benchmark that repeats the same work would otherwise time Parsl's memoizer: its evaluate
tasks of repeat 2 have the content hash of repeat 1 and come back from the cache. Each script
therefore runs with :func:`no_cache` applied to its Config (memoization and checkpoints off) and,
after its Parsl session is cleaned up, checks with :func:`assert_executed` that Parsl's
monitoring database records as many executed tasks as it submitted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parsl.config import Config
from parsl.dataflow.memoization import BasicMemoizer
from parsl.monitoring import MonitoringHub


def no_cache(config: Config, db: Path | None = None) -> Config:
    """Turn memoization and checkpoints off on ``config``; with ``db``, monitor into it.

    ``db`` replaces the Config's monitoring with Parsl's SQLite monitoring at that path (task
    states only, no resource sampling), so :func:`assert_executed` can count what ran.
    """
    config.memoizer = BasicMemoizer(memoize=False)
    if db is not None:
        config.monitoring = MonitoringHub(
            resource_monitoring_enabled=False, logging_endpoint=f"sqlite:///{db.resolve()}"
        )
    return config


def executed_tasks(db: Path, func: str | None = None) -> tuple[int, int]:
    """Tasks that ran on an executor and tasks served from the memo cache, from the database.

    ``func`` restricts the count to the tasks of one app function.
    """
    where = "" if func is None else " AND t.task_func_name = ?"
    args: tuple[str, ...] = () if func is None else (func,)
    with sqlite3.connect(db) as conn:
        counts = [
            conn.execute(
                "SELECT COUNT(DISTINCT s.run_id || ':' || s.task_id) FROM status s "
                "JOIN task t ON s.task_id = t.task_id AND s.run_id = t.run_id "
                f"WHERE s.task_status_name = ?{where}",
                (state, *args),
            ).fetchone()[0]
            for state in ("exec_done", "memo_done")
        ]
    return int(counts[0]), int(counts[1])


def assert_executed(
    db: Path, expected: int, func: str | None = None, *, at_least: bool = False
) -> int:
    """Check that ``expected`` tasks ran (none from the cache); return the count.

    ``at_least`` accepts more executed tasks than ``expected``: for runs whose own warm-up
    tasks are not counted by the caller.
    """
    executed, memoized = executed_tasks(db, func)
    label = func or "all apps"
    if memoized or executed < expected or (executed > expected and not at_least):
        bound = "at least " if at_least else ""
        raise AssertionError(
            f"monitoring database {db}: {executed} executed and {memoized} memoized tasks "
            f"of {label}, expected {bound}{expected} executed and none memoized"
        )
    print(f"monitoring: {executed} tasks of {label} executed, none served from a cache")
    return executed
