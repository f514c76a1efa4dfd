"""``parsl-quantum run`` as users run it: a flaky QPU (20% of its jobs fail) on a terminal, a
QPU pool whose block is killed mid-run with failover allowed by the template, and a driver
killed mid-run then resumed with ``--resume``."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from parsl_quantum.backends import DEFAULT_FAKE_QPU
from parsl_quantum.planner.cost import CostModel, PoolCoefficients
from parsl_quantum.reliability.checkpoint import read_records
from parsl_quantum.workflow.run_report import load_report

CLI = [sys.executable, "-m", "parsl_quantum.workflow.cli"]


def template(tmp_path: Path, name: str, backend_options: dict[str, Any], **changes: Any) -> Path:
    """An 8-qubit job cut into three partitions, sampled on the fake QPU only (unless
    ``changes`` replace top-level fields)."""
    data = {
        "apiVersion": "parsl-quantum/v1",
        "kind": "circuit-cutting",
        "name": name,
        "circuit": {"generator": "efficient_su2", "qubits": 8, "reps": 1, "seed": 1},
        "observable": "mean-z",
        "pools": ["qpu"],
        "site": {
            "name": "local",
            "options": {"backend_options": {DEFAULT_FAKE_QPU: backend_options}},
        },
        "planner": {"max_subcircuit_qubits": 3, "partitions": [3]},
        "execution": {"mode": "sampled", "shots": 4000, "seed": 5},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**data, **changes}))
    return path


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 240.0) -> None:
    """Poll until ``predicate`` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.1)


def run_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return its code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait(timeout=600)
    reader.join(timeout=30)
    os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


def test_flaky_qpu_is_retried_counted_and_reported(tmp_path: Path) -> None:
    path = template(tmp_path, "flaky", {"failure_rate": 0.2, "failure_seed": 3})
    run_dir, out = tmp_path / "run", tmp_path / "result.json"
    code, screen = run_on_a_terminal(
        [*CLI, "run", str(path), "--run-dir", str(run_dir), "--json", str(out), "--monitoring"]
    )
    assert code == 0, screen
    result = json.loads(out.read_text())
    assert abs(result["value"] - result["reference"]) < 5 * result["std_error"] + 0.1
    retries = result["configuration"]["retries"]
    assert retries.get("qpu", 0) >= 1, "failure_seed 3 fails the worker's first job"
    assert result["configuration"]["failovers"] == []
    # the live display: a bar for the pool with its final count, and the time since the start
    assert "\x1b[" in screen and "pool qpu" in screen
    assert f"{result['tasks']}/{result['tasks']}" in screen and "0:00:" in screen
    assert "retries: qpu" in screen

    report = subprocess.run(
        [*CLI, "report", str(run_dir)], capture_output=True, text=True, timeout=120, check=False
    )
    assert report.returncode == 0, report.stderr
    assert "qpu" in report.stdout and (run_dir / "timeline.png").stat().st_size > 0
    summary = load_report(run_dir).pools["qpu"]
    assert summary.retries == retries["qpu"]
    assert summary.tasks == result["tasks"] and summary.tries == result["tasks"] + retries["qpu"]


def test_qpu_block_killed_mid_run_fails_over_when_the_template_allows_it(tmp_path: Path) -> None:
    # a calibrated profile in which the CPU pool is slow, so that all work goes to the QPU
    profile = CostModel(pools={"cpu": PoolCoefficients(overhead=100.0)}).save(
        tmp_path / "profile.json"
    )
    path = template(
        tmp_path,
        "failover",
        {"queue_delay": 1.0},
        pools=["cpu", "qpu"],
        planner={"max_subcircuit_qubits": 3, "partitions": [3], "profile": str(profile)},
        execution={"mode": "sampled", "shots": 4000, "seed": 5, "failover": True},
    )
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, "run", str(path), "--run-dir", str(run_dir), "--quiet", "--monitoring"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(checkpointed(run_dir)) >= 1, "a first QPU task to finish")
        block = [p for p in psutil.process_iter(["cmdline"]) if is_qpu_block(p, run_dir)]
        assert block, "the QPU pool's block"
        for p in block:  # the block's launcher and worker pool, then their workers
            try:
                family = [p, *p.children(recursive=True)]
            except psutil.NoSuchProcess:  # already gone with its parent
                continue
            for q in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    q.kill()
        _, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 0, err.decode()
    result = json.loads((run_dir / "result.json").read_text())
    moves = result["configuration"]["failovers"]
    assert moves and all((m["from_pool"], m["to_pool"]) == ("qpu", "cpu") for m in moves)
    # one list of moves: the dispatcher's, which plan.json records, and the retry handler's,
    # each once and with its trigger
    planned = json.loads((run_dir / "plan.json").read_text())["dispatch"]["failovers"]
    assert all(move in moves for move in planned)
    assert {m["trigger"] for m in moves} <= {"retry-handler", "dispatcher"}
    assert any(m["trigger"] == "retry-handler" for m in moves)
    tasks = [(m["trigger"], m["task"]) for m in moves]
    assert len(set(tasks)) == len(tasks)
    assert b"pool qpu is down, moved to pool cpu" in err
    assert abs(result["value"] - result["reference"]) < 5 * result["std_error"] + 0.1
    report = load_report(run_dir)
    # Parsl's task records are never re-pointed: its monitoring lists each moved try under the
    # task's own (down) pool, as a try after a failed one
    assert report.pools["qpu"].retries >= len(moves)
    # one lane per worker slot the run recorded in run.json (cpu has 2, qpu 1); the moved tries
    # that ran beside qpu's own, listed under qpu, may add a qpu lane
    labels = [lane.label for lane in report.lanes]
    assert labels[:3] == ["cpu / worker 0", "cpu / worker 1", "qpu / worker 0"], labels
    assert all(label.startswith("qpu / ") for label in labels[3:]), labels


