"""QPU sessions (reservations of a device) that a :class:`QPUSessionProvider` block holds.

A session is ``queued`` until the device takes it, ``active`` while jobs may run in it, and
``closed`` when it expired or was closed. ``fake:`` devices get a simulated session with a
configurable queue wait and lifetime; ``ibm:`` devices get a qiskit-ibm-runtime ``Session`` or
``Batch``, opened lazily with credentials from the environment only.
"""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from parsl_quantum.backends.ibm import (
    SESSION_BACKEND_ENV,
    SESSION_ID_ENV,
    SESSION_MODE_ENV,
    runtime_service,
)

logger = logging.getLogger(__name__)

SessionState = Literal["queued", "active", "closed"]
SessionMode = Literal["session", "batch"]

_ids = itertools.count(1)


class QPUSession(ABC):
    """One reservation of a device for one block of workers.

    Parameters
    ----------
    backend : str
        The canonical name of the device.
    mode : SessionMode
        ``"session"`` or ``"batch"``.
    """

    #: Start the block's workers only once the session is active (True), or right away
    #: because the session only becomes active when the workers' first job runs (False).
    start_pool_when_active: bool = True

    def __init__(self, backend: str, mode: SessionMode) -> None:
        self.backend = backend
        self.mode = mode

    @property
    @abstractmethod
    def session_id(self) -> str:
        """The session's identifier."""

    @abstractmethod
    def state(self) -> SessionState:
        """Where the session is now.

        Returns
        -------
        SessionState
            ``"queued"``, ``"active"`` or ``"closed"``.
        """

    @abstractmethod
    def close(self) -> None:
        """End the session (idempotent)."""

    def worker_env(self) -> dict[str, str]:
        """Environment exported to the block's workers: which session their backend runs in.

        Returns
        -------
        dict[str, str]
            The session id, backend and mode, under the ``PQ_SESSION_*`` names.
        """
        return {
            SESSION_ID_ENV: self.session_id,
            SESSION_BACKEND_ENV: self.backend,
            SESSION_MODE_ENV: self.mode,
        }


class SimulatedSession(QPUSession):
    """A fake device's session, its state read off ``clock``.

    Parameters
    ----------
    backend : str
        The canonical name of the fake device.
    mode : SessionMode
        ``"session"`` or ``"batch"``.
    queue_wait : float
        Seconds the session stays queued after it is opened.
    lifetime : float or None
        Seconds the session then stays active (``None``: until closed).
    clock : Callable[[], float]
        The time source, in seconds.
    """

    def __init__(
        self,
        backend: str,
        mode: SessionMode,
        queue_wait: float,
        lifetime: float | None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(backend, mode)
        self.queue_wait = queue_wait
        self.lifetime = lifetime
        self._clock = clock
        self.opened_at = clock()
        self._closed = False
        self._id = f"simulated-{mode}-{next(_ids)}"

    @property
    def session_id(self) -> str:
        return self._id

    def state(self) -> SessionState:
        """Where the session is now, by the time elapsed since it was opened.

        Returns
        -------
        SessionState
            ``"queued"``, ``"active"`` or ``"closed"``.
        """
        if self._closed:
            return "closed"
        elapsed = self._clock() - self.opened_at
        if elapsed < self.queue_wait:
            return "queued"
        if self.lifetime is not None and elapsed >= self.queue_wait + self.lifetime:
            return "closed"
        return "active"

    def close(self) -> None:
        """End the session (idempotent)."""
        self._closed = True


class IBMRuntimeSession(QPUSession):
    """A qiskit-ibm-runtime ``Session`` (or ``Batch``) on a real device.

    IBM sessions turn active when their first job starts, so the workers start right away. The
    service is contacted when the session is opened (a block is submitted), never when the
    provider is constructed.

    Parameters
    ----------
    backend : str
        The canonical ``ibm:`` name of the device.
    mode : SessionMode
        ``"session"`` or ``"batch"``.
    max_time : int or str or None
        The longest the session may last (as qiskit-ibm-runtime takes it).

    Raises
    ------
    BackendUnavailableError
        When no IBM credentials are available.
    """

    start_pool_when_active = False

    def __init__(self, backend: str, mode: SessionMode, max_time: int | str | None) -> None:
        super().__init__(backend, mode)
        from qiskit_ibm_runtime import Batch, Session

        service = runtime_service()
        device = service.backend(backend.split(":", 1)[1])
        cls = Batch if mode == "batch" else Session
        self._session: Any = cls(backend=device, max_time=max_time)
        self._closed = False

    @property
    def session_id(self) -> str:
        return str(self._session.session_id)

    def state(self) -> SessionState:
        """Where the session is now, from the service (a transient API error reads as active).

        Returns
        -------
        SessionState
            ``"queued"``, ``"active"`` or ``"closed"``.
        """
        if self._closed:
            return "closed"
        try:
            status = self._session.status()
        except Exception:  # a transient API error is not the end of the session
            logger.warning("could not read the status of IBM session %s", self.session_id)
            return "active"
        if status is None or status == "Pending":
            return "queued"
        if status.startswith("In progress"):
            return "active"
        return "closed"

    def close(self) -> None:
        """End the session (idempotent; a failure to close is logged)."""
        if not self._closed:
            self._closed = True
            try:
                self._session.close()
            except Exception:
                logger.warning("closing IBM session %s failed", self.session_id, exc_info=True)
