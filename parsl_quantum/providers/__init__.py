"""The resource layer's providers: QPU sessions (reservations) as Parsl blocks."""

from parsl_quantum.providers._pids import ProcessTree
from parsl_quantum.providers._sessions import (
    IBMRuntimeSession,
    QPUSession,
    SessionState,
    SimulatedSession,
)
from parsl_quantum.providers.qpu_session import QPUSessionProvider, SessionBlock

__all__ = [
    "IBMRuntimeSession",
    "ProcessTree",
    "QPUSession",
    "QPUSessionProvider",
    "SessionBlock",
    "SessionState",
    "SimulatedSession",
]
