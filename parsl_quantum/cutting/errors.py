"""Errors raised by the cutting engine."""


class CuttingError(ValueError):
    """A circuit, observable or limit that the cutting engine cannot work with.

    Subclasses ``ValueError`` so that callers treating bad input generically still catch it; the
    message is a single line meant for users.
    """


class NoCutFoundError(CuttingError):
    """No cut configuration fits the requested subcircuit width."""
