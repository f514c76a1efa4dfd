"""The test command also keeps the code clean: ruff (lint and format) and mypy on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PATHS = ["parsl_quantum", "miniapps", "tests", "benchmarks"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "cmd",
    [
        ("ruff", "check", *PATHS),
        ("ruff", "format", "--check", *PATHS),
        ("mypy", "parsl_quantum"),
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(cmd: tuple[str, ...]) -> None:
    tool = BIN / cmd[0]
    result = _run(str(tool) if tool.exists() else cmd[0], *cmd[1:])
    assert result.returncode == 0, result.stdout + result.stderr
