"""The documentation builds without warnings, and every user guide page is in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(tmp_path / "html"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = {p.stem for p in (tmp_path / "html").rglob("*.html")}
    assert {"getting-started", "cli", "api", "cutting", "workflow-layer"} <= built
    pages = {p.stem for p in (ROOT / "docs").rglob("*.md")} - {"README"}
    assert pages <= built
