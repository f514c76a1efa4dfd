"""Wall time of the README's main job from the CLI, with its start-up split.

Runs ``parsl-quantum run workflows/circuit-cutting.yaml`` as a user would, in a new process
each time: one unrecorded run first (warm disk cache), then ``--repeats`` recorded runs with the
defaults (monitoring off), then ``--monitored`` runs with ``--monitoring``. It reports the median
wall time (process start to exit) and splits each run, in seconds, from the run's own records:
its result's timings and ``workers.csv``, where each local worker process records when its
worker pool's process and itself started and when it began its first task:

* launch -> pool process start: interpreter start, imports, ``parsl.load`` of the simulator
  pool (its interchange), the pool's block submitted and its worker pool process started; the
  driver describes the pools and plans meanwhile;
* pool process start -> first worker process: the worker pool importing Parsl and starting its
  process manager;
* first worker process -> first task on a worker: the worker importing what it needs and
  taking its first evaluate task;
* first task on a worker -> exit: the evaluation, reconstruction, reference, shutting Parsl
  down and the process exit.

"first task after pool start" is the pool process start -> first task on a worker.

No result is served from a cache: every run has a new run directory, so Parsl's checkpoint
memoizer has nothing to reuse. Each default run's ``tasks.csv`` must list exactly the tasks the
run reports, each launched to a pool (a task served from a memo is never launched), and at least
one worker must have recorded a task; each monitored run's monitoring database must show exactly
the tasks the run reports, executed, none memoized.

    python benchmarks/main_job.py --repeats 5 --monitored 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uncached import assert_executed

from parsl_quantum.workflow.startup import worker_starts

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "workflows" / "circuit-cutting.yaml"

#: The split's stages, in order, each ending at the next event.
STAGES = (
    ("launch -> pool process start", "launch", "pool"),
    ("pool process start -> first worker process", "pool", "worker"),
    ("first worker process -> first task on a worker", "worker", "task"),
    ("first task on a worker -> exit", "task", "exit"),
)


def assert_launched(run_dir: Path, tasks: int) -> None:
    """Every task the run reports is in its ``tasks.csv``, done and launched to a pool."""
    with (run_dir / "tasks.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    launched = [r for r in rows if r["status"] == "done" and r["start_time"]]
    if len(rows) != tasks or len(launched) != tasks:
        raise AssertionError(
            f"{run_dir}: {tasks} tasks reported, {len(rows)} recorded, {len(launched)} launched"
        )


def run_once(extra: list[str], monitored: bool) -> dict[str, float]:
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
            *(["--monitoring"] if monitored else []),
            *extra,
        ]
        launch = time.time()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - start
        exit_at = time.time()
        data = json.loads(out.read_text())
        assert_launched(run_dir, int(data["tasks"]))
        if monitored:
            assert_executed(run_dir / "monitoring.db", int(data["tasks"]))
        workers = worker_starts(run_dir)
        if not workers:
            raise AssertionError(f"{run_dir}: no worker recorded a task")
    events = {
        "launch": launch,
        "pool": min(w["pool_started"] for w in workers),
        "worker": min(w["worker_started"] for w in workers),
        "task": workers[0]["first_task"],
        "exit": exit_at,
    }
    row = {name: events[end] - events[begin] for name, begin, end in STAGES}
    row["wall"] = wall
    row["first task after pool start"] = events["task"] - events["pool"]
    row["plan (overlapped)"] = float(data["timings"]["plan"])
    row["error"] = abs(data["value"] - data["reference"])
    return row


def report(title: str, rows: list[dict[str, float]]) -> None:
    """Print the medians, minima and maxima of ``rows``."""
    print(title)
    print(f"{'stage':48s} {'median (s)':>10s} {'min (s)':>8s} {'max (s)':>8s}")
    names = [
        "wall",
        *(name for name, _, _ in STAGES),
        "first task after pool start",
        "plan (overlapped)",
    ]
    for name in names:
        values = [r[name] for r in rows]
        print(f"{name:48s} {statistics.median(values):10.2f} {min(values):8.2f} {max(values):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="recorded runs after the warm-up")
    parser.add_argument(
        "--monitored", type=int, default=2, help="recorded runs with --monitoring after those"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.repeats < 1 or args.monitored < 0:
        parser.error("--repeats must be at least 1 and --monitored at least 0")
    extra = [a for kv in args.set for a in ("--set", kv)]
    run_once(extra, monitored=False)  # warm-up: fills the page cache, not recorded
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    rows, monitored = [], []
    for _ in range(args.repeats):
        rows.append(run_once(extra, monitored=False))
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    for _ in range(args.monitored):
        monitored.append(run_once(extra, monitored=True))
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    print(f"machine: {os.cpu_count()} cores; 1-minute load average before/after each run: {loads}")
    report(f"defaults (monitoring off), {len(rows)} runs:", rows)
    if monitored:
        report(f"with --monitoring, {len(monitored)} runs:", monitored)
    print(f"|value - reference|: {max(r['error'] for r in rows + monitored):.2e}")
    wall = statistics.median(r["wall"] for r in rows)
    first = statistics.median(r["first task after pool start"] for r in rows)
    print(f"target wall < 4 s: {'met' if wall < 4 else 'missed'} ({wall:.2f} s)")
    print(
        "target first evaluate <= 1.5 s after pool start: "
        f"{'met' if first <= 1.5 else 'missed'} ({first:.2f} s)"
    )


if __name__ == "__main__":
    main()
