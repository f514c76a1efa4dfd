"""Process trees of local blocks, tracked and ended by PID.

Each process is remembered as a :class:`psutil.Process`, which carries its start time, so a PID
the system has since reused for another program is never signalled. Nothing is ever looked up
or killed by name.
"""

from __future__ import annotations

import psutil


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ProcessTree:
    """The processes started for one block: a root PID and every descendant seen so far.

    Parameters
    ----------
    root_pid : int
        The PID of the block's root process; it and its current descendants are remembered at
        once.
    """

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self._procs: dict[int, psutil.Process] = {}
        self.refresh()

    def refresh(self) -> None:
        """Remember the root and its current descendants (call it while the block runs, and
        once more just before stopping it, so late children are known too)."""
        try:
            root = self._procs.get(self.root_pid) or psutil.Process(self.root_pid)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in found:
            self._procs.setdefault(proc.pid, proc)

    @property
    def pids(self) -> tuple[int, ...]:
        """Every PID tracked so far."""
        return tuple(sorted(self._procs))

    def alive(self) -> list[psutil.Process]:
        """Tracked processes still running (zombies count as ended).

        Returns
        -------
        list[psutil.Process]
            The running processes.
        """
        return [p for p in self._procs.values() if _alive(p)]

    def reap(self, grace: float) -> list[int]:
        """Wait for the tracked processes to exit, then SIGKILL the survivors by PID.

        Parameters
        ----------
        grace : float
            Seconds to wait before killing.

        Returns
        -------
        list[int]
            The PIDs that had to be killed.
        """
        _, survivors = psutil.wait_procs(self.alive(), timeout=grace)
        killed = []
        for proc in survivors:
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.Error:
                pass
        if killed:
            psutil.wait_procs([p for p in survivors if p.pid in killed], timeout=grace)
        return killed
