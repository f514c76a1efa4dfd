"""Wall time and peak driver memory of the main job at 100 and 200 qubits.

Runs ``parsl-quantum run workflows/circuit-cutting.yaml`` from the command line, as a user
would, once per size with ``planner.max_subcircuit_qubits=25`` on the ``cpu`` pool. The driver's
peak resident memory is its kernel high-water mark (``VmHWM`` in ``/proc/<pid>/status``), read
until the process exits; pool workers are separate processes and not counted. Every run is
computed, not served from a cache: its monitoring database must show each task it reports
executed (the run directory is new each time, and nothing is memoized across processes).

    python benchmarks/scale.py --qubits 100 200 --json scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from uncached import executed_tasks

ROOT = Path(__file__).resolve().parent.parent


def _high_water_mib(pid: int) -> float | None:
    """The process's peak resident set so far, in MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_once(qubits: int, limit: int, run_dir: Path) -> dict[str, Any]:
    """One CLI run: wall seconds, peak driver MiB, and what the run reported."""
    out = run_dir.parent / f"{run_dir.name}.json"
    cmd = [
        sys.executable,
        "-m",
        "parsl_quantum.workflow.cli",
        "run",
        str(ROOT / "workflows" / "circuit-cutting.yaml"),
        "--set",
        f"circuit.qubits={qubits}",
        "--set",
        f"planner.max_subcircuit_qubits={limit}",
        "--set",
        "pools=cpu",
        "--monitoring",
        "--run-dir",
        str(run_dir),
        "--json",
        str(out),
        "--quiet",
    ]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        mib = _high_water_mib(proc.pid)
        if mib is not None:
            peak = max(peak, mib)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{qubits} qubits: run failed ({proc.returncode}): {stderr.strip()}")
    data = json.loads(out.read_text())
    tasks = int(data.get("tasks", 0))
    ran, cached = executed_tasks(run_dir / "monitoring.db")
    if cached or ran < tasks:
        raise SystemExit(
            f"{qubits} qubits: {ran} tasks executed, {cached} cached, {tasks} reported"
        )
    config = data.get("configuration", {})
    return {
        "qubits": qubits,
        "max_subcircuit_qubits": limit,
        "wall_s": round(wall, 2),
        "peak_driver_mib": round(peak, 1),
        "partitions": len(config.get("partitions", [])),
        "cuts": len(config.get("cuts") or []),
        "tasks": tasks,
        "tasks_executed": ran,
        "value": data.get("value"),
        "reference": data.get("reference"),
        "abs_error": None
        if data.get("reference") is None
        else abs(data["value"] - data["reference"]),
        "stages": data.get("timings"),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pq-scale-") as tmp:
        for n in args.qubits:
            row = run_once(n, args.limit, Path(tmp) / f"n{n}")
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
