"""The parameters of the distributed simulation: one frozen dataclass, and the JSON Schema of
its template body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from miniapps.distributed_sim.network import Quantity, ReferenceChoice

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "circuit": {
            "type": "object",
            "description": "A random grid circuit (rows, cols, depth, seed) or a QASM file.",
            "properties": {
                "rows": {"type": "integer", "minimum": 1},
                "cols": {"type": "integer", "minimum": 1},
                "depth": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer"},
                "qasm": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "quantity": {"enum": ["amplitude", "expectation"]},
        "bitstring": {"type": "string", "pattern": "^[01]+$"},
        "observable": {
            "type": "object",
            "description": "A local Pauli product for quantity: expectation.",
            "properties": {
                "pauli": {"type": "string", "pattern": "^[IXYZ]+$"},
                "qubits": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
            "required": ["pauli", "qubits"],
            "additionalProperties": False,
        },
        "task_memory_mb": {"type": "number", "exclusiveMinimum": 0},
        "slices_per_task": {"type": "integer", "minimum": 1},
        "search": {
            "type": "object",
            "properties": {
                "max_repeats": {"type": "integer", "minimum": 1},
                "max_time": {"type": "number", "exclusiveMinimum": 0},
            },
            "additionalProperties": False,
        },
        "reference": {"enum": ["auto", "statevector", "mps", "none"]},
        "mpi": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "pool": {"type": "string"},
                "ranks": {"type": "integer", "minimum": 1},
                "launcher_options": {
                    "type": "string",
                    "description": "Added to the launcher's command, e.g. --oversubscribe.",
                },
            },
            "additionalProperties": False,
        },
    },
    "required": ["circuit"],
}


@dataclass(frozen=True)
class DistributedSimParams:
    """What a distributed simulation computes and how it slices the work.

    Where it runs (the pools, the run directory) is not a parameter: :func:`run` takes those
    as arguments, a template takes them from its envelope.

    Attributes
    ----------
    rows, cols, depth : int
        The :func:`~miniapps.distributed_sim.network.grid_circuit` simulated when no circuit
        (and no ``qasm``) is given: ``rows x cols`` qubits, ``depth`` cycles.
    seed : int
        Seed of the grid circuit's angles and of the default ``bitstring``.
    qasm : str or None
        A QASM file to simulate instead of a grid circuit (unitary; a relative path is also
        looked up from the template's folder).
    quantity : {"amplitude", "expectation"}
        ``<bitstring|C|0>``, or ``<C^dag P C>`` for the Pauli product ``pauli`` on ``qubits``.
    bitstring : str or None
        The amplitude's bits (bit ``i`` is qubit ``i``); None: seeded random bits.
    pauli : str
        The observable's Pauli letters, one per qubit in ``qubits``.
    qubits : tuple of int, or None
        The observable's qubits; None: two neighbours in the middle of the circuit (the first
        ``len(qubits)`` letters of ``pauli`` apply).
    task_memory_mb : float
        The working memory of one task, which sets the number of slices.
    slices_per_task : int or None
        Slices contracted by one task; None: about four tasks per worker.
    max_repeats : int
        Contraction trees cotengra samples.
    max_time : float or None
        Seconds the contraction search may take (None: no limit).
    reference : {"auto", "statevector", "mps", "none"}
        The exact reference (see :func:`~miniapps.distributed_sim.network.reference_method`).
    mpi_pool : str or None
        An ``MPIExecutor`` pool that contracts all slices once more in one task of
        ``mpi_ranks`` ranks; None: the MPI path is skipped.
    mpi_ranks : int
        Ranks of the MPI task.
    mpi_launcher_options : str
        Added to the MPI launcher's command, e.g. ``--oversubscribe``.
    """

    rows: int = 4
    cols: int = 5
    depth: int = 12
    seed: int = 1234
    qasm: str | None = None
    quantity: Quantity = "amplitude"
    bitstring: str | None = None
    pauli: str = "ZZ"
    qubits: tuple[int, ...] | None = None
    task_memory_mb: float = 0.25
    slices_per_task: int | None = None
    max_repeats: int = 32
    max_time: float | None = None
    reference: ReferenceChoice = "auto"
    mpi_pool: str | None = None
    mpi_ranks: int = 2
    mpi_launcher_options: str = ""

    @classmethod
    def from_template(cls, body: Mapping[str, Any]) -> DistributedSimParams:
        """The parameters of a validated ``kind: distributed-simulation`` template body; what
        the body leaves out keeps its default."""
        circuit = body["circuit"]
        search = body.get("search", {})
        mpi = body.get("mpi", {})
        given: dict[str, Any] = {
            k: circuit[k] for k in ("rows", "cols", "depth", "seed", "qasm") if k in circuit
        }
        given |= {
            k: body[k]
            for k in ("quantity", "bitstring", "task_memory_mb", "slices_per_task", "reference")
            if k in body
        }
        given |= {k: search[k] for k in ("max_repeats", "max_time") if k in search}
        if "observable" in body:
            given["pauli"] = str(body["observable"]["pauli"])
            given["qubits"] = tuple(int(q) for q in body["observable"]["qubits"])
        if mpi.get("enabled"):
            given["mpi_pool"] = str(mpi.get("pool", "mpi"))
        if "ranks" in mpi:
            given["mpi_ranks"] = int(mpi["ranks"])
        if "launcher_options" in mpi:
            given["mpi_launcher_options"] = str(mpi["launcher_options"])
        return cls(**given)

    def inputs_for(self, num_qubits: int) -> tuple[str, str, tuple[int, ...]]:
        """The bitstring, Pauli letters and observable qubits for a circuit of ``num_qubits``
        qubits, defaults filled in (see the attributes)."""
        bitstring = self.bitstring or default_bitstring(num_qubits, self.seed)
        if self.qubits is not None:
            return bitstring, self.pauli, tuple(self.qubits)
        mid = num_qubits // 2
        qubits = (mid - 1, mid) if num_qubits > 1 else (0,)
        return bitstring, self.pauli[: len(qubits)], qubits


def default_bitstring(num_qubits: int, seed: int) -> str:
    """Seeded random bits, the amplitude's bitstring when none is given."""
    return "".join(str(b) for b in np.random.default_rng(seed).integers(0, 2, num_qubits))
