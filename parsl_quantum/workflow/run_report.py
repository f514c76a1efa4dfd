"""``parsl-quantum report RUN_DIR``: what each pool did, read from Parsl's monitoring database.

Every try of every task is a row of the ``try`` table of ``RUN_DIR/monitoring.db`` (executor,
launched, running, returned), and the ``status`` table has every state change: how each task
ended (``exec_done``, ``memo_done`` for a result reused from a checkpoint, ``failed``) and when
each try ended on its worker (``running_ended``). From them, per pool: tasks,
tries, retries (failed tries tried again on the same pool), failovers (tries whose next try
ran on another pool: "moved out/in"), tasks reused from checkpoints, busy fraction and queue
wait; and a timeline picture with one lane per worker of each pool and each try as a bar. A
resumed run directory holds several Parsl runs; they share one time axis, each start marked.

Warm-up tasks (the mini-apps' ``warm_up``, one per worker slot before the run's own tasks) are
counted apart from run tasks and drawn apart. The ``block`` table says when each pool's block
was requested and when its provider reported it running (pool start-up), and the ``node`` table
when each worker manager connected (worker start): the timeline shades the first and marks the
second, so the time before the first task is explained, not empty.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

#: File names inside a run directory.
MONITORING_DB = "monitoring.db"
TIMELINE = "timeline.png"
#: Console width of the table written to a pipe or a file: wide enough that no cell is cut.
PIPE_WIDTH = 250


#: Functions of warm-up tasks (``miniapps._common.warm_up``): counted apart from run tasks.
WARMUP_FUNCTIONS = frozenset({"warm_up"})

#: States that workers report with their own clocks; they never end a task.
WORKER_STATES = frozenset({"running", "running_ended"})


class ReportError(ValueError):
    """The run directory has nothing to report from (no monitoring database, or no runs)."""


@dataclass(frozen=True)
class Try:
    """One try of one task, as the monitoring database recorded it.

    Times are in seconds since the first run in the directory began.

    Attributes
    ----------
    run : int
        Index of the Parsl run in the directory.
    task : int
        Parsl task id.
    attempt : int
        Try number of the task.
    pool : str
        Pool the try ran on.
    launched : float
        When the try was launched to the pool.
    running : float or None
        The worker's own start of the try; None when it never reached a worker.
    ended : float or None
        The worker's own end of the try, or when Parsl saw it return when the worker never said
        (a killed worker).
    failed : bool
        Whether the try failed.
    warmup : bool
        Whether the task was a warm-up task.
    """

    run: int
    task: int
    attempt: int
    pool: str
    launched: float
    running: float | None
    ended: float | None
    failed: bool
    warmup: bool = False


@dataclass
class PoolSummary:
    """Per-pool totals over every run in the directory.

    Attributes
    ----------
    pool : str
        Pool name.
    workers : int
        Worker slots of the pool.
    tasks : int
        Tasks run.
    warmup_tasks : int
        Warm-up tasks among them.
    tries : int
        Tries of those tasks.
    retries : int
        Tries beyond the first.
    failovers_out : int
        Tasks moved from this pool to another.
    failovers_in : int
        Tasks moved to this pool from another.
    reused : int
        Tasks whose result was reused from a checkpoint rather than run.
    busy_seconds : float
        Running time of all tries.
    span_seconds : float
        First start to last end of the pool.
    queue_waits : list of float
        Seconds each try waited between launch and running.
    """

    pool: str
    workers: int
    tasks: int = 0
    warmup_tasks: int = 0
    tries: int = 0
    retries: int = 0
    failovers_out: int = 0
    failovers_in: int = 0
    reused: int = 0
    busy_seconds: float = 0.0
    span_seconds: float = 0.0
    queue_waits: list[float] = field(default_factory=list)

    @property
    def busy_fraction(self) -> float:
        """Running time over worker time (workers x first start to last end of the pool)."""
        capacity = self.workers * self.span_seconds
        return self.busy_seconds / capacity if capacity > 0 else 0.0

    def to_dict(self) -> dict[str, float | int | str]:
        """The totals as plain data, with the mean and largest queue wait.

        Returns
        -------
        dict of str to (float or int or str)
            One entry per total, ``busy_fraction``, ``queue_wait_mean`` and ``queue_wait_max``.
        """
        waits = self.queue_waits
        return {
            "pool": self.pool,
            "workers": self.workers,
            "tasks": self.tasks,
            "warmup_tasks": self.warmup_tasks,
            "tries": self.tries,
            "retries": self.retries,
            "failovers_out": self.failovers_out,
            "failovers_in": self.failovers_in,
            "reused": self.reused,
            "busy_fraction": self.busy_fraction,
            "queue_wait_mean": sum(waits) / len(waits) if waits else 0.0,
            "queue_wait_max": max(waits, default=0.0),
        }


@dataclass(frozen=True)
class Lane:
    """One worker slot of a pool in the timeline, and the tries drawn on it.

    Attributes
    ----------
    pool : str
        Pool name.
    slot : int
        Worker slot number in the pool.
    tries : tuple of Try
        The tries drawn on the lane.
    """

    pool: str
    slot: int
    tries: tuple[Try, ...]

    @property
    def label(self) -> str:
        """The lane's label in the timeline: ``<pool> / worker <slot>``."""
        return f"{self.pool} / worker {self.slot}"


