"""The performance model: a small explicit formula per pool and task kind.

An evaluate task on pool ``a`` costs the driver ``submit`` seconds (serialising and sending
it, serial on the driver), reaches a free worker of the pool ``latency_in`` seconds after
that, occupies the worker's slot for ``in_run * (overhead + compute)`` seconds (``in_run``:
how much slower slots are in a whole run than in the calibration probes; ``overhead``: what a
slot spends per task between two queued tasks) and its result reaches the driver
``latency_out`` seconds after it ends. A task queued behind another on a busy slot waits for
the slot, not for the latency: a pool that holds its next task (HTEX's prefetch) starts it as
the slot frees up, so a chain of tasks on one slot pays the latencies once. Compute is, for
exact evaluation with the batched branching statevector engine::

    per_call * calls + per_amp * amps + per_uncached_amp * uncached_amps + per_split * splits
        + per_obs * obs + per_index_entry * index_entries

(the work features of :func:`exact_work`: numpy calls weighted by kind; amplitude passes of
gates, weighted by gate kind, and of the stack's copies; the part of those passes over stacks
larger than the cache, which cost more each; amplitudes created by mid-circuit measurements
and resets; amplitude-observables of the final Pauli expectations; index bookkeeping per row
and per branch), and for sampled evaluation (one SamplerV2 job holding all the task's
circuits)::

    queue + per_circuit * circuits + per_shot * shots + per_mid_shot * mid_shots

where ``mid_shots`` are the shots of circuits with mid-circuit measurements, which simulators
cannot draw from one final state. Submission is ``submit + submit_per_gate * gates``.
Reconstruction on the driver is::

    per_partition * partitions + per_entry * entries + per_flop * flops
        (times 1 + replicates, plus per_boot_row * replicates * rows, when any row was sampled)

where ``flops`` are the multiply-adds of the pairwise tensor contraction
(:func:`contraction_work`); each pair is one batched matrix product, so the transposes that
feed it (``entries``) usually cost more than the multiply-adds.

Every task's result costs the driver ``per_result`` seconds once the task has finished
(receiving and deserialising it, completing its future, the dispatcher's bookkeeping and
folding it into the reconstruction): serial on the driver, so the reconstruction starts when the
driver has collected every result, one after another, after its last submission. Every run pays
the driver ``per_run`` seconds once (starting the dispatch, polling pools).

An uncut candidate (the whole circuit as one Aer task, :func:`whole_work`) occupies a slot for
``in_run * (whole_overhead + per_sv_amp * sv_work)`` with Aer's statevector method, ``sv_work``
being ``2**n`` amplitudes times (gates + Pauli labels), or ``in_run * (whole_overhead +
per_mps_flop * mps_work)`` with its matrix-product-state method, ``mps_work`` being
``gates * (2 chi)**3 + labels * n * chi**3`` for the bond dimension ``chi`` that
:func:`mps_bond_bound` predicts (each two-qubit gate costs an SVD of a ``2 chi x 2 chi``
matrix; each label a sweep of ``n`` contractions). Their defaults are derived, not fitted:
``per_sv_amp`` is the engine's ``per_amp`` (Aer's statevector on the 24-qubit main-job circuit
took 12.9 s for 190 gates on the loaded 2-core development machine, 4.0e-9 s per amplitude and
gate, so the engine's figure is on the safe side); ``per_mps_flop`` assumes 1 GFLOP/s on one
core, below what LAPACK reaches there; ``whole_overhead`` counts importing Aer on a worker that
has not yet (0.25-0.5 s measured there) and building the simulator.

The coefficients of each pool live in a versioned profile file written by ``parsl-quantum
calibrate`` (probes and fits in :mod:`parsl_quantum.planner.calibrate`, run by
:mod:`parsl_quantum.workflow.calibration`); without one, :data:`DEFAULT_COEFFICIENTS`
are used and the plan says so.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from parsl_quantum.cutting.problem import CutProblem
from parsl_quantum.cutting.program import GateOp, PartitionProgram
from parsl_quantum.cutting.sampled import commuting_groups

PROFILE_VERSION = 5

#: The pseudo-pool that submits tasks and reconstructs: the process running the workflow.
DRIVER = "driver"

#: Names of the exact work features, in the order of :func:`exact_work`'s vector.
EXACT_FEATURES = ("calls", "amps", "uncached_amps", "splits", "obs", "index_entries")
#: Names of the sampled work features, in the order of :meth:`RowCosting.sampled`.
SAMPLED_FEATURES = ("circuits", "shots", "mid_shots")

#: Relative cost of one amplitude pass of each gate kind in the engine (a dense one-qubit gate
#: is 1): diagonal gates are an elementwise multiply, dense two-qubit gates a 4x4 contraction.
GATE_WEIGHTS = {"1q": 1.0, "1q-diag": 0.5, "2q": 2.0, "2q-diag": 0.5}
#: Relative fixed cost of applying one gate of each kind (a dense one-qubit gate is 1): the
#: two-qubit path reshapes, checks for a diagonal and calls einsum.
CALL_WEIGHTS = {"1q": 1.0, "1q-diag": 2.0, "2q": 9.0, "2q-diag": 8.0}
#: Relative fixed cost of applying one option at a cut site (select, apply, norms, keep).
CALLS_PER_OPTION = 6.0
#: Relative fixed cost of one Pauli label in the final expectations.
CALLS_PER_LABEL = 6.0
#: Stacks of states larger than this (bytes) cost more per amplitude: beyond glibc's largest
#: mmap threshold every new array is fresh pages, faulted in as they are first written.
CACHE_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class PoolCoefficients:
    """Fitted coefficients of one pool (seconds per unit of each feature).

    The defaults are those ``calibrate`` fitted for the local ``cpu`` pool (2 workers) on the
    2-core x86-64 development machine, except ``in_run`` (1.25 there, see
    :data:`DEFAULT_COEFFICIENTS`), which is 1 until fitted. The module docstring gives the
    formulas they enter.

    Attributes
    ----------
    submit : float
        Driver seconds to serialise and send one task.
    submit_per_gate : float
        Driver seconds per gate of the task's program, added to ``submit``.
    latency_in : float
        Seconds from a task's submission to its start on a free worker.
    latency_out : float
        Seconds from a task's end on its worker to its result on the driver.
    overhead : float
        Slot seconds of every task beyond its compute: from the end of one task to the start
        of the next one queued for the same worker, plus the task's fixed cost on it.
    per_call : float
        Seconds per (weighted) numpy call of the exact engine.
    per_amp : float
        Seconds per amplitude pass.
    per_uncached_amp : float
        Extra seconds per amplitude pass over stacks larger than the cache.
    per_split : float
        Seconds per amplitude created by mid-circuit measurements and resets.
    per_obs : float
        Seconds per amplitude-observable of the final Pauli expectations.
    per_index_entry : float
        Seconds per index bookkeeping entry (per row and per branch).
    queue : float
        Seconds of a sampled task's job beyond its circuits.
    per_circuit : float
        Seconds per sampled circuit.
    per_shot : float
        Seconds per shot.
    per_mid_shot : float
        Extra seconds per shot of a circuit with mid-circuit measurements.
    whole_overhead : float
        Seconds of an uncut Aer task beyond its simulation (importing Aer, building it).
    per_sv_amp : float
        Seconds per amplitude and gate (or Pauli label) of Aer's statevector method.
    per_mps_flop : float
        Seconds per multiply-add of Aer's matrix-product-state method.
    in_run : float
        Slot seconds in a whole run over those of the probes the formulas were fitted on: in a
        run, local workers share the cores with the driver and the interchange.
    """

    submit: float = 1.07e-3
    submit_per_gate: float = 2.8e-5
    latency_in: float = 1.8e-3
    latency_out: float = 1.1e-3
    overhead: float = 2.1e-3
    per_call: float = 1.55e-6
    per_amp: float = 4.6e-9
    per_uncached_amp: float = 2.1e-9
    per_split: float = 3.1e-8
    per_obs: float = 6.1e-10
    per_index_entry: float = 7.0e-8
    queue: float = 2.9e-3
    per_circuit: float = 2.8e-3
    per_shot: float = 8.8e-7
    per_mid_shot: float = 5.5e-5
    #: Seconds of an uncut Aer task beyond its simulation (importing Aer, building it).
    whole_overhead: float = 0.3
    #: Seconds per amplitude and gate (or Pauli label) of Aer's statevector method.
    per_sv_amp: float = 4.6e-9
    #: Seconds per multiply-add of Aer's matrix-product-state method.
    per_mps_flop: float = 1.0e-9
    #: Slot seconds in a whole run over those of the probes the formulas were fitted on: in a
    #: run, local workers share the cores with the driver (dispatching, serialising, polling)
    #: and the interchange. Fitted end to end by ``calibrate``.
    in_run: float = 1.0

    def slot_seconds(self, compute: np.ndarray | float) -> np.ndarray:
        """Seconds a task with ``compute`` seconds of work occupies a worker slot in a run.

        Parameters
        ----------
        compute : numpy.ndarray or float
            Compute seconds of one or more tasks.

        Returns
        -------
        numpy.ndarray
            ``in_run * (overhead + compute)``, elementwise.
        """
        return self.in_run * (self.overhead + np.asarray(compute, dtype=float))

    @property
    def latency(self) -> tuple[float, float]:
        """``(latency_in, latency_out)``: seconds a task spends travelling to a free worker and
        its result back to the driver, outside any slot."""
        return (self.latency_in, self.latency_out)

    def exact_seconds(self, work: np.ndarray) -> np.ndarray:
        """Compute seconds of exact work vectors.

        Parameters
        ----------
        work : numpy.ndarray
            Work vectors of shape ``(..., 6)`` as returned by :func:`exact_work`.

        Returns
        -------
        numpy.ndarray
            Compute seconds, one per work vector.
        """
        coef = np.array(
            [
                self.per_call,
                self.per_amp,
                self.per_uncached_amp,
                self.per_split,
                self.per_obs,
                self.per_index_entry,
            ]
        )
        return np.asarray(work, dtype=float) @ coef

    def whole_seconds(self, method: str, work: float) -> float:
        """Compute seconds of an uncut Aer task.

        Parameters
        ----------
        method : str
            ``"statevector"`` or ``"mps"``.
        work : float
            Work units from :func:`whole_work`.

        Returns
        -------
        float
            ``whole_overhead`` plus the method's rate times ``work``.
        """
        rate = self.per_sv_amp if method == "statevector" else self.per_mps_flop
        return self.whole_overhead + rate * work

    def sampled_seconds(self, work: np.ndarray) -> np.ndarray:
        """Compute seconds of sampled work vectors.

        Parameters
        ----------
        work : numpy.ndarray
            Work vectors of shape ``(..., 3)``: circuits, shots, mid-circuit shots.

        Returns
        -------
        numpy.ndarray
            ``queue`` plus the weighted work, one per work vector.
        """
        coef = np.array([self.per_circuit, self.per_shot, self.per_mid_shot])
        return self.queue + np.asarray(work, dtype=float) @ coef


@dataclass(frozen=True)
class DriverCoefficients:
    """Fitted coefficients of the driver's reconstruction, per-result and per-run costs (seconds).

    The defaults were fitted by ``calibrate`` on the 2-core development machine; ``per_run``
    and ``per_result`` together (see :mod:`parsl_quantum.workflow.calibration`), with the local
    ``cpu`` pool of 2 workers, the machine's load average about 2.4.

    Attributes
    ----------
    per_partition : float
        Seconds per partition of a reconstruction.
    per_entry : float
        Seconds per partition tensor entry.
    per_flop : float
        Seconds per multiply-add of the tensor contraction.
    per_boot_row : float
        Seconds per sampled row and bootstrap replicate.
    per_run : float
        Seconds every run pays the driver once (starting the dispatch, polling pools).
    per_result : float
        Seconds the driver spends on each task's result (receiving and deserialising it,
        completing its future, the dispatcher's bookkeeping, folding it into the
        reconstruction), one result after another.
    """

    per_partition: float = 2.8e-5
    per_entry: float = 1.0e-8
    per_flop: float = 0.0
    per_boot_row: float = 6.3e-6
    per_run: float = 1.9e-3
    per_result: float = 4.2e-3


#: Documented defaults per pool kind, fitted by ``parsl-quantum calibrate`` on the 2-core x86-64
#: development machine (numpy 2 and Aer 0.17, one thread per worker as ``configs.local`` sets):
#: the local ``cpu`` pool with 2 workers, and the fake QPU ``fake_perth`` with 1 worker (it
#: samples, so no in-run factor is fitted for it). A GPU pool evaluates exactly with
#: the same numpy engine as a CPU pool (on its host's CPU), so it defaults to the same figures.
DEFAULT_COEFFICIENTS: Mapping[str, PoolCoefficients] = {
    "cpu-sim": PoolCoefficients(in_run=1.25),
    "gpu-sim": PoolCoefficients(in_run=1.25),
    "qpu": PoolCoefficients(
        submit=8.6e-4,
        submit_per_gate=3.4e-5,
        latency_in=1.8e-3,
        latency_out=1.2e-3,
        overhead=2.9e-3,
        queue=0.032,
        per_circuit=4.1e-3,
        per_shot=1.1e-6,
        per_mid_shot=7.2e-5,
        in_run=1.0,
    ),
}


_C = TypeVar("_C", PoolCoefficients, DriverCoefficients)


class ProfileError(ValueError):
    """A profile file that cannot be read or does not match this version."""


@dataclass
class CostModel:
    """Predicts task times per pool from a profile (pool name -> coefficients).

    A pool missing from the profile takes the coefficients of a calibrated pool of the same
    kind, else the documented defaults of its kind.

    Attributes
    ----------
    pools : dict of str to PoolCoefficients
        Fitted coefficients per pool name.
    kinds : dict of str to str
        Kind of each pool (``cpu-sim``, ``gpu-sim``, ``qpu``).
    source : str
        Where the coefficients came from: a profile path, or a note that defaults are used.
    driver : DriverCoefficients
        The driver's reconstruction and per-run coefficients.
    """

    pools: dict[str, PoolCoefficients] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    source: str = "defaults"
    driver: DriverCoefficients = field(default_factory=DriverCoefficients)

    def coefficients(self, pool: str) -> PoolCoefficients:
        """The pool's fitted coefficients, else those of its kind.

        Parameters
        ----------
        pool : str
            Pool name.

        Returns
        -------
        PoolCoefficients
            The pool's own coefficients, else those of a calibrated pool of its kind, else the
            documented defaults of its kind.
        """
        if pool in self.pools:
            return self.pools[pool]
        kind = self.kinds.get(pool, "cpu-sim")
        for name, coef in self.pools.items():
            if self.kinds.get(name) == kind:
                return coef
        return DEFAULT_COEFFICIENTS.get(kind, PoolCoefficients())

    def submit_time(self, pool: str, program: PartitionProgram) -> float:
        """Driver seconds to serialise and send one task of ``program`` to ``pool``.

        Parameters
        ----------
        pool : str
            Pool name.
        program : PartitionProgram
            The partition the task evaluates.

        Returns
        -------
        float
            ``submit + submit_per_gate * gates``.
        """
        c = self.coefficients(pool)
        return c.submit + c.submit_per_gate * program.num_gates

    def reconstruction_time(self, work: np.ndarray) -> float:
        """Driver seconds to contract the partition tensors once.

        The planner adds the bootstrap of sampled rows.

        Parameters
        ----------
        work : numpy.ndarray
            Reconstruction features from :func:`contraction_work`.

        Returns
        -------
        float
            Predicted seconds.
        """
        d = self.driver
        return float(np.dot([d.per_partition, d.per_entry, d.per_flop], work))

    # -- profile files -------------------------------------------------------------------
    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the versioned profile.

        Parameters
        ----------
        path : str or pathlib.Path
            File to write; its directory is created.
        extra : Mapping of str to Any or None
            Fit diagnostics kept alongside the coefficients.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": PROFILE_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "pools": {k: asdict(v) for k, v in self.pools.items()},
            "kinds": self.kinds,
            "driver": asdict(self.driver),
            **dict(extra or {}),
        }
        p.write_text(json.dumps(data, indent=2, default=float))
        return p

    @classmethod
    def load(cls, path: str | Path) -> CostModel:
        """Read a profile.

        Parameters
        ----------
        path : str or pathlib.Path
            The profile file.

        Returns
        -------
        parsl_quantum.planner.cost.CostModel
            The model, its ``source`` the file.

        Raises
        ------
        ProfileError
            Naming the file and what is wrong (unreadable, another version, unknown coefficients).
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
            if data.get("version") != PROFILE_VERSION:
                raise ProfileError(
                    f"profile {p} has version {data.get('version')!r}, expected "
                    f"{PROFILE_VERSION}: run `parsl-quantum calibrate` again"
                )
            pools = {k: _coefficients(PoolCoefficients, v) for k, v in data["pools"].items()}
            driver = _coefficients(DriverCoefficients, data.get("driver", {}))
            return cls(pools, dict(data.get("kinds", {})), str(p), driver)
        except ProfileError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"cannot read profile {p}: {exc}") from None


