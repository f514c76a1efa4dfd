"""Non-blocking cutting: :func:`cut_and_run_future` returns a Parsl ``AppFuture``.

It is :func:`~parsl_quantum.workflow.cut_and_run.cut_and_run` as a Parsl ``join_app``, so a cutting
job is one node of a user's Parsl workflow: its arguments may be futures of other apps (it
starts when they are done), its future can be passed to other apps, and several cutting jobs
run at once. The job itself still submits its subexperiments to the pools as Parsl apps; its
driver (planning, late-binding dispatch, reconstruction) runs in one of the DataFlowKernel's
internal task threads, so ``Config.internal_tasks_max_threads`` (10 by default) bounds how many
cutting jobs drive at once.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from parsl import join_app
from parsl.dataflow.futures import AppFuture
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from parsl_quantum.workflow.cut_and_run import CuttingResult, cut_and_run


@join_app
def _cut_and_run_app(
    circuit: QuantumCircuit, observable: SparsePauliOp, options: dict[str, Any]
) -> Future[CuttingResult]:
    done: Future[CuttingResult] = Future()
    done.set_result(cut_and_run(circuit, observable, **options))
    return done


def cut_and_run_future(
    circuit: QuantumCircuit | Future[QuantumCircuit],
    observable: SparsePauliOp | Future[SparsePauliOp],
    **options: Any,
) -> AppFuture:
    """Start :func:`~parsl_quantum.workflow.cut_and_run.cut_and_run` and return at once.

    Parameters
    ----------
    circuit : QuantumCircuit or Future of QuantumCircuit
        As for ``cut_and_run``, or a future of it (e.g. an app that builds the circuit): the
        job starts when it is done.
    observable : SparsePauliOp or Future of SparsePauliOp
        As for ``cut_and_run``, or a future of it: the job starts when it is done.
    **options : Any
        ``cut_and_run``'s keyword options (``max_subcircuit_qubits``, ``pools``, ``mode``,
        ``shots``, ``seed``, ``reference``, ``run_dir``...).

    Returns
    -------
    AppFuture
        Resolves to the :class:`~parsl_quantum.workflow.cut_and_run.CuttingResult`, or raises what
        ``cut_and_run`` raised. Pass it to other Parsl apps like any app's future.
    """
    future: AppFuture = _cut_and_run_app(circuit, observable, dict(options))
    return future


__all__ = ["cut_and_run_future"]
