"""Task functions of the cutting workflow, as plain module-level functions.

They are wrapped into Parsl apps at submission (``python_app(fn, executors=[pool])``) and are
importable by name, so Globus Compute ships them by reference. Arguments and results are plain
data: a compiled :class:`~parsl_quantum.cutting.PartitionProgram`, integer option rows, and
:class:`BatchResult`. Importing this module, and running an exact evaluation, loads numpy and
our cutting types only; Qiskit and the backend are loaded by sampled evaluations alone.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from parsl_quantum.cutting.partition import PartitionProgram
from parsl_quantum.cutting.statevector import evaluate_exact

if TYPE_CHECKING:
    from parsl_quantum.cutting.sampled import SampledRow

Mode = Literal["exact", "sampled"]


@dataclass
class BatchResult:
    """What a batch of subexperiments returns to the driver.

    Attributes
    ----------
    values : numpy.ndarray
        ``values[r, o]``: estimate of observable o for row r (exact, or a shot average).
    method : str
        How the values were computed (``batched-statevector``, ``sampled``, ``aer-mps``...).
    backend : str
        The backend the batch ran on.
    started : float
        Start time on the worker (seconds since the epoch).
    finished : float
        End time on the worker (seconds since the epoch).
    host : str
        The worker's host name.
    pid : int
        The worker's process id.
    samples : list[SampledRow] or None
        The outcome counts behind sampled estimates (for bootstrapped errors); None for exact
        ones.
    """

    values: np.ndarray
    method: str
    backend: str
    started: float
    finished: float
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    samples: list[SampledRow] | None = None


def evaluate_subexperiments(
    program: PartitionProgram,
    rows: Sequence[Sequence[int]] | np.ndarray,
    backend: str = "aer",
    mode: Mode = "exact",
    shots: Sequence[int] | None = None,
    seed: int | None = None,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> BatchResult:
    """Evaluate a batch of one partition's subexperiments on this worker.

    In ``exact`` mode every QPD term, mid-circuit measurements included, is evaluated exactly
    with the batched branching statevector engine. In ``sampled`` mode each row runs
    ``shots[r]`` shots on the backend's SamplerV2 after transpilation to its ISA.

    Parameters
    ----------
    program : PartitionProgram
        The compiled partition.
    rows : Sequence[Sequence[int]] or numpy.ndarray
        One option row per subexperiment: an option index for each of the partition's sites.
    backend : str
        The backend to sample on; the task's own resource specification wins when it names one.
    mode : Mode
        ``"exact"`` or ``"sampled"``.
    shots : Sequence[int] or None
        Shots of each row; required in ``sampled`` mode.
    seed : int or None
        Seed of the sampler and the transpiler.
    parsl_resource_specification : Mapping[str, Any] or None
        The task's resource specification, filled in by the QPU-aware executor.

    Returns
    -------
    BatchResult
        One row of observable values per subexperiment row.

    Raises
    ------
    ValueError
        In ``sampled`` mode, without one shot count per row.
    """
    started = time.time()
    spec = dict(parsl_resource_specification or {})
    backend = str(spec.get("backend", backend))
    rows_arr = np.asarray(rows, dtype=np.int64).reshape(len(rows), len(program.sites))
    if mode == "exact":
        values = evaluate_exact(program, rows_arr)
        return BatchResult(values, "batched-statevector", backend, started, time.time())
    if shots is None or len(shots) != len(rows_arr):
        raise ValueError("sampled evaluation needs one shot count per row")
    from parsl_quantum.backends import worker_backend
    from parsl_quantum.cutting.sampled import row_expectations, sample_rows

    qb = worker_backend(backend)
    sampler = qb.sampler(seed=seed)
    samples = sample_rows(program, rows_arr, shots, sampler, lambda cs: qb.transpile(cs, seed=seed))
    values = np.array([row_expectations(program, s) for s in samples]).reshape(
        len(rows_arr), len(program.observables)
    )
    return BatchResult(values, "sampled", backend, started, time.time(), samples=samples)