def _coefficients(cls: type[_C], values: Mapping[str, Any]) -> _C:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ProfileError(f"unknown coefficient(s) {', '.join(unknown)}")
    return cls(**{k: float(v) for k, v in values.items()})


def default_profile_path() -> Path:
    """Where ``calibrate`` writes by default: the user's config directory.

    Returns
    -------
    pathlib.Path
        ``$XDG_CONFIG_HOME/parsl-quantum/profile.json`` (``~/.config`` without it).
    """
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "parsl-quantum" / "profile.json"


def load_model(path: str | Path | None, kinds: Mapping[str, str]) -> CostModel:
    """The model from ``path`` (or the default profile when it exists), else the defaults.

    Parameters
    ----------
    path : str or pathlib.Path or None
        A profile file; ``None`` for the default profile.
    kinds : Mapping of str to str
        Kind of each pool, added to the model's.

    Returns
    -------
    parsl_quantum.planner.cost.CostModel
        The model.

    Raises
    ------
    ProfileError
        If a profile is given or found but cannot be read.
    """
    candidate = Path(path) if path else default_profile_path()
    if path or candidate.exists():
        model = CostModel.load(candidate)
    else:
        model = CostModel(source="defaults (no profile: run `parsl-quantum calibrate`)")
    model.kinds.update(kinds)
    return model


