"""The documentation builds without warnings, and every user guide page is in it."""

from __future__ import annotations

import re
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


def test_every_script_example_has_the_main_guard() -> None:
    """A Python example that loads a Parsl config is a script: it needs the ``__main__`` guard
    (Parsl's spawned processes re-import it)."""
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    unguarded = [
        f"{page.relative_to(ROOT)}: {block.splitlines()[0]}"
        for page in pages
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        if "parsl.load(" in block and 'if __name__ == "__main__":' not in block
    ]
    assert unguarded == []
