"""Calibration's probe design and fitting: which tasks measure the cost formulas, and the
least-squares fits that turn their timings into coefficients.

The probes are the tasks the planner itself would make of small cuts of several circuit
families:

* exact evaluations of cut partitions (dense one- and two-qubit gates, diagonal gates; 4 to
  14 qubits; single subexperiments up to hundreds of branches), fitted to the exact formula's
  features (calls, amplitude passes, split amplitudes, observable amplitudes);
* sampled evaluations of rows with and without mid-circuit measurements at several shot
  counts, fitted to queue, per-circuit, per-shot and per-mid-circuit-shot seconds;
* the reconstruction on the driver (:func:`calibrate_driver`): contractions of growing
  partition tensors and bootstrap redraws of sampled rows.

Every fit is a non-negative least-squares fit of relative errors (each measurement counts
alike whatever its size). Running the probes on live pools is workflow-level work
(:mod:`parsl_quantum.workflow.calibration`, behind ``parsl-quantum calibrate``); the
coefficients and each fit's median relative error go into the versioned profile
(:meth:`~parsl_quantum.planner.cost.CostModel.save`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from scipy.optimize import nnls

from parsl_quantum.circuits import (
    clustered_circuit,
    efficient_su2_circuit,
    parse_observable,
    qaoa_circuit,
    random_2local_circuit,
)
from parsl_quantum.cutting.problem import cut_by_labels
from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.reconstruct import contract
from parsl_quantum.cutting.uncertainty import bootstrap_rows
from parsl_quantum.executors.subexperiments import BatchResult
from parsl_quantum.planner.cost import (
    CostModel,
    DriverCoefficients,
    RowCosting,
    contraction_work,
)
from parsl_quantum.planner.partitioning import balanced_widths, block_labels, interaction_graph
from parsl_quantum.planner.plan import aligned_bounds, estimated_subexperiments

#: Widest exact probe (2**14 amplitudes per state keeps a probe under a second).
MAX_PROBE_QUBITS = 14
#: Exact probes with more amplitude passes than this (or ten times the bookkeeping) are left
#: out, which keeps each under about a second.
MAX_PROBE_AMPS = 2.5e8
#: At most this many exact probes (a third with ``--quick``).
MAX_EXACT_PROBES = 180
#: Cuts whose partitions would have more subexperiments than this are not probed.
MAX_PROBE_ROWS = 400_000
#: Widest sampled probe (noisy simulation of mid-circuit measurements is shot by shot).
MAX_SAMPLED_QUBITS = 5


@dataclass(frozen=True)
class Probe:
    """One calibration task: a range of a partition's subexperiments and how to run it.

    Attributes
    ----------
    name : str
        A readable label of the probe (family, width, sites and row range).
    program : PartitionProgram
        The partition whose subexperiments the probe evaluates.
    lo : int
        First subexperiment row of the range.
    hi : int
        End (exclusive) of the row range.
    mode : str
        ``"exact"`` or ``"sampled"``.
    shots : tuple of int or None
        Shots per row of the range for a sampled probe; ``None`` for an exact one.
    """

    name: str
    program: PartitionProgram
    lo: int
    hi: int
    mode: str = "exact"
    shots: tuple[int, ...] | None = None

    @property
    def rows(self) -> np.ndarray:
        """The subexperiment rows ``lo:hi`` of the partition, one option index per cut site."""
        dims = [len(s.options) for s in self.program.sites]
        if not dims:
            return np.zeros((1, 0), dtype=np.int64)
        return np.indices(dims).reshape(len(dims), -1).T[self.lo : self.hi].astype(np.int64)

    def features(self) -> np.ndarray:
        """The cost model's work features of this task (exact or sampled).

        Returns
        -------
        numpy.ndarray
            The features :class:`~parsl_quantum.planner.cost.RowCosting` computes for the row
            range, exact or sampled as the probe's ``mode`` says.
        """
        costing = RowCosting(self.program)
        lo, hi = np.array([self.lo]), np.array([self.hi])
        if self.mode == "exact":
            return costing.exact(lo, hi)[0]
        shots = np.zeros(costing.rows)
        shots[self.lo : self.hi] = self.shots or ()
        return costing.sampled(lo, hi, shots)[0]


@dataclass
class Fit:
    """A least-squares fit: coefficients (intercept first) and its median relative error.

    Attributes
    ----------
    coefficients : numpy.ndarray
        Fitted coefficients, intercept first.
    median_error : float
        Median relative error of the fit over its samples.
    samples : int
        Number of measurements fitted.
    """

    coefficients: np.ndarray
    median_error: float
    samples: int


@dataclass
class Calibration:
    """The fitted model and what the fits looked like, per pool.

    Attributes
    ----------
    model : parsl_quantum.planner.cost.CostModel
        The cost model with the fitted coefficients.
    fits : dict of str to dict of str to Fit
        Per pool, the fit of each formula.
    seconds : float
        Wall-clock seconds the calibration took.
    """

    model: CostModel
    fits: dict[str, dict[str, Fit]] = field(default_factory=dict)
    seconds: float = 0.0

    def diagnostics(self) -> dict[str, Any]:
        """Plain data for the profile file: per pool and formula, samples and median error.

        Returns
        -------
        dict of str to Any
            ``{pool: {formula: {"samples": ..., "median_relative_error": ...}}}``.
        """
        return {
            pool: {
                kind: {"samples": f.samples, "median_relative_error": round(f.median_error, 4)}
                for kind, f in fits.items()
            }
            for pool, fits in self.fits.items()
        }


def fit_nonnegative(features: np.ndarray, seconds: np.ndarray, intercept: bool = True) -> Fit:
    """Non-negative least squares of ``seconds ~ [1] + features @ c`` on relative errors.

    Columns are scaled to unit maximum before solving so features of very different sizes
    (calls, amplitudes) are fitted alike.

    Parameters
    ----------
    features : numpy.ndarray
        One row of features per measurement.
    seconds : numpy.ndarray
        The measured seconds, one per row of ``features``.
    intercept : bool
        Whether to fit an intercept; without one the intercept coefficient is 0.

    Returns
    -------
    Fit
        The coefficients (intercept first), the median relative error and the sample count.
    """
    x: np.ndarray = np.asarray(features, dtype=float).reshape(len(seconds), -1)
    y = np.asarray(seconds, dtype=float)
    if intercept:
        x = np.hstack([np.ones((len(y), 1)), x])
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
    weight = 1.0 / np.maximum(y, 1e-6)
    coef, _ = nnls((x / scale) * weight[:, None], y * weight)
    coef = coef / scale
    if not intercept:
        coef = np.concatenate([[0.0], coef])
        x = np.hstack([np.ones((len(y), 1)), x])
    rel = np.abs(x @ coef - y) / np.maximum(y, 1e-9)
    return Fit(coef, float(np.median(rel)), len(y))


# -- probes ---------------------------------------------------------------------------------


def probe_circuit(family: str, qubits: int) -> QuantumCircuit:
    """A seeded library circuit of one of the probe families.

    Parameters
    ----------
    family : str
        One of ``su2``, ``su2deep``, ``qaoa``, ``random2local``, ``clustered``.
    qubits : int
        Width of the circuit.

    Returns
    -------
    qiskit.QuantumCircuit
        The circuit, ``qubits`` wide.
    """
    return {
        "su2": lambda: efficient_su2_circuit(qubits, 2, "linear", seed=5),
        "su2deep": lambda: efficient_su2_circuit(qubits, 3, "linear", seed=5),
        "qaoa": lambda: qaoa_circuit(qubits, 2, "ring", seed=5),
        "random2local": lambda: random_2local_circuit(qubits, 8, seed=5),
        "clustered": lambda: clustered_circuit(qubits, 4, 3, 2, seed=5),
    }[family]()


def _programs(total: int, parts: int, family: str) -> list[PartitionProgram]:
    """The partitions of a balanced cut of a library circuit, as the planner would cut it."""
    circuit = probe_circuit(family, total)
    graph = interaction_graph(circuit)
    labels, _ = block_labels(circuit, balanced_widths(total, parts), graph)
    if estimated_subexperiments(graph, labels, parts) > MAX_PROBE_ROWS:
        return []
    return cut_by_labels(circuit, parse_observable("mean-z", total), labels).partitions


def _probe_work(probe: Probe) -> float:
    work = probe.features()
    return float(work[1] + 5 * work[3] + 10 * work[5])


def exact_probes(max_qubits: int, quick: bool = False) -> list[Probe]:
    """Exact probes up to ``max_qubits`` (at most :data:`MAX_PROBE_QUBITS`) wide.

    The tasks the planner would make of 2- to 4-way cuts of five circuit families (dense and
    diagonal gates, shallow and deep), each partition whole and split as the planner batches
    it; at most :data:`MAX_EXACT_PROBES` of them, spread evenly over their predicted work, none
    predicted to take much over a second.

    Parameters
    ----------
    max_qubits : int
        Widest partition to probe.
    quick : bool
        Fewer widths and a third as many probes.

    Returns
    -------
    list of Probe
        The probes, ordered by predicted work.
    """
    top = min(max_qubits, MAX_PROBE_QUBITS)
    widths = [w for w in ((3, 6, 9, 12) if quick else (3, 4, 6, 8, 10, 12, 13, 14)) if w <= top]
    seen: set[tuple[str, int, int]] = set()
    candidates: list[tuple[float, Probe]] = []
    for family in ("su2", "su2deep", "qaoa", "random2local", "clustered"):
        for w in widths:
            for parts in (2, 3, 4):
                for prog in _programs(w * parts, parts, family):
                    key = (family, prog.num_qubits, len(prog.sites))
                    if key in seen:
                        continue
                    seen.add(key)
                    dims = [len(s.options) for s in prog.sites]
                    for batches in (1, 3, 9):
                        bounds = aligned_bounds(dims, batches)
                        for lo, hi in {tuple(bounds[0]), tuple(bounds[len(bounds) // 2])}:
                            name = f"{family}:{prog.num_qubits}q{len(dims)}s[{lo}:{hi}]"
                            probe = Probe(name, prog, int(lo), int(hi))
                            work = _probe_work(probe)
                            if work <= MAX_PROBE_AMPS:
                                candidates.append((work, probe))
    unique = {p.name: (w, p) for w, p in candidates}
    ordered = sorted(unique.values(), key=lambda wp: (wp[0], wp[1].name))
    keep = MAX_EXACT_PROBES // (3 if quick else 1)
    if len(ordered) > keep:
        picks = np.unique(np.linspace(0, len(ordered) - 1, keep).round().astype(int))
        ordered = [ordered[i] for i in picks]
    return [p for _, p in ordered]


def sampled_probes(max_qubits: int, quick: bool = False) -> list[Probe]:
    """Sampled probes up to ``max_qubits`` (at most :data:`MAX_SAMPLED_QUBITS`) wide.

    Single rows without and with mid-circuit measurements, and a few rows together, at several
    shot counts.

    Parameters
    ----------
    max_qubits : int
        Widest partition to probe.
    quick : bool
        Fewer circuit families and shot counts.

    Returns
    -------
    list of Probe
        The sampled probes.
    """
    w = min(max_qubits, MAX_SAMPLED_QUBITS)
    probes: list[Probe] = []
    for family in ("su2",) if quick else ("su2", "qaoa"):
        prog = _programs(2 * w, 2, family)[0]
        plain = RowCosting(prog).plain
        first_plain = int(np.argmax(plain > 0))
        first_mid = int(np.argmax(plain == 0))
        for shots in (64, 512) if quick else (64, 512, 2048):
            for lo, hi in ((first_plain, first_plain + 1), (first_mid, first_mid + 1), (0, 5)):
                probes.append(
                    Probe(
                        f"{family}{w}[{lo}:{hi}]x{shots}",
                        prog,
                        lo,
                        hi,
                        "sampled",
                        (shots,) * (hi - lo),
                    )
                )
    return probes


def calibrate_driver(
    samples: Sequence[tuple[PartitionProgram, BatchResult]], quick: bool = False
) -> tuple[DriverCoefficients, dict[str, Fit]]:
    """Time the reconstruction in this process.

    Contractions of problems with 2 to 6 partitions, light and heavy (partitions sharing up to
    three cuts), and bootstrap redraws of sampled rows.

    Parameters
    ----------
    samples : Sequence of tuple of (PartitionProgram, BatchResult)
        Sampled results whose rows are redrawn to time the bootstrap; without any, the default
        per-row bootstrap cost is kept.
    quick : bool
        Fewer and smaller contraction cases, fewer repeats.

    Returns
    -------
    tuple of (DriverCoefficients, dict of str to Fit)
        The driver's coefficients and the reconstruction fit.
    """
    rng = np.random.default_rng(0)
    feats, secs = [], []
    cases = [("su2", 8, 2), ("su2", 16, 4), ("su2", 24, 6), ("su2deep", 12, 3)]
    cases += [("qaoa", 12, 3), ("su2deep", 18, 6), ("qaoa", 18, 6)]
    for family, total, parts in cases[:4] if quick else cases:
        circuit = probe_circuit(family, total)
        labels, _ = block_labels(circuit, balanced_widths(total, parts))
        problem = cut_by_labels(circuit, parse_observable("mean-z", total), labels)
        tensors = [rng.normal(size=p.shape) for p in problem.partitions]
        work = contraction_work(problem)
        for _ in range(3 if quick else 5):
            t0 = time.perf_counter()
            contract(problem, tensors)
            feats.append(work)
            secs.append(time.perf_counter() - t0)
    fits = {"reconstruct": fit_nonnegative(np.array(feats), np.array(secs), intercept=False)}
    c = fits["reconstruct"].coefficients
    per_boot_row = DriverCoefficients().per_boot_row
    replicates = 50
    boot = [(prog, r) for prog, r in samples if r.samples]
    if boot:
        t0 = time.perf_counter()
        rows = 0
        for prog, r in boot:
            bootstrap_rows(prog, r.samples or [], replicates, rng)
            rows += len(r.samples or [])
        per_boot_row = (time.perf_counter() - t0) / (rows * replicates)
    return DriverCoefficients(c[1], c[2], c[3], per_boot_row), fits
