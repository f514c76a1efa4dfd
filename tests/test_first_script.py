"""A first script: the README's Parsl snippet runs as saved, and an unguarded one stops at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from parsl_quantum.configs.guard import EXIT_CODE

ROOT = Path(__file__).resolve().parent.parent
GUARD = 'if __name__ == "__main__":'


def readme_snippet() -> str:
    """The Python block under the README's "Parsl scripts" paragraph, verbatim."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Parsl scripts.**") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def run_script(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "first.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the timeout only keeps a hang from stalling the suite; it is not a speed check
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def unguarded(source: str) -> str:
    head, body = source.split(GUARD + "\n", 1)
    return head + textwrap.dedent(body)


def assert_stopped(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == EXIT_CODE, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and GUARD in lines[0] and "first.py" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_the_readme_snippet_has_the_guard() -> None:
    assert GUARD in readme_snippet()


def test_an_unguarded_script_stops_with_one_line(tmp_path: Path) -> None:
    assert_stopped(run_script(tmp_path, unguarded(readme_snippet())))
    assert not (tmp_path / "runs").exists()  # stopped before the config was built


def test_a_call_through_a_function_from_unguarded_code_stops(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        from parsl_quantum import configs

        def build():
            return configs.local("runs/x", ("cpu",), monitoring=False)

        build()
        """
    )
    assert_stopped(run_script(tmp_path, source))


def test_the_spawn_reimport_of_a_script_stops_there(tmp_path: Path) -> None:
    """Code only the spawned child runs (``__mp_main__``) is stopped in the child."""
    source = textwrap.dedent(
        """
        import multiprocessing

        from parsl_quantum import configs

        if __name__ != "__main__":
            configs.local("runs/child", ("cpu",), monitoring=False)

        if __name__ == "__main__":
            child = multiprocessing.get_context("spawn").Process(target=print)
            child.start()
            child.join()
            print("child exit", child.exitcode)
        """
    )
    proc = run_script(tmp_path, source)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"child exit {EXIT_CODE}"
    assert GUARD in proc.stderr and not (tmp_path / "runs").exists()


def test_guarded_functions_and_python_c_are_let_through(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        from parsl_quantum import configs

        def build():
            return configs.local("runs/x", ("cpu",), monitoring=False)

        if __name__ == "__main__":
            print(len(build().executors))
        """
    )
    assert run_script(tmp_path, source).stdout.strip() == "1"
    inline = subprocess.run(
        [sys.executable, "-c", source.replace('if __name__ == "__main__":\n    ', "")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert inline.stdout.strip() == "1", inline.stderr


def test_the_readme_snippet_saved_as_a_file_prints_a_value(tmp_path: Path) -> None:
    proc = run_script(tmp_path, readme_snippet())
    assert proc.returncode == 0, proc.stderr[-3000:]
    value, std_error = (float(x) for x in proc.stdout.split())
    assert -1.0 <= value <= 1.0 and std_error >= 0.0
    assert (tmp_path / "runs" / "script" / "parsl").is_dir()
