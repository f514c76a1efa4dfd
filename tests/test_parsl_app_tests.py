"""Parsl's own app tests pass with the QPU-aware executor in place of HTEX (on the Parsl
installed here; ``.ci/parsl-compat`` runs the same on the oldest Parsl we accept)."""

from __future__ import annotations

from pathlib import Path

import parsl_app_tests


def test_parsl_app_tests_pass_with_the_qpu_aware_executor(tmp_path: Path) -> None:
    outcome = parsl_app_tests.run(tmp_path)
    summary = outcome.stdout.strip().splitlines()[-1] if outcome.stdout.strip() else ""
    assert outcome.returncode == 0, outcome.stdout[-4000:] + outcome.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
