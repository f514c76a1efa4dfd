"""Wall time of the default main job, cold and warm, pool start-up included.

Runs ``parsl-quantum run workflows/circuit-cutting.yaml`` as a user would, in a new process
each time, and reads the per-stage timings from its ``--json`` result. "Cold" is the first run
after the page cache is dropped (when this process may do so; otherwise the first run of this
invocation), "warm" the runs that follow.

Each run must be computed, not served from a cache: its monitoring database must show every
task it reports executed and none memoized (the run directory is new each time, so there is
no checkpoint to reuse). The start-up split comes from the same database, in seconds after the
DataFlowKernel started: the first worker manager registered, and the first evaluate task
running on a worker.

    python benchmarks/main_job.py --repeats 3
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


def drop_caches() -> bool:
    """Drop the page cache (root on Linux only); True when it was dropped."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run_once(extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            str(Path(sys.executable).parent / "parsl-quantum"),
            "run",
            str(ROOT / "workflows" / "circuit-cutting.yaml"),
            "--quiet",
            "--json",
            str(out),
            "--run-dir",
            str(Path(tmp) / "run"),
            *extra,
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - start
        data = json.loads(out.read_text())
        db = Path(tmp) / "run" / "monitoring.db"
        assert_executed(db, int(data["tasks"]), at_least=True)
        split = startup_split(db)
    timings = {k: float(v) for k, v in data["timings"].items()}
    timings.update(split)
    timings["wall"] = wall
    timings["error"] = abs(data["value"] - data["reference"])
    return timings


def startup_split(db: Path) -> dict[str, float]:
    """Seconds from the DataFlowKernel's start to the first worker and the first evaluate task."""

    def at(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    with sqlite3.connect(db) as conn:
        (began,) = conn.execute("SELECT MIN(time_began) FROM workflow").fetchone()
        (manager,) = conn.execute("SELECT MIN(timestamp) FROM node").fetchone()
        (running,) = conn.execute(
            "SELECT MIN(r.task_try_time_running) FROM try r JOIN task t "
            "ON r.task_id = t.task_id AND r.run_id = t.run_id "
            "WHERE t.task_func_name = 'evaluate_subexperiments'"
        ).fetchone()
    split = {}
    if manager is not None:
        split["first_worker"] = at(manager) - at(began)
    if running is not None:
        split["first_evaluate"] = at(running) - at(began)
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs after the cold one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    extra = [a for kv in args.set for a in ("--set", kv)]
    dropped = drop_caches()
    cold = run_once(extra)
    warm = [run_once(extra) for _ in range(args.repeats)]
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    print(f"machine: {os.cpu_count()} cores; page cache dropped before the cold run: {dropped}")
    stages = [
        "wall",
        "total",
        "startup",
        "first_worker",
        "first_evaluate",
        "plan",
        "evaluate",
        "reconstruct",
        "reference",
    ]
    print(f"{'stage':12s} {'cold (s)':>10s} {'warm median (s)':>16s}")
    for stage in stages:
        med = statistics.median(w.get(stage, 0.0) for w in warm) if warm else float("nan")
        print(f"{stage:12s} {cold.get(stage, 0.0):10.2f} {med:16.2f}")
    print(f"|value - reference|: {max([cold['error'], *(w['error'] for w in warm)]):.2e}")


if __name__ == "__main__":
    main()
