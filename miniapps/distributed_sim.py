"""Distributed simulation: a circuit too large for one worker's memory, simulated in pieces.

The tightly coupled motif. Two paths:

* **Sliced tensor-network contraction** (always available). The circuit's amplitude
  ``<b|C|0>`` or a local expectation value ``<0|C^dag P C|0>`` is a tensor network (built and
  simplified by quimb). cotengra finds a contraction tree whose largest intermediate tensor fits
  a per-task memory budget by *slicing*: fixing the values of a few indices splits the
  contraction into ``2^k`` independent contractions of the same small shape, whose sum is the
  answer. Each group of slices is a Parsl task; the driver adds the partial sums. The state
  vector (``16 * 2^n`` bytes) never exists anywhere, and no task needs more than the budget.
  The result is checked against an exact reference computed as another task: Aer's statevector
  for up to :data:`STATEVECTOR_MAX_QUBITS` qubits, Aer's (untruncated) matrix product state
  beyond that.
* **MPI** through Parsl's :class:`~parsl.executors.MPIExecutor`: one Parsl task spans N ranks
  (``num_ranks`` in its resource specification); the ranks split the same sliced contraction
  among themselves with mpi4py and rank 0 reduces the partial sums. The launcher is the pool's
  (``mpiexec`` on one machine, ``srun`` in a Slurm job). It needs a pool that is an
  MPIExecutor, an MPI launcher and mpi4py; :func:`mpi_unavailable_reason` says what is missing
  and the run reports the path as skipped with that reason. Aer's own MPI mode is not used:
  Aer's wheels on PyPI are built without MPI.

Python API: :func:`run`; template kind ``distributed-simulation``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit

from miniapps import _common
from parsl_quantum.executors import PoolInfo
from parsl_quantum.workflow.context import RunContext

Quantity = Literal["amplitude", "expectation"]

#: Bytes per tensor entry (complex128).
ITEMSIZE = 16
#: The largest width for which the reference is a full statevector (16 MiB at 20 qubits).
STATEVECTOR_MAX_QUBITS = 22
#: Pauli matrices for local observables.
_PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}

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


# ------------------------------------------------------------------------------------------
# Circuits


def grid_circuit(rows: int, cols: int, depth: int, seed: int = 1234) -> QuantumCircuit:
    """A random circuit on a ``rows x cols`` grid (qubit ``r * cols + c``), in the style of
    random-circuit-sampling experiments: each cycle applies seeded ``ry``/``rz`` rotations to
    every qubit, then CZ gates on one of four edge patterns (horizontal even/odd, vertical
    even/odd) in turn. Its tensor network grows wide with depth in both grid directions, which
    is what makes slicing necessary."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    patterns: list[list[tuple[int, int]]] = [[], [], [], []]
    for r in range(rows):
        for c in range(cols):
            q = r * cols + c
            if c + 1 < cols:
                patterns[c % 2].append((q, q + 1))
            if r + 1 < rows:
                patterns[2 + r % 2].append((q, q + cols))
    patterns = [p for p in patterns if p] or [[]]
    qc = QuantumCircuit(n, name=f"grid-{rows}x{cols}-d{depth}-s{seed}")
    for cycle in range(depth):
        for q in range(n):
            qc.ry(float(rng.uniform(0, np.pi)), q)
            qc.rz(float(rng.uniform(0, 2 * np.pi)), q)
        for a, b in patterns[cycle % len(patterns)]:
            qc.cz(a, b)
    return qc


def to_quimb(circuit: QuantumCircuit) -> Any:
    """The circuit as a quimb ``Circuit``, gate by gate from each gate's matrix.

    Qiskit orders a gate's matrix with its first qubit least significant, quimb with its first
    site most significant, hence the reversed sites. Barriers are dropped; measurements and
    classical bits are refused.
    """
    import quimb.tensor as qtn

    circ = qtn.Circuit(circuit.num_qubits)
    for inst in circuit.data:
        op = inst.operation
        if op.name == "barrier":
            continue
        if inst.clbits or op.name in ("measure", "reset"):
            raise ValueError(f"cannot simulate {op.name!r} as a tensor network (unitary only)")
        sites = tuple(circuit.find_bit(q).index for q in inst.qubits)
        circ.apply_gate_raw(np.asarray(op.to_matrix(), dtype=complex), tuple(reversed(sites)))
    return circ