# -- work features ---------------------------------------------------------------------------

#: Bond dimension above which no matrix-product-state candidate is offered.
MPS_MAX_BOND = 1024


def _schmidt_rank(matrix: np.ndarray) -> int:
    """Operator Schmidt rank of a two-qubit gate across its two qubits (1, 2 or 4): the most
    it multiplies the bond dimension of any cut between them."""
    m = np.asarray(matrix).reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    s = np.linalg.svd(m, compute_uv=False)
    return int(np.sum(s > 1e-10 * max(1.0, float(s[0]))))


def mps_bond_bound(program: PartitionProgram) -> int:
    """The bond dimension Aer's matrix-product-state method is predicted to need.

    For the program's gates, along the chain of qubit indices (the order Aer keeps its MPS in).
    Every bond (between qubits i and i+1) starts at 1 and is multiplied by the operator Schmidt
    rank of each two-qubit gate that spans it, and it never exceeds ``2**min(i + 1, n - i - 1)``.
    It is an upper bound for gates on neighbouring qubits; for distant ones Aer moves qubits
    with swaps and may need more, which the uncut task detects and falls back from. O(gates *
    n).

    Parameters
    ----------
    program : PartitionProgram
        The whole program.

    Returns
    -------
    int
        The largest predicted bond dimension (1 below two qubits).
    """
    n = program.num_qubits
    if n < 2:
        return 1
    log_bond = np.zeros(n - 1)
    for segment in program.segments:
        for gate in segment:
            if len(gate.qubits) != 2:
                continue
            rank = _schmidt_rank(gate.matrix)
            if rank > 1:
                a, b = sorted(gate.qubits)
                log_bond[a:b] += np.log2(rank)
    caps = np.minimum(np.arange(1, n), np.arange(n - 1, 0, -1))
    return int(round(2 ** float(np.minimum(log_bond, caps).max())))