@dataclass(frozen=True)
class PoolStartup:
    """When a block of a pool was requested from its provider and when it was running.

    Times are in seconds since the first run began.

    Attributes
    ----------
    pool : str
        Pool name.
    requested : float
        When the block was requested.
    running : float or None
        The provider's RUNNING report or, when Parsl did not poll the provider before the
        pool's first task started (a run shorter than the strategy period), that start: the
        block was running by then. None when neither happened.
    """

    pool: str
    requested: float
    running: float | None


@dataclass
class RunReport:
    """Everything ``report`` prints and draws.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run directory.
    run_starts : list of float
        When each Parsl run in the directory began.
    tries : list of Try
        Every try of every task.
    pools : dict of str to PoolSummary
        Per-pool totals.
    lanes : list of Lane
        The timeline's lanes.
    startups : list of PoolStartup
        Blocks requested and running.
    worker_starts : list of float
        Times worker managers connected, whichever pool they serve (the monitoring database
        does not say).
    """

    run_dir: Path
    run_starts: list[float]
    tries: list[Try]
    pools: dict[str, PoolSummary]
    lanes: list[Lane]
    startups: list[PoolStartup] = field(default_factory=list)
    worker_starts: list[float] = field(default_factory=list)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _declared_workers(run_dir: Path) -> dict[str, int]:
    """Worker slots per pool as ``parsl-quantum run`` recorded them in ``run.json``."""
    try:
        pools = json.loads((run_dir / "run.json").read_text())["pools"]
        return {str(name): int(info["workers"]) for name, info in pools.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _pack(tries: Sequence[Try], slots: int) -> list[list[Try]]:
    """Assign tries that reached a worker to worker lanes, earliest start first, each into the
    first lane free by then (a new lane if none is; at least ``slots`` lanes)."""
    lanes: list[list[Try]] = [[] for _ in range(max(1, slots))]
    ends = [float("-inf")] * len(lanes)
    for t in sorted(tries, key=lambda t: (t.running or 0.0, t.task)):
        assert t.running is not None and t.ended is not None
        free = next((i for i, end in enumerate(ends) if end <= t.running + 1e-6), None)
        if free is None:
            lanes.append([])
            ends.append(float("-inf"))
            free = len(lanes) - 1
        lanes[free].append(t)
        ends[free] = t.ended
    return lanes


def load_report(run_dir: str | Path) -> RunReport:
    """Read ``RUN_DIR/monitoring.db`` into per-pool summaries and timeline lanes.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        The run directory.

    Returns
    -------
    RunReport
        The report.

    Raises
    ------
    ReportError
        When the directory has no readable monitoring database or it holds no run.
    """
    run_path = Path(run_dir)
    db = run_path / MONITORING_DB
    if not db.is_file():
        raise ReportError(
            f"{db} does not exist (start the run with --monitoring, or set "
            "run.monitoring: true in its template)"
        )
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        runs = con.execute("SELECT run_id, time_began FROM workflow ORDER BY time_began").fetchall()
        rows = con.execute(
            "SELECT run_id, task_id, try_id, task_executor, task_try_time_launched, "
            "task_try_time_running, task_try_time_returned FROM try"
        ).fetchall()
        states = con.execute(
            "SELECT run_id, task_id, try_id, task_status_name, timestamp FROM status "
            "ORDER BY timestamp"
        ).fetchall()
        functions = con.execute("SELECT run_id, task_id, task_func_name FROM task").fetchall()
        blocks = con.execute(
            "SELECT run_id, executor_label, block_id, status, timestamp FROM block "
            "ORDER BY timestamp"
        ).fetchall()
        managers = con.execute(
            "SELECT run_id, MIN(timestamp) FROM node GROUP BY run_id, uid, block_id"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"cannot read {db}: {exc}") from None
    finally:
        con.close()
    if not runs:
        raise ReportError(f"{db} holds no Parsl run")
    run_index = {run_id: i for i, (run_id, _) in enumerate(runs)}
    origin = min(when for _, began in runs if (when := _time(began)) is not None)

    def seconds(text: str | None) -> float | None:
        t = _time(text)
        return None if t is None else (t - origin).total_seconds()

    ended: dict[tuple[int, int], str] = {}
    failed_tries: set[tuple[int, int, int]] = set()
    worker_end: dict[tuple[int, int, int], float | None] = {}
    for run_id, task, attempt, name, when in states:
        if run_id not in run_index:
            continue
        key = (run_index[run_id], int(task), int(attempt))
        if name == "running_ended":
            worker_end[key] = seconds(when)
        elif name not in WORKER_STATES:
            ended[key[:2]] = name  # rows come in time order
            if name in ("fail_retryable", "failed"):
                failed_tries.add(key)
    warmups = {
        (run_index[run_id], int(task))
        for run_id, task, name in functions
        if run_id in run_index and name in WARMUP_FUNCTIONS
    }
    by_task: dict[tuple[int, int], list[Try]] = defaultdict(list)
    for run_id, task, attempt, pool, launched, running, returned in rows:
        if run_id not in run_index:
            continue
        key = (run_index[run_id], int(task), int(attempt))
        end = worker_end.get(key)
        by_task[key[:2]].append(
            Try(
                *key,
                str(pool),
                seconds(launched) or 0.0,
                seconds(running),
                seconds(returned) if end is None else end,
                key in failed_tries,
                key[:2] in warmups,
            )
        )
    declared = _declared_workers(run_path)
    pools: dict[str, PoolSummary] = {}
    tries: list[Try] = []
    for task_key, task_tries in sorted(by_task.items()):
        task_tries.sort(key=lambda t: t.attempt)
        last = task_tries[-1]
        for t in task_tries:
            pools.setdefault(t.pool, PoolSummary(t.pool, declared.get(t.pool, 0)))
        if last.warmup:
            pools[last.pool].warmup_tasks += 1
        else:
            pools[last.pool].tasks += 1
        if ended.get(task_key) == "memo_done":
            pools[last.pool].reused += 1
            continue
        following_tries: list[Try | None] = [*task_tries[1:], None]
        for t, following in zip(task_tries, following_tries, strict=True):
            summary = pools[t.pool]
            summary.tries += 1
            if following is not None:
                summary.retries += t.pool == following.pool
                if t.pool != following.pool:
                    summary.failovers_out += 1
                    pools[following.pool].failovers_in += 1
            if t.running is not None:
                summary.queue_waits.append(max(0.0, t.running - t.launched))
            tries.append(t)
    lanes: list[Lane] = []
    for name, summary in sorted(pools.items()):
        ran = [t for t in tries if t.pool == name and t.running is not None and t.ended is not None]
        packed = _pack(ran, summary.workers)
        summary.workers = max(summary.workers, len(packed))
        if ran:
            summary.busy_seconds = sum((t.ended or 0.0) - (t.running or 0.0) for t in ran)
            start = min(t.running or 0.0 for t in ran)
            summary.span_seconds = max(t.ended or 0.0 for t in ran) - start
            lanes.extend(Lane(name, i, tuple(lane)) for i, lane in enumerate(packed))
    starts = [seconds(began) or 0.0 for _, began in runs]
    return RunReport(
        run_path,
        starts,
        tries,
        pools,
        lanes,
        _startups(blocks, run_index, seconds, tries),
        sorted(
            w
            for run_id, when in managers
            if run_id in run_index and (w := seconds(when)) is not None
        ),
    )


def _startups(
    blocks: Sequence[tuple[str, str, str, str, str]],
    run_index: dict[str, int],
    seconds: Callable[[str | None], float | None],
    tries: Sequence[Try],
) -> list[PoolStartup]:
    """Each block's first PENDING and first RUNNING report (else its pool's first task start)."""
    requested: dict[tuple[str, str, str], float] = {}
    running: dict[tuple[str, str, str], float] = {}
    for run_id, pool, block, status, when in blocks:
        t = seconds(when)
        if run_id not in run_index or t is None:
            continue
        key = (run_id, str(pool), str(block))
        if status == "PENDING":
            requested.setdefault(key, t)
        elif status == "RUNNING":
            running.setdefault(key, t)
    first_task: dict[str, float] = {}
    for attempt in tries:
        if attempt.running is not None:
            began = attempt.running
            first_task[attempt.pool] = min(first_task.get(attempt.pool, began), began)
    return [
        PoolStartup(pool, t, running.get((run_id, pool, block), first_task.get(pool)))
        for (run_id, pool, block), t in sorted(requested.items(), key=lambda kv: kv[1])
    ]


def draw_timeline(report: RunReport, path: str | Path) -> list[str]:
    """Draw one lane per worker of each pool that ran tries.

    Each try is a bar (failed tries red, hatched), run starts dashed lines.

    Parameters
    ----------
    report : RunReport
        The report to draw.
    path : str or pathlib.Path
        Picture file to write.

    Returns
    -------
    list of str
        The lane labels, top to bottom.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not report.lanes:
        raise ReportError(f"no task of {report.run_dir} ran on a worker: nothing to draw")
    colours = plt.get_cmap("tab10")
    pool_names = sorted({lane.pool for lane in report.lanes})
    colour = {name: colours(i % 10) for i, name in enumerate(pool_names)}
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.4 * len(report.lanes)))
    labels = []
    for startup in report.startups:
        if startup.pool in colour and startup.running is not None:
            ax.axvspan(startup.requested, startup.running, color=colour[startup.pool], alpha=0.15)
    for when in report.worker_starts:
        ax.axvline(when, color="black", linestyle=":", linewidth=1)
    for y, lane in enumerate(reversed(report.lanes)):
        labels.append(lane.label)
        for t in lane.tries:
            assert t.running is not None and t.ended is not None
            ax.broken_barh(
                [(t.running, max(t.ended - t.running, 1e-3))],
                (y - 0.4, 0.8),
                facecolors="lightgrey" if t.warmup else colour[lane.pool],
                edgecolor="red" if t.failed else "black",
                linewidth=1.5 if t.failed else 0.3,
                hatch="//" if t.failed else (".." if t.warmup else None),
            )
    for start in report.run_starts[1:]:
        ax.axvline(start, color="grey", linestyle="--", linewidth=1)
    end = max(t.ended or 0.0 for lane in report.lanes for t in lane.tries)
    ax.set_xlim(0, end * 1.02)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("seconds since the run began")
    ax.set_title(f"{report.run_dir.name}: tries per worker")
    handles: list[Artist] = [Patch(facecolor=colour[n], label=f"pool {n}") for n in pool_names]
    handles.append(Patch(facecolor="white", edgecolor="red", hatch="//", label="failed try"))
    if any(t.warmup for lane in report.lanes for t in lane.tries):
        handles.append(Patch(facecolor="lightgrey", hatch="..", label="warm-up task"))
    if any(s.pool in colour and s.running is not None for s in report.startups):
        handles.append(Patch(facecolor="grey", alpha=0.15, label="pool start-up"))
    if report.worker_starts:
        handles.append(Line2D([], [], color="black", linestyle=":", label="worker connected"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return list(reversed(labels))


def print_report(report: RunReport, stream: TextIO | None = None) -> None:
    """The per-pool table, with one line per Parsl run above it.

    Parameters
    ----------
    report : RunReport
        The report to print.
    stream : TextIO or None
        Where to print; standard output when omitted.
    """
    from rich.console import Console
    from rich.table import Table

    out = stream or sys.stdout
    # whole lines in logs and pipes (rich would squeeze them to 80 columns); a terminal keeps
    # its own width
    console = Console(
        file=out, highlight=False, markup=False, width=None if out.isatty() else PIPE_WIDTH
    )
    runs = len(report.run_starts)
    if runs > 1:
        console.print(f"{runs} Parsl runs in {report.run_dir} (resumed {runs - 1} time(s))")
    table = Table(title=f"parsl-quantum report: {report.run_dir}")
    for col in (
        "pool",
        "workers",
        "tasks",
        "warm-up\ntasks",
        "tries",
        "retries",
        "moved\nout/in",
        "reused",
        "busy",
    ):
        table.add_column(col, justify="left" if col == "pool" else "right")
    table.add_column("queue\nwait (s)", justify="right")
    table.add_column("max\nwait (s)", justify="right")
    for summary in report.pools.values():
        d = summary.to_dict()
        table.add_row(
            summary.pool,
            str(d["workers"]),
            str(d["tasks"]),
            str(d["warmup_tasks"]),
            str(d["tries"]),
            str(d["retries"]),
            f"{d['failovers_out']}/{d['failovers_in']}",
            str(d["reused"]),
            f"{summary.busy_fraction:.0%}",
            f"{d['queue_wait_mean']:.2f}",
            f"{d['queue_wait_max']:.2f}",
        )
    for startup in report.startups:
        ready = "never" if startup.running is None else f"{startup.running:.1f} s"
        console.print(
            f"pool {startup.pool}: block requested at {startup.requested:.1f} s, running at {ready}"
        )
    if report.worker_starts:
        times = ", ".join(f"{t:.1f}" for t in report.worker_starts)
        console.print(f"worker managers connected at (s): {times}")
    console.print(table)
