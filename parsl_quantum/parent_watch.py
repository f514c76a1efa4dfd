"""Run a Python module that stops when the process that started it is gone.

``python -m parsl_quantum.parent_watch [--unset NAME]... [--lean] MODULE [ARG...]`` runs
``MODULE`` as ``__main__`` (like ``python -m MODULE ARG...``, without the environment variables
named by ``--unset``; with ``--lean``, its packages imported without those only a Parsl driver
uses, see :mod:`parsl_quantum.lean_start`) and sends itself SIGTERM as soon as its parent
process exits.
The local pools' interchanges are started this way
(:data:`parsl_quantum.configs.local.INTERCHANGE_CMD`): a driver killed with SIGKILL cannot
shut its pools down, and Parsl's interchange does not notice that its driver is gone; once the
interchange stops, the worker pools miss its heartbeat and exit too (see
``docs/reliability.md``).

Standard library only, so that it adds nothing to the interchange's start-up.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

from parsl_quantum.lean_start import import_lean

#: Seconds between two looks at the parent process.
PERIOD = 1.0


def watch_parent(parent: int, period: float = PERIOD) -> None:
    """Send this process SIGTERM once its parent is no longer ``parent``, then return.

    A parent that exits leaves this process re-parented, with a parent id other than
    ``parent``.

    Parameters
    ----------
    parent : int
        The process id of the parent to watch.
    period : float
        Seconds between two looks at the parent process.
    """
    while os.getppid() == parent:
        time.sleep(period)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    """Watch the parent in a daemon thread and run the module ``argv`` names as ``__main__``.

    Parameters
    ----------
    argv : list[str]
        ``[--unset NAME]... [--lean] MODULE [ARG...]``: the environment variables to remove,
        whether to import the module's packages lean, then the module to run and its
        arguments.

    Raises
    ------
    SystemExit
        When ``argv`` names no module.
    """
    argv = list(argv)
    while len(argv) >= 2 and argv[0] == "--unset":
        os.environ.pop(argv[1], None)
        argv = argv[2:]
    lean = bool(argv) and argv[0] == "--lean"
    argv = argv[lean:]
    if not argv:
        raise SystemExit(
            "usage: python -m parsl_quantum.parent_watch [--unset NAME]... [--lean] MODULE"
        )
    threading.Thread(
        target=watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    sys.argv = list(argv)
    if lean:
        import_lean(argv[0])
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
