"""Run a subset of Parsl's own app tests (from the installed ``parsl`` package) with the
QPU-aware executor in place of HTEX.

Parsl's test ``conftest.py`` loads the Config in ``--config FILE`` for every test module that
does not bring its own; ours is :mod:`parsl_compat_config`. The modules run from the installed
package (workers import their apps from there). Parsl's conftest still declares its
``pytest_ignore_collect`` hook with the ``path`` argument that pytest 9 removed, so a copy of it
with pytest's ``collection_path`` is loaded as a plugin in its place (``--noconftest``).

Usage: ``python tests/parsl_app_tests.py [SCRATCH_DIR]``; the exit code is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: Parsl's python-app, bash-app and futures test modules that run on any executor.
MODULES = (
    "test_python_apps/test_basic.py",
    "test_python_apps/test_simple.py",
    "test_python_apps/test_futures.py",
    "test_python_apps/test_dependencies.py",
    "test_python_apps/test_fail.py",
    "test_python_apps/test_outputs.py",
    "test_python_apps/test_join.py",
    "test_bash_apps/test_basic.py",
    "test_bash_apps/test_stdout.py",
    "test_bash_apps/test_error_codes.py",
)

CONFIG = Path(__file__).with_name("parsl_compat_config.py")

#: Module name of the staged copy of Parsl's test conftest.
PLUGIN = "parsl_tests_conftest"


def stage(scratch: Path) -> tuple[Path, list[Path]]:
    """Write Parsl's test conftest, as a plugin module, into ``scratch``; return the plugin's
    directory and the paths of :data:`MODULES` in the installed package."""
    import parsl.tests

    source = Path(parsl.tests.__file__).parent
    conftest = (source / "conftest.py").read_text()
    conftest = conftest.replace(
        "def pytest_ignore_collect(path):", "def pytest_ignore_collect(collection_path):"
    ).replace("path.strpath", "str(collection_path)")
    (scratch / f"{PLUGIN}.py").write_text(conftest)
    (scratch / "pytest.ini").write_text("[pytest]\n")  # not this project's pytest settings
    return scratch, [source / module for module in MODULES]


def run(scratch: Path) -> subprocess.CompletedProcess[str]:
    """Run the modules with pytest in a subprocess (working directory ``scratch``)."""
    plugin_dir, modules = stage(scratch)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--noconftest",
        "-p",
        PLUGIN,
        "-c",
        str(scratch / "pytest.ini"),
        "--rootdir",
        str(scratch),
        "--config",
        str(CONFIG),
        *map(str, modules),
    ]
    if os.geteuid() == 0:  # root may create Parsl's "unwritable" /bad/dir: those tests cannot fail
        command += ["-k", "not test_bad_stdout_file and not test_bad_stderr_file"]
    return subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, check=False
    )


if __name__ == "__main__":
    where = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="parsl-tests-"))
    )
    where.mkdir(parents=True, exist_ok=True)
    outcome = run(where)
    print(outcome.stdout[-4000:], outcome.stderr[-4000:], sep="\n")
    sys.exit(outcome.returncode)
