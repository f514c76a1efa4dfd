"""Credentials come only from the environment (or vendors' saved accounts) and go nowhere else.

Canary values in ``QISKIT_IBM_TOKEN`` and the Globus client id and secret must not appear in any
log, run-directory file, monitoring database row or task payload of a run.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import parsl
import psutil
import pytest
import yaml
from parsl.serialize import pack_apply_message

from parsl_quantum.backends import get_backend
from parsl_quantum.circuits import efficient_su2_circuit, parse_observable
from parsl_quantum.configs import local
from parsl_quantum.configs.local import secrets_withheld
from parsl_quantum.executors import pool_infos
from parsl_quantum.reliability import Reliability
from parsl_quantum.workflow.calibration import wait_for_workers
from parsl_quantum.workflow.cut_and_run import cut_and_run

CANARIES = {
    "QISKIT_IBM_TOKEN": "canary-ibm-token-7f3a9c",
    "GLOBUS_COMPUTE_CLIENT_ID": "canary-globus-id-5e1d2b",
    "GLOBUS_COMPUTE_CLIENT_SECRET": "canary-globus-secret-88c4f0",
}


def leaks(data: bytes) -> list[str]:
    return [name for name, value in CANARIES.items() if value.encode() in data]


def test_no_canary_in_logs_run_directory_or_monitoring_database(tmp_path: Path) -> None:
    template = tmp_path / "job.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "parsl-quantum/v1",
                "kind": "circuit-cutting",
                "name": "canary",
                "circuit": {"generator": "efficient_su2", "qubits": 6, "reps": 1},
                "pools": ["cpu", "qpu"],
                "planner": {"max_subcircuit_qubits": 3},
                "execution": {"mode": "exact"},
            }
        )
    )
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "parsl_quantum.workflow.cli", "run", str(template)]
        + ["--run-dir", str(run_dir), "--quiet", "--monitoring"],
        env={**os.environ, **CANARIES},
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert not leaks(proc.stdout + proc.stderr)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "parsl.log" for p in files) and any(p.name == "tasks.pkl" for p in files)
    assert any(p.suffix == ".log" and "worker" in p.name for p in files), "worker logs checked"
    for path in files:
        assert not leaks(path.read_bytes()), path
    con = sqlite3.connect(run_dir / "monitoring.db")
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row) for t in tables for row in con.execute(f"SELECT * FROM {t}")]
    finally:
        con.close()
    assert rows and not leaks("\n".join(rows).encode())


def test_no_canary_in_task_payloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    config = local(tmp_path, ("cpu", "qpu"), monitoring=False, reliability=Reliability())
    config.garbage_collect = False  # keep every task record to inspect what was sent
    circuit = efficient_su2_circuit(6, 1, "linear")
    with parsl.load(config) as dfk:
        cut_and_run(circuit, parse_observable("mean-z", 6), max_subcircuit_qubits=3, shots=2000)
        records = list(dfk.tasks.values())
        options = {label: getattr(ex, "backend_options", {}) for label, ex in dfk.executors.items()}
    parsl.clear()
    assert records
    for record in records:
        payload = pack_apply_message(record["func"], record["args"], record["kwargs"])
        assert not leaks(payload), record["id"]
        assert not leaks(pickle.dumps(record["resource_specification"]))
    assert not leaks(pickle.dumps(options))  # travels with every task as the worker hook's args
    ibm = get_backend("ibm:ibm_canary")  # a handle pickles to its name and options only
    assert not leaks(pickle.dumps(ibm))
    with pytest.raises(ValueError, match="tokens are never passed as options"):
        get_backend("ibm:ibm_canary", token=CANARIES["QISKIT_IBM_TOKEN"])


def test_credentials_reach_only_the_workers_that_need_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU pool's workers and every interchange start without the IBM token and the Globus
    secret; a pool serving an IBM backend keeps the token (it is the only one that needs it)."""
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    config = local(tmp_path, ("cpu", "qpu"), monitoring=False)
    assert secrets_withheld(["ibm:ibm_fez", "aer"]) == ["GLOBUS_COMPUTE_CLIENT_SECRET"]
    with parsl.load(config) as dfk:
        wait_for_workers(pool_infos(config))
        interchanges = [
            psutil.Process(ex.interchange_proc.pid)
            for ex in dfk.executors.values()
            if getattr(ex, "interchange_proc", None) is not None
        ]
        pools = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(str(tmp_path) in arg for arg in p.info["cmdline"] or [])
            and "parsl_quantum.lean_start" in (p.info["cmdline"] or [])
        ]
        workers = pools + [c for p in pools for c in p.children(recursive=True)]
        environments = [(p, p.environ()) for p in interchanges + workers]
    parsl.clear()
    assert interchanges and pools and len(workers) > len(pools)
    readable = [(proc, env) for proc, env in environments if env]  # not a process just gone
    assert len(readable) >= len(interchanges) + len(pools)
    for proc, env in readable:
        assert "QISKIT_IBM_TOKEN" not in env, proc.cmdline()
        assert "GLOBUS_COMPUTE_CLIENT_SECRET" not in env, proc.cmdline()
        assert env.get("GLOBUS_COMPUTE_CLIENT_ID") == CANARIES["GLOBUS_COMPUTE_CLIENT_ID"]
