"""Run directories and the run's process: one run at a time in a directory, a finished run never
overwritten, output paths checked before any task, and Ctrl-C or SIGTERM turned into a clean stop.

``parsl-quantum run`` claims its run directory with an exclusive advisory lock
(:func:`claim_run_dir`) held for the whole run, so a second run naming the same directory is
refused at once instead of mixing its files with the first one's. A directory that already holds
a run (its ``template.yaml``) is only ever reused by ``run --resume``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: The lock file inside a run directory; it holds the PID of the run that has the directory.
LOCK_FILE = ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be used for this run (bad input, exit code 2)."""


@dataclass
class RunDirLock:
    """An exclusive claim on a run directory, released when the run ends.

    Also released when its process dies: the operating system drops the lock with the process.

    Attributes
    ----------
    path : pathlib.Path
        The lock file.
    handle : IO of str
        The open lock file holding the lock.
    """

    path: Path
    handle: IO[str]

    def release(self) -> None:
        """Give the directory up."""
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def claim_run_dir(run_dir: Path, *, resume: bool) -> RunDirLock:
    """Lock ``run_dir`` (created if missing) for one run.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    resume : bool
        Whether this run resumes the one the directory holds (``--resume``).

    Returns
    -------
    RunDirLock
        The claim.

    Raises
    ------
    RunDirError
        When another run holds it, or when it already holds a run and this is not ``--resume``
        (a finished run's result is never replaced by a new run).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = (run_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise RunDirError(f"run directory {run_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise RunDirError(
            f"run directory {run_dir} is in use by another run (pid {holder})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    lock = RunDirLock(run_dir, handle)
    if not resume and (run_dir / "template.yaml").exists():
        lock.release()
        state = "a finished run" if (run_dir / "result.json").exists() else "an earlier run"
        raise RunDirError(
            f"run directory {run_dir} holds {state}: give a new --run-dir, "
            f"or finish it with --resume {run_dir}"
        )
    return lock


def check_writable(path: Path) -> None:
    """Check that a file can be written at ``path``.

    Checked before any task runs, by creating and removing a scratch file beside it.

    Parameters
    ----------
    path : pathlib.Path
        The file to be written.

    Raises
    ------
    RunDirError
        Unless a file can be written there.
    """
    if path.is_dir():
        raise RunDirError(f"--json {path}: is a directory")
    parent = path.parent
    if not parent.is_dir():
        raise RunDirError(f"--json {path}: directory {parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".pq-write-check-"):
            pass
    except OSError as exc:
        raise RunDirError(f"--json {path}: cannot write there ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise RunDirError(f"--json {path}: file is not writable")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Deliver SIGTERM like Ctrl-C while the block runs.

    SIGTERM arrives as :class:`KeyboardInterrupt` in the main thread, so that both stop a run
    the same way; the previous handler is restored.

    Yields
    ------
    None
        Control, while SIGTERM is delivered as Ctrl-C.
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while the block runs (shutting the pools down once).

    Yields
    ------
    None
        Control, while the signals are ignored.
    """
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Seconds :func:`shut_down` waits for Parsl to shut the pools down before it gives up (worker
#: pools whose interchange is gone stop on their own, see ``docs/reliability.md``).
SHUTDOWN_SECONDS = 8.0


def shut_down(dfk: Any, timeout: float = SHUTDOWN_SECONDS) -> bool:
    """Clean a DataFlowKernel up and clear it, with Ctrl-C and SIGTERM ignored meanwhile.

    Waits at most ``timeout`` seconds: Parsl's cleanup asks each interchange for its blocks, and
    one that is gone never answers.

    Parameters
    ----------
    dfk : Any
        The DataFlowKernel.
    timeout : float
        Seconds to wait at most.

    Returns
    -------
    bool
        Whether the cleanup finished.
    """
    import parsl

    closer = threading.Thread(target=dfk.cleanup, name="pq-shutdown", daemon=True)
    with signals_ignored():
        closer.start()
        closer.join(timeout)
    parsl.clear()
    return not closer.is_alive()