def whole_work(program: PartitionProgram, method: str, bond: int = 1) -> float:
    """Work units of evaluating the whole program's observables with Aer (see the module docstring).

    Parameters
    ----------
    program : PartitionProgram
        The whole program.
    method : str
        ``"statevector"`` or ``"mps"``.
    bond : int
        Bond dimension for ``mps`` (from :func:`mps_bond_bound`).

    Returns
    -------
    float
        Amplitude passes for ``statevector``, multiply-adds for ``mps``.
    """
    gates = sum(len(segment) for segment in program.segments)
    labels = len(program.observables)
    n = program.num_qubits
    if method == "statevector":
        return float(2.0**n * (gates + labels))
    chi = float(bond)
    return gates * (2 * chi) ** 3 + labels * n * chi**3


def _is_diagonal(matrix: np.ndarray) -> bool:
    off = matrix - np.diag(np.diagonal(matrix))
    return bool(np.abs(off).max() <= 1e-8 * max(1.0, float(np.abs(matrix).max())))


def gate_kind(gate: GateOp) -> str:
    """Which path of the engine applies a gate.

    Parameters
    ----------
    gate : GateOp
        The gate.

    Returns
    -------
    str
        ``1q``, ``1q-diag``, ``2q`` or ``2q-diag``.
    """
    kind = "1q" if len(gate.qubits) == 1 else "2q"
    return f"{kind}-diag" if _is_diagonal(gate.matrix) else kind


