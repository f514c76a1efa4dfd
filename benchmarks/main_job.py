"""Wall time of the default main job, cold and warm, pool start-up included.

Runs ``parsl-quantum run workflows/circuit-cutting.yaml`` as a user would, in a new process
each time, and reads the per-stage timings from its ``--json`` result. "Cold" is the first run
after the page cache is dropped (when this process may do so; otherwise the first run of this
invocation), "warm" the runs that follow.

    python benchmarks/main_job.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    timings = {k: float(v) for k, v in data["timings"].items()}
    timings["wall"] = wall
    timings["error"] = abs(data["value"] - data["reference"])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs after the cold one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    extra = [a for kv in args.set for a in ("--set", kv)]
    dropped = drop_caches()
    cold = run_once(extra)
    warm = [run_once(extra) for _ in range(args.repeats)]
    print(f"machine: {os.cpu_count()} cores; page cache dropped before the cold run: {dropped}")
    stages = ["wall", "total", "startup", "plan", "evaluate", "reconstruct", "reference"]
    print(f"{'stage':12s} {'cold (s)':>10s} {'warm median (s)':>16s}")
    for stage in stages:
        med = statistics.median(w.get(stage, 0.0) for w in warm) if warm else float("nan")
        print(f"{stage:12s} {cold.get(stage, 0.0):10.2f} {med:16.2f}")
    print(f"|value - reference|: {max([cold['error'], *(w['error'] for w in warm)]):.2e}")


if __name__ == "__main__":
    main()
