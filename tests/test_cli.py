"""The ``parsl-quantum`` command as a person meets it: names, --version, run --help, progress."""

from __future__ import annotations

import configparser
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from parsl_quantum import __version__
from parsl_quantum.workflow import cli
from parsl_quantum.workflow.settings import set_keys
from parsl_quantum.workflow.summary import headline, pictures
from parsl_quantum.workflow.template import load_template

ROOT = Path(__file__).resolve().parents[1]

PROGRESS = re.compile(r"pool (\S+): (\d+)/(\d+) tasks done")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"parsl-quantum {__version__} (parsl ") and "qiskit " in out


def test_an_unknown_template_name_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "no-such-template"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "circuit-cutting" in err[0] and "no-such-template" in err[0]


def test_run_help_lists_the_published_templates(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--set KEY=VALUE" in out
    assert all(f"  {name}\n" in out for name in cli.published_templates())


@pytest.mark.parametrize("name", ["circuit-cutting", "variational", "ensemble"])
def test_run_template_help_lists_its_set_keys(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", name, "--help"]) == 0
    out = capsys.readouterr().out
    keys = set_keys(load_template(cli.published_templates()[name]))
    assert len(keys) > 5
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    for key in keys:
        assert key.key in rows, key.key
        assert key.type.split()[0] in rows[key.key] and key.shown_value in rows[key.key]
    assert "planner.max_subcircuit_qubits" in rows or name != "circuit-cutting"


def test_set_key_types_come_from_the_schema() -> None:
    keys = {k.key: k for k in set_keys(load_template(cli.published_templates()["circuit-cutting"]))}
    assert keys["circuit.qubits"].type == "integer >= 1 <= 1000"
    assert keys["circuit.qubits"].shown_value == "24"
    assert keys["execution.mode"].type == "one of auto|exact|sampled"
    assert keys["pools"].type == "comma-separated pool names"
    assert keys["planner.partitions"].shown_value == "-"


def monitored_tasks(run_dir: Path) -> int:
    con = sqlite3.connect(run_dir / "monitoring.db")
    try:
        return int(con.execute("SELECT COUNT(*) FROM task").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        (
            "circuit-cutting",
            ["circuit.qubits=8", "planner.max_subcircuit_qubits=4", "pools=cpu"],
        ),
        ("ensemble", ["circuits.count=6", "batch_size=2", "pools=cpu"]),
        (
            "variational",
            ["hamiltonian.qubits=4", "ansatz.layers=1", "optimizer.max_iterations=3"],
        ),
    ],
)
def test_progress_totals_are_the_tasks_submitted(
    name: str, overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run by published name; the final progress count of every pool adds up to the monitoring
    database's task count; the summary names its metric, reference and flag, and its
    pictures."""
    run_dir = tmp_path / "run"
    sets = [arg for o in overrides for arg in ("--set", o)]
    assert cli.main(["run", name, *sets, "--run-dir", str(run_dir), "--monitoring"]) == 0
    out, err = capsys.readouterr()
    result = json.loads((run_dir / "result.json").read_text())
    head = headline(name, result)
    for label in (head.metric, head.reference_label, head.flag_label):
        assert f"│ {label} " in out, (label, out)
    for picture in pictures(result):
        assert picture.is_file() and str(picture) in out
    assert "…" not in out  # piped: whole cells, never cut
    final: dict[str, tuple[int, int]] = {}
    for pool, done, total in PROGRESS.findall(err):
        final[pool] = (int(done), int(total))
    assert final, err
    assert all(done == total for done, total in final.values())
    assert sum(total for _, total in final.values()) == monitored_tasks(run_dir)


@pytest.mark.parametrize(
    ("kind", "doc", "metric", "flag"),
    [
        (
            "qml-training",
            {"value": 0.9, "target_accuracy": 0.85, "reached": True},
            "test accuracy",
            True,
        ),
        (
            "error-mitigation",
            {"value": 0.02, "unmitigated_error": 0.1},
            "mitigated error (best extrapolation)",
            True,
        ),
        (
            "distributed-simulation",
            {"value": 0.25, "reference": 0.25 + 1e-9, "quantity": "amplitude"},
            "probability |amplitude|^2",
            True,
        ),
        (
            "circuit-cutting",
            {"value": 0.5, "reference": 0.4, "std_error": 0.01},
            "expectation value",
            False,
        ),
        ("circuit-cutting", {"value": 0.5, "reference": None}, "expectation value", None),
    ],
)
def test_every_kind_names_its_metric(kind: str, doc: dict, metric: str, flag: bool | None) -> None:
    head = headline(kind, doc)
    assert (head.metric, head.flag, head.value) == (metric, flag, doc["value"])


def test_plan_by_name_prints_whole_columns_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["--set", "circuit.qubits=12", "--set", "planner.max_subcircuit_qubits=3"]
    args = ["plan", "circuit-cutting", *sets, "--run-dir", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "peak memory (MiB)" in out and "subexperiments" in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_the_console_script_runs_main_then_freezes_the_heap_for_a_quick_exit() -> None:
    code = (
        "import gc, sys\n"
        "from parsl_quantum.workflow.cli import console_main\n"
        "sys.argv = ['parsl-quantum', 'templates', 'list']\n"
        "rc = console_main()\n"
        "print(rc, gc.get_freeze_count() > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 True"
    assert "circuit-cutting" in proc.stdout
    entry = configparser.ConfigParser()
    entry.read(ROOT / "setup.cfg")
    scripts = entry["options.entry_points"]["console_scripts"]
    assert "parsl-quantum = parsl_quantum.workflow.cli:console_main" in scripts
