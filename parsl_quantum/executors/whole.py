"""The uncut task: a whole circuit's Pauli expectation values with Aer, on one worker.

The planner offers it beside the cut candidates when one simulator pool can hold the circuit.
Aer's matrix-product-state method is exact while no bond is truncated; the task caps the bond
dimension (so a circuit more entangled than the planner predicted cannot run away in time or
memory), reads Aer's MPS log, and when anything was discarded at the cap it falls back to the
statevector method if the circuit is at most ``statevector_qubits`` wide, else fails with one
line that says what to change. Like the other task functions it is a plain module-level
function wrapped into a Parsl app at submission.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from qiskit.circuit import QuantumCircuit

from parsl_quantum.executors.subexperiments import BatchResult

WholeMethod = Literal["statevector", "mps"]

#: Total weight of discarded Schmidt values above which an MPS result is not taken as exact.
DISCARDED_TOLERANCE = 1e-10

_DISCARDED = re.compile(r"discarded_value=([0-9.eE+-]+)")


class MPSBoundExceeded(ValueError):
    """The circuit needed a larger MPS bond than allowed and statevector does not fit."""


def evaluate_whole(
    circuit: QuantumCircuit,
    labels: Sequence[str],
    backend: str = "aer",
    method: WholeMethod = "statevector",
    max_bond: int = 64,
    statevector_qubits: int = 0,
    device: str = "CPU",
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> BatchResult:
    """Expectation values of Pauli ``labels`` on the whole ``circuit``, exactly.

    With ``mps`` no bond grows beyond ``max_bond``, and a run that would have needed more falls
    back to the statevector method when the circuit has at most ``statevector_qubits`` qubits
    (the result's ``method`` then says so).

    Parameters
    ----------
    circuit : QuantumCircuit
        The uncut circuit; final measurements are removed.
    labels : Sequence[str]
        Pauli labels in Qiskit order (rightmost character is qubit 0).
    backend : str
        The backend name recorded in the result; the task's own resource specification wins when
        it names one.
    method : WholeMethod
        ``statevector`` or ``mps``.
    max_bond : int
        The largest MPS bond dimension allowed.
    statevector_qubits : int
        The widest circuit the statevector fallback may take.
    device : str
        Aer's device, ``CPU`` or ``GPU``.
    parsl_resource_specification : Mapping[str, Any] or None
        The task's resource specification, filled in by the QPU-aware executor.

    Returns
    -------
    BatchResult
        One row of values, in the order of ``labels``.

    Raises
    ------
    MPSBoundExceeded
        When the MPS run needed a larger bond and the circuit is too wide for statevector.
    """
    started = time.time()
    spec = dict(parsl_resource_specification or {})
    backend = str(spec.get("backend", backend))
    if method == "mps":
        values, discarded = _run(circuit, labels, "matrix_product_state", device, max_bond)
        if discarded <= DISCARDED_TOLERANCE:
            return BatchResult(values, "aer-mps", backend, started, time.time())
        n = circuit.num_qubits
        if n > statevector_qubits:
            raise MPSBoundExceeded(
                f"the {n}-qubit circuit needs an MPS bond dimension above {max_bond} and is too "
                f"wide for statevector here (at most {statevector_qubits} qubits): set "
                "planner.max_subcircuit_qubits to cut it"
            )
        values, _ = _run(circuit, labels, "statevector", device, max_bond)
        return BatchResult(values, "aer-mps>statevector", backend, started, time.time())
    values, _ = _run(circuit, labels, "statevector", device, max_bond)
    return BatchResult(values, "aer-statevector", backend, started, time.time())


def _run(
    circuit: QuantumCircuit, labels: Sequence[str], method: str, device: str, max_bond: int
) -> tuple[np.ndarray, float]:
    """Values (1 x labels) and, for MPS, the total discarded Schmidt weight."""
    from qiskit.quantum_info import Pauli
    from qiskit_aer import AerSimulator

    options: dict[str, Any] = {"method": method, "device": device}
    if method == "matrix_product_state":
        options.update(matrix_product_state_max_bond_dimension=int(max_bond), mps_log_data=True)
    sim = AerSimulator(**options)
    qc = circuit.remove_final_measurements(inplace=False)
    qubits = list(range(qc.num_qubits))
    for k, label in enumerate(labels):
        qc.save_expectation_value(Pauli(label), qubits, label=f"ev{k}")
    result = sim.run(qc).result()
    data = result.data(0)
    values = np.array([[float(np.real(data[f"ev{k}"])) for k in range(len(labels))]])
    log = str(result.results[0].metadata.get("MPS_log_data", ""))
    discarded = sum(float(v) for v in _DISCARDED.findall(log))
    return values, discarded
