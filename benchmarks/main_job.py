"""Wall time of the README's main job from the CLI, with its start-up split.

Runs ``parsl-quantum run workflows/circuit-cutting.yaml`` as a user would, in a new process
each time: one unrecorded run first (warm disk cache), then ``--repeats`` recorded runs, and
reports the median wall time (process start to exit) with the split of each run taken from its
own monitoring database, in seconds:

* launch -> DFK start: interpreter start, imports, template checks and planning;
* DFK start -> pool start: ``parsl.load`` until the evaluating pool's block is submitted (the
  pool's first record in the ``block`` table);
* pool start -> first worker registered: the worker pool process starting and its manager
  registering with the interchange (the first ``node`` record of that pool, matched through the
  manager's directory under Parsl's run directory);
* registered -> first evaluate running: workers spawned and the first ``evaluate_subexperiments``
  try reported running;
* first evaluate -> last task end: the evaluation itself;
* last task end -> exit: reconstruction, reference, shutting Parsl down and the process exit.

No result is served from a cache: every run has a new run directory, so Parsl's checkpoint
memoizer has nothing to reuse, and the run's monitoring database must show exactly the tasks
the run reports, executed, none memoized.

    python benchmarks/main_job.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from uncached import assert_executed

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "workflows" / "circuit-cutting.yaml"

#: The split's stages, in order, each ending at the next event.
STAGES = (
    ("launch -> DFK start", "launch", "dfk"),
    ("DFK start -> pool start", "dfk", "pool"),
    ("pool start -> first worker registered", "pool", "registered"),
    ("registered -> first evaluate running", "registered", "evaluate"),
    ("first evaluate -> last task end", "evaluate", "last_end"),
    ("last task end -> exit", "last_end", "exit"),
)


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def run_events(run_dir: Path) -> dict[str, float]:
    """Times (epoch seconds) of the run's start-up events, from its monitoring database and
    Parsl's run directory; the pool is the one that ran the first evaluate task."""
    with sqlite3.connect(run_dir / "monitoring.db") as conn:
        (began,) = conn.execute("SELECT MIN(time_began) FROM workflow").fetchone()
        first = conn.execute(
            "SELECT r.task_executor, r.task_try_time_running FROM try r JOIN task t "
            "ON r.task_id = t.task_id AND r.run_id = t.run_id "
            "WHERE t.task_func_name = 'evaluate_subexperiments' "
            "AND r.task_try_time_running IS NOT NULL ORDER BY r.task_try_time_running LIMIT 1"
        ).fetchone()
        if first is None:
            raise AssertionError(f"{run_dir}: no evaluate task reported running")
        pool, running = first
        (submitted,) = conn.execute(
            "SELECT MIN(timestamp) FROM block WHERE executor_label = ?", (pool,)
        ).fetchone()
        (last_end,) = conn.execute("SELECT MAX(task_try_time_returned) FROM try").fetchone()
        nodes = conn.execute("SELECT uid, MIN(timestamp) FROM node GROUP BY uid").fetchall()
    managers = {p.name for p in (run_dir / "parsl").glob(f"*/{pool}/block-*/*") if p.is_dir()}
    registered = [_at(ts) for uid, ts in nodes if uid in managers]
    if not registered:
        raise AssertionError(f"{run_dir}: no worker of pool {pool!r} registered")
    return {
        "dfk": _at(began),
        "pool": _at(submitted),
        "registered": min(registered),
        "evaluate": _at(running),
        "last_end": _at(last_end),
    }


def run_once(extra: list[str]) -> dict[str, float]:
    """One run of the main job in a new process: its wall time, split and result checks."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        run_dir = Path(tmp) / "run"
        cmd = [
            str(Path(sys.executable).parent / "parsl-quantum"),
            "run",
            str(TEMPLATE),
            "--quiet",
            "--json",
            str(out),
            "--run-dir",
            str(run_dir),
            *extra,
        ]
        launch = time.time()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - start
        exit_at = time.time()
        data = json.loads(out.read_text())
        assert_executed(run_dir / "monitoring.db", int(data["tasks"]))
        events = {"launch": launch, **run_events(run_dir), "exit": exit_at}
    row = {name: events[end] - events[begin] for name, begin, end in STAGES}
    row["wall"] = wall
    row["first evaluate after pool start"] = events["evaluate"] - events["pool"]
    row["error"] = abs(data["value"] - data["reference"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="recorded runs after the warm-up")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    extra = [a for kv in args.set for a in ("--set", kv)]
    run_once(extra)  # warm-up: fills the page cache, not recorded
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    rows = []
    for _ in range(args.repeats):
        rows.append(run_once(extra))
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    print(f"machine: {os.cpu_count()} cores; 1-minute load average before/after each run: {loads}")
    print(f"{'stage':40s} {'median (s)':>10s} {'min (s)':>8s} {'max (s)':>8s}")
    names = ["wall", *(name for name, _, _ in STAGES), "first evaluate after pool start"]
    for name in names:
        values = [r[name] for r in rows]
        print(f"{name:40s} {statistics.median(values):10.2f} {min(values):8.2f} {max(values):8.2f}")
    print(f"|value - reference|: {max(r['error'] for r in rows):.2e}")
    wall = statistics.median(r["wall"] for r in rows)
    first = statistics.median(r["first evaluate after pool start"] for r in rows)
    print(f"target wall < 4 s: {'met' if wall < 4 else 'missed'} ({wall:.2f} s)")
    print(f"target first evaluate <= 1.5 s after pool start: {'met' if first <= 1.5 else 'missed'}")


if __name__ == "__main__":
    main()
