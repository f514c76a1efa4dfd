"""Local pools start Parsl's worker-side programs without the packages only a driver uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import parsl
import pytest
from parsl import python_app

from parsl_quantum.configs import local
from parsl_quantum.configs.local import INTERCHANGE_CMD, worker_launch_cmd
from parsl_quantum.lean_start import DRIVER_ONLY

#: A fresh interpreter: an import of each driver-only package inside the block, and after it.
HIDDEN = """
import importlib, json, sys
from parsl_quantum.lean_start import DRIVER_ONLY, driver_packages_hidden, import_lean
inside = {}
with driver_packages_hidden():
    for name in DRIVER_ONLY:
        try:
            importlib.import_module(name)
            inside[name] = "imported"
        except ImportError:
            inside[name] = "ImportError"
origin = import_lean("parsl.executors.high_throughput.interchange")
loaded_by_parsl = sorted(n for n in DRIVER_ONLY if n in sys.modules)
after = {name: importlib.import_module(name).__name__ for name in DRIVER_ONLY}
print(json.dumps({"inside": inside, "origin": origin, "parsl": "parsl" in sys.modules,
                  "loaded_by_parsl": loaded_by_parsl, "after": after}))
"""


def test_hidden_packages_fail_to_import_inside_the_block_and_import_after_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", HIDDEN], check=True, capture_output=True, text=True
    ).stdout
    seen = json.loads(out)
    assert seen["inside"] == {name: "ImportError" for name in DRIVER_ONLY}
    assert seen["parsl"] and seen["loaded_by_parsl"] == []
    assert Path(seen["origin"]).name == "interchange.py"
    assert seen["after"] == {name: name for name in DRIVER_ONLY}


@python_app
def driver_only_state(names: tuple[str, ...]) -> dict:
    """On a worker: which of ``names`` its process had imported before this task, whether
    the task can import them, and the module its process runs as its main module."""
    import importlib
    import sys

    before = sorted(name for name in names if name in sys.modules)
    importable = sorted(importlib.import_module(name).__name__ for name in names)
    return {
        "before": before,
        "importable": importable,
        "main": sys.modules["__main__"].__spec__.name,
    }


def test_a_local_pool_imports_parsl_lean_and_its_tasks_can_still_import_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers import this module to run its app
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    assert "parsl_quantum.lean_start" in worker_launch_cmd()
    assert "--lean" in INTERCHANGE_CMD

    with parsl.load(local(tmp_path, ("cpu",), monitoring=True)):
        state = driver_only_state(DRIVER_ONLY).result(timeout=120)
    assert state["before"] == []
    assert state["importable"] == sorted(DRIVER_ONLY)
    # a spawned worker re-runs the pool's main module, lean_start, as __mp_main__
    assert state["main"] == "parsl_quantum.lean_start"


#: A fresh driver: a local run of the main job from the CLI, then which driver-only packages the
#: driver's process imported, and whether they still import.
DRIVER = """
import importlib, json, sys
from parsl_quantum.workflow.cli import main
from parsl_quantum.lean_start import DRIVER_ONLY
code = main(["run", sys.argv[1], "--quiet", "--run-dir", sys.argv[2]])
loaded = sorted(n for n in DRIVER_ONLY if n in sys.modules)
importable = sorted(importlib.import_module(n).__name__ for n in DRIVER_ONLY)
print(json.dumps({"code": code, "loaded": loaded, "importable": importable}))
"""


def test_a_local_run_imports_parsl_lean_in_the_driver_too(tmp_path: Path) -> None:
    template = Path(__file__).resolve().parents[1] / "workflows" / "circuit-cutting.yaml"
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(template), str(tmp_path / "run")],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen["code"] == 0
    assert seen["loaded"] == []
    assert seen["importable"] == sorted(DRIVER_ONLY)