def local_operator(pauli: str, qubits: Sequence[int]) -> np.ndarray:
    """The dense operator of a Pauli product on ``qubits`` in quimb's order (first qubit most
    significant), e.g. ``("ZZ", (3, 4))`` for ``Z_3 Z_4``."""
    if len(pauli) != len(qubits):
        raise ValueError(f"observable {pauli!r} needs {len(pauli)} qubits, got {list(qubits)}")
    op = np.array([[1.0 + 0j]])
    for p in pauli:
        op = np.kron(op, _PAULI[p])
    return op


# ------------------------------------------------------------------------------------------
# Planning: the tensor network and its sliced contraction tree


@dataclass
class SlicedContraction:
    """A tensor network ready for sliced contraction: its arrays, the sliced tree, and the
    scale factor ``10**exponent`` quimb stripped while simplifying."""

    arrays: list[np.ndarray]
    tree: Any  # cotengra.ContractionTree with sliced indices
    exponent: float
    nslices: int
    width_unsliced: float  # log2 of the largest intermediate without slicing
    width_sliced: float  # log2 of the largest intermediate of one slice
    flops_unsliced: float
    flops_sliced: float  # summed over all slices
    peak_bytes: int  # estimated peak memory of contracting one slice, inputs included
    input_bytes: int  # the network's input tensors (sent with every task)
    search_s: float = 0.0  # seconds the contraction search took


def build_network(
    circuit: QuantumCircuit,
    quantity: Quantity,
    bitstring: str | None = None,
    pauli: str | None = None,
    qubits: Sequence[int] | None = None,
) -> Any:
    """The simplified quimb tensor network of ``quantity`` (scalar output).

    ``amplitude``: ``<bitstring|C|0>``, bit ``i`` of ``bitstring`` is qubit ``i``.
    ``expectation``: ``<C^dag P C>`` with ``P = pauli`` on ``qubits``, using only the gates in
    the reverse light cone of ``qubits``.
    """
    circ = to_quimb(circuit)
    if quantity == "amplitude":
        if bitstring is None or len(bitstring) != circuit.num_qubits:
            raise ValueError(f"amplitude needs a bitstring of {circuit.num_qubits} bits")
        return circ.amplitude_tn(bitstring, simplify_equalize_norms=False)
    if quantity == "expectation":
        if not pauli or qubits is None:
            raise ValueError("expectation needs an observable (pauli and qubits)")
        bad = [q for q in qubits if not 0 <= q < circuit.num_qubits]
        if bad:
            raise ValueError(f"observable qubits {bad} outside 0..{circuit.num_qubits - 1}")
        return circ.local_expectation_tn(
            local_operator(pauli, qubits), tuple(qubits), simplify_equalize_norms=False
        )
    raise ValueError(f"unknown quantity {quantity!r} (amplitude or expectation)")