def is_qpu_block(proc: psutil.Process, run_dir: Path) -> bool:
    """The QPU pool's block of the run in ``run_dir``: its launcher script and worker pool."""
    cmdline = " ".join(proc.info["cmdline"] or [])
    return str(run_dir) in cmdline and (
        "parsl.qpu.block-" in cmdline or f"{run_dir}/parsl/000/qpu" in cmdline
    )


def checkpointed(run_dir: Path) -> set[str]:
    """Hashes of the tasks the first Parsl run in ``run_dir`` checkpointed (a torn last record
    of a running writer is ignored)."""
    path = run_dir / "parsl" / "000" / "checkpoint" / "tasks.pkl"
    if not path.exists():
        return set()
    return {record.hash for record in read_records(path)[0]}


def kill_run(proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    """SIGKILL the driver and every process it started: its children, and the worker pools
    its provider detached (found by the run directory in their command line)."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    marker = str(run_dir)
    for p in psutil.process_iter(["cmdline"]):
        if any(marker in arg for arg in p.info["cmdline"] or []):
            tree.append(p)
            # the worker pool's own children: its process manager and workers
            with contextlib.suppress(psutil.NoSuchProcess):
                tree.extend(p.children(recursive=True))
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def final_states(run_dir: Path) -> list[dict[str, int]]:
    """Per Parsl run (in order): how many tasks ended in each state."""
    con = sqlite3.connect(run_dir / "monitoring.db")
    try:
        runs = [r for (r,) in con.execute("SELECT run_id FROM workflow ORDER BY time_began")]
        counts = []
        for run in runs:
            rows = con.execute(
                "SELECT task_id, task_status_name FROM status WHERE run_id = ? "
                "AND task_status_name NOT IN ('running', 'running_ended') ORDER BY timestamp",
                (run,),
            ).fetchall()
            last = dict(rows)
            counts.append({s: list(last.values()).count(s) for s in set(last.values())})
        return counts
    finally:
        con.close()


def test_driver_killed_mid_run_resumes_without_recomputing(tmp_path: Path) -> None:
    slow = template(tmp_path, "resume", {"queue_delay": 0.7})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, "run", str(slow), "--run-dir", str(run_dir), "--quiet", "--monitoring"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(checkpointed(run_dir)) >= 2, "two finished tasks")
    finally:
        kill_run(proc, run_dir)
    assert not (run_dir / "result.json").exists(), "the run finished before it was killed"
    finished = checkpointed(run_dir)

    resumed = subprocess.run(
        [*CLI, "run", "--resume", str(run_dir), "--quiet", "--monitoring"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["configuration"]["reused_from_checkpoint"] == len(finished)
    # the killed run's monitoring may have lost its last messages; the resumed run's has all
    second = final_states(run_dir)[-1]
    assert second == {"memo_done": len(finished), "exec_done": result["tasks"] - len(finished)}

    # the same job uninterrupted (and without the queue delay) gives the same value
    fast = template(tmp_path, "uninterrupted", {})
    whole = subprocess.run(
        [*CLI, "run", str(fast), "--run-dir", str(tmp_path / "whole"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert whole.returncode == 0, whole.stderr
    expected = json.loads((tmp_path / "whole" / "result.json").read_text())
    assert result["value"] == pytest.approx(expected["value"], rel=1e-12, abs=1e-15)
    assert result["std_error"] == pytest.approx(expected["std_error"], rel=1e-12)


def test_a_corrupted_checkpoint_is_dropped_and_recomputed_on_resume(tmp_path: Path) -> None:
    path = template(tmp_path, "corrupt", {})
    run_dir = tmp_path / "run"
    first = subprocess.run(
        [*CLI, "run", str(path), "--run-dir", str(run_dir), "--quiet", "--monitoring"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    expected = json.loads((run_dir / "result.json").read_text())
    tasks = run_dir / "parsl" / "000" / "checkpoint" / "tasks.pkl"
    data = bytearray(tasks.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x7f" * 64
    tasks.write_bytes(bytes(data))

    resumed = subprocess.run(
        [*CLI, "run", "--resume", str(run_dir), "--quiet", "--monitoring"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((run_dir / "result.json").read_text())
    config = result["configuration"]
    assert config["dropped_from_checkpoint"] >= 1
    assert config["reused_from_checkpoint"] == result["tasks"] - config["dropped_from_checkpoint"]
    assert "dropped from checkpoint" in resumed.stdout
    assert result["value"] == pytest.approx(expected["value"], rel=1e-12, abs=1e-15)
    second = final_states(run_dir)[-1]
    assert second.get("exec_done") == config["dropped_from_checkpoint"]
