"""Paths with a space and a non-ASCII character (``with space/ü dir``) as the working directory,
the run directory, the template, the QASM file and the ``--json`` file: the run works, and the
worker launch command quotes what it names."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from parsl_quantum.configs.local import local, shell_safe_dir, worker_launch_cmd

CLI = [sys.executable, "-m", "parsl_quantum.workflow.cli"]

GHZ_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[6];
h q[0];
cx q[0],q[1];
cx q[1],q[2];
cx q[2],q[3];
cx q[3],q[4];
cx q[4],q[5];
ry(0.3) q[5];
"""


def fill(command: str) -> str:
    """The command as HTEX makes it: options formatted first, the block id per block."""
    names = [
        "debug",
        "max_workers_per_node",
        "addresses",
        "prefetch_capacity",
        "cores_per_worker",
        "mem_per_worker",
        "poll_period",
        "worker_port",
        "cert_dir",
        "logdir",
        "logconf",
        "heartbeat_period",
        "address_probe_timeout_string",
        "heartbeat_threshold",
        "drain_period",
        "cpu_affinity",
        "enable_mpi_mode",
        "mpi_launcher",
        "accelerators",
    ]
    return command.format(**{n: f"<{n}>" for n in names}).format(block_id=7)


@pytest.mark.parametrize(
    "python", ["/usr/bin/python3", "/opt/with space/ü dir/bin/python", "/o'dd/{x}/$HOME/py"]
)
def test_the_worker_launch_command_quotes_the_interpreter(python: str) -> None:
    words = shlex.split(fill(worker_launch_cmd(python)))
    assert words[:3] == [python, "-m", "parsl_quantum.lean_start"]
    assert "--block_id=7" in words and "--logdir=<logdir>" in words


def test_a_run_directory_needing_quotes_gets_a_shell_safe_parsl_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    assert shell_safe_dir(plain) == plain
    odd = tmp_path / "with space" / "ü dir" / "parsl"
    safe = shell_safe_dir(odd)
    assert shlex.quote(str(safe)) == str(safe) and safe.resolve() == odd.resolve()
    assert shell_safe_dir(odd) == safe  # the same link again
    config = local(tmp_path / "with space" / "ü dir", ("cpu",), monitoring=False)
    assert config.run_dir == str(safe)


def test_a_run_from_a_directory_with_a_space_and_non_ascii_name(tmp_path: Path) -> None:
    here = tmp_path / "with space" / "ü dir"
    here.mkdir(parents=True)
    (here / "ghz ü.qasm").write_text(GHZ_QASM)
    template = {
        "apiVersion": "parsl-quantum/v1",
        "kind": "circuit-cutting",
        "name": "spaces",
        "circuit": {"qasm": "ghz ü.qasm"},
        "observable": "mean-z",
        "pools": ["cpu"],
        "planner": {"max_subcircuit_qubits": 3},
        "execution": {"mode": "exact"},
    }
    (here / "my template.yaml").write_text(yaml.safe_dump(template, allow_unicode=True))
    done = subprocess.run(
        [
            *CLI,
            "run",
            "my template.yaml",
            "--run-dir",
            "run ü",
            "--json",
            str(here / "result ü.json"),
            "--quiet",
        ],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((here / "result ü.json").read_text())
    assert result["value"] == pytest.approx(result["reference"], abs=1e-8)
    assert (here / "run ü" / "parsl" / "000" / "cpu").is_dir()  # the files stay in the run
