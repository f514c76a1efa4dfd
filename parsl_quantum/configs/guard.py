"""Stop a script that loads a config without the ``if __name__ == "__main__":`` guard.

Parsl starts some of its processes (monitoring's database manager and router) with the
``spawn`` start method, which re-imports the user's script as ``__mp_main__``. An unguarded
script then builds and loads a second config inside that child, the child dies, and the
parent waits two minutes for it before failing with ``MonitoringRouterStartError`` under a
long traceback. The config builders call :func:`require_main_guard` first, so such a script
stops at once with one line saying what to add.
"""

from __future__ import annotations

import ast
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from types import FrameType

#: Exit status of a script stopped by the check (bad input, as everywhere in parsl-quantum).
EXIT_CODE = 2

MESSAGE = (
    "parsl-quantum: {script} builds a Parsl config at import; put that code under "
    '`if __name__ == "__main__":` (Parsl starts processes by re-importing the script)'
)


def require_main_guard() -> None:
    """Exit when called from a script's unguarded top-level code.

    Exits with status 2 and one line on stderr when called from a script's unguarded top-level
    code, or from the spawn re-import of a script (``__mp_main__``). Code run from a guard, a
    function, an interactive session, a notebook or a test is let through.

    Raises
    ------
    SystemExit
        With :data:`EXIT_CODE`, when the caller is unguarded.
    """
    frame = inspect.currentframe()
    script = unguarded_caller(frame.f_back if frame is not None else None)
    if script is not None:
        print(MESSAGE.format(script=script), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CODE)


def unguarded_caller(frame: FrameType | None) -> str | None:
    """The script whose top-level code, outside a ``__main__`` guard, is on the call stack.

    Parameters
    ----------
    frame : types.FrameType or None
        The frame to start looking from, upwards.

    Returns
    -------
    str or None
        The script's path, or None.
    """
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            if name == "__mp_main__":
                return Path(code.co_filename).name
            if (
                name == "__main__"
                and main_file is not None
                and _same_file(code.co_filename, main_file)
                and not _guarded(str(Path(main_file).resolve()), frame.f_lineno)
            ):
                return Path(code.co_filename).name
        frame = frame.f_back
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _guarded(path: str, line: int) -> bool:
    return any(lo <= line <= hi for lo, hi in _guard_blocks(path))


@lru_cache(maxsize=8)
def _guard_blocks(path: str) -> tuple[tuple[int, int], ...]:
    """Line ranges of the bodies of ``if __name__ == "__main__":`` blocks of a source file; the
    whole file when it cannot be read or parsed (nothing is stopped on a guess)."""
    try:
        tree = ast.parse(Path(path).read_text(), path)
    except (OSError, SyntaxError, ValueError):
        return ((0, sys.maxsize),)
    blocks = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            blocks.append((node.body[0].lineno, node.body[-1].end_lineno or sys.maxsize))
    return tuple(blocks)


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


__all__ = ["EXIT_CODE", "require_main_guard", "unguarded_caller"]