def plan_slices(
    tn: Any,
    task_memory_mb: float,
    *,
    max_repeats: int = 32,
    max_time: float | None = None,
    seed: int = 0,
) -> SlicedContraction:
    """Find a contraction tree whose slices fit ``task_memory_mb`` each.

    cotengra's ``HyperOptimizer`` samples greedy trees with slicing built into every trial
    (``slicing_opts={"target_size": ...}``), so a tree is chosen for its cost *after* slicing
    rather than sliced after the fact (slicing a tree found for the unsliced contraction can
    cost orders of magnitude more). The largest intermediate is held to a quarter of the
    budget, leaving room for its two operands; the inputs (the gate tensors, a few bytes per
    gate) come on top and are reported in ``input_bytes``. The slicing overhead is reported
    against the same tree unsliced.
    """
    import cotengra as ctg

    started = time.perf_counter()
    budget = int(task_memory_mb * 2**20)
    target = max(2, budget // ITEMSIZE // 4)
    optimizer = ctg.HyperOptimizer(
        methods=["greedy"],
        max_repeats=max_repeats,
        max_time=max_time,
        parallel=False,
        slicing_opts={"target_size": target, "max_repeats": 4, "seed": seed},
        optlib_opts={"seed": seed},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cotengra warns about optional optimisers it lacks
        tree = tn.contraction_tree(optimize=optimizer, output_inds=())
    full = tree.copy()
    full.unslice_all_()
    arrays = [np.asarray(t.data) for t in tn]
    return SlicedContraction(
        arrays=arrays,
        tree=tree,
        exponent=float(getattr(tn, "exponent", 0.0)),
        nslices=int(tree.nslices),
        width_unsliced=math.log2(float(full.max_size())),
        width_sliced=math.log2(float(tree.max_size())),
        flops_unsliced=float(full.contraction_cost()),
        flops_sliced=float(tree.contraction_cost()),
        peak_bytes=int(float(tree.peak_size()) * ITEMSIZE),
        input_bytes=int(sum(a.nbytes for a in arrays)),
        search_s=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------------
# Tasks


@dataclass
class SliceOutcome:
    """Partial sum of a group of slices and the time spent contracting them."""

    value: complex
    slices: int
    compute_s: float


def contract_slices(
    tree: Any, arrays: Sequence[np.ndarray], indices: Sequence[int]
) -> SliceOutcome:
    """Contract slices ``indices`` of the network and return their sum (a task).

    Each slice fixes the sliced indices to one combination of values; cotengra cuts the input
    arrays accordingly and contracts the remaining, smaller network.
    """
    start = time.perf_counter()
    total = 0j
    for i in indices:
        total += complex(tree.contract_slice(arrays, int(i)))
    return SliceOutcome(total, len(indices), time.perf_counter() - start)


def warm_up_contraction() -> int:
    """Import quimb and cotengra in this worker (a task), so that the timed contraction
    describes the steady state rather than a worker's first imports."""
    import cotengra  # noqa: F401
    import quimb.tensor  # noqa: F401

    return os.getpid()


def reference_value(
    circuit: QuantumCircuit,
    quantity: Quantity,
    method: Literal["statevector", "matrix_product_state"],
    bitstring: str | None = None,
    pauli: str | None = None,
    qubits: Sequence[int] | None = None,
) -> complex:
    """The exact value with Aer (statevector, or matrix product state without truncation), as
    a task on a CPU pool."""
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator

    qc = circuit.copy()
    if quantity == "amplitude":
        assert bitstring is not None
        index = sum(int(bit) << i for i, bit in enumerate(bitstring))
        qc.save_amplitudes([index])
        data = AerSimulator(method=method).run(qc).result().data()
        return complex(data["amplitudes"][0])
    assert pauli is not None and qubits is not None
    # Qiskit labels read right to left: the first qubit of ``qubits`` is the last character
    obs = SparsePauliOp.from_sparse_list([(pauli[::-1], list(qubits)[::-1], 1.0)], qc.num_qubits)
    qc.save_expectation_value(obs, list(range(qc.num_qubits)))
    data = AerSimulator(method=method).run(qc).result().data()
    return complex(data["expectation_value"])


def is_chain(circuit: QuantumCircuit) -> bool:
    """True when every multi-qubit gate acts on neighbouring qubits ``i, i+1`` (a 1D circuit,
    whose matrix product state stays exact at modest bond dimension)."""
    for inst in circuit.data:
        idx = sorted(circuit.find_bit(q).index for q in inst.qubits)
        if len(idx) > 1 and idx[-1] - idx[0] != len(idx) - 1:
            return False
    return True


def reference_method(
    circuit: QuantumCircuit, reference: Literal["auto", "statevector", "mps", "none"] = "auto"
) -> str | None:
    """The Aer method of the exact reference (None: no reference).

    ``auto``: the statevector up to :data:`STATEVECTOR_MAX_QUBITS` qubits; beyond that a matrix
    product state, but only for chain circuits (:func:`is_chain`). On 2D circuits Aer's MPS
    needs bond dimensions exponential in the width and its value drifts (a 4x5 grid of depth 12
    took minutes and missed the statevector amplitude), so ``auto`` gives no reference there.
    """
    if reference == "none":
        return None
    if reference == "statevector":
        return "statevector"
    if reference == "mps":
        return "matrix_product_state"
    if circuit.num_qubits <= STATEVECTOR_MAX_QUBITS:
        return "statevector"
    return "matrix_product_state" if is_chain(circuit) else None


# ------------------------------------------------------------------------------------------
# MPI path: one task, many ranks


def mpi_unavailable_reason(pool: str | None = None) -> str | None:
    """Why the MPI path cannot run here (None when it can).

    It needs an MPI launcher on PATH, mpi4py, and (when ``pool`` is given) that pool to be a
    Parsl ``MPIExecutor`` in the loaded config.
    """
    missing = []
    if not any(shutil.which(x) for x in ("mpiexec", "mpirun", "srun", "aprun")):
        missing.append("no MPI launcher (mpiexec, mpirun, srun or aprun) on PATH")
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py is not installed")
    if pool is not None:
        from parsl.executors import MPIExecutor

        executors = _common.loaded_dfk().executors
        if pool not in executors:
            missing.append(f"pool {pool!r} is not in the loaded config")
        elif not isinstance(executors[pool], MPIExecutor):
            missing.append(f"pool {pool!r} is not a Parsl MPIExecutor")
    return "; ".join(missing) if missing else None


@functools.cache
def _mpiexec_is_open_mpi() -> bool:
    done = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, check=False)
    return "Open MPI" in done.stdout or "OpenRTE" in done.stdout


def mpi_launch_command(prefix: str) -> list[str]:
    """The launcher's argv from the ``PARSL_MPI_PREFIX`` a Parsl MPIExecutor set for a task.

    Parsl writes an ``mpiexec`` prefix with MPICH's options (``-ppn N -hosts a,b``), which Open
    MPI's ``mpiexec`` refuses; for Open MPI they become ``--host a:N,b:N`` (N slots on each
    host). ``srun`` and ``aprun`` prefixes, and MPICH's ``mpiexec``, are used as they are.
    """
    argv = shlex.split(prefix)
    if not argv or argv[0] != "mpiexec" or not _mpiexec_is_open_mpi():
        return argv
    out, ppn, hosts = [], "1", ""
    it = iter(argv)
    for token in it:
        if token == "-ppn":
            ppn = next(it)
        elif token == "-hosts":
            hosts = next(it)
        else:
            out.append(token)
    if hosts:
        out[1:1] = ["--host", ",".join(f"{h}:{ppn}" for h in hosts.split(","))]
    return out


@dataclass
class MPIOutcome:
    """The sum of all slices, contracted by ``ranks`` MPI ranks, and each rank's share."""

    value: complex
    ranks: int
    slices_per_rank: list[int]
    launcher: str


def mpi_contract_slices(
    tree: Any,
    arrays: Sequence[np.ndarray],
    nslices: int,
    parsl_resource_specification: Mapping[str, Any] | None = None,
) -> MPIOutcome:
    """Contract all ``nslices`` slices across the ranks of one MPI launch (a task for a Parsl
    ``MPIExecutor`` pool; ``num_ranks`` in its resource specification).

    The ranks (:func:`_mpi_rank`) split the slices round-robin, each sums its own, and rank 0
    reduces the partial sums with ``MPI.SUM`` and writes the total back. The network goes to
    the ranks as a file in the task's working directory, which ranks on other nodes of the
    block see on a cluster's shared file system.
    """
    prefix = os.environ.get("PARSL_MPI_PREFIX")
    if not prefix:
        raise RuntimeError("PARSL_MPI_PREFIX is not set: run this task on a Parsl MPIExecutor")
    argv = mpi_launch_command(prefix)
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix="pq-mpi-") as tmp:
        job_path, out_path = Path(tmp) / "job.pickle", Path(tmp) / "out.json"
        with job_path.open("wb") as fh:
            pickle.dump({"tree": tree, "arrays": list(arrays), "nslices": nslices}, fh)
        command = [*argv, sys.executable, "-m", __name__, str(job_path), str(out_path)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out_path.exists():
            tail = " ".join(done.stderr.split()[-60:])
            raise RuntimeError(f"{argv[0]} exited with {done.returncode}: {tail}")
        out = json.loads(out_path.read_text())
    return MPIOutcome(
        complex(out["real"], out["imag"]), int(out["ranks"]), out["slices_per_rank"], argv[0]
    )


def _mpi_rank(job_path: str, out_path: str) -> None:
    """One MPI rank (``python -m miniapps.distributed_sim JOB OUT``): contract slices
    ``rank, rank + size, ...``; rank 0 reduces and writes the total and every rank's count."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    mine = range(rank, int(job["nslices"]), size)
    partial = contract_slices(job["tree"], job["arrays"], mine).value
    total = comm.reduce(partial, op=MPI.SUM, root=0)
    counts = comm.gather(len(mine), root=0)
    if rank == 0:
        assert total is not None  # reduced at the root
        out = {"real": total.real, "imag": total.imag, "ranks": size, "slices_per_rank": counts}
        Path(out_path).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------
# Driver


@dataclass
class DistributedSimResult:
    """The value, its reference, and what slicing did."""

    value: complex
    reference: complex | None
    reference_method: str | None
    abs_error: float | None
    rel_error: float | None
    quantity: str
    qubits: int
    nslices: int
    tasks: int
    width_unsliced: float
    width_sliced: float
    flops_overhead: float
    task_memory_bytes: int
    max_intermediate_bytes: int
    peak_task_bytes: int
    input_bytes: int
    statevector_bytes: int
    mpi: dict[str, Any]
    timings: dict[str, float]
    run_dir: Path
    figure: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary. ``value`` and ``reference`` are real headline numbers: the
        probability ``|amplitude|^2`` for an amplitude, the (real) expectation value otherwise;
        the complex results are under ``complex_value`` and ``complex_reference`` as
        ``{"real", "imag"}``, and ``abs_error`` compares the complex results."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["complex_value"] = out.pop("value")
        out["complex_reference"] = out.pop("reference")
        out["value"] = self.headline(self.value)
        out["reference"] = None if self.reference is None else self.headline(self.reference)
        return _common.jsonable(out)

    def headline(self, z: complex) -> float:
        """The real number a complex result is summarised by (see :meth:`to_dict`)."""
        return float(abs(z) ** 2) if self.quantity == "amplitude" else float(z.real)


def _figure(partials: Sequence[complex], res: DistributedSimResult, path: Path) -> Path:
    fig = _common.new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    running = np.concatenate([[0j], np.cumsum(np.asarray(partials, dtype=complex))])
    left.plot(running.real, running.imag, "o-", ms=3, color="C0", label="running sum of tasks")
    if res.reference is not None:
        left.plot(
            [res.reference.real],
            [res.reference.imag],
            "*",
            ms=14,
            color="C3",
            label=f"{res.reference_method} reference",
        )
    left.set_xlabel("real part")
    left.set_ylabel("imaginary part")
    left.set_title(f"{res.quantity}: {res.nslices} slices summed in {res.tasks} tasks")
    left.legend(fontsize=8)
    left.ticklabel_format(style="sci", scilimits=(-2, 2))
    labels = ["state vector", "budget / task", "peak / task", "largest\nintermediate"]
    sizes = [
        res.statevector_bytes,
        res.task_memory_bytes,
        res.peak_task_bytes,
        res.max_intermediate_bytes,
    ]
    right.bar(labels, sizes, color=["C3", "C7", "C0", "C2"])
    right.set_yscale("log")
    right.set_ylabel("bytes")
    err = f"{res.abs_error:.1e}" if res.abs_error is not None else "n/a"
    right.set_title(f"{res.qubits} qubits, {res.quantity}; error vs reference {err}")
    return _common.save_figure(fig, path)


def execute(
    ctx: RunContext,
    circuit: QuantumCircuit,
    quantity: Quantity = "amplitude",
    *,
    pools: Sequence[str],
    bitstring: str | None = None,
    pauli: str | None = None,
    qubits: Sequence[int] | None = None,
    task_memory_mb: float = 0.25,
    slices_per_task: int | None = None,
    max_repeats: int = 32,
    max_time: float | None = None,
    reference: Literal["auto", "statevector", "mps", "none"] = "auto",
    mpi_pool: str | None = None,
    mpi_ranks: int = 2,
    mpi_launcher_options: str = "",
    plan: SlicedContraction | None = None,
) -> DistributedSimResult:
    """Simulate ``circuit`` in slices inside ``ctx`` (the engine of :func:`run`); ``plan``
    skips the contraction search when :func:`prepare` already made it."""
    if not pools:
        raise ValueError("no pools to contract slices on")
    timings = _common.Timings()
    n = circuit.num_qubits
    with timings.stage("plan"):
        if plan is None:
            tn = build_network(circuit, quantity, bitstring, pauli, qubits)
            plan = plan_slices(tn, task_memory_mb, max_repeats=max_repeats, max_time=max_time)
    if timings.seconds["plan"] < plan.search_s:  # searched in prepare(), before the pools
        timings.seconds["plan"] = plan.search_s
    slots = sum(max(1, ctx.pools[p].workers) if p in ctx.pools else 1 for p in pools)
    per_task = slices_per_task or max(1, math.ceil(plan.nslices / (4 * slots)))
    groups = [
        list(range(i, min(i + per_task, plan.nslices))) for i in range(0, plan.nslices, per_task)
    ]

    ref_method = reference_method(circuit, reference)
    with timings.stage("warmup"):
        warm = [
            _common.submit(
                ctx, warm_up_contraction, p, task=f"warmup-{p}-{i}", kind="warmup", cache=False
            )
            for p in pools
            for i in range(max(1, ctx.pools[p].workers) if p in ctx.pools else 1)
        ]
        for fut in warm:
            fut.result()
    with timings.stage("contract"):
        futures = []
        for k, group in enumerate(groups):
            pool = pools[k % len(pools)]
            futures.append(
                _common.submit(
                    ctx,
                    contract_slices,
                    pool,
                    plan.tree,
                    plan.arrays,
                    group,
                    task=f"slices-{group[0]}-{group[-1]}",
                    kind="tn-slices",
                    qubits=n,
                    cache=False,  # the contraction tree is a cotengra object, new each run
                )
            )
        partials = []
        for k, fut in enumerate(futures):
            partials.append(fut.result().value)
            ctx.progress("+".join(pools), k + 1, len(futures))
        scale = 10.0**plan.exponent
        value = complex(sum(partials)) * scale
    ref = None
    if ref_method is not None:  # after the slices, so the two timings do not share workers
        with timings.stage("reference"):
            ref_future = _common.submit(
                ctx,
                reference_value,
                pools[0],
                circuit,
                quantity,
                ref_method,
                bitstring,
                pauli,
                qubits,
                task="reference",
                kind="reference",
                qubits=n,
            )
            ref = complex(ref_future.result())

    mpi: dict[str, Any] = {"ran": False}
    reason = mpi_unavailable_reason(mpi_pool) if mpi_pool else "no MPI pool requested"
    if reason is None and mpi_pool is not None:
        with timings.stage("mpi"):
            spec = {
                "num_nodes": 1,
                "num_ranks": mpi_ranks,
                "ranks_per_node": mpi_ranks,
                "launcher_options": mpi_launcher_options,
            }
            app = __import__("parsl").python_app(mpi_contract_slices, executors=[mpi_pool])
            fut = app(plan.tree, plan.arrays, plan.nslices, parsl_resource_specification=spec)
            ctx.recorder.track(fut, task="mpi-slices", kind="mpi", pool=mpi_pool, qubits=n)
            outcome: MPIOutcome = fut.result()
        mpi_value = outcome.value * scale
        mpi = {
            "ran": True,
            "value": mpi_value,
            "ranks": outcome.ranks,
            "slices_per_rank": outcome.slices_per_rank,
            "launcher": outcome.launcher,
            "abs_error": abs(mpi_value - value),
        }
    else:
        mpi["skipped"] = reason

    abs_err = abs(value - ref) if ref is not None else None
    rel_err = abs_err / abs(ref) if ref is not None and abs_err is not None and ref != 0 else None
    result = DistributedSimResult(
        value=value,
        reference=ref,
        reference_method=ref_method,
        abs_error=abs_err,
        rel_error=rel_err,
        quantity=quantity,
        qubits=n,
        nslices=plan.nslices,
        tasks=len(groups),
        width_unsliced=plan.width_unsliced,
        width_sliced=plan.width_sliced,
        flops_overhead=plan.flops_sliced / plan.flops_unsliced if plan.flops_unsliced else 1.0,
        task_memory_bytes=int(task_memory_mb * 2**20),
        max_intermediate_bytes=int(2**plan.width_sliced) * ITEMSIZE,
        peak_task_bytes=plan.peak_bytes,
        input_bytes=plan.input_bytes,
        statevector_bytes=ITEMSIZE * 2**n,
        mpi=mpi,
        timings={},
        run_dir=ctx.run_dir,
    )
    with timings.stage("report"):
        result.figure = _figure(
            [p * scale for p in partials], result, ctx.run_dir / "distributed_sim.png"
        )
        ctx.recorder.write()
    result.timings = timings.as_dict()
    _common.write_json(ctx.run_dir / "result.json", result.to_dict())
    return result


def _default_bitstring(n: int, seed: int) -> str:
    return "".join(str(b) for b in np.random.default_rng(seed).integers(0, 2, n))


def run(
    circuit: QuantumCircuit | None = None,
    quantity: Quantity = "amplitude",
    *,
    rows: int = 4,
    cols: int = 5,
    depth: int = 12,
    seed: int = 1234,
    bitstring: str | None = None,
    pauli: str = "ZZ",
    qubits: Sequence[int] | None = None,
    task_memory_mb: float = 0.25,
    slices_per_task: int | None = None,
    max_repeats: int = 32,
    reference: Literal["auto", "statevector", "mps", "none"] = "auto",
    mpi_pool: str | None = None,
    mpi_ranks: int = 2,
    mpi_launcher_options: str = "",
    pools: Sequence[str] | None = None,
    run_dir: str | Path = "runinfo/distributed-simulation",
) -> DistributedSimResult:
    """Simulate a circuit as a sliced tensor network with the loaded Parsl config.

    ``circuit`` (unitary, no measurements) or a :func:`grid_circuit` of ``rows x cols`` qubits
    and ``depth`` cycles. ``quantity``: ``amplitude`` of ``bitstring`` (default: seeded random
    bits) or ``expectation`` of ``pauli`` on ``qubits`` (default: two neighbours mid-grid).
    ``task_memory_mb`` bounds each task's working memory and so sets the number of slices.
    ``pools`` default to ``cpu`` (and ``gpu`` when configured). ``mpi_pool`` names an
    ``MPIExecutor`` pool that contracts all the slices once more in one task of ``mpi_ranks``
    ranks (``mpi_launcher_options`` added to the launcher's command, e.g. ``--oversubscribe``).
    """
    chosen = _common.resolve_pools(pools, default=("cpu", "gpu"))
    ctx = _common.make_context(run_dir, chosen)
    if circuit is None:
        circuit = grid_circuit(rows, cols, depth, seed)
    n = circuit.num_qubits
    if quantity == "amplitude" and bitstring is None:
        bitstring = _default_bitstring(n, seed)
    if quantity == "expectation" and qubits is None:
        mid = n // 2
        qubits = (mid - 1, mid) if n > 1 else (0,)
        pauli = pauli[: len(qubits)]
    return execute(
        ctx,
        circuit,
        quantity,
        pools=chosen,
        bitstring=bitstring,
        pauli=pauli,
        qubits=qubits,
        task_memory_mb=task_memory_mb,
        slices_per_task=slices_per_task,
        max_repeats=max_repeats,
        reference=reference,
        mpi_pool=mpi_pool,
        mpi_ranks=mpi_ranks,
        mpi_launcher_options=mpi_launcher_options,
    )


@dataclass
class PreparedSimulation:
    """A template's circuit, quantity and contraction plan, made before any pool starts."""

    circuit: QuantumCircuit
    quantity: Quantity
    bitstring: str | None
    pauli: str | None
    qubits: tuple[int, ...] | None
    plan: SlicedContraction


def prepare(
    template: Mapping[str, Any], pools: Mapping[str, PoolInfo], base_dir: Path | None = None
) -> PreparedSimulation:
    """Load the circuit, check the quantity's inputs and find the sliced contraction tree, on
    the driver, before any pool starts: bad input and impossible budgets fail here."""
    spec = template["circuit"]
    seed = int(spec.get("seed", 1234))
    if "qasm" in spec:
        (circuit,) = _common.read_qasm_files([spec["qasm"]], base_dir)
    else:
        circuit = grid_circuit(
            int(spec.get("rows", 4)), int(spec.get("cols", 5)), int(spec.get("depth", 12)), seed
        )
    n = circuit.num_qubits
    quantity: Quantity = template.get("quantity", "amplitude")
    bitstring = template.get("bitstring") or _default_bitstring(n, seed)
    obs = template.get("observable", {"pauli": "ZZ", "qubits": [max(0, n // 2 - 1), n // 2]})
    pauli, qubits = str(obs["pauli"]), tuple(int(q) for q in obs["qubits"])
    tn = build_network(circuit, quantity, bitstring, pauli, qubits)
    search = template.get("search", {})
    plan = plan_slices(
        tn,
        float(template.get("task_memory_mb", 0.25)),
        max_repeats=int(search.get("max_repeats", 32)),
        max_time=search.get("max_time"),
    )
    return PreparedSimulation(circuit, quantity, bitstring, pauli, qubits, plan)


def run_template(template: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Run a validated ``kind: distributed-simulation`` template in a loaded DataFlowKernel."""
    prep = ctx.prepared
    if not isinstance(prep, PreparedSimulation):
        prep = prepare(template, ctx.pools)
    mpi = template.get("mpi", {})
    pools = _common.template_pools(template, ctx, ("cpu", "gpu"))
    mpi_pool = mpi.get("pool", "mpi") if mpi.get("enabled") else None
    result = execute(
        ctx,
        prep.circuit,
        prep.quantity,
        pools=[p for p in pools if p != mpi_pool] or pools,
        bitstring=prep.bitstring,
        pauli=prep.pauli,
        qubits=prep.qubits,
        task_memory_mb=float(template.get("task_memory_mb", 0.25)),
        slices_per_task=template.get("slices_per_task"),
        reference=template.get("reference", "auto"),
        mpi_pool=mpi_pool,
        mpi_ranks=int(mpi.get("ranks", 2)),
        mpi_launcher_options=str(mpi.get("launcher_options", "")),
        plan=prep.plan,
    )
    return result.to_dict()


if __name__ == "__main__":  # an MPI rank of :func:`mpi_contract_slices`
    _mpi_rank(sys.argv[1], sys.argv[2])