def _bit_lengths(labels: list[str]) -> int:
    """Sum over Pauli labels of the highest Z/Y bit + 1: the engine's parity-sign loop length."""
    total = 0
    for label in labels:
        mask = sum(1 << q for q, ch in enumerate(reversed(label)) if ch in "ZY")
        total += mask.bit_length()
    return total


class RowCosting:
    """Work of contiguous ranges of a partition's subexperiments, in O(sites) per range.

    Rows are the subexperiments in C order (the order of ``np.indices`` over the site options),
    and a task evaluates a contiguous range ``[lo, hi)``. In that order the prefixes of length
    ``l`` of a range are a contiguous range of prefix numbers, so every feature of the engine's
    walk (stack sizes per level, branches created, options applied) is a difference of prefix
    sums precomputed once per partition.

    Parameters
    ----------
    program : PartitionProgram
        The partition whose rows are costed.
    """

    def __init__(self, program: PartitionProgram) -> None:
        self.program = program
        sites = program.sites
        self.dims = np.array([len(s.options) for s in sites], dtype=np.int64)
        self.rows = int(np.prod(self.dims)) if len(sites) else 1
        self.dim = float(1 << program.num_qubits)
        self.strides = [int(np.prod(self.dims[level:])) for level in range(len(sites) + 1)]
        kinds = [[gate_kind(g) for g in seg] for seg in program.segments]
        self.seg_weight = [sum(GATE_WEIGHTS[k] for k in seg) for seg in kinds]
        self.seg_calls = [sum(CALL_WEIGHTS[k] for k in seg) for seg in kinds]
        labels = list(program.observables)
        self.labels = len(labels)
        self.groups = max(1, len(commuting_groups(labels)))
        self.obs_passes = self.groups + len(labels)
        self.sign_work = float(_bit_lengths(labels))
        self.obs_calls = CALLS_PER_LABEL * len(labels) + self.sign_work
        # per level l = 1..k: cumulative branches of the l-prefixes, of their parents, and of
        # the parents times the unitary local ops of the option taken
        self._branches: list[np.ndarray] = []
        self._parents: list[np.ndarray] = []
        self._unitary: list[np.ndarray] = []
        branches = np.ones(1)
        plain = np.ones(1)
        for site in sites:
            growth = np.array([1 << sum(o.kind != "unitary" for o in opt) for opt in site.options])
            unitary_ops = np.array([sum(o.kind == "unitary" for o in opt) for opt in site.options])
            parents = np.repeat(branches, len(growth))
            branches = np.outer(branches, growth).ravel()
            plain = np.outer(plain, (growth == 1).astype(float)).ravel()
            self._branches.append(_cumsum0(branches))
            self._parents.append(_cumsum0(parents))
            self._unitary.append(
                _cumsum0(parents * np.tile(unitary_ops, len(parents) // len(growth)))
            )
        #: 1 for rows whose options are all unitary (no mid-circuit measurement or reset)
        self.plain = plain

    def beyond_cache(self, states: np.ndarray) -> np.ndarray:
        """1 where a stack of ``states`` states no longer fits in the cache.

        Parameters
        ----------
        states : numpy.ndarray
            Stack sizes.

        Returns
        -------
        numpy.ndarray
            1.0 where the stack exceeds :data:`CACHE_BYTES`, else 0.0.
        """
        return (states * self.dim * 16 > CACHE_BYTES).astype(float)

    def exact(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Exact work features of the ranges ``[lo, hi)``.

        Parameters
        ----------
        lo : numpy.ndarray
            First row of each range.
        hi : numpy.ndarray
            End (exclusive) of each range.

        Returns
        -------
        numpy.ndarray
            An m x 6 array, columns as :data:`EXACT_FEATURES`.
        """
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        calls = np.full(lo.shape, self.seg_calls[0], dtype=float)
        amps = np.full(lo.shape, self.seg_weight[0], dtype=float)
        big = amps * self.beyond_cache(np.ones(lo.shape))
        splits = np.zeros(lo.shape)
        book = (hi - lo) * float(len(self.dims))
        stack = np.ones(lo.shape)
        for level in range(1, len(self.dims) + 1):
            a = lo // self.strides[level]
            b = (hi - 1) // self.strides[level] + 1
            book += stack * self.dims[level - 1]
            stack = self._branches[level - 1][b] - self._branches[level - 1][a]
            parents = self._parents[level - 1][b] - self._parents[level - 1][a]
            unitary = self._unitary[level - 1][b] - self._unitary[level - 1][a]
            options = np.minimum(self.dims[level - 1], b - a)
            calls += self.seg_calls[level] + CALLS_PER_OPTION * options
            # gates on the stack, selection copies, local unitaries, norms/keep/concatenate
            passes = (self.seg_weight[level] + 1.0) * stack + parents + unitary
            amps += passes
            big += passes * self.beyond_cache(stack)
            splits += stack - parents
        calls += self.obs_calls
        amps += self.sign_work
        book += stack * self.labels
        obs = stack * self.obs_passes
        d = self.dim
        return np.stack([calls, amps * d, big * d, splits * d, obs * d, book], axis=-1)

    def sampled(self, lo: np.ndarray, hi: np.ndarray, shots: np.ndarray) -> np.ndarray:
        """Sampled work features of the ranges ``[lo, hi)``, given the shots of every row.

        Parameters
        ----------
        lo : numpy.ndarray
            First row of each range.
        hi : numpy.ndarray
            End (exclusive) of each range.
        shots : numpy.ndarray
            Shots of every row of the partition.

        Returns
        -------
        numpy.ndarray
            An m x 3 array: circuits, shots, mid-circuit shots.
        """
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        shots = np.asarray(shots, dtype=float)
        total = _cumsum0(shots)
        mid = _cumsum0(shots * (1.0 - self.plain))
        circuits = (hi - lo) * self.groups
        return np.stack(
            [circuits, (total[hi] - total[lo]) * self.groups, (mid[hi] - mid[lo]) * self.groups],
            axis=-1,
        ).astype(float)


def contraction_work(problem: CutProblem) -> np.ndarray:
    """Reconstruction features (partitions, tensor entries, contraction multiply-adds).

    Follows :func:`parsl_quantum.cutting.reconstruct.contract` on shapes only: each cut matrix
    is absorbed into its second partition's tensor, then pairs are merged greedily (pairs that
    share a cut first, then the smallest result), each merge costing the batch of terms times
    the product of all index dimensions it involves.

    Parameters
    ----------
    problem : CutProblem
        The cut problem.

    Returns
    -------
    numpy.ndarray
        ``[partitions, entries, flops]``.
    """
    terms = float(len(problem.term_coeffs))
    dims: dict[int, int] = {}
    for cut in problem.cuts:
        dims[cut.index] = int(cut.weights.shape[0])
    nodes: list[tuple[int, ...]] = []
    entries = flops = 0.0
    for p, part in enumerate(problem.partitions):
        sizes = [len(s.options) for s in part.sites]
        entries += terms * float(np.prod(sizes))
        for cut in problem.cuts:
            if cut.b == p:
                flops += terms * float(np.prod(sizes)) * dims[cut.index]
        nodes.append(part.cuts)

    def size(axes: set[int]) -> float:
        return terms * float(np.prod([dims[c] for c in axes]))

    while len(nodes) > 1:
        best: tuple[tuple[int, float], int, int] | None = None
        for i in range(len(nodes)):
            for j in range(i + 1, len(nodes)):
                shared = set(nodes[i]) & set(nodes[j])
                out = (set(nodes[i]) | set(nodes[j])) - shared
                key = (0 if shared else 1, size(out))
                if best is None or key < best[0]:
                    best = (key, i, j)
        assert best is not None
        _, i, j = best
        x, y = nodes[i], nodes[j]
        flops += size(set(x) | set(y))
        shared = set(x) & set(y)
        merged = tuple(c for c in x + y if c not in shared)
        nodes = [n for k, n in enumerate(nodes) if k not in (i, j)] + [merged]
    return np.array([float(len(problem.partitions)), entries, flops])


def _cumsum0(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1)
    np.cumsum(values, out=out[1:])
    return out


def exact_work(program: PartitionProgram, rows: np.ndarray) -> np.ndarray:
    """Exact work features of evaluating any set of ``rows`` in one task.

    Shared prefixes are counted once. The direct count behind :class:`RowCosting`, which
    gives the same numbers for contiguous ranges in O(sites) each.

    Parameters
    ----------
    program : PartitionProgram
        The partition.
    rows : numpy.ndarray
        One row of option indices per subexperiment.

    Returns
    -------
    numpy.ndarray
        The features, in the order of :data:`EXACT_FEATURES`.
    """
    costing = RowCosting(program)
    k = len(program.sites)
    rows = np.asarray(rows, dtype=np.int64).reshape(len(rows), k)
    calls, amps, splits = costing.seg_calls[0], costing.seg_weight[0], 0.0
    big = amps * float(costing.beyond_cache(np.ones(1))[0])
    book = float(len(rows) * k)
    stack = 1.0
    for level in range(1, k + 1):
        prefixes = np.unique(rows[:, :level], axis=0)
        branches = np.ones(len(prefixes))
        for i, site in enumerate(program.sites[:level]):
            growth = np.array([1 << sum(o.kind != "unitary" for o in opt) for opt in site.options])
            branches *= growth[prefixes[:, i]]
        last = program.sites[level - 1].options
        growth = np.array([1 << sum(o.kind != "unitary" for o in opt) for opt in last])
        unitary_ops = np.array([sum(o.kind == "unitary" for o in opt) for opt in last])
        parents = branches / growth[prefixes[:, -1]]
        book += stack * len(last)
        stack = float(branches.sum())
        calls += costing.seg_calls[level] + CALLS_PER_OPTION * len(np.unique(prefixes[:, -1]))
        passes = (costing.seg_weight[level] + 1.0) * stack + float(parents.sum())
        passes += float((parents * unitary_ops[prefixes[:, -1]]).sum())
        amps += passes
        big += passes * float(costing.beyond_cache(np.array([stack]))[0])
        splits += stack - float(parents.sum())
    calls += costing.obs_calls
    amps += costing.sign_work
    book += stack * costing.labels
    d = costing.dim
    return np.array([calls, amps * d, big * d, splits * d, stack * costing.obs_passes * d, book])
