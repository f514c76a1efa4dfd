"""The performance model: a small explicit formula per pool and task kind.

Exact evaluation (batched statevector)::

    t = overhead + sum over segments of gates * (per_call + per_amp * branches * 2**qubits)

where ``branches`` is the number of stacked states at that segment (shared prefixes counted
once). Sampled evaluation::

    t = overhead + queue + circuits * per_circuit + shots * per_shot

Reconstruction::

    t = per_entry * (entries of all partition tensors)

The coefficients of each pool live in a profile file written by ``parsl-quantum calibrate``;
without one, :data:`DEFAULT_COEFFICIENTS` are used and the plan says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from parsl_quantum.cutting.program import PartitionProgram
from parsl_quantum.cutting.sampled import commuting_groups

PROFILE_VERSION = 1


@dataclass(frozen=True)
class PoolCoefficients:
    """Fitted coefficients of one pool (seconds)."""

    overhead: float = 0.004
    per_call: float = 4e-6
    per_amp: float = 1.5e-9
    queue: float = 0.0
    per_circuit: float = 0.004
    per_shot: float = 2e-6
    per_entry: float = 2e-8


#: Documented defaults, measured once on a 2-core x86-64 machine with numpy 2 and Aer 0.18.
DEFAULT_COEFFICIENTS: Mapping[str, PoolCoefficients] = {
    "cpu-sim": PoolCoefficients(),
    "gpu-sim": PoolCoefficients(per_amp=1e-10, overhead=0.01),
    "qpu": PoolCoefficients(overhead=0.01, queue=0.0, per_circuit=0.02, per_shot=5e-6),
}


class ProfileError(ValueError):
    """A profile file that cannot be read or does not match this version."""


@dataclass
class CostModel:
    """Predicts task times per pool from a profile (pool name -> coefficients)."""

    pools: dict[str, PoolCoefficients] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    source: str = "defaults"

    def coefficients(self, pool: str) -> PoolCoefficients:
        """The pool's fitted coefficients, else the defaults of its kind."""
        if pool in self.pools:
            return self.pools[pool]
        return DEFAULT_COEFFICIENTS.get(self.kinds.get(pool, "cpu-sim"), PoolCoefficients())

    def exact_time(self, pool: str, program: PartitionProgram, rows: np.ndarray) -> float:
        c = self.coefficients(pool)
        calls, amp_ops = exact_work(program, rows)
        return c.overhead + c.per_call * calls + c.per_amp * amp_ops

    def sampled_time(self, pool: str, program: PartitionProgram, shots: int, rows: int) -> float:
        c = self.coefficients(pool)
        circuits = rows * max(1, len(commuting_groups(program.observables)))
        return c.overhead + c.queue + c.per_circuit * circuits + c.per_shot * shots

    def reconstruction_time(self, entries: int) -> float:
        c = self.coefficients("__driver__")
        return c.per_entry * entries

    # -- profile files -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": PROFILE_VERSION,
            "pools": {k: asdict(v) for k, v in self.pools.items()},
            "kinds": self.kinds,
        }
        p.write_text(json.dumps(data, indent=2))
        return p

    @classmethod
    def load(cls, path: str | Path) -> CostModel:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
            if data.get("version") != PROFILE_VERSION:
                raise ProfileError(f"profile {p} has version {data.get('version')!r}, expected 1")
            pools = {k: replace(PoolCoefficients(), **v) for k, v in data["pools"].items()}
            return cls(pools, dict(data.get("kinds", {})), str(p))
        except ProfileError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"cannot read profile {p}: {exc}") from None


def default_profile_path() -> Path:
    """Where ``calibrate`` writes by default: the user's config directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "parsl-quantum" / "profile.json"


def load_model(path: str | Path | None, kinds: Mapping[str, str]) -> CostModel:
    """The model from ``path`` (or the default profile when it exists), else the defaults."""
    candidate = Path(path) if path else default_profile_path()
    if path or candidate.exists():
        model = CostModel.load(candidate)
    else:
        model = CostModel(source="defaults (no profile: run `parsl-quantum calibrate`)")
    model.kinds.update(kinds)
    return model


def exact_work(program: PartitionProgram, rows: np.ndarray) -> tuple[int, float]:
    """Numpy calls and amplitude-operations of evaluating ``rows`` with shared prefixes."""
    dim = float(1 << program.num_qubits)
    k = len(program.sites)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, k)
    growth = [
        np.array([1 << sum(o.kind != "unitary" for o in opts) for opts in s.options])
        for s in program.sites
    ]
    calls = len(program.segments[0])
    amp_ops = len(program.segments[0]) * dim
    for level in range(1, k + 1):
        prefixes = np.unique(rows[:, :level], axis=0)
        branches = np.ones(len(prefixes))
        for i in range(level):
            branches *= growth[i][prefixes[:, i]]
        total = float(branches.sum())
        gates = len(program.segments[level]) + 1
        # one call per gate on the whole stack, plus one per option applied at the site
        calls += gates + len(np.unique(prefixes[:, -1]))
        amp_ops += gates * total * dim
    final = float(np.prod([g.mean() for g in growth])) * len(rows) if k else 1.0
    amp_ops += final * dim * max(1, len(program.observables))
    return calls, amp_ops
