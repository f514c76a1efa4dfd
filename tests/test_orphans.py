"""No orphans: the worker pools of a driver killed with SIGKILL exit on their own (its
interchange stops with it, the pools miss its heartbeat), and a driver sent SIGTERM or Ctrl-C
stops with one line, shuts its pools down and leaves a checkpoint that ``--resume`` finishes
from.

The driver is a real ``parsl-quantum run`` of a small job on the slow fake QPU; its processes are
found with psutil: its own descendants, and the worker pools its provider detached (they name
its run directory on their command line), with theirs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from test_reliability_cli import CLI, checkpointed, template, wait_until

#: How long the test waits for the last process before calling it a hang (not a timing check).
HANG_GUARD = 300.0


def family(driver: psutil.Process, run_dir: Path) -> list[psutil.Process]:
    """The pools the driver started: its interchanges (its children), and the detached worker
    pools that name its run directory, with their descendants. (Parsl's monitoring processes
    are left out: they do not exit with a killed driver, see ``docs/reliability.md``.)"""
    found = {
        p.pid: p for p in driver.children(recursive=True) if "interchange" in " ".join(p.cmdline())
    }
    for p in psutil.process_iter(["cmdline"]):
        if any(str(run_dir) in arg for arg in p.info["cmdline"] or []) and p.pid != driver.pid:
            found[p.pid] = p
            with_children = []
            try:
                with_children = p.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            found.update({c.pid: c for c in with_children})
    return list(found.values())


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie has exited; ``is_running`` also checks the start time, so
    a reused PID is not mistaken for the same process)."""
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    path = template(tmp_path, "orphans", {"queue_delay": 1.0})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, "run", str(path), "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: len(checkpointed(run_dir)) >= 1, "a first finished task")
    return proc, run_dir


def test_worker_pools_of_a_driver_killed_with_sigkill_exit_on_their_own(tmp_path: Path) -> None:
    proc, run_dir = start_run(tmp_path)
    driver = psutil.Process(proc.pid)
    processes = family(driver, run_dir)
    workers = [p for p in processes if "parsl_quantum.lean_start" in p.cmdline()]
    assert workers, "the run's worker pool"
    assert any("interchange" in " ".join(p.cmdline()) for p in processes)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(timeout=60)
    left = alive(processes)
    while left and time.monotonic() - killed < HANG_GUARD:
        time.sleep(0.5)
        left = alive(left)
    gone_after = time.monotonic() - killed
    for p in left:  # never leave them to the next test
        p.kill()
    assert not left, f"still running {HANG_GUARD:g}s after the driver died: {left}"
    print(f"\n{len(processes)} processes of the killed driver gone {gone_after:.1f}s after SIGKILL")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_ends_the_run_with_one_line_and_resume_finishes_it(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc, run_dir = start_run(tmp_path)
    processes = family(psutil.Process(proc.pid), run_dir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    # progress lines of --quiet aside, one line says what happened and how to go on
    lines = [line for line in err.decode().splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0], lines
    assert "Traceback" not in err.decode()
    assert not (run_dir / "result.json").exists()
    wait_until(lambda: not alive(processes), "the run's pools to stop", timeout=HANG_GUARD)
    finished = checkpointed(run_dir)
    resumed = subprocess.run(
        [*CLI, "run", "--resume", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["configuration"]["reused_from_checkpoint"] == len(finished) >= 1
    assert result["configuration"]["dropped_from_checkpoint"] == 0
    assert abs(result["value"] - result["reference"]) < 5 * result["std_error"] + 0.1
